import Foundation
import SlackFleetTestSupport
import Testing

extension JobFixture {
    /// rotate-secret with Slack's pace scaled for the simulator.
    func rotate(_ extra: [String], environment: [String: String] = [:]) throws -> SlackFleetCLI.Result {
        var cli = self.cli
        cli.environment.merge(environment) { _, new in new }
        let selection = extra.contains("--instance") || extra.contains("--label") ? [] : ["--all"]
        return try cli.run(["rotate-secret", "--pace-scale", "600", "--timeout", "20s"] + selection + extra, timeout: 120)
    }

    /// The simulator's view of every instance: effective client ID, whether it can deliver, and
    /// how many times it went from able to deliver to unable (a credential gap).
    func simInstances() throws -> [String: [String: Any]] {
        let items = try sim.control("GET", "instances") as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: items.compactMap { item in (item["name"] as? String).map { ($0, item) } })
    }

    func simApps() throws -> [[String: Any]] {
        try sim.control("GET", "apps") as? [[String: Any]] ?? []
    }

    /// The invariants read from the simulator, not from SlackFleet's report: no instance ever lost
    /// working credentials, and each runs on a live app.
    func expectNoCredentialGap(_ label: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let live = Set(try simApps().filter { $0["deleted"] as? Bool == false }.compactMap { $0["client_id"] as? String })
        for (name, item) in try simInstances() {
            #expect(item["delivery_losses"] as? Int == 0, "\(label): \(name) lost working credentials: \(item["last_delivery_loss"] ?? "")", sourceLocation: sourceLocation)
            #expect((item["effective_client_id"] as? String).map(live.contains) == true, "\(label): \(name) runs on no live app", sourceLocation: sourceLocation)
            #expect(item["can_deliver"] as? Bool == true, "\(label): \(name) cannot deliver", sourceLocation: sourceLocation)
        }
    }
}

extension JobSuites {
    @Suite("rotate-secret")
    struct RotateSecretTests {
        @Test("--client-secret: a new app per group, verified, promoted; the old one kept for the grace, then deleted; no credential gap")
        func clientSecret() throws {
            let fixture = try JobFixture(instances: 10, workspaces: 2, groups: 1, groupSize: 4, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100}"#)
            #expect(try fixture.provision().status == 0)
            let before = try fixture.simInstances().mapValues { $0["effective_client_id"] as? String }
            let dry = try fixture.rotate(["--client-secret", "--dry-run"])
            #expect(dry.status == 2, "\(dry.output)")
            #expect(try fixture.sim.calls()["slack:apps.manifest.create"] == 7, "a dry run creates nothing")

            let run = try fixture.rotate(["--client-secret", "--json"])
            #expect(run.status == 0, "\(run.output)")
            let results = JobFixture.lines(run).filter { $0["instance"] != nil }
            #expect(results.count == 10 && results.allSatisfy { $0["result"] as? String == "changed" })
            #expect(results.allSatisfy { ($0["switch_seconds"] as? Double) != nil && ($0["delivery_seconds"] as? Double) != nil })
            let after = try fixture.simInstances()
            for (name, clientID) in before { #expect(after[name]?["effective_client_id"] as? String != clientID, "\(name) runs on a new app") }
            #expect(Set(after.values.compactMap { $0["effective_client_id"] as? String }).count == 7, "the shared group's four share one new app")
            #expect(try fixture.simApps().filter { $0["deleted"] as? Bool == true }.isEmpty, "the old apps are kept for the grace")
            try fixture.expectNoCredentialGap("after the rotation")

            try fixture.sim.control("POST", "calls/reset")
            let again = try fixture.rotate(["--client-secret"])
            #expect(again.status == 0)
            #expect(again.stdout.contains("ok=10 changed=0"))
            #expect(again.stdout.contains("is kept for rollback until"))
            #expect(try fixture.sim.calls().isEmpty, "within the grace nothing is called")

            // An old app is deleted only once every instance of its group reports the new client ID.
            try fixture.sim.control("POST", "faults", #"{"target": "instance:wandb-0002", "down": true}"#)
            let held = try fixture.rotate(["--client-secret", "--grace", "0", "--min-age", "1d", "--json"])
            #expect(held.status == 0, "\(held.output)")
            let heldDetail = JobFixture.lines(held).first { $0["instance"] as? String == "wandb-0001" }?["detail"] as? String ?? ""
            #expect(heldDetail.contains("is kept: instance wandb-0002 did not answer"), "\(heldDetail)")
            #expect(try fixture.sim.calls()["slack:apps.manifest.delete"] == 6, "the shared group's old app is kept")
            try fixture.sim.control("DELETE", "faults")
            try fixture.sim.control("POST", "calls/reset")
            let cleanup = try fixture.rotate(["--client-secret", "--grace", "0", "--min-age", "1d"])
            #expect(cleanup.status == 0, "\(cleanup.output)")
            #expect(try fixture.sim.calls()["slack:apps.manifest.delete"] == 1)
            #expect(try fixture.sim.calls()["slack:apps.manifest.create"] == nil, "--min-age: the new apps are too young to rotate")
            try fixture.expectNoCredentialGap("after the old apps were deleted")
            let verify = try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "20s"], timeout: 120)
            #expect(verify.status == 0, "\(verify.output)")
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
            let audit = try fixture.cli.run(["audit", "list", "--json"]).stdout
            #expect(audit.contains(#""action":"promote""#) && audit.contains(#""action":"delete""#))
        }

