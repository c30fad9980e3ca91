import ArgumentParser
import Foundation
import Logging
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

/// A command that runs a job: the command list (SlackFleetCommand) is the list of jobs, and a
/// run settles every listed job's unfinished changes before its own work.
protocol JobCommandType: ParsableCommand {
    static var job: any FleetJob.Type { get }
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
            var runOptions = try options.runOptions(for: job, store: store)
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
            runner.recoveries = SlackFleetCommand.recoveries
            let report = try runner.run(job, options: runOptions) { Console.note($0) }
            progress.finish()
            // The run is recorded: its pages reach the database file while the results print.
            try store.checkpointing {
                if let path = options.metricsFile { try MetricsFile.write(report, to: path) }
                if let path = options.report { try ReportCommand.write(try FleetStatus.read(store), to: path) }
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
        if !report.checkNames.isEmpty, report.results.contains(where: { $0.checks != nil }) {
            // A job that reports checks: one column per check.
            let checks = report.checkNames
            var table = TextTable(headers: ["INSTANCE", "WORKSPACE"] + checks.map { $0.uppercased().replacingOccurrences(of: "_", with: " ") } + ["LATENCY", "CONNECTION", "RESULT"])
            table.rows = report.results.map { result in
                [result.instance, result.workspace] + checks.map { result.checks?[$0] == "ok" ? "ok" : (result.checks?[$0] == nil || result.checks?[$0] == "skipped" ? "-" : "FAIL") }
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
