import Foundation
import GRDB
import Logging

/// One app group's share of a run: the instances that share one Slack app.
public struct GroupWork: Sendable {
    public let key: Inventory.AppKey
    public let workspace: Workspace
    public let instances: [Instance]

    public init(key: Inventory.AppKey, workspace: Workspace, instances: [Instance]) {
        self.key = key
        self.workspace = workspace
        self.instances = instances
    }
}

/// Everything a job's work needs, shared by all lanes of a run.
public struct JobContext: Sendable {
    public let store: FleetStore
    public let vault: SecretVault
    public let executor: ChangeExecutor
    public let transport: HTTPTransport
    public let pacer: SlackPacer
    public let retry: RetryPolicy
    /// The group's control (its deadline and the run's stop) while a group is worked on.
    public var control: RunControl
    public let metrics: CallMetrics
    public let settings: JobSettings
    /// What the run learnt about each workspace once (names, bots' apps, probe order).
    public let facts: WorkspaceFacts
    /// The quota call the scheduler took for the step being run, if any (see GroupStep).
    public var ticket: QuotaTicket?
    /// How many instances of one group are worked on at once (`--concurrency`).
    public var width = 16

    public init(store: FleetStore, vault: SecretVault, executor: ChangeExecutor, transport: HTTPTransport, pacer: SlackPacer,
                retry: RetryPolicy, control: RunControl, metrics: CallMetrics, settings: JobSettings, facts: WorkspaceFacts = WorkspaceFacts()) {
        self.store = store
        self.vault = vault
        self.executor = executor
        self.transport = transport
        self.pacer = pacer
        self.retry = retry
        self.control = control
        self.metrics = metrics
        self.settings = settings
        self.facts = facts
    }

    /// A context for work outside a job run (apps restore, connect): the transport, pacer and
    /// retries of `settings`, no dry run.
    public static func standalone(store: FleetStore, vault: SecretVault, audit: AuditLog, settings: JobSettings,
                                  transport: HTTPTransport, control: RunControl) -> JobContext {
        JobContext(store: store, vault: vault, executor: ChangeExecutor(audit: audit, dryRun: false, control: control), transport: transport,
                   pacer: SlackPacer(quotas: settings.slackQuotas), retry: settings.retryPolicy, control: control, metrics: CallMetrics(), settings: settings)
    }

    /// The clients' shared plumbing, with this group's control.
    public var environment: CallEnvironment {
        CallEnvironment(transport: transport, retry: retry, control: control, metrics: metrics)
    }

    public func slack(_ workspace: Workspace) -> SlackClient {
        SlackClient(workspace: workspace, pacer: pacer, environment: environment, ticket: ticket)
    }

    public func wandb(_ instance: Instance) throws -> WandbClient {
        WandbClient(instance: instance, apiKey: try vault.resolve(instance.apiKey), environment: environment)
    }

    public func registration(_ instance: Instance, wandb: WandbClient) -> RegistrationContext {
        RegistrationContext(instance: instance, executor: executor, wandb: wandb, vault: vault, environment: environment,
                            settleTimeout: settings.settleTimeoutSeconds)
    }

    /// Runs `body` for every item, up to `width` (the run's `--concurrency` unless given) at once
    /// on lanes of their own (serial DispatchQueues, like the runner's), and returns the results
    /// in the items' order. For the instances of a large app group, which would otherwise wait on
    /// one another.
    public func each<Item: Sendable, Result: Sendable>(_ items: [Item], width: Int? = nil, _ body: @escaping @Sendable (Item) -> Result) -> [Result] {
        let width = max(1, width ?? self.width)
        guard items.count > 1, width > 1 else { return items.map(body) }
        let results = OrderedResults<Result>(count: items.count)
        let group = DispatchGroup()
        for lane in 0..<min(width, items.count) {
            DispatchQueue(label: "slackfleet.instance-lane.\(lane)").async(group: group) {
                while let index = results.take(limit: items.count) {
                    results.set(index, body(items[index]))
                }
            }
        }
        group.wait()
        return results.all()
    }

    /// The results for every instance of `group` when the whole group failed or stopped.
    public func all(_ group: GroupWork, _ outcome: InstanceResult.Outcome, _ detail: String) -> [InstanceResult] {
        group.instances.map { InstanceResult(instance: $0.name, appGroup: group.key.appGroup, workspace: group.workspace.id, outcome: outcome, detail: detail) }
    }

