import ArgumentParser
import Foundation
import Logging
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

/// Which instances a command works on.
struct SelectionOptions: ParsableArguments {
    @Option(name: .customLong("instance"), help: ArgumentHelp("An instance to work on (repeatable).", valueName: "name"))
    var instances: [String] = []
    @Option(name: .customLong("label"), help: ArgumentHelp("Only instances with this label (repeatable; all must match).", valueName: "key=value"))
    var labels: [String] = []
    @Flag(help: "Every enabled instance.")
    var all = false
    @Option(help: ArgumentHelp("This machine's slice of the fleet, by app group: K of N.", valueName: "K/N"))
    var shard: String?
    @Option(help: ArgumentHelp("The number of slices; the slice is JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).", valueName: "N"))
    var shards: Int?

    func validate() throws {
        _ = try parseLabels(labels)
    }

    var selection: Selection {
        get throws {
            var selection = Selection()
            selection.instances = instances
            selection.labels = try parseLabels(labels)
            selection.all = all
            selection.shard = try Selection.shard(shard, shards: shards, environment: ProcessInfo.processInfo.environment)
            return selection
        }
    }
}

/// The options every job takes.
struct JobOptions: ParsableArguments {
    @OptionGroup var select: SelectionOptions
    @Flag(name: .customLong("dry-run"), help: "Read the real state, print what would change, change nothing; exit 2 if anything would.")
    var dryRun = false
    @Option(help: ArgumentHelp("Requests in flight at once, to Slack, W&B and Kubernetes together, and instances of one app group worked on at once (default: the job file's). Slack's quotas, not this, bound how fast apps are written: every workspace writes at its own quota at once.", valueName: "N"))
    var concurrency: Int?
    @Option(name: .customLong("max-failures"), help: ArgumentHelp("Start no new work after this many failed instances.", valueName: "N|P%"))
    var maxFailures: String?
    @Option(name: .customLong("max-duration"), help: ArgumentHelp("Start no new change after this long, and no write the quota would only allow later; exit 75 and let the next run resume.", valueName: "duration"))
    var maxDuration: String?
    @Option(name: .customLong("job-file"), help: ArgumentHelp("Job settings other than the defaults in jobs/<job>.json.", valueName: "path"))
    var jobFile: String?
    @Option(name: .customLong("pace-scale"), help: ArgumentHelp("Multiply the job's Slack pace: only for a fleet-sim running with --time-scale N.", valueName: "N"))
    var paceScale: Double?
    @Option(name: .customLong("log-level"), help: ArgumentHelp("Log to stderr at this level: debug shows every request (method, host, path; never headers or bodies). Default: $SLACKFLEET_LOG_LEVEL, else warning.", valueName: "level"))
    var logLevel: String?
    @Flag(help: "JSON lines on stdout: one per instance, then a summary.")
    var json = false
    @Option(name: .customLong("metrics-file"), help: ArgumentHelp("Write a Prometheus textfile here (atomically, mode 0600).", valueName: "path"))
    var metricsFile: String?

    func validate() throws {
        if let concurrency, !(1...128).contains(concurrency) { throw ValidationError("--concurrency must be between 1 and 128") }
        if let maxDuration, JobOptions.seconds(maxDuration) == nil { throw ValidationError("--max-duration \(maxDuration): write it like 90s, 30m or 2h") }
        if let maxFailures { _ = try FailureBudget(parsing: maxFailures) }
        if let paceScale, paceScale <= 0 { throw ValidationError("--pace-scale must be more than 0") }
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level \(logLevel): use trace, debug, info, notice, warning, error or critical")
        }
    }

    static func seconds(_ text: String) -> TimeInterval? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        if let unit = text.last, let multiplier = units[unit], let value = Double(text.dropLast()), value > 0 { return value * multiplier }
        return Double(text).flatMap { $0 > 0 ? $0 : nil }
    }

    func runOptions(job: String) throws -> RunOptions {
        var options = RunOptions(settings: try JobSettings.load(job: job, file: jobFile))
        if let paceScale {
            options.settings.slackQuotas.perMinute = options.settings.slackQuotas.perMinute.mapValues { $0 * paceScale }
        }
        options.selection = try select.selection
        options.dryRun = dryRun
        options.concurrency = concurrency
        options.maxFailures = try maxFailures.map(FailureBudget.init(parsing:))
        options.maxDuration = maxDuration.flatMap(JobOptions.seconds)
        return options
    }
}

