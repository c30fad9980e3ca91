import Foundation
import SlackFleetTestSupport
import Testing

extension JobFixture {
    func retire(_ extra: [String]) throws -> SlackFleetCLI.Result {
        try cli.run(["retire", "--pace-scale", "600", "--json"] + (extra.contains("--instance") ? [] : ["--all"]) + extra, timeout: 120)
    }

    /// The redirect URLs of the live app named for `group`, as Slack (the simulator) holds them.
    func redirectURLs(_ group: String) throws -> [String] {
        let app = try liveApp(group)
        return ((app?["manifest"] as? [String: Any])?["oauth_config"] as? [String: Any])?["redirect_urls"] as? [String] ?? []
    }

    /// The audit log's entries, as `audit export` writes them.
    func auditEntries() throws -> [[String: Any]] {
        let path = directory.file("audit-\(UUID().uuidString.prefix(6)).jsonl")
        _ = try cli.run(["audit", "export", "--output", path])
        return try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    static func detail(_ entry: [String: Any]) -> [String: Any] {
        (entry["detail"] as? String).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? entry["detail"] as? [String: Any] ?? [:]
    }
}

extension JobSuites {
    @Suite("retire and apps orphans")
    struct RetireTests {
        static func clientID(_ instances: [String: [String: Any]], _ name: String) -> String {
            instances[name]?["effective_client_id"] as? String ?? ""
        }

        static func results(_ run: SlackFleetCLI.Result) -> [String: [String: Any]] {
            Dictionary(uniqueKeysWithValues: JobFixture.lines(run).compactMap { line in (line["instance"] as? String).map { ($0, line) } })
        }

        @Test("others stay: the retired instances' URLs leave the app, their credentials are emptied (v2 Secret keys, v1 values, not exec), a removed one is forgotten; dry run first, and a rerun changes nothing",
              arguments: ["operator-v2", "operator-v1", "exec"])
        func othersStay(_ registrar: String) throws {
            let fixture = try JobFixture(instances: 4, workspaces: 1, groups: 1, groupSize: 4, extra: ["--registrars", registrar])
            #expect(try fixture.provision().status == 0)
            #expect(try fixture.redirectURLs("shared-1").count == 4)
            let edited = try RetirementMarkTests.reimport(fixture, prune: true) { text in
                try RetirementMarkTests.drop("wandb-0003", from: &text)
                let marker = try #require(text.range(of: "  - name: wandb-0002\n"))
                text.insert(contentsOf: "    retire: true\n", at: marker.upperBound)
            }
            #expect(edited.status == 0, "\(edited.output)")

            let dry = try fixture.retire(["--dry-run"])
            #expect(dry.status == 2, "\(dry.output.suffix(800))")
            #expect(try fixture.redirectURLs("shared-1").count == 4, "a dry run changes nothing")
            #expect(Set(Self.results(dry).keys) == ["wandb-0002", "wandb-0003"], "only the retiring instances")

            let run = try fixture.retire([])
            #expect(run.status == 0, "\(run.output.suffix(1500))")
            #expect(try fixture.redirectURLs("shared-1") == ["https://wandb-0001.wandb.fleet-sim.test", "https://wandb-0004.wandb.fleet-sim.test"])
            let instances = try fixture.simInstances()
            let results = Self.results(run)
            for name in ["wandb-0002", "wandb-0003"] {
                let detail = results[name]?["detail"] as? String ?? ""
                if registrar == "exec" {
                    #expect(detail.contains("the exec registrar") && detail.contains("has no way to remove them"), "\(detail)")
                    #expect(!Self.clientID(instances, name).isEmpty)
                } else {
                    #expect(detail.contains("emptied its Slack credentials") && detail.contains("reports no Slack client ID"), "\(detail)")
                    #expect(Self.clientID(instances, name).isEmpty, "\(name) runs without Slack credentials")
                }
            }
            #expect(!Self.clientID(instances, "wandb-0001").isEmpty, "the instances that stay keep theirs")
            let forgotten = results["wandb-0003"]?["detail"] as? String ?? ""
            #expect(forgotten.contains("forgotten"))
            let list = JobFixture.lines(try fixture.cli.run(["inventory", "list", "--json"])).compactMap { $0["name"] as? String }
            #expect(list == ["wandb-0001", "wandb-0002", "wandb-0004"], "the removed instance is forgotten, the marked one stays listed")
            let forget = try fixture.auditEntries().filter { $0["action"] as? String == "forget" && $0["phase"] as? String != "planned" }
            #expect(forget.map { $0["phase"] as? String } == ["intent", "applied"])

            try fixture.sim.control("POST", "calls/reset")
            let again = try fixture.retire([])
            let counts = JobFixture.lines(again).last?["counts"] as? [String: Int] ?? [:]
            #expect(again.status == 0 && counts["changed", default: 0] == 0 && counts["ok"] == 1, "\(again.stdout.suffix(1500))")
            #expect(try fixture.sim.calls()["slack:apps.manifest.update"] == nil, "a rerun makes no write")
        }

