import ArgumentParser
import Foundation
import Logging
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

/// The options every job takes.
struct JobOptions: ParsableArguments {
    @OptionGroup var select: SelectionOptions
    @Flag(name: .customLong("dry-run"), help: "Read the real state, print what would change, change nothing; exit 2 if anything would.")
    var dryRun = false
    @Option(help: ArgumentHelp("Requests in flight at once, to Slack, W&B and Kubernetes together, and instances of one app group worked on at once (default: the job's settings, see --jobs-dir). Slack's quotas, not this, bound how fast apps are written: every workspace writes at its own quota at once.", valueName: "N"))
    var concurrency: Int?
    @Option(name: .customLong("max-failures"), help: ArgumentHelp("Start no new work after this many failed instances.", valueName: "N|P%"))
    var maxFailures: String?
    @Option(name: .customLong("max-duration"), help: ArgumentHelp("Start no new change after this long, and no write the quota would only allow later; exit 75 and let the next run resume.", valueName: "duration"))
    var maxDuration: String?
    @Option(name: .customLong("job-file"), help: ArgumentHelp("This run's job settings file (JSON, as jobs/<job>.json); it wins over --jobs-dir.", valueName: "path"))
    var jobFile: String?
    @Option(name: .customLong("jobs-dir"), help: ArgumentHelp("A directory of job settings: <dir>/<job>.json is read when it exists. Default: $SLACKFLEET_JOBS_DIR; with neither, the built-in settings, which equal the shipped jobs/*.json. The run says which file it read.", valueName: "dir"))
    var jobsDir: String?
    @Option(name: .customLong("pace-scale"), help: ArgumentHelp("Multiply the job's Slack pace: only for a fleet-sim running with --time-scale N.", valueName: "N"))
    var paceScale: Double?
    @Option(name: .customLong("log-level"), help: ArgumentHelp("Log to stderr at this level: debug shows every request (method, host, path; never headers or bodies). Default: $SLACKFLEET_LOG_LEVEL, else warning.", valueName: "level"))
    var logLevel: String?
    @Flag(help: "JSON lines on stdout: one per instance, then a summary.")
    var json = false
    @Option(name: .customLong("metrics-file"), help: ArgumentHelp("Write a Prometheus textfile here (atomically, mode 0600).", valueName: "path"))
    var metricsFile: String?
    @Option(help: ArgumentHelp("Write the fleet's status page here at the end of the run (atomically; see slackfleet report).", valueName: "file.html"))
    var report: String?

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

    /// Where the job's settings come from: --job-file, else <jobs dir>/<job>.json when it
    /// exists, else the built-in defaults; and a line saying which.
    func settingsFile(for job: String) -> (path: String?, note: String?) {
        if let jobFile { return (jobFile, nil) }
        guard let directory = jobsDir ?? ProcessInfo.processInfo.environment["SLACKFLEET_JOBS_DIR"], !directory.isEmpty else { return (nil, nil) }
        let path = (directory as NSString).appendingPathComponent("\(job).json")
        if FileManager.default.fileExists(atPath: path) { return (path, "\(job): settings from \(path)") }
        return (nil, "\(job): no \(path); the built-in settings apply")
    }

    func runOptions(for job: any FleetJob, store: FleetStore) throws -> RunOptions {
        let source = settingsFile(for: job.name)
        if let note = source.note { Console.note(note) }
        var options = RunOptions(settings: try JobSettings.load(job: job.name, defaults: type(of: job).defaultSettings, file: source.path))
        if let paceScale {
            options.settings.slackQuotas.perMinute = options.settings.slackQuotas.perMinute.mapValues { $0 * paceScale }
        }
        options.selection = try select.selection(store: store)
        options.dryRun = dryRun
        options.concurrency = concurrency
        options.maxFailures = try maxFailures.map(FailureBudget.init(parsing:))
        options.maxDuration = maxDuration.flatMap(JobOptions.seconds)
        return options
    }
}