/// Runs a job the way every job command does: lock, signals, output, metrics, exit code.
enum JobCommand {
    static func run(_ job: FleetJob, global: GlobalOptions, options: JobOptions) throws {
        HTTPTransport.startEventLoops()
        try Console.run {
            let store = try global.openStore()
            // The inventory is read while the job's settings are read, the keyring opens and the
            // run takes its lock: every run reads all of it before its first request.
            let inventory = InventoryRead(store)
            var runOptions = try options.runOptions(job: job.name)
            runOptions.transport = try global.transport()
            runOptions.inventory = inventory
            let (keyring, audit) = try global.openForChanges(store, command: job.name)
            let control = RunControl(maxDuration: runOptions.maxDuration)
            let signals = SignalTrap(control: control)
            defer { signals.cancel() }
            var logger = Logger(label: "slackfleet", factory: { label in StreamLogHandler.standardError(label: label) })
            logger.logLevel = (options.logLevel ?? ProcessInfo.processInfo.environment["SLACKFLEET_LOG_LEVEL"]).flatMap(Logger.Level.init(rawValue:)) ?? .warning
            logger[metadataKey: "run-id"] = "\(audit.context.runID)"
            let runner = Runner(store: store, vault: SecretVault(store: store, keyring: keyring), audit: audit, control: control, logger: logger)
            let progress = ProgressLine(terminal: isatty(STDERR_FILENO) == 1)
            runner.onProgress = { progress.update($0) }
            let report = try runner.run(job, options: runOptions) { Console.note($0) }
            progress.finish()
            // The run is recorded: its pages reach the database file while the results print.
            try store.checkpointing {
                if let path = options.metricsFile { try MetricsFile.write(report, to: path) }
                if options.json {
                    Console.resultLines(report.results)
                    try Console.jsonLine(RunSummary(report))
                } else {
                    Console.out(Self.table(report))
                    if let stop = report.stop { Console.note("stopped early: \(stop.rawValue); the next run carries on") }
                }
                if let overrun = report.etaOverrun { Console.note(overrun) }
            }
            return report.exitStatus
        }
    }

    static func table(_ report: RunReport) -> String {
        var out = ""
        if report.dryRun {
            for (instance, changes) in report.planned.sorted(by: { $0.key < $1.key }) {
                for change in changes { out += "plan: \(instance.isEmpty ? "" : instance + ": ")\(change)\n" }
            }
        }
        if report.results.contains(where: { $0.checks != nil }) {
            // verify-delivery: one column per check.
            var table = TextTable(headers: ["INSTANCE", "WORKSPACE"] + VerifyDelivery.checkNames.map { $0.uppercased().replacingOccurrences(of: "_", with: " ") } + ["LATENCY", "CONNECTION", "RESULT"])
            table.rows = report.results.map { result in
                [result.instance, result.workspace] + VerifyDelivery.checkNames.map { result.checks?[$0] == "ok" ? "ok" : (result.checks?[$0] == nil || result.checks?[$0] == "skipped" ? "-" : "FAIL") }
                    + [result.deliverySeconds.map { String(format: "%.1f s", $0) } ?? "-", result.connection?.rawValue ?? "-", result.outcome.rawValue]
            }
            out += table.render()
            for result in report.results where result.outcome != .ok && result.outcome != .needsConnect { out += "\(result.instance): \(result.detail)\n" }
        } else if report.results.contains(where: { $0.connection != nil }) {
            var table = TextTable(headers: ["INSTANCE", "APP GROUP", "WORKSPACE", "RESULT", "CONNECTION", "DETAIL"])
            table.rows = report.results.map { [$0.instance, $0.appGroup, $0.workspace, $0.outcome.rawValue, $0.connection?.rawValue ?? "-", $0.detail] }
            out += table.render()
        } else {
            var table = TextTable(headers: ["INSTANCE", "APP GROUP", "WORKSPACE", "RESULT", "DETAIL"])
            table.rows = report.results.map { [$0.instance, $0.appGroup, $0.workspace, $0.outcome.rawValue, $0.detail] }
            out += table.render()
        }
        out += Self.personActions(report.results)
        let seconds = report.finishedAt.timeIntervalSince(report.startedAt)
        out += "\(report.job)\(report.dryRun ? " (dry run)" : ""): \(report.recap) in \(String(format: "%.1f", seconds)) s"
        let calls = report.calls.values.reduce(0, +)
        out += " (\(calls) calls, \(report.retries) retries, \(report.rateLimited.values.reduce(0, +)) rate-limited)\n"
        return out
    }
}