        @Test("none stays: the app is kept while integrations depend on it, until --delete-app-breaking names their count; the count is what Slack loses; the audit log names each")
        func lastInstance() throws {
            let fixture = try JobFixture(instances: 2, workspaces: 1, groups: 0, userIntegrations: 2)
            #expect(try fixture.provision().status == 0)
            let edited = try RetirementMarkTests.reimport(fixture) { text in
                let marker = try #require(text.range(of: "  - name: wandb-0001\n"))
                text.insert(contentsOf: "    retire: true\n", at: marker.upperBound)
            }
            #expect(edited.status == 0)

            let refused = try fixture.retire([])
            #expect(refused.status == 1, "\(refused.output.suffix(800))")
            let detail = Self.results(refused)["wandb-0001"]?["detail"] as? String ?? ""
            let count = try #require(detail.firstMatch(of: /would end (\d+) Slack integration/).flatMap { Int($0.1) }, "\(detail)")
            #expect(count >= 1 && detail.contains("--delete-app-breaking \(count)"), "\(detail)")
            #expect(try fixture.liveApp("wandb-0001") != nil, "kept")
            #expect(try fixture.integrationsLost() == 0)

            let wrong = try fixture.retire(["--delete-app-breaking", "\(count + 1)"])
            let mismatch = Self.results(wrong)["wandb-0001"]?["detail"] as? String ?? ""
            #expect(wrong.status == 1 && mismatch.contains("does not match"))
            #expect(try fixture.liveApp("wandb-0001") != nil)

            let deleted = try fixture.retire(["--delete-app-breaking", "\(count)"])
            #expect(deleted.status == 0, "\(deleted.output.suffix(800))")
            #expect(try fixture.liveApp("wandb-0001") == nil, "deleted in Slack")
            #expect(try fixture.liveApp("wandb-0002") != nil, "another group's app is untouched")
            #expect(try fixture.integrationsLost() == count, "the count said is the count Slack lost")
            let deletion = try #require(try fixture.auditEntries().first { $0["action"] as? String == "delete" && $0["phase"] as? String == "intent" })
            #expect((JobFixture.detail(deletion)["integrations_ended"] as? [Any])?.count == count)

            let again = try fixture.retire([])
            #expect(again.status == 0, "\(again.output.suffix(800))")
            let nothingLeft = Self.results(again)["wandb-0001"]?["detail"] as? String ?? ""
            #expect(nothingLeft.contains("no app left to delete"))
        }

        @Test("killed after Slack deleted the app, or before forgetting: the rerun records the recovery and finishes", arguments: ["after:delete:slack", "before:forget:inventory"])
        func crash(_ point: String) throws {
            let fixture = try JobFixture(instances: 1, workspaces: 1, groups: 0)
            #expect(try fixture.provision().status == 0)
            #expect(try fixture.cli.run(["inventory", "remove", "wandb-0001"]).status == 0)
            var killed = fixture.cli
            killed.environment["SLACKFLEET_CRASH_AT"] = point
            let first = try killed.run(["retire", "--all", "--pace-scale", "600", "--delete-app-breaking", "1"], timeout: 120)
            #expect(first.status == 9, "\(first.output.suffix(600))")
            let rerun = try fixture.retire(["--delete-app-breaking", "1"])
            #expect(rerun.status == 0, "\(rerun.output.suffix(1200))")
            let recovered = try fixture.auditEntries().filter { $0["phase"] as? String == "recovered" }
            #expect(recovered.count == 1)
            let found = JobFixture.detail(recovered.first ?? [:])["found"] as? String ?? ""
            #expect(point.hasPrefix("after") ? found.contains("may or may not have deleted") : found.contains("still kept until retired"), "\(found)")
            #expect(try fixture.liveApp("wandb-0001") == nil)
            #expect(JobFixture.lines(try fixture.cli.run(["inventory", "list", "--json"])).isEmpty)
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
        }

        @Test("apps orphans: a create whose answer was lost is listed with where to look; --delete removes it once Slack's name matches, never a stored app")
        func orphans() throws {
            let fixture = try JobFixture(instances: 1, workspaces: 1, groups: 0)
            try fixture.sim.control("POST", "faults", #"{"target": "workspace:TSIM0001", "endpoint": "slack:apps.manifest.create", "drop_responses": 1}"#)
            #expect(try fixture.provision().status == 0, "the second create stores its app")
            let listed = try fixture.cli.run(["apps", "orphans", "--json"])
            let orphans = JobFixture.lines(listed)
            #expect(orphans.count == 1 && orphans.first?["name"] as? String == "W&B alerts wandb-0001", "\(listed.output)")
            #expect(try fixture.cli.run(["apps", "orphans"]).stdout.contains("https://api.slack.com/apps"))

            let apps = try fixture.simApps().filter { (($0["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String == "W&B alerts wandb-0001" }
            let running = try fixture.simInstances()["wandb-0001"]?["effective_client_id"] as? String
            let stored = try #require(apps.first { $0["client_id"] as? String == running }?["app_id"] as? String)
            let orphan = try #require(apps.first { $0["client_id"] as? String != running }?["app_id"] as? String)

            let refused = try fixture.cli.run(["apps", "orphans", "--delete", stored])
            #expect(refused.status == 65 && refused.stderr.contains("is on record"), "\(refused.output)")
            let typo = try fixture.cli.run(["apps", "orphans", "--delete", "not-an-id"])
            #expect(typo.status == 64, "\(typo.output)")

            let deleted = try fixture.cli.run(["apps", "orphans", "--delete", orphan])
            #expect(deleted.status == 0, "\(deleted.output)")
            let gone = try fixture.simApps().first { $0["app_id"] as? String == orphan }
            #expect(gone?["deleted"] as? Bool == true)
            #expect(JobFixture.lines(try fixture.cli.run(["apps", "orphans", "--json"])).isEmpty, "settled")
            #expect(try fixture.liveApp("wandb-0001") != nil, "the stored app is untouched")
        }
    }
}
