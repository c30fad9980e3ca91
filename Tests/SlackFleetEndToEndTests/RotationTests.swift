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

    /// The simulator's view of every instance: effective client ID, whether its canary delivers,
    /// whether a new connection would work, its integrations and the ones lost.
    func simInstances() throws -> [String: [String: Any]] {
        let items = try sim.control("GET", "instances") as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: items.compactMap { item in (item["name"] as? String).map { ($0, item) } })
    }

    func simApps() throws -> [[String: Any]] {
        try sim.control("GET", "apps") as? [[String: Any]] ?? []
    }

    /// Integrations lost (an entity's delivery path that stopped), as fleet-sim counts them.
    func integrationsLost() throws -> Int {
        (try sim.control("GET", "losses") as? [String: Any])?["total"] as? Int ?? -1
    }

    /// A person's "Connect Slack" on `instance` for `entity` (the canary channel unless `channel`).
    @discardableResult
    func connect(_ instance: String, entity: String = "ops", channel: String? = nil) throws -> [String: Any] {
        var body = #"{"instance": "\#(instance)", "entity": "\#(entity)""#
        if let channel { body += #", "channel": "\#(channel)""# }
        return try sim.control("POST", "connect", body + "}") as? [String: Any] ?? [:]
    }

    /// The invariants read from the simulator, not from SlackFleet's report: no integration that
    /// delivered before stopped delivering, each instance runs on a live app, its canary delivers,
    /// and a new connection would work.
    func expectNothingLost(_ label: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let live = Set(try simApps().filter { $0["deleted"] as? Bool == false }.compactMap { $0["client_id"] as? String })
        #expect(try integrationsLost() == 0, "\(label): integrations lost", sourceLocation: sourceLocation)
        for (name, item) in try simInstances() {
            #expect(item["delivery_losses"] as? Int == 0, "\(label): \(name) lost an integration: \(item["last_delivery_loss"] ?? "")", sourceLocation: sourceLocation)
            #expect((item["effective_client_id"] as? String).map(live.contains) == true, "\(label): \(name) runs on no live app", sourceLocation: sourceLocation)
            #expect(item["can_deliver"] as? Bool == true, "\(label): \(name)'s canary does not deliver", sourceLocation: sourceLocation)
            #expect(item["can_connect"] as? Bool == true, "\(label): \(name) cannot make a new connection", sourceLocation: sourceLocation)
        }
    }

    /// The instance's integrations on `entity`, as fleet-sim holds them.
    func integrations(_ instance: String, entity: String) throws -> [[String: Any]] {
        ((try simInstances()[instance]?["integrations"] as? [[String: Any]]) ?? []).filter { $0["entity"] as? String == entity }
    }

    /// The app named "W&B alerts GROUP" that is not deleted.
    func liveApp(_ group: String) throws -> [String: Any]? {
        try simApps().first { (($0["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String == "W&B alerts \(group)" && $0["deleted"] as? Bool == false }
    }
}

extension JobSuites {
    @Suite("rotate-secret --client-secret")
    struct RotateSecretTests {
        @Test("in place: the run waits for a person with the settings link; a regeneration is detected; --secret-from pushes it; 0 integrations lost; a new connection works")
        func inPlace() throws {
            let fixture = try JobFixture(instances: 6, workspaces: 1, groups: 1, groupSize: 3, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100}"#,
                                         userIntegrations: 3)
            #expect(try fixture.provision().status == 0)
            #expect(try fixture.integrations("wandb-0001", entity: "team-3").count == 1, "the people connected their own alerts")
            let app = try #require(try fixture.liveApp("shared-1"))
            let appID = try #require(app["app_id"] as? String)

            let waiting = try fixture.rotate(["--client-secret", "--instance", "wandb-0001", "--json"])
            #expect(waiting.status == 1, "a person must act: \(waiting.output)")
            let lines = JobFixture.lines(waiting).filter { $0["instance"] != nil }
            #expect(lines.count == 3 && lines.allSatisfy { $0["result"] as? String == "waiting" }, "the whole group waits")
            let action = lines.first?["action"] as? [String: Any]
            #expect(action?["link"] as? String == "https://api.slack.com/apps/\(appID)/general")
            let text = (action?["text"] as? String) ?? ""
            #expect(text.contains("press Regenerate"), "\(text)")
            #expect(try fixture.sim.calls()["slack:apps.manifest.create"] == 4, "in place creates no app")

            let secret = try #require((try fixture.sim.control("POST", "apps/\(appID)/regenerate-secret") as? [String: Any])?["client_secret"] as? String)
            let detected = try fixture.rotate(["--client-secret", "--instance", "wandb-0002"])
            #expect(detected.status == 1)
            #expect(detected.stdout.contains("Slack refuses the stored one"), "the probe saw the regeneration: \(detected.stdout)")
            let stale = try fixture.cli.run(["verify-delivery", "--instance", "wandb-0003", "--pace-scale", "600", "--timeout", "20s", "--json"], timeout: 120)
            let staleLine = JobFixture.lines(stale).first { $0["instance"] != nil }
            #expect((staleLine?["checks"] as? [String: String])?["credentials"]?.contains("bad_client_secret") == true, "verify-delivery reports the stale secret")
            #expect(staleLine?["connection"] as? String == "delivering", "while its integrations still deliver")

            let secretFile = fixture.directory.write("new-secret", secret + "\n")
            let wrong = fixture.directory.write("wrong-secret", "0123456789abcdef0123456789abcdef\n")
            let refused = try fixture.rotate(["--client-secret", "--secret-from", "file:\(wrong)", "--instance", "wandb-0001"])
            #expect(refused.status == 65 || refused.status == 1)
            #expect(refused.stdout.contains("is not the current client secret"), "probed before any instance gets it: \(refused.output)")
            let wide = try fixture.rotate(["--client-secret", "--secret-from", "file:\(secretFile)"])
            #expect(wide.status == 1)
            #expect(wide.stdout.contains("the new secret of one app"))

            let run = try fixture.rotate(["--client-secret", "--secret-from", "file:\(secretFile)", "--instance", "wandb-0001", "--json"])
            #expect(run.status == 0, "\(run.output)")
            let results = JobFixture.lines(run).filter { $0["instance"] != nil }
            #expect(results.count == 3 && results.allSatisfy { $0["result"] as? String == "changed" && $0["connection"] as? String == "delivering" })
            #expect(!run.output.contains(secret))
            try fixture.expectNothingLost("after the in-place rotation")
            #expect(try fixture.sim.calls()["slack:apps.manifest.create"] == 4 && fixture.sim.calls()["slack:apps.manifest.delete"] == nil)
            // A new connection after the rotation goes through: the instances run the new secret.
            let fresh = try fixture.connect("wandb-0002", entity: "team-1", channel: "CALERTS0012")
            #expect(fresh["ok"] as? Bool == true, "\(fresh)")
            let again = try fixture.rotate(["--client-secret", "--secret-from", "file:\(secretFile)", "--instance", "wandb-0003"])
            #expect(again.status == 0)
            #expect(again.stdout.contains("already runs on this secret"))
            #expect(try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "20s"], timeout: 120).status == 0)
            let bad = try fixture.cli.run(["rotate-secret", "--client-secret", "--secret-from", secret, "--all"])
            #expect(bad.status == 64)
            #expect(!bad.output.contains(secret), "a value given where a reference belongs is not echoed")
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
        }

        @Test("blue/green: waits for a canary connected through the new app; the old app outlives the grace while earlier integrations remain; deleted once all are connected again")
        func blueGreen() throws {
            let fixture = try JobFixture(instances: 4, workspaces: 1, groups: 1, groupSize: 2, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100}"#,
                                         userIntegrations: 2)
            #expect(try fixture.provision().status == 0)
            let old = try #require(try fixture.liveApp("shared-1")?["app_id"] as? String)
            let dry = try fixture.rotate(["--client-secret", "--blue-green", "--instance", "wandb-0001", "--dry-run"])
            #expect(dry.status == 2, "\(dry.output)")

            let first = try fixture.rotate(["--client-secret", "--blue-green", "--grace", "0", "--instance", "wandb-0001", "--json"])
            #expect(first.status == 1, "\(first.output)")
            let waiting = JobFixture.lines(first).filter { $0["instance"] != nil }
            #expect(waiting.count == 2 && waiting.allSatisfy { $0["result"] as? String == "waiting" && $0["connection"] as? String == "awaiting-connect" })
            let new = try #require(try fixture.simApps().first { $0["deleted"] as? Bool == false && $0["app_id"] as? String != old
                && (($0["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String == "W&B alerts shared-1" }?["app_id"] as? String)
            let waitingDetail = (waiting.first?["detail"] as? String) ?? ""
            #expect(waitingDetail.contains(new), "\(waitingDetail)")
            #expect(try fixture.rotate(["--client-secret", "--blue-green", "--grace", "0", "--instance", "wandb-0001"]).status == 1, "still waiting: the stage is stored")

            // The people connect the canary through the new app: promoted; the old app is kept past
            // the grace while the teams' integrations from before remain.
            for instance in ["wandb-0001", "wandb-0002"] { #expect(try fixture.connect(instance)["ok"] as? Bool == true) }
            let promoted = try fixture.rotate(["--client-secret", "--blue-green", "--grace", "0", "--instance", "wandb-0001", "--json"])
            #expect(promoted.status == 0, "\(promoted.output)")
            let detail = JobFixture.lines(promoted).first { $0["instance"] != nil }?["detail"] as? String ?? ""
            #expect(detail.contains("verified through a canary integration made through it") && detail.contains("is kept: deleting it would end 4"), "\(detail)")
            #expect(try fixture.simApps().first { $0["app_id"] as? String == old }?["deleted"] as? Bool == false)

            let held = try fixture.rotate(["--client-secret", "--blue-green", "--grace", "0", "--instance", "wandb-0001", "--json"])
            #expect(held.status == 1, "past the grace, the rotation waits for the people: \(held.output)")
            let who = JobFixture.lines(held).compactMap { ($0["action"] as? [String: Any])?["entity"] as? String }
            #expect(who.count == 2 && Set(who).isSubset(of: ["team-1", "team-2"]), "each instance names who must connect again: \(who)")
            #expect(held.stdout.contains("wandb-0002/team-2 in #team-2-alerts"), "and the run lists them all")
            let listed = try fixture.cli.run(["connect", "--all", "--json"])
            #expect(listed.status == 1)
            #expect(JobFixture.lines(listed).filter { $0["entity"] != nil }.count == 4, "connect lists who must connect again: \(listed.stdout)")
            let one = try fixture.cli.run(["connect", "--instance", "wandb-0002", "--json"])
            #expect(JobFixture.lines(one).compactMap { $0["instance"] as? String } == ["wandb-0002", "wandb-0002"], "only the instance selected")

            for instance in ["wandb-0001", "wandb-0002"] {
                #expect(try fixture.connect(instance, entity: "team-1", channel: "CALERTS0011")["ok"] as? Bool == true)
            }
            #expect(try fixture.rotate(["--client-secret", "--blue-green", "--grace", "0", "--instance", "wandb-0001"]).stdout.contains("would end 2"))
            for instance in ["wandb-0001", "wandb-0002"] {
                #expect(try fixture.connect(instance, entity: "team-2", channel: "CALERTS0012")["ok"] as? Bool == true)
            }
            try fixture.sim.control("POST", "calls/reset")
            let cleanup = try fixture.rotate(["--client-secret", "--blue-green", "--grace", "0", "--min-age", "1d", "--instance", "wandb-0001"])
            #expect(cleanup.status == 0, "\(cleanup.output)")
            #expect(try fixture.sim.calls()["slack:apps.manifest.delete"] == 1)
            #expect(try fixture.simApps().first { $0["app_id"] as? String == old }?["deleted"] as? Bool == true)
            try fixture.expectNothingLost("after the old app was deleted")
            #expect(try fixture.cli.run(["connect", "--all"]).status == 0)
            #expect(try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "20s"], timeout: 120).status == 0)
            let audit = try fixture.cli.run(["audit", "list", "--json"]).stdout
            #expect(audit.contains(#""action":"promote""#) && audit.contains(#""action":"delete""#))
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
        }

        @Test("blue/green: deleting anyway takes the flag that names the count, loses exactly those, and the audit log names each")
        func deleteBreaking() throws {
            let fixture = try JobFixture(instances: 2, workspaces: 1, groups: 0, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100}"#,
                                         userIntegrations: 3)
            #expect(try fixture.provision().status == 0)
            let old = try #require(try fixture.liveApp("wandb-0001")?["app_id"] as? String)
            #expect(try fixture.rotate(["--client-secret", "--blue-green", "--grace", "0", "--instance", "wandb-0001"]).status == 1)
            #expect(try fixture.connect("wandb-0001")["ok"] as? Bool == true)
            let promoted = try fixture.rotate(["--client-secret", "--blue-green", "--grace", "0", "--instance", "wandb-0001"])
            #expect(promoted.status == 0 && promoted.stdout.contains("--delete-previous-breaking 3"), "\(promoted.output)")
            let wrong = try fixture.rotate(["--client-secret", "--blue-green", "--grace", "0", "--delete-previous-breaking", "2", "--instance", "wandb-0001"])
            #expect(wrong.status == 1 && wrong.stdout.contains("does not match"), "\(wrong.output)")
            #expect(try fixture.integrationsLost() == 0)
            let forced = try fixture.rotate(["--client-secret", "--blue-green", "--grace", "0", "--delete-previous-breaking", "3", "--min-age", "1d", "--instance", "wandb-0001"])
            #expect(forced.status == 0, "\(forced.output)")
            #expect(try fixture.simApps().first { $0["app_id"] as? String == old }?["deleted"] as? Bool == true)
            #expect(try fixture.integrationsLost() == 3, "exactly the three it named")
            let audit = try fixture.cli.run(["audit", "list", "--json"]).stdout
            #expect(audit.contains("integrations_broken") && audit.contains("team-1") && audit.contains("team-3"))
            #expect(try fixture.simInstances()["wandb-0002"]?["delivery_losses"] as? Int == 0, "the other group is untouched")
        }

        @Test("blue/green: a group with an instance down is not started: no app created, nothing written, each instance says why; it rotates once all answer")
        func memberDown() throws {
            let fixture = try JobFixture(instances: 4, workspaces: 1, groups: 1, groupSize: 4, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100}"#)
            #expect(try fixture.provision().status == 0)
            let before = try fixture.simInstances().mapValues { $0["effective_client_id"] as? String }
            try fixture.sim.control("POST", "faults", #"{"target": "instance:wandb-0002", "down": true}"#)
            try fixture.sim.control("POST", "calls/reset")
            let held = try fixture.rotate(["--client-secret", "--blue-green", "--json"])
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
            #expect(try fixture.rotate(["--client-secret", "--blue-green"]).status == 1, "it waits for the canaries to be connected")
            for index in 1...4 { try fixture.connect(String(format: "wandb-%04d", index)) }
            let rotated = try fixture.rotate(["--client-secret", "--blue-green"])
            #expect(rotated.status == 0, "\(rotated.output)")
            #expect(try fixture.simInstances().allSatisfy { $0.value["effective_client_id"] as? String != before[$0.key] ?? nil })
            try fixture.expectNothingLost("after the rotation")
        }

        @Test("blue/green: an instance that does not take the new credentials in time: every instance goes back to the old app, the new one is deleted")
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
            let refused = try fixture.rotate(["--client-secret", "--blue-green"])
            #expect(refused.status == 1)
            #expect(refused.stdout.contains("instance wandb-0003 has no canary"))
            #expect(try fixture.sim.calls()["slack:apps.manifest.create"] == 1, "only provision-app's create")
            #expect(try fixture.cli.run(["inventory", "import", fixture.sim.inventory]).status == 0)
            try fixture.sim.control("POST", "faults", #"{"target": "instance:wandb-0002", "slow_rollout_ms": 4000}"#)
            let settle = try FastJobFile.write("rotate-secret", scale: 600, in: fixture.directory, settle: 2)
            let run = try fixture.rotate(["--client-secret", "--blue-green", "--job-file", settle, "--json"])
            #expect(run.status == 1, "\(run.output)")
            let results = JobFixture.lines(run).filter { $0["instance"] != nil }
            #expect(results.count == 4 && results.allSatisfy { ($0["detail"] as? String ?? "").contains("rotation rolled back") })
            let slow = results.first { $0["instance"] as? String == "wandb-0002" }?["detail"] as? String ?? ""
            #expect(slow.contains("this instance failed") && slow.contains("still reports Slack client ID"))
            #expect(try fixture.sim.calls()["slack:apps.manifest.delete"] == 1, "the pending app is deleted")
            Thread.sleep(forTimeInterval: 4.5)  // the slow rollout, restarted with the old credentials, completes
            let after = try fixture.simInstances()
            for (name, clientID) in before { #expect(after[name]?["effective_client_id"] as? String == clientID, "\(name) is back on the old app") }
            try fixture.expectNothingLost("after the rollback")
            let audit = try fixture.cli.run(["audit", "list", "--json"]).stdout
            #expect(audit.contains(#""action":"rollback""#))
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
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