extension JobCommand {
    /// What only a person can do, one line each (an action a whole app group shares, such as
    /// regenerating its secret, once).
    static func personActions(_ results: [InstanceResult]) -> String {
        var seen = Set<String>()
        let lines = results.compactMap { result -> String? in
            guard let action = result.action else { return nil }
            let perApp = action.kind != .connect
            let key = perApp ? action.link : result.instance + "|" + action.text
            guard seen.insert(key).inserted else { return nil }
            return perApp ? "- app group \(result.appGroup): \(action.text)" : "- \(result.instance): \(action.text)"
        }
        guard !lines.isEmpty else { return "" }
        return "Needs a person (\(lines.count)):\n" + lines.joined(separator: "\n") + "\n"
    }
}

/// The last JSON line of a job's `--json` output.
struct RunSummary: Encodable {
    let summary = true
    let runID: String
    let job: String
    let dryRun: Bool
    let counts: [String: Int]
    let exitCode: Int32
    let stoppedBy: String?
    let durationSeconds: Double
    let calls: [String: Int]
    let retries: Int
    let rateLimited: [String: Int]
    let eta: Double?
    /// The share of each workspace's quota used, per tier (SlackPacer.utilization).
    let quotaUtilization: [String: [String: Double]]

    init(_ report: RunReport) {
        runID = report.runID
        job = report.job
        dryRun = report.dryRun
        counts = Dictionary(uniqueKeysWithValues: InstanceResult.Outcome.allCases.map { ($0.rawValue, report.count($0)) })
        exitCode = report.exitStatus.rawValue
        stoppedBy = report.stop?.rawValue
        durationSeconds = report.finishedAt.timeIntervalSince(report.startedAt)
        calls = report.calls
        retries = report.retries
        rateLimited = report.rateLimited
        eta = report.eta
        quotaUtilization = Dictionary(uniqueKeysWithValues: report.quotaUtilization.map { ($0.key.rawValue, $0.value.mapValues { ($0 * 1000).rounded() / 1000 }) })
    }

    enum CodingKeys: String, CodingKey {
        case summary, runID = "run_id", job, dryRun = "dry_run", counts, exitCode = "exit_code", stoppedBy = "stopped_by"
        case durationSeconds = "duration_seconds", calls, retries, rateLimited = "rate_limited", eta = "eta_seconds"
        case quotaUtilization = "quota_utilization"
    }
}

/// SIGINT and SIGTERM ask the run to stop: nothing new starts, in-flight steps end or are
/// marked interrupted, and the exit code is 130 or 143.
final class SignalTrap: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []

    init(control: RunControl) {
        for (number, reason) in [(SIGINT, RunControl.Stop.interrupted), (SIGTERM, RunControl.Stop.terminated)] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: DispatchQueue(label: "slackfleet.signals"))
            source.setEventHandler {
                control.requestStop(reason)
                Console.note("\(reason == .interrupted ? "SIGINT" : "SIGTERM"): starting nothing new; finishing the steps in flight")
            }
            source.resume()
            sources.append(source)
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}

/// Progress on stderr, with the ETA the pace so far implies: a live line on a terminal; in a
/// log (cron), a line at most once a minute. Standard output is left to the results.
final class ProgressLine: @unchecked Sendable {
    private let terminal: Bool
    private let lock = NSLock()
    private let started = Date()
    private var lastLogged = Date()

    init(terminal: Bool) {
        self.terminal = terminal
    }

    func update(_ progress: RunProgress) {
        lock.lock()
        defer { lock.unlock() }
        // A terminal gets at most ten redraws a second; a log, one line a minute.
        guard Date().timeIntervalSince(lastLogged) >= (terminal ? 0.1 : 60) || (terminal && progress.groupsDone == progress.groups) else { return }
        lastLogged = Date()
        let (done, total, changed, failed) = (progress.groupsDone, progress.groups, progress.changed, progress.failed)
        let elapsed = Date().timeIntervalSince(started)
        // The quotas' ETA when writes remain (they set the pace); else the pace so far.
        let remaining = progress.quotaETA ?? (done > 0 ? elapsed / Double(done) * Double(total - done) : nil)
        let eta = done < total ? remaining.map { " ETA \(Runner.duration($0))" } ?? "" : ""
        let line = "[\(done)/\(total) app groups] changed=\(changed) failed=\(failed)\(eta)"
        FileHandle.standardError.write(Data((terminal ? "\r\u{1b}[K" + line : line + "\n").utf8))
    }

