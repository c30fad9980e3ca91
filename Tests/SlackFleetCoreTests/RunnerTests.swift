import Foundation
import GRDB
@testable import SlackFleetCore
import SlackFleetTestSupport
import Testing

@Suite("Runner")
struct RunnerTests {
    @Test("an intent a crash left without an outcome is recorded as recovered at the next run, with what was found")
    func reconcilesUnfinishedIntents() throws {
        let fixture = try FleetFixture(command: "provision-app")
        try fixture.importInventory(sampleInventory)
        // A create whose process died between the intent and the answer.
        try fixture.audit.record(AuditDraft(target: "slack:app/T0123ABCD/prod", action: "create", phase: .intent,
                                            detail: ["change_id": "c-1", "name": "W&B alerts prod"]))
        // A finished change is left alone.
        try fixture.audit.record(AuditDraft(target: "slack:app/A1", action: "update-redirects", phase: .intent, detail: ["change_id": "c-2"]))
        try fixture.audit.record(AuditDraft(target: "slack:app/A1", action: "update-redirects", phase: .applied, detail: ["change_id": "c-2"]))
        #expect(try AuditLog.unfinishedChanges(fixture.store).map(\.changeID) == ["c-1"])

        var options = RunOptions(settings: ProvisionApp.defaultSettings)
        options.selection.labels = ["nothing": "matches"]
        var notes: [String] = []
        let report = try Runner(store: fixture.store, vault: fixture.vault, audit: fixture.audit, control: RunControl())
            .run(ProvisionApp(), options: options) { notes.append($0) }
        #expect(report.results.isEmpty)
        #expect(notes.contains { $0.contains("possible orphan") && $0.contains("W&B alerts prod") })
        let recovered = try AuditLog.entries(fixture.store).filter { $0.phase == "recovered" }
        #expect(recovered.count == 1)
        #expect(recovered.first?.detail.contains(#""change_id":"c-1""#) == true)
        #expect(try AuditLog.unfinishedChanges(fixture.store).isEmpty, "a later run does not report it again")
        #expect(try AuditLog.verify(fixture.store, keyring: fixture.keyring).count > 0)

        // A run that ends marks the log as resolved so far; a crash after that mark is still found.
        try fixture.audit.record(AuditDraft(target: "slack:app/T0123ABCD/prod", action: "create", phase: .intent,
                                            detail: ["change_id": "c-3", "name": "W&B alerts prod"]))
        #expect(try AuditLog.unfinishedChanges(fixture.store).map(\.changeID) == ["c-3"])
        notes = []
        let nextRun = AuditLog(store: fixture.store, keyring: fixture.keyring, context: AuditContext(command: "provision-app"))
        _ = try Runner(store: fixture.store, vault: fixture.vault, audit: nextRun, control: RunControl())
            .run(ProvisionApp(), options: options) { notes.append($0) }
        #expect(notes.filter { $0.contains("recovered an unfinished") }.count == 1, "only the new one: \(notes)")
        #expect(try AuditLog.unfinishedChanges(fixture.store).isEmpty)
    }

    /// Changes every instance through the executor; the change of an instance named in
    /// `failing` throws.
    struct ChangingJob: FleetJob {
        let name = "provision-app"
        let failing: Set<String>

        func expectedTier1Writes(_ group: GroupWork, context: JobContext) -> Int { 0 }

        func run(_ group: GroupWork, context: JobContext) -> [InstanceResult] {
            group.instances.map { instance in
                let change = ChangeExecutor.Change(target: "test:\(instance.name)", action: "update", summary: "change \(instance.name)")
                do {
                    try context.executor.perform(change, instance: instance.name) {
                        if failing.contains(instance.name) { throw FleetError.failed("refused") }
                    }
                    return InstanceResult(instance: instance.name, appGroup: group.key.appGroup, workspace: group.workspace.id, outcome: .changed, detail: "changed")
                } catch {
                    return context.failure(instance, group, error)
                }
            }
        }
    }

    /// Runs ChangingJob over every enabled instance of the sample inventory, the first one's
    /// change failing; returns the fixture, the instances' names (sorted) and the report.
    func changeEveryInstance(maxFailures: String? = nil) throws -> (FleetFixture, [String], RunReport) {
        let fixture = try FleetFixture(command: "provision-app")
        try fixture.importInventory(sampleInventory)
        let instances = try InventoryRepository.load(fixture.store).instances.filter(\.enabled).map(\.name)
        var options = RunOptions(settings: ProvisionApp.defaultSettings)
        options.selection.all = true
        options.maxFailures = try maxFailures.map(FailureBudget.init(parsing:))
        let report = try Runner(store: fixture.store, vault: fixture.vault, audit: fixture.audit, control: RunControl())
            .run(ChangingJob(failing: [instances[0]]), options: options) { _ in }
        return (fixture, instances, report)
    }