    /// The result of `error` for one instance: interrupted or deferred when the run was stopped.
    public func failure(_ instance: Instance, _ group: GroupWork, _ error: any Error) -> InstanceResult {
        InstanceResult(instance: instance.name, appGroup: group.key.appGroup, workspace: group.workspace.id,
                       outcome: JobContext.outcome(of: error), detail: ChangeExecutor.describe(error))
    }

    static func outcome(of error: any Error) -> InstanceResult.Outcome {
        guard let stopped = error as? RunControl.Interrupted else { return .failed }
        switch stopped.reason {
        case .interrupted, .terminated: return .interrupted
        case .groupTimeout: return .failed
        case .failureBudget, .timeBudget: return .deferred
        }
    }
}

/// How to run a job.
public struct RunOptions: Sendable {
    public var selection = Selection()
    public var dryRun = false
    public var concurrency: Int?
    public var maxFailures: FailureBudget?
    public var maxDuration: TimeInterval?
    public var settings: JobSettings
    /// The transport's settings (`--ca-file`).
    public var transport = HTTPTransport.Configuration()
    /// The inventory's read, started when the database opened (the job commands start it before
    /// they read the job's settings and open the keyring); nil, or a read of another database
    /// than the runner's: the run starts its own.
    public var inventory: InventoryRead?