        @Test("a group with an instance down is not started: no app created, nothing written, each instance says why; it rotates once all answer")
        func memberDown() throws {
            let fixture = try JobFixture(instances: 4, workspaces: 1, groups: 1, groupSize: 4, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100}"#)
            #expect(try fixture.provision().status == 0)
            let before = try fixture.simInstances().mapValues { $0["effective_client_id"] as? String }
            try fixture.sim.control("POST", "faults", #"{"target": "instance:wandb-0002", "down": true}"#)
            try fixture.sim.control("POST", "calls/reset")
            let held = try fixture.rotate(["--client-secret", "--json"])
            #expect(held.status == 1, "\(held.output)")
            let details = Dictionary(uniqueKeysWithValues: JobFixture.lines(held).compactMap { line in
                (line["instance"] as? String).map { ($0, (line["detail"] as? String) ?? "") }
            })
            #expect(details.count == 4)
            #expect(details["wandb-0002"]?.contains("rotation not started, nothing created: this instance did not answer") == true, "\(details)")
            #expect(details["wandb-0001"]?.contains("another instance failed: wandb-0002") == true, "\(details)")
            let calls = try fixture.sim.calls()
            #expect(calls["slack:apps.manifest.create"] == nil && calls["slack:apps.manifest.export"] == nil, "nothing asked of Slack: \(calls)")
            #expect(calls.keys.allSatisfy { !$0.hasPrefix("k8s:PATCH") }, "nothing written to any instance: \(calls)")
            #expect(try fixture.simInstances().mapValues { $0["effective_client_id"] as? String } == before)

            try fixture.sim.control("DELETE", "faults")
            let rotated = try fixture.rotate(["--client-secret"])
            #expect(rotated.status == 0, "\(rotated.output)")
            #expect(try fixture.simInstances().allSatisfy { $0.value["effective_client_id"] as? String != before[$0.key] ?? nil })
            try fixture.expectNoCredentialGap("after the rotation")
        }

        @Test("an instance that does not take the new credentials in time: every instance goes back to the old app, the new one is deleted")
        func rollback() throws {
            let fixture = try JobFixture(instances: 4, workspaces: 1, groups: 1, groupSize: 4, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100}"#)
            #expect(try fixture.provision().status == 0)
            let before = try fixture.simInstances().mapValues { $0["effective_client_id"] as? String }
            // Without a canary to prove delivery, a rotation refuses before creating anything.
            let inventory = try String(contentsOfFile: fixture.sim.inventory, encoding: .utf8)
            let blocks = inventory.components(separatedBy: "  - name: ")
            let withoutCanary = blocks.map { $0.hasPrefix("wandb-0003\n") ? $0.replacingOccurrences(of: "    canary: {entity: ops, project: slack-canary}\n", with: "") : $0 }
                .joined(separator: "  - name: ")
            #expect(withoutCanary != inventory)
            #expect(try fixture.cli.run(["inventory", "import", fixture.directory.write("no-canary.yaml", withoutCanary)]).status == 0)
            let refused = try fixture.rotate(["--client-secret"])
            #expect(refused.status == 1)
            #expect(refused.stdout.contains("instance wandb-0003 has no canary"))
            #expect(try fixture.sim.calls()["slack:apps.manifest.create"] == 1, "only provision-app's create")
            #expect(try fixture.cli.run(["inventory", "import", fixture.sim.inventory]).status == 0)
            try fixture.sim.control("POST", "faults", #"{"target": "instance:wandb-0002", "slow_rollout_ms": 4000}"#)
            let settle = try FastJobFile.write("rotate-secret", scale: 600, in: fixture.directory, settle: 2)
            let run = try fixture.rotate(["--client-secret", "--job-file", settle, "--json"])
            #expect(run.status == 1, "\(run.output)")
            let results = JobFixture.lines(run).filter { $0["instance"] != nil }
            #expect(results.count == 4 && results.allSatisfy { ($0["detail"] as? String ?? "").contains("rotation rolled back") })
            let slow = results.first { $0["instance"] as? String == "wandb-0002" }?["detail"] as? String ?? ""
            #expect(slow.contains("this instance failed") && slow.contains("still reports Slack client ID"))
            #expect(try fixture.sim.calls()["slack:apps.manifest.delete"] == 1, "the pending app is deleted")
            Thread.sleep(forTimeInterval: 4.5)  // the slow rollout, restarted with the old credentials, completes
            let after = try fixture.simInstances()
            for (name, clientID) in before { #expect(after[name]?["effective_client_id"] as? String == clientID, "\(name) is back on the old app") }
            try fixture.expectNoCredentialGap("after the rollback")
            let audit = try fixture.cli.run(["audit", "list", "--json"]).stdout
            #expect(audit.contains(#""action":"rollback""#))
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
        }

        @Test("--propagate: a secret regenerated in Slack's UI reaches every instance of the app, with the old one kept until verified")
        func propagate() throws {
            let fixture = try JobFixture(instances: 6, workspaces: 1, groups: 1, groupSize: 3, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100}"#)
            #expect(try fixture.provision().status == 0)
            let shared = try #require(try fixture.simApps().first { (($0["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String == "W&B alerts shared-1" })
            let regenerated = try fixture.sim.control("POST", "apps/\(shared["app_id"] as? String ?? "")/regenerate-secret") as? [String: Any]
            let secret = try #require(regenerated?["client_secret"] as? String)
            let secretFile = fixture.directory.write("new-secret", secret + "\n")
            let lost = try fixture.simInstances().filter { $0.value["can_deliver"] as? Bool == false }.keys.sorted()
            #expect(lost == ["wandb-0001", "wandb-0002", "wandb-0003"], "the person's regeneration broke the shared app's instances")

            let wide = try fixture.rotate(["--propagate", "--secret-from", "file:\(secretFile)"])
            #expect(wide.status == 1)
            #expect(wide.stdout.contains("pushes the secret of one app"))
            let run = try fixture.rotate(["--propagate", "--secret-from", "file:\(secretFile)", "--instance", "wandb-0001", "--json"])
            #expect(run.status == 0, "\(run.output)")
            #expect(JobFixture.lines(run).filter { $0["result"] as? String == "changed" }.count == 3, "the whole group, not only the instance named")
            #expect(try fixture.simInstances().values.allSatisfy { $0["can_deliver"] as? Bool == true })
            #expect(!run.output.contains(secret))
            let again = try fixture.rotate(["--propagate", "--secret-from", "file:\(secretFile)", "--instance", "wandb-0002"])
            #expect(again.status == 0)
            #expect(again.stdout.contains("already runs on this secret"))
            #expect(try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "20s"], timeout: 120).status == 0)
            let bad = try fixture.cli.run(["rotate-secret", "--propagate", "--secret-from", secret, "--all"])
            #expect(bad.status == 64)
            #expect(!bad.output.contains(secret), "a value given where a reference belongs is not echoed")
        }
    }

    @Suite("rotate-secret --config-tokens")
    struct ConfigTokenTests {
        @Test("rotation stores the new pair at once; later jobs use it; a token with time left is not rotated")
        func rotates() throws {
            let fixture = try JobFixture(instances: 3, workspaces: 1, groups: 0)
            let first = try fixture.rotate(["--config-tokens", "--min-remaining", "13h"])
            #expect(first.status == 0, "\(first.output)")
            #expect(first.stdout.contains("rotated the configuration token of workspace TSIM0001"))
            #expect(try fixture.sim.calls()["slack:tooling.tokens.rotate"] == 1, "one call per workspace, not per instance")
            let seed = try String(contentsOfFile: fixture.sim.inventory + ".secrets/TSIM0001-refresh-token", encoding: .utf8)
            let tokens = try fixture.sim.control("GET", "tokens") as? [[String: Any]] ?? []
            #expect(tokens.first { $0["token"] as? String == seed }?["revoked"] as? Bool == true, "the inventory's refresh token was used up")
            // Jobs now run on the rotated token, and a re-import of the same inventory does not undo that.
            #expect(try fixture.cli.run(["inventory", "import", fixture.sim.inventory]).status == 0)
            let provision = try fixture.provision()
            #expect(provision.status == 0, "\(provision.output)")
            let second = try fixture.rotate(["--config-tokens"])
            #expect(second.status == 0)
            #expect(second.stdout.contains("is valid for"))
            #expect(try fixture.sim.calls()["slack:tooling.tokens.rotate"] == 1)
            let audit = try fixture.cli.run(["audit", "export"]).stdout
            #expect(!audit.contains(seed))
        }

        @Test("an expired token is renewed; a reused refresh token is a clear error that says how to re-seed, and re-seeding works")
        func expiredAndReused() throws {
            let fixture = try JobFixture(instances: 2, workspaces: 1, groups: 0)
            // A backup of the database taken before the rotation still holds the old pair.
            #expect(try fixture.cli.run(["inventory", "list"]).status == 0)
            for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: fixture.directory.file("slackfleet.db" + suffix)) {
                try FileManager.default.copyItem(atPath: fixture.directory.file("slackfleet.db" + suffix), toPath: fixture.directory.file("backup.db" + suffix))
            }
            try FileManager.default.copyItem(atPath: fixture.directory.file("slackfleet.db.key"), toPath: fixture.directory.file("backup.db.key"))
            try fixture.sim.control("POST", "clock/advance", #"{"seconds": 50000}"#)
            let expired = try fixture.provision(["--instance", "wandb-0001"])
            #expect(expired.status == 1)
            #expect(expired.stdout.contains("token_expired") && expired.stdout.contains("rotate-secret --config-tokens"))
            // The simulator's clock has moved, SlackFleet's has not: the stored expiry still looks far off.
            let renewed = try fixture.rotate(["--config-tokens", "--min-remaining", "13h"])
            #expect(renewed.status == 0, "\(renewed.output)")
            #expect(try fixture.provision().status == 0, "the renewed token works")

            let reused = try fixture.rotate(["--config-tokens", "--database", "backup.db", "--min-remaining", "13h"])
            #expect(reused.status == 1)
            #expect(reused.stdout.contains("invalid_refresh_token") && reused.stdout.contains("Re-seed it"))

            // Re-seed: a new pair from Slack, written where the inventory points.
            let pair = try fixture.sim.control("POST", "workspaces/TSIM0001/tokens") as? [String: Any] ?? [:]
            try #require(pair["refresh_token"] as? String != nil)
            try (pair["token"] as? String ?? "").write(toFile: fixture.sim.inventory + ".secrets/TSIM0001-config-token", atomically: true, encoding: .utf8)
            try (pair["refresh_token"] as? String ?? "").write(toFile: fixture.sim.inventory + ".secrets/TSIM0001-refresh-token", atomically: true, encoding: .utf8)
            let reseeded = try fixture.rotate(["--config-tokens", "--database", "backup.db", "--min-remaining", "13h"])
            #expect(reseeded.status == 0, "\(reseeded.output)")
            #expect(try fixture.cli.run(["audit", "verify", "--database", "backup.db"]).status == 0)
        }

        @Test("a rotation whose answer is lost is not retried; the audit log and the message say what may have happened")
        func lostAnswer() throws {
            let fixture = try JobFixture(instances: 2, workspaces: 1, groups: 0)
            try fixture.sim.control("POST", "faults", #"{"target": "all", "endpoint": "slack:tooling.tokens.rotate", "drop_response_rate": 1}"#)
            let lost = try fixture.rotate(["--config-tokens", "--min-remaining", "13h"])
            #expect(lost.status == 1)
            #expect(lost.stdout.contains("was lost") && lost.stdout.contains("invalid_refresh_token"))
            #expect(try fixture.sim.calls()["slack:tooling.tokens.rotate"] == 1, "a rotation that may have happened is never sent twice")
            try fixture.sim.control("DELETE", "faults")
            let next = try fixture.rotate(["--config-tokens", "--min-remaining", "13h"])
            #expect(next.status == 1, "the lost answer used the single-use refresh token up")
            #expect(next.stdout.contains("Re-seed it"))
            let audit = try fixture.cli.run(["audit", "list", "--json"]).stdout
            #expect(audit.contains(#""action":"rotate""#) && audit.contains(#""phase":"failed""#))
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
        }
    }
}