    func finish() {
        guard terminal else { return }
        FileHandle.standardError.write(Data("\r\u{1b}[K".utf8))
    }

}

struct ProvisionAppCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision-app",
        abstract: "Create each app group's Slack app and register its credentials with every instance.",
        discussion: """
            Examples:
              slackfleet provision-app --all --dry-run
              slackfleet provision-app --label env=prod --max-duration 50m --metrics-file /var/lib/node_exporter/slackfleet.prom
            Slack allows about one app write a minute per workspace (Tier 1). Every
            workspace writes at its own quota at once, whatever --concurrency is; the
            job prints the ETA the busiest workspace implies. With --max-duration it
            starts no write the quota would allow only later, and stops cleanly
            (exit 75) for the next run to resume.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: JobOptions

    func run() throws { try JobCommand.run(ProvisionApp(), global: global, options: options) }
}

struct VerifyDeliveryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-delivery",
        abstract: "Prove, per instance, that an alert really reaches Slack. Changes nothing.",
        discussion: """
            Checks: the instance is ready; it runs on its app's client ID; its host is among the app's
            redirect URLs; the app has the incoming-webhook scope; a test alert with a unique nonce is
            accepted; and the nonce shows in the workspace's canary channel within --timeout.
            One poll of a canary channel serves every instance waiting on it.
            Example: slackfleet verify-delivery --all --timeout 90s --metrics-file /var/lib/node_exporter/delivery.prom
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: JobOptions
    @Option(help: ArgumentHelp("How long to wait for each test alert in the canary channel.", valueName: "duration"))
    var timeout = "60s"

    func validate() throws {
        guard JobOptions.seconds(timeout) != nil else { throw ValidationError("--timeout \(timeout): write it like 60s or 2m") }
    }

    func run() throws { try JobCommand.run(VerifyDelivery(timeout: JobOptions.seconds(timeout) ?? 60), global: global, options: options) }
}

