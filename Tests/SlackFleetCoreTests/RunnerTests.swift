import Foundation
import SlackFleetCore
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

        var options = RunOptions(settings: JobSettings.defaults(for: "provision-app"))
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
    }

    @Test("shards split the fleet by app group, stably, and cover it exactly once")
    func shards() throws {
        let fixture = try FleetFixture()
        try fixture.importInventory(sampleInventory)
        let inventory = try InventoryRepository.load(fixture.store)
        var seen: [String] = []
        for index in 1...3 {
            var selection = Selection()
            selection.all = true
            selection.shard = (index, 3)
            seen += try selection.groups(of: inventory).values.flatMap { $0.map(\.name) }
        }
        #expect(seen.sorted() == ["prod-eu-west", "prod-us-east"], "disabled instances are never selected; each other one exactly once")
        #expect(throws: FleetError.self) { try Selection.shard("4/3", shards: nil, environment: [:]) }
        #expect(try Selection.shard(nil, shards: 4, environment: ["JOB_COMPLETION_INDEX": "0"])?.index == 1)
        #expect(throws: FleetError.self) { try Selection().groups(of: inventory) }
    }

    @Test("the failure budget counts or takes a share", arguments: [("2", 3, 10, true), ("2", 2, 10, false), ("10%", 2, 10, true), ("10%", 1, 10, false)])
    func failureBudget(_ text: String, _ failures: Int, _ total: Int, _ exceeded: Bool) throws {
        #expect(try FailureBudget(parsing: text).exceeded(failures: failures, total: total) == exceeded)
    }
}
