import Foundation
import SlackFleetTestSupport
import Testing

/// How the inventory marks instances on their way out, and how the jobs in service treat them.
extension JobSuites {
    @Suite("Inventory: retirement marks and tombstones")
    struct RetirementMarkTests {
        /// The fixture's inventory with `edit` applied, imported (with `--prune` when asked).
        static func reimport(_ fixture: JobFixture, prune: Bool = false, _ edit: (inout String) throws -> Void) throws -> SlackFleetCLI.Result {
            var text = try String(contentsOfFile: fixture.sim.inventory, encoding: .utf8)
            try edit(&text)
            let path = fixture.directory.file("edited-\(UUID().uuidString.prefix(6)).yaml")
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return try fixture.cli.run(["inventory", "import", path] + (prune ? ["--prune"] : []))
        }

        /// Removes one instance's block from an inventory text.
        static func drop(_ name: String, from text: inout String) throws {
            let start = try #require(text.range(of: "  - name: \(name)\n"))
            let end = text.range(of: "  - name: ", range: start.upperBound..<text.endIndex)?.lowerBound ?? text.endIndex
            text.removeSubrange(start.lowerBound..<end)
        }

        @Test("sync-redirects on one member of a shared app group keeps the other members' redirect URLs")
        func oneMemberOfAGroup() throws {
            let fixture = try JobFixture(instances: 4, workspaces: 1, groups: 1, groupSize: 4)
            #expect(try fixture.provision().status == 0)
            let run = try fixture.sync(["--instance", "wandb-0002", "--json"])
            #expect(run.status == 0, "\(run.output)")
            #expect((JobFixture.lines(run).last?["counts"] as? [String: Int])?["ok"] == 1, "nothing to change: \(run.stdout)")
            let app = try #require(try fixture.sim.apps(named: "W&B alerts shared-1").first { $0["deleted"] as? Bool == false })
            let urls = ((app["manifest"] as? [String: Any])?["oauth_config"] as? [String: Any])?["redirect_urls"] as? [String] ?? []
            #expect(urls.count == 4, "\(urls)")
        }

        @Test("retire: true and --prune: the instance leaves service (no job in service works on it) and, once provisioned, stays as a tombstone; the same name again brings it back")
        func marksAndTombstones() throws {
            let fixture = try JobFixture(instances: 4, workspaces: 1, groups: 1, groupSize: 2)
            #expect(try fixture.provision().status == 0)
            // wandb-0004 (its own group, provisioned) is pruned; wandb-0002 (shared-1) is marked.
            let pruned = try Self.reimport(fixture, prune: true) { text in
                try Self.drop("wandb-0004", from: &text)
                let marker = try #require(text.range(of: "  - name: wandb-0002\n"))
                text.insert(contentsOf: "    retire: true\n", at: marker.upperBound)
            }
            #expect(pruned.status == 0, "\(pruned.output)")
            #expect(pruned.stdout.contains("remove instance wandb-0004 (kept as a tombstone until `slackfleet retire` retires it)"), "\(pruned.stdout)")
            let list = try fixture.cli.run(["inventory", "list", "--json"])
            let states = Dictionary(uniqueKeysWithValues: JobFixture.lines(list).compactMap { line in (line["name"] as? String).map { ($0, line["state"] as? String ?? "") } })
            #expect(states == ["wandb-0001": "in-service", "wandb-0002": "retiring", "wandb-0003": "in-service", "wandb-0004": "removed (until retired)"])
            let exported = try fixture.cli.run(["inventory", "export"]).stdout
            #expect(exported.contains("retire: true") && !exported.contains("wandb-0004"), "a tombstone is not in the inventory")

            let sync = try fixture.sync(["--json"])
            let names = Set(JobFixture.lines(sync).compactMap { $0["instance"] as? String })
            #expect(names == ["wandb-0001", "wandb-0003"], "jobs in service leave retiring instances alone")
            let again = try Self.reimport(fixture) { _ in }
            #expect(again.status == 0)
            let back = try fixture.cli.run(["inventory", "list", "--json"])
            #expect(JobFixture.lines(back).first { $0["name"] as? String == "wandb-0004" }?["state"] as? String == "in-service", "\(back.stdout)")
        }
    }
}