struct SyncRedirectsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync-redirects",
        abstract: "Make each app's redirect URLs and IP allow-list equal the inventory, touching nothing else.",
        discussion: """
            Examples:
              slackfleet sync-redirects --all --dry-run     # the diff per app; exit 2 if anything would change
              slackfleet sync-redirects --all
            The manifest exported before each update is kept: `slackfleet apps snapshots` lists them and
            `slackfleet apps restore ID` puts one back.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: JobOptions

    func run() throws { try JobCommand.run(SyncRedirects(), global: global, options: options) }
}

struct RotateSecretCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-secret",
        abstract: "Rotate configuration tokens, and client secrets without losing a Slack integration.",
        discussion: """
            Examples:
              slackfleet rotate-secret --config-tokens --all
              slackfleet rotate-secret --client-secret --label env=prod --min-age 90d
              slackfleet rotate-secret --client-secret --secret-from secret:slack/new --instance wandb-prod-1
              slackfleet rotate-secret --client-secret --blue-green --instance wandb-prod-1

            --config-tokens is meant for cron every few hours: a configuration token lives 12 hours.

            --client-secret rotates in place (recommended): Slack has no API to regenerate a secret, so the run prints the app's settings link for a person to press Regenerate and waits (exit 1, stage stored). Give the new secret with --secret-from; it is probed at Slack, pushed to every instance of the app group, and kept. Every Slack integration keeps delivering: webhooks do not use the secret.

            --blue-green is for an app that must die (a leak): a new app, registered with every instance, promoted once a canary integration a person connects through it delivers a test alert. The old app is kept while any integration from before depends on it; slackfleet connect lists who must connect again. --delete-previous-breaking N deletes it anyway, breaking exactly N, recorded in the audit log.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: JobOptions
    @Flag(name: .customLong("config-tokens"), help: "Rotate each selected workspace's configuration token that expires within --min-remaining.")
    var configTokens = false
    @Flag(name: .customLong("client-secret"), help: "Rotate each app group's client secret: in place, or with --blue-green a new app.")
    var clientSecret = false
    @Flag(name: .customLong("blue-green"), help: "With --client-secret: move the group to a new app (for a leaked app) instead of rotating in place.")
    var blueGreen = false
    @Flag(help: "The same as --client-secret with --secret-from (kept from earlier versions).")
    var propagate = false
    @Option(name: .customLong("secret-from"), help: ArgumentHelp("Where the secret a person regenerated is: secret:NAME, env:VAR, file:PATH or exec:COMMAND (never the value itself).", valueName: "ref"))
    var secretFrom: String?
    @Option(name: .customLong("delete-previous-breaking"), help: ArgumentHelp("Blue/green: delete the previous app even though exactly N integrations from before still depend on it.", valueName: "N"))
    var deletePreviousBreaking: Int?
    @Option(name: .customLong("min-remaining"), help: ArgumentHelp("Rotate a configuration token with less than this left.", valueName: "duration"))
    var minRemaining = "6h"
    @Option(help: ArgumentHelp("Blue/green: keep a replaced app at least this long for rollback.", valueName: "duration"))
    var grace = "24h"
    @Option(name: .customLong("min-age"), help: ArgumentHelp("Only rotate secrets at least this old (for cron).", valueName: "duration"))
    var minAge: String?
    @Option(help: ArgumentHelp("How long to wait for each test alert in the canary channel.", valueName: "duration"))
    var timeout = "60s"

    func validate() throws {
        if blueGreen && !clientSecret { throw ValidationError("--blue-green goes with --client-secret") }
        if propagate && blueGreen { throw ValidationError("--propagate pushes a regenerated secret in place; --blue-green makes a new app: use one") }
        if propagate && secretFrom == nil {
            throw ValidationError("--propagate needs --secret-from REF: where the regenerated secret is (secret:NAME, env:VAR, file:PATH or exec:COMMAND)")
        }
        if let secretFrom {
            guard clientSecret || propagate else { throw ValidationError("--secret-from goes with --client-secret") }
            if blueGreen { throw ValidationError("--secret-from is for an in-place rotation; --blue-green makes a new app with a secret of its own") }
            if case .failure(let problem) = SecretReference.parse(secretFrom) {
                throw ValidationError("--secret-from: \(problem.problem); \(problem.fix) (the value itself never goes on the command line)")
            }
        }
        if let deletePreviousBreaking {
            guard blueGreen || clientSecret else { throw ValidationError("--delete-previous-breaking goes with --client-secret") }
            guard deletePreviousBreaking >= 0 else { throw ValidationError("--delete-previous-breaking takes the number of integrations it may break (0 or more)") }
        }
        for (flag, value) in [("--min-remaining", minRemaining), ("--timeout", timeout)] where JobOptions.seconds(value) == nil {
            throw ValidationError("\(flag) \(value): write it like 90s, 30m, 6h or 2d")
        }
        if grace != "0", JobOptions.seconds(grace) == nil { throw ValidationError("--grace \(grace): write it like 30m, 24h or 7d (0: no rollback period)") }
        if let minAge, JobOptions.seconds(minAge) == nil { throw ValidationError("--min-age \(minAge): write it like 30d or 2160h") }
    }

    func run() throws {
        // Checked here, after parsing, so that a misspelt flag is reported as such.
        guard configTokens || clientSecret || propagate else {
            throw ValidationError("say what to rotate: --config-tokens, or --client-secret (in place; --blue-green for a new app)")
        }
        var job = RotateSecret()
        job.configTokens = configTokens
        job.clientSecret = clientSecret || propagate
        job.mode = blueGreen ? .blueGreen : .inPlace
        if let secretFrom, case .success(let reference) = SecretReference.parse(secretFrom) { job.secretFrom = reference }
        job.deleteBreaking = deletePreviousBreaking
        job.minRemaining = JobOptions.seconds(minRemaining) ?? 6 * 3600
        job.grace = grace == "0" ? 0 : JobOptions.seconds(grace) ?? 24 * 3600
        job.minAge = minAge.flatMap(JobOptions.seconds) ?? 0
        job.deliveryTimeout = JobOptions.seconds(timeout) ?? 60
        try JobCommand.run(job, global: global, options: options)
    }
}