    @Test("a run marks its own changes as resolved when it ends, failed ones too: the next run's recovery reads none of them")
    func runMarksItsOwnChanges() throws {
        let (fixture, instances, report) = try changeEveryInstance()
        #expect(report.count(.changed) == instances.count - 1)
        #expect(report.count(.failed) == 1)
        let entries = try AuditLog.entries(fixture.store).filter { $0.target.hasPrefix("test:") }
        #expect(entries.filter { $0.phase == "intent" }.count == instances.count)
        #expect(entries.filter { $0.phase == "applied" || $0.phase == "failed" }.count == instances.count)
        let head = try AuditLog.verify(fixture.store, keyring: fixture.keyring).count
        let mark = try fixture.store.read("the mark") { db in
            try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'audit_resolved_through'")
        }
        #expect(mark == String(head), "the mark is the log's head at the run's end")
        #expect(try AuditLog.unfinishedChanges(fixture.store).isEmpty)
    }

    @Test("a run uses an inventory read started before it only when that read is of the runner's own database")
    func inventoryReadStartedEarly() throws {
        let fixture = try FleetFixture(command: "provision-app")
        try fixture.importInventory(sampleInventory)
        let enabled = try InventoryRepository.load(fixture.store).instances.filter(\.enabled).map(\.name).sorted()
        let early = InventoryRead(fixture.store)
        _ = try early.inventory()
        // Disabled after the early read: a run given that read still selects it.
        try fixture.store.write("disabling an instance") { db in
            try db.execute(sql: "UPDATE instance SET enabled = 0 WHERE name = ?", arguments: [enabled[0]])
        }
        var options = RunOptions(settings: ProvisionApp.defaultSettings)
        options.selection.all = true
        options.inventory = early
        let first = try Runner(store: fixture.store, vault: fixture.vault, audit: fixture.audit, control: RunControl())
            .run(ChangingJob(failing: []), options: options) { _ in }
        #expect(first.results.map(\.instance).sorted() == enabled)

        // A read of another database (this one's inventory is empty) is not used: the run reads its own.
        let other = try FleetFixture(command: "provision-app")
        options.inventory = InventoryRead(other.store)
        let nextRun = AuditLog(store: fixture.store, keyring: fixture.keyring, context: AuditContext(command: "provision-app"))
        let second = try Runner(store: fixture.store, vault: fixture.vault, audit: nextRun, control: RunControl())
            .run(ChangingJob(failing: []), options: options) { _ in }
        #expect(second.results.map(\.instance).sorted() == Array(enabled.dropFirst()))
    }

    @Test("a run's history: its row and one result row per instance, as reported")
    func runHistory() throws {
        let (fixture, instances, report) = try changeEveryInstance(maxFailures: "100%")
        let (run, results) = try fixture.store.read("the history") { db in
            (try Row.fetchOne(db, sql: "SELECT status, summary, finished_at FROM run WHERE id = ?", arguments: [report.runID]),
             try Row.fetchAll(db, sql: "SELECT instance, result, detail FROM run_result WHERE run_id = ? ORDER BY instance", arguments: [report.runID]))
        }
        let row = try #require(run)
        #expect(row["status"] as String == "finished")
        #expect((row["finished_at"] as String?) != nil)
        #expect((row["summary"] as String).contains(#""changed":\#(instances.count - 1)"#))
        #expect(results.map { $0["instance"] as String } == instances.sorted())
        #expect(results.first { $0["instance"] == instances[0] }?["result"] == "failed")
        // The lock was given back: taking it does not throw.
        try RunLock.acquire(fixture.store, runID: "next", job: "sync-redirects").lock.release()
    }

