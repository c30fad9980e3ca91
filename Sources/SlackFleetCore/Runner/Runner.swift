import Foundation
import GRDB
import Logging

/// Runs a job over the selected app groups on a bounded pool of Dispatch lanes.
///
/// Each lane is a serial DispatchQueue working through a shared list: libdispatch on Linux
/// gives every serial queue a thread of its own (they target the overcommit pool), while
/// blocking items on one concurrent queue only get about as many threads as there are cores
/// (measured here: 64 one-second blocking items took 10 s on a concurrent queue, 1 s on 64
/// serial queues). The lanes share one transport, pacer, store and audit log.
public final class Runner: @unchecked Sendable {
    public let store: FleetStore
    public let vault: SecretVault
    public let audit: AuditLog
    public let control: RunControl
    private let logger: Logger
    /// Called after each group with the progress so far.
    public var onProgress: (@Sendable (RunProgress) -> Void)?
    /// How to settle the changes of every job a crash may have left unfinished (the run's own
    /// job's are always added).
    public var recoveries: [any ChangeRecovery] = []

    public init(store: FleetStore, vault: SecretVault, audit: AuditLog, control: RunControl,
                logger: Logger = Logger(label: "slackfleet.run", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.store = store
        self.vault = vault
        self.audit = audit
        self.control = control
        self.logger = logger
    }

    public func run(_ job: FleetJob, options: RunOptions, notes: (String) -> Void) throws -> RunReport {
        // The inventory is read while the run takes the lock and recovers: every run reads all
        // of it before its first request.
        let inventoryRead = options.inventory.flatMap { $0.store === store ? $0 : nil } ?? InventoryRead(store)
        let runID = audit.context.runID
        let (lock, tookOver) = try RunLock.acquire(store, runID: runID, job: job.name)
        defer { lock.release() }
        if let tookOver { notes(tookOver) }

        // --concurrency bounds the calls in flight (and the instances of one group worked on at
        // once); Slack's quotas, not it, bound how fast apps are written (QuotaScheduler).
        let concurrency = max(1, options.concurrency ?? options.settings.concurrency)
        var transportConfiguration = options.transport
        transportConfiguration.maximumInFlight = concurrency
        let transport = HTTPTransport(configuration: transportConfiguration, logger: logger)
        defer { transport.shutdown() }
        let metrics = CallMetrics()
        let executor = ChangeExecutor(audit: audit, dryRun: options.dryRun, control: control)
        let vault = self.vault
        var runContext = JobContext(store: store, vault: vault, executor: executor, transport: transport,
                                    pacer: SlackPacer(quotas: options.settings.slackQuotas), retry: options.settings.retryPolicy,
                                    control: control, metrics: metrics, settings: options.settings)
        runContext.width = min(16, concurrency)
        let context = runContext
        let prepared = Pending { job.prepare(context: context) }
        defer { try? prepared.value() }
        try reconcile(executor: executor, recoveries: recoveries + type(of: job).recoveries, notes: notes)
        // Every intent so far has its outcome now; the run's end records it.
        var resolvedThrough = try AuditLog.headSeq(store)

        let inventory = try inventoryRead.inventory()
        let groups = try options.selection.groups(of: inventory, selecting: job.selects)
        let members = inventory.instancesByApp.mapValues { $0.filter(\.isActive).sorted { $0.name < $1.name } }
        var report = RunReport(runID: runID, job: job.name, dryRun: options.dryRun, startedAt: Date())
        // The run's row is written while its groups are built, and before its first change.
        let recording = Pending { [self, report] in try recordRunStart(report) }
        // Jobs use a workspace's rotated configuration token once it has one (ConfigTokens).
        func build() throws -> [GroupWork] {
            let workspaces = Dictionary(try ConfigTokens.effective(inventory.workspaces, vault: vault).map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            return groups.sorted { $0.key < $1.key }.compactMap { key, instances -> GroupWork? in
                workspaces[key.workspaceID].map { GroupWork(key: key, workspace: $0, instances: instances.sorted { $0.name < $1.name }, members: members[key] ?? []) }
            }
        }
        let planned = try build()
        let total = planned.reduce(0) { $0 + $1.instances.count }
        let announcedETA = announce(job, work: planned, context: context, notes: notes)
        try recording.value()
        let work = job.begin(planned, context: context, notes: notes) ? try build() : planned

        let budget = try options.maxFailures ?? FailureBudget(parsing: options.settings.maxFailures)
        let shared = SharedRunState()
        let scheduler = QuotaScheduler(pacer: context.pacer, control: control)
        var writes: [String: Int] = [:]
        for item in work { writes[item.workspace.id, default: 0] += job.expectedTier1Writes(item, context: context) }
        scheduler.expectWrites(writes)
        for (index, item) in work.enumerated() {
            scheduler.add(QuotaScheduler.Item(group: index, workspace: item.workspace.id, tier: nil) { job.start(item, context: $0) })
        }
        // Workers take steps, not quotas: enough of them to keep every workspace's quota busy
        // while others wait on W&B or Kubernetes; the transport bounds the calls in flight.
        let workers = max(1, min(work.count, 256, max(concurrency, 16, 2 * Set(work.map(\.workspace.id)).count)))
        let controls = GroupControls(timeout: options.settings.groupTimeoutSeconds, run: control)
        let group = DispatchGroup()
        for worker in 0..<workers {
            DispatchQueue(label: "slackfleet.lane.\(worker)").async(group: group) { [self] in
                while let taken = scheduler.take() {
                    let index = taken.item.group
                    var stepContext = context
                    stepContext.control = controls.control(for: index, queuedSince: taken.item.queuedAt)
                    stepContext.ticket = taken.ticket
                    let next = taken.item.step(stepContext)
                    if let ticket = taken.ticket, !ticket.used { context.pacer.refund(workspace: ticket.workspace, tier: ticket.tier) }
                    switch next {
                    case .spend(let tier, let step):
                        scheduler.add(QuotaScheduler.Item(group: index, workspace: work[index].workspace.id, tier: tier, step: step))
                    case .done(var results):
                        let elapsed = controls.elapsedMS(index)
                        for position in results.indices where results[position].durationMS == 0 { results[position].durationMS = elapsed }
                        var progress = shared.finish(index, results, groups: work.count)
                        progress.quotaETA = scheduler.eta()
                        if budget.exceeded(failures: progress.failed, total: total) { control.requestStop(.failureBudget) }
                        onProgress?(progress)
                    }
                    scheduler.stepFinished()
                }
                // The first lane to find no more work records the results so far while the
                // others make their last calls: the run's end then writes only the rest (all of
                // them, if this write failed).
                if control.stop == nil, shared.claimEarlyRecord() {
                    let done = shared.results
                    if (try? store.write("recording results", { db in try Runner.insert(done.sorted { $0.key < $1.key }.flatMap(\.value), runID: runID, in: db) })) != nil {
                        shared.recordedEarly = Set(done.keys)
                    }
                }
            }
        }
        group.wait()
        // No more requests: the connections close while the results are written.
        transport.beginShutdown()
        try audit.flush()
        // Every intent this run wrote has its outcome on disk too (each change queues one before
        // it returns): the next run's recovery need not read them again.
        if executor.everyIntentHasOutcome { resolvedThrough = try AuditLog.headSeq(store) }
        report.stop = control.stop
        let finished = shared.results
        let recordedEarly = shared.recordedEarly
        var unrecorded: [InstanceResult] = []
        let quotaDeferred = scheduler.deferred
        for (index, item) in work.enumerated() {
            if let results = finished[index] {
                report.results.append(contentsOf: results)
                if !recordedEarly.contains(index) { unrecorded.append(contentsOf: results) }
            } else {
                let results: [InstanceResult]
                if let why = quotaDeferred[index] {
                    results = context.all(item, .deferred, "not started: \(why)")
                } else {
                    let reason = report.stop ?? .interrupted
                    let outcome: InstanceResult.Outcome = reason == .interrupted || reason == .terminated ? .interrupted : .deferred
                    results = context.all(item, outcome, "not \(controls.started(index) ? "finished" : "started"): \(reason.rawValue); the next run does it")
                }
                report.results.append(contentsOf: results)
                unrecorded.append(contentsOf: results)
            }
        }
        if report.stop == nil, !quotaDeferred.isEmpty { report.stop = .timeBudget }
        report.finishedAt = Date()
        report.eta = announcedETA
        report.quotaUtilization = Dictionary(uniqueKeysWithValues: [SlackTier.tier1, .tier3].map { ($0, context.pacer.utilization(tier: $0)) }.filter { !$0.1.isEmpty })
        let snapshot = metrics.snapshot
        report.calls = snapshot.calls
        report.retries = snapshot.retries
        report.rateLimited = snapshot.rateLimited
        report.planned = executor.planned.mapValues { $0.map(\.summary) }
        report.checkNames = job.checkNames
        report.jobMetrics = job.metrics(report)
        try recordRunEnd(report, results: unrecorded, resolvedThrough: resolvedThrough, lock: lock)
        return report
    }

    /// Intents a crash left without an outcome: each is settled by the recovery of its kind of
    /// change, against what is stored now, and the finding is recorded as `recovered`.
    private func reconcile(executor: ChangeExecutor, recoveries: [any ChangeRecovery], notes: (String) -> Void) throws {
        for unfinished in try AuditLog.unfinishedChanges(store) {
            let entry = unfinished.entry
            var found = "the run that started this change ended before recording its outcome; this run reads the real state again"
            if let recovery = recoveries.first(where: { $0.settles(entry) }) {
                found = try recovery.found(entry, detail: try? JSON.parse(Data(entry.detail.utf8)), store: store)
            }
            try executor.recordRecovered(target: entry.target, action: entry.action, instance: entry.instance, changeID: unfinished.changeID, found: found)
            notes("recovered an unfinished \(entry.action) of \(entry.target) from run \(entry.runID): \(found)")
        }
    }

    /// Says what the run will do and, when it writes to Slack's Tier 1, how long the quotas make
    /// it take; returns that ETA.
    @discardableResult
    private func announce(_ job: FleetJob, work: [GroupWork], context: JobContext, notes: (String) -> Void) -> TimeInterval? {
        var writes: [String: Int] = [:]
        for item in work { writes[item.workspace.id, default: 0] += job.expectedTier1Writes(item, context: context) }
        let apps = work.count, instances = work.reduce(0) { $0 + $1.instances.count }
        var line = "\(job.name): \(instances) instance\(instances == 1 ? "" : "s") in \(apps) app group\(apps == 1 ? "" : "s") across \(Set(work.map(\.workspace.id)).count) workspace(s)"
        var eta: TimeInterval?
        if let busiest = writes.max(by: { $0.value < $1.value }), busiest.value > 0 {
            eta = writes.map { context.pacer.eta(workspace: $0.key, calls: $0.value, tier: .tier1) }.max()
            line += "; up to \(writes.values.reduce(0, +)) Tier 1 write(s), at most \(busiest.value) in workspace \(busiest.key): ETA \(Runner.duration(eta ?? 0)) at Slack's Tier 1 pace (every workspace writes at its own pace at once; app groups share one app and cut writes)"
        }
        notes(line)
        return eta
    }

    /// `42 s`, `17 min`, `3.5 h`, `12 d`: a duration as messages and ETAs show it.
    public static func duration(_ seconds: TimeInterval) -> String {
        if seconds < 0 { return "-" + duration(-seconds) }
        if seconds < 90 { return "\(Int(seconds.rounded())) s" }
        if seconds < 5400 { return "\(Int((seconds / 60).rounded())) min" }
        if seconds < 172_800 { return String(format: "%.1f h", seconds / 3600) }
        return String(format: "%.0f d", seconds / 86400)
    }

    private func recordRunStart(_ report: RunReport) throws {
        try store.write("recording the run") { db in
            try db.execute(sql: "INSERT INTO run (id, job, dry_run, actor, started_at, status) VALUES (?, ?, ?, ?, ?, 'running')",
                           arguments: [report.runID, report.job, report.dryRun, audit.context.actor, Timestamp.format(report.startedAt)])
        }
    }

    /// Records the run's end and the `results` not yet recorded, and gives the run lock up, in
    /// one transaction.
    private func recordRunEnd(_ report: RunReport, results: [InstanceResult], resolvedThrough: Int64, lock: RunLock) throws {
        try lock.release(with: "recording the run's results") { db in
            try AuditLog.markResolved(through: resolvedThrough, in: db)
            var counts = Dictionary(uniqueKeysWithValues: InstanceResult.Outcome.allCases.map { ($0.rawValue, JSON.int(report.count($0))) })
            // 429s per workspace, for `slackfleet status`.
            counts["rate_limited"] = .object(report.rateLimited.mapValues(JSON.int))
            let summary: JSON = .object(counts)
            try db.execute(sql: "UPDATE run SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
                           arguments: [Timestamp.format(report.finishedAt), report.stop?.rawValue ?? "finished", summary.canonicalJSON, report.runID])
            try Runner.insert(results, runID: report.runID, in: db)
        }
    }

    /// Adds `results` to the run's history.
    static func insert(_ results: [InstanceResult], runID: String, in db: Database) throws {
        let insert = try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO run_result (run_id, instance, app_group, result, detail, duration_ms, connection, action, delivery_seconds)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for result in results {
            try insert.execute(arguments: [runID, result.instance, result.appGroup, result.outcome.rawValue, result.detail, result.durationMS,
                                           result.connection?.rawValue, result.action?.json.canonicalJSON, result.deliverySeconds])
        }
    }
}