    public init(settings: JobSettings) {
        self.settings = settings
    }
}

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
        try reconcile(executor: executor, notes: notes)
        // Every intent so far has its outcome now; the run's end records it.
        var resolvedThrough = try AuditLog.headSeq(store)

        let inventory = try inventoryRead.inventory()
        let groups = try options.selection.groups(of: inventory)
        var report = RunReport(runID: runID, job: job.name, dryRun: options.dryRun, startedAt: Date())
        // The run's row is written while its groups are built, and before its first change.
        let recording = Pending { [self, report] in try recordRunStart(report) }
        // Jobs use a workspace's rotated configuration token once it has one (ConfigTokens).
        func build() throws -> [GroupWork] {
            let workspaces = Dictionary(try ConfigTokens.effective(inventory.workspaces, vault: vault).map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            return groups.sorted { $0.key < $1.key }.compactMap { key, instances -> GroupWork? in
                workspaces[key.workspaceID].map { GroupWork(key: key, workspace: $0, instances: instances.sorted { $0.name < $1.name }) }
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
        try recordRunEnd(report, results: unrecorded, resolvedThrough: resolvedThrough, lock: lock)
        return report
    }

    /// Intents a crash left without an outcome: each is resolved against what is stored now,
    /// and the finding is recorded as `recovered`.
    private func reconcile(executor: ChangeExecutor, notes: (String) -> Void) throws {
        for unfinished in try AuditLog.unfinishedChanges(store) {
            let entry = unfinished.entry
            var found = "the run that started this change ended before recording its outcome; this run reads the real state again"
            let detail = try? JSON.parse(Data(entry.detail.utf8))
            if entry.action == "create", entry.target.hasPrefix("slack:app/") {
                let group = entry.target.dropFirst("slack:app/".count).split(separator: "/").map(String.init)
                let name = detail?["name"]?.stringValue ?? "?"
                // The intent names the generation the new app was to be stored as.
                let generation = detail?["generation"]?.intValue
                let stored = group.count == 2 ? try AppRepository.apps(workspaceID: group[0], appGroup: group[1], in: store)
                    .first { generation == nil ? $0.stage == .current : $0.generation == generation } : nil
                if let app = stored, let slackID = app.slackAppID {
                    found = "the app was created and its credentials stored: \(slackID)"
                } else {
                    found = "possible orphan: Slack may hold an app named \"\(name)\" in workspace \(group.first ?? "?") whose credentials were never stored; if Slack's app list shows it, delete it there"
                }
            } else if entry.action == "rotate", entry.target.hasPrefix("slack:config-token/") {
                let id = String(entry.target.dropFirst("slack:config-token/".count))
                if let stored = try ConfigTokens.stored(id, in: store), stored.rotatedAt >= entry.time {
                    found = "the new configuration token was stored (it expires at \(stored.expiresAt))"
                } else {
                    found = "no new configuration token was stored: if Slack used up the refresh token, the next rotation is refused with invalid_refresh_token and the workspace must be re-seeded"
                }
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

    /// `42 s`, `17 min`, `3.5 h`: a duration as messages and ETAs show it.
    public static func duration(_ seconds: TimeInterval) -> String {
        if seconds < 90 { return "\(Int(seconds.rounded())) s" }
        if seconds < 5400 { return "\(Int((seconds / 60).rounded())) min" }
        return String(format: "%.1f h", seconds / 3600)
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
            let summary: JSON = .object(Dictionary(uniqueKeysWithValues: InstanceResult.Outcome.allCases.map { ($0.rawValue, JSON.int(report.count($0))) }))
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

/// How far a run is: app groups finished, and instance results so far.
public struct RunProgress: Sendable {
    public let groupsDone: Int
    public let groups: Int
    public let changed: Int
    public let failed: Int
    /// Seconds the Tier 1 writes still expected take at the quotas (the busiest workspace's).
    public var quotaETA: TimeInterval?
}

/// The lanes' shared list: the next group to take and the results so far.
private final class SharedRunState: @unchecked Sendable {
    private let lock = NSLock()
    private var done = 0
    private var failures = 0
    private var changes = 0
    private var finished: [Int: [InstanceResult]] = [:]
    private var earlyRecordClaimed = false
    private var early: Set<Int> = []

    /// True for the one caller that asks first: it records the results finished so far.
    func claimEarlyRecord() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let first = !earlyRecordClaimed
        earlyRecordClaimed = true
        return first
    }

    /// The groups whose results were recorded before the run's end.
    var recordedEarly: Set<Int> {
        get { lock.lock(); defer { lock.unlock() }; return early }
        set { lock.lock(); early = newValue; lock.unlock() }
    }

    /// Keeps a group's results; returns the counts so far (kept as running totals: a run of
    /// thousands of groups must not gather every result again after each one).
    func finish(_ index: Int, _ results: [InstanceResult], groups: Int) -> RunProgress {
        lock.lock()
        defer { lock.unlock() }
        finished[index] = results
        done += 1
        failures += results.filter { $0.outcome == .failed }.count
        changes += results.filter { $0.outcome == .changed }.count
        return RunProgress(groupsDone: done, groups: groups, changed: changes, failed: failures)
    }

    var results: [Int: [InstanceResult]] {
        lock.lock()
        defer { lock.unlock() }
        return finished
    }
}

/// Each group's own control (its timeout, and the run's stop), made when its first step runs:
/// time a group's step spends queued for a quota does not count against its timeout.
private final class GroupControls: @unchecked Sendable {
    private let lock = NSLock()
    private var controls: [Int: (control: RunControl, started: DispatchTime)] = [:]
    private let timeout: TimeInterval
    private let run: RunControl

    init(timeout: TimeInterval, run: RunControl) {
        self.timeout = timeout
        self.run = run
    }

    func control(for group: Int, queuedSince: DispatchTime) -> RunControl {
        lock.withLock {
            if let known = controls[group] {
                known.control.extendDeadline(by: Double(DispatchTime.now().uptimeNanoseconds - queuedSince.uptimeNanoseconds) / 1e9)
                return known.control
            }
            let made = RunControl(group: timeout, of: run)
            controls[group] = (made, DispatchTime.now())
            return made
        }
    }

    func started(_ group: Int) -> Bool { lock.withLock { controls[group] != nil } }

    /// Milliseconds since the group's first step began.
    func elapsedMS(_ group: Int) -> Int {
        lock.withLock {
            controls[group].map { Int((DispatchTime.now().uptimeNanoseconds - $0.started.uptimeNanoseconds) / 1_000_000) } ?? 0
        }
    }
}

/// Work started on another thread at once; `value()` waits for it. What the work uses it holds
/// itself, so a run that fails first may leave it to finish on its own.
final class Pending<Value: Sendable>: @unchecked Sendable {
    private let done = DispatchGroup()
    private var result: Result<Value, any Error>?

    init(_ work: @escaping @Sendable () throws -> Value) {
        done.enter()
        DispatchQueue.global().async { [self] in
            result = Result { try work() }
            done.leave()
        }
    }

    func value() throws -> Value {
        done.wait()
        guard let result else { throw FleetError.failed("background work ended without a result") }
        return try result.get()
    }
}

/// Slots filled by several lanes; also hands out the next index to work on.
final class OrderedResults<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Value?]
    private var cursor = 0

    init(count: Int) {
        slots = Array(repeating: nil, count: count)
    }

    func set(_ index: Int, _ value: Value) {
        lock.lock()
        slots[index] = value
        lock.unlock()
    }

    func take(limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard cursor < limit else { return nil }
        cursor += 1
        return cursor - 1
    }

    func all() -> [Value] {
        lock.lock()
        defer { lock.unlock() }
        return slots.compactMap { $0 }
    }
}