    @Test("a selection naming no instance of the inventory fails before the run is recorded, and gives the lock back")
    func badSelectionRecordsNoRun() throws {
        let fixture = try FleetFixture(command: "provision-app")
        try fixture.importInventory(sampleInventory)
        var options = RunOptions(settings: ProvisionApp.defaultSettings)
        options.selection.instances = ["nope"]
        #expect(throws: (any Error).self) {
            try Runner(store: fixture.store, vault: fixture.vault, audit: fixture.audit, control: RunControl())
                .run(ChangingJob(failing: []), options: options) { _ in }
        }
        #expect(try fixture.store.read("runs") { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM run") } == 0)
        let (lock, tookOver) = try RunLock.acquire(fixture.store, runID: "next", job: "sync-redirects")
        lock.release()
        #expect(tookOver == nil, "the failed run released its lock")
    }

    /// Counts how often the groups' workspaces were built: `begin` says whether it stored credentials.
    final class BeginJob: FleetJob, @unchecked Sendable {
        let name = "sync-redirects"
        let stores: Bool
        private let lock = NSLock()
        private(set) var workspaces: [Workspace] = []
        init(stores: Bool) { self.stores = stores }
        func expectedTier1Writes(_ group: GroupWork, context: JobContext) -> Int { 0 }
        func begin(_ work: [GroupWork], context: JobContext, notes: (String) -> Void) -> Bool {
            guard stores, let workspace = work.first?.workspace else { return false }
            // What a rotation stores: the pair the groups then use.
            try? context.store.write("storing a rotated pair") { db in
                _ = try context.vault.set(ConfigTokens.tokenName(workspace.id), to: SecretValue("xoxe.xoxp-rotated"), in: db)
                _ = try context.vault.set(ConfigTokens.refreshName(workspace.id), to: SecretValue("xoxe-rotated"), in: db)
                try db.execute(sql: "INSERT INTO config_token (workspace_id, seed_fingerprint, token_ref, refresh_token_ref, expires_at, rotated_at) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [workspace.id, ConfigTokens.seedFingerprint(workspace, vault: context.vault) ?? "", "secret:" + ConfigTokens.tokenName(workspace.id),
                                           "secret:" + ConfigTokens.refreshName(workspace.id), "2099-01-01T00:00:00Z", Timestamp.now()])
            }
            return true
        }
        func run(_ group: GroupWork, context: JobContext) -> [InstanceResult] {
            lock.lock(); workspaces.append(group.workspace); lock.unlock()
            return context.all(group, .ok, "seen")
        }
    }

    @Test("the groups are built again after begin only when it says it stored workspace credentials", arguments: [false, true])
    func beginRebuildsGroups(_ stores: Bool) throws {
        let fixture = try FleetFixture(command: "sync-redirects")
        try fixture.importInventory(sampleInventory)
        var options = RunOptions(settings: SyncRedirects.defaultSettings)
        options.selection.all = true
        let job = BeginJob(stores: stores)
        _ = try Runner(store: fixture.store, vault: fixture.vault, audit: fixture.audit, control: RunControl()).run(job, options: options) { _ in }
        let first = try #require(InventoryRepository.load(fixture.store).workspaces.sorted { $0.id < $1.id }.first)
        let seen = job.workspaces.filter { $0.id == first.id }
        #expect(!seen.isEmpty)
        for workspace in seen {
            #expect(workspace.configToken == (stores ? .stored(name: ConfigTokens.tokenName(first.id)) : first.configToken))
        }
    }

    @Test("a sequence of changes: intents in one commit before the first call; after a failure the rest are not attempted, and say so")
    func changeSequences() throws {
        let fixture = try FleetFixture(command: "provision-app")
        let executor = ChangeExecutor(audit: fixture.audit, dryRun: false, control: RunControl())
        var calls: [String] = []
        func steps(failing: String?) -> [ChangeExecutor.Step] {
            ["secret", "restart", "third"].map { name in
                ChangeExecutor.Step(ChangeExecutor.Change(target: "test:\(name)", action: name, summary: "do \(name)")) {
                    calls.append(name)
                    if name == failing { throw FleetError.failed("\(name) refused") }
                }
            }
        }
        try executor.perform(steps(failing: nil), instance: "a")
        #expect(calls == ["secret", "restart", "third"])
        #expect(throws: FleetError.self) { try executor.perform(steps(failing: "restart"), instance: "b") }
        #expect(calls == ["secret", "restart", "third", "secret", "restart"], "nothing after the failed step was called")
        try fixture.audit.flush()
        #expect(executor.everyIntentHasOutcome)
        let entries = try AuditLog.entries(fixture.store, instance: "b")
        let intents = entries.filter { $0.phase == "intent" }
        #expect(intents.map(\.action) == ["secret", "restart", "third"])
        #expect(Set(intents.map(\.time)).count == 1, "the intents were written in one commit")
        #expect(entries.prefix(3).allSatisfy { $0.phase == "intent" }, "every intent comes before the first outcome")
        let outcomes = Dictionary(uniqueKeysWithValues: entries.filter { $0.phase != "intent" }.map { ($0.action, $0) })
        #expect(outcomes["secret"]?.phase == "applied")
        #expect(outcomes["restart"]?.phase == "failed")
        #expect(outcomes["third"]?.phase == "failed")
        #expect(outcomes["third"]?.detail.contains("not attempted: do restart failed before it") == true)
        #expect(try AuditLog.unfinishedChanges(fixture.store).isEmpty)
        // A run asked to stop mid-sequence finishes it: no Secret is left written without its restart.
        let control = RunControl()
        let stopping = ChangeExecutor(audit: fixture.audit, dryRun: false, control: control)
        var finished: [String] = []
        try stopping.perform([
            ChangeExecutor.Step(ChangeExecutor.Change(target: "test:secret", action: "update", summary: "write")) {
                finished.append("update")
                control.requestStop(.terminated)
            },
            ChangeExecutor.Step(ChangeExecutor.Change(target: "test:deployment", action: "restart", summary: "restart")) { finished.append("restart") },
        ], instance: "d")
        #expect(finished == ["update", "restart"])
        #expect(throws: RunControl.Interrupted.self) { try stopping.perform([steps(failing: nil)[0]], instance: "d") }
        // A dry run plans every step and calls none.
        let dry = ChangeExecutor(audit: fixture.audit, dryRun: true, control: RunControl())
        try dry.perform(steps(failing: nil), instance: "c")
        #expect(calls.count == 5)
        #expect(dry.planned["c"]?.map(\.action) == ["secret", "restart", "third"])
    }

    @Test("a result's --json line has the members of its Encodable form, with the same values")
    func resultLineMatchesEncodable() throws {
        var full = InstanceResult(instance: "prod-us-east", appGroup: "prod", workspace: "T0123ABCD", outcome: .failed,
                                  detail: "said \"no\" to https://x.example/a\nthen\u{1}stopped; ünïcode", durationMS: 1234)
        full.checks = ["token": "ok", "alert": "no message after 60 s"]
        full.deliverySeconds = 1.25
        full.switchSeconds = 0.375
        let plain = InstanceResult(instance: "lab", appGroup: "lab", workspace: "T0456EFGH", outcome: .ok, detail: "")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var quoted = full
        (quoted.checks, quoted.deliverySeconds, quoted.switchSeconds) = (nil, nil, nil)
        for result in [full, plain, quoted] {
            var line = ""
            result.appendJSONLine(to: &line)
            #expect(!line.contains("\n"), "one line")
            #expect(try JSON.parse(Data(line.utf8)) == JSON.parse(encoder.encode(result)))
            // Sorted members, spelled as the canonical writer spells them.
            #expect(try JSON.parse(Data(line.utf8)).canonicalJSON == line)
        }
    }

    @Test("apps restore holds the run lock: it waits for no run and no run takes its change for a crashed one")
    func restoreTakesTheRunLock() throws {
        let fixture = try FleetFixture(command: "apps restore")
        let (lock, _) = try RunLock.acquire(fixture.store, runID: "other-run", job: "sync-redirects")
        defer { lock.release() }
        let error = try #require(throws: FleetError.self) {
            try SnapshotRestore.restore(snapshot: 1, store: fixture.store, vault: fixture.vault, audit: fixture.audit)
        }
        #expect(error.message.contains("another run holds this database: sync-redirects (run other-run)"))
    }

    @Test("shards split the fleet by workspace, stably, and cover it exactly once")
    func shards() throws {
        let fixture = try FleetFixture()
        try fixture.importInventory(sampleInventory)
        let inventory = try InventoryRepository.load(fixture.store)
        var seen: [String] = []
        for index in 1...3 {
            var selection = Selection()
            selection.all = true
            selection.shard = Shard(index: index, count: 3)
            seen += try selection.groups(of: inventory).values.flatMap { $0.map(\.name) }
        }
        #expect(seen.sorted() == ["prod-eu-west", "prod-us-east"], "disabled instances are never selected; each other one exactly once")
        #expect(throws: FleetError.self) { try Shard.parse("4/3", shards: nil, environment: [:]) }
        #expect(try Shard.parse(nil, shards: 4, environment: ["JOB_COMPLETION_INDEX": "0"])?.index == 1)
        #expect(throws: FleetError.self) { try Selection().groups(of: inventory) }
    }

    @Test("the failure budget counts or takes a share", arguments: [("2", 3, 10, true), ("2", 2, 10, false), ("10%", 2, 10, true), ("10%", 1, 10, false)])
    func failureBudget(_ text: String, _ failures: Int, _ total: Int, _ exceeded: Bool) throws {
        #expect(try FailureBudget(parsing: text).exceeded(failures: failures, total: total) == exceeded)
    }
}
