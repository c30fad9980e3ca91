import Foundation
import SlackFleetTestSupport
import Testing

/// The jobs against what real fleets hit first: a busy canary channel, a bot nobody invited,
/// Slack's own failures, RBAC, refused updates, Argo Rollouts; and `doctor`, which finds them
/// before any change.
extension JobSuites {
    @Suite("Jobs: what real fleets hit")
    struct RealFleetJobTests {
        static func results(_ run: SlackFleetCLI.Result) -> [String: [String: Any]] {
            Dictionary(JobFixture.lines(run).compactMap { line in (line["instance"] as? String).map { ($0, line) } }, uniquingKeysWith: { first, _ in first })
        }

        @Test("one app group of 300 in one canary channel, short history pages: every alert is seen, and each message is read once")
        func busyChannel() throws {
            let fixture = try JobFixture(instances: 300, workspaces: 1, groups: 1, groupSize: 300, simConfig: #"{"rollout_delay_ms": 50, "alert_delay_ms": 100}"#)
            #expect(try fixture.provision().status == 0)
            try fixture.sim.control("POST", "faults", #"{"target": "workspace:TSIM0001", "short_pages": 23}"#)
            try fixture.sim.control("POST", "calls/reset")
            let run = try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "30s", "--json"], timeout: 240)
            #expect(run.status == 0, "\(run.stderr.suffix(600))")
            #expect((JobFixture.lines(run).last?["counts"] as? [String: Int])?["ok"] == 300)
            let calls = try #require(try fixture.sim.control("GET", "calls") as? [String: Any])
            let served = (calls["history_messages"] as? [String: Int])?["TSIM0001/CCANARY001"] ?? 0
            let inChannel = (try fixture.sim.control("GET", "channels/TSIM0001") as? [[String: Any]])?.count ?? 0
            #expect(served >= 300 && served <= inChannel, "every message at most once: \(served) served of \(inChannel)")
            let pages = (calls["calls"] as? [String: Int])?["slack:conversations.history"] ?? 0
            #expect(pages >= 300 / 23, "short pages: the cursor was followed (\(pages) pages)")
        }

        @Test("the reader bot not in the canary channel: verify-delivery fails at once and says to /invite it there; a private channel says it too")
        func botNotInChannel() throws {
            let fixture = try JobFixture(instances: 2, workspaces: 1, groups: 0, simConfig: #"{"rollout_delay_ms": 50, "alert_delay_ms": 100}"#)
            #expect(try fixture.provision().status == 0)
            try fixture.sim.control("POST", "channels/TSIM0001/settings", #"{"bot_member": false}"#)
            // Every instance's own finding: the failure budget must not stop one before it fails.
            let run = try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "40s", "--max-failures", "100%", "--json"], timeout: 120)
            #expect(run.status == 1)
            let summary = JobFixture.lines(run).last ?? [:]
            #expect((summary["duration_seconds"] as? Double ?? 99) < 20, "a lasting failure does not wait out --timeout")
            for (_, result) in Self.results(run) {
                let detail = result["detail"] as? String ?? ""
                #expect(detail.contains("not in the canary channel #wandb-canary (CCANARY001)") && detail.contains("`/invite @canary-reader`"), "\(detail)")
            }
            try fixture.sim.control("POST", "channels/TSIM0001/settings", #"{"private": true}"#)
            let hidden = try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "40s", "--max-failures", "100%", "--json"], timeout: 120)
            let detail = Self.results(hidden)["wandb-0001"]?["detail"] as? String ?? ""
            #expect(detail.contains("cannot see the canary channel CCANARY001") && detail.contains("groups:history"), "\(detail)")
        }

        @Test("Slack's internal_error is retried like a 5xx; on apps.manifest.create it is a possible orphan, never retried as such")
        func internalErrors() throws {
            let fixture = try JobFixture(instances: 3, workspaces: 1, groups: 0, maxAttempts: 10)
            try fixture.sim.control("POST", "faults", #"{"target": "workspace:TSIM0001", "endpoint": "slack:apps.manifest.create", "internal_error_rate": 1}"#)
            let refused = try fixture.provision(["--json", "--max-failures", "100%"])
            #expect(refused.status == 1)
            for (_, result) in Self.results(refused) {
                #expect((result["detail"] as? String ?? "").contains("may follow a partial success"), "\(result)")
            }
            #expect(try fixture.sim.calls()["slack:apps.manifest.create"] == 6, "one create and one more per app, no retry")
            try fixture.sim.control("DELETE", "faults")
            try fixture.sim.control("POST", "faults", #"{"target": "workspace:TSIM0001", "endpoint": "slack:apps.manifest.validate", "internal_error_rate": 0.3}"#)
            let converged = try fixture.provision(["--json"])
            #expect(converged.status == 0, "\(converged.stderr.suffix(600))")
            #expect((JobFixture.lines(converged).last?["counts"] as? [String: Int])?["changed"] == 3)
        }

        @Test("RBAC and refused updates: the instance fails naming the verb, resource, namespace and Role rule, or the refused field; the others converge")
        func kubernetesRefusals() throws {
            let fixture = try JobFixture(instances: 4, workspaces: 1, groups: 0, extra: ["--registrars", "operator-v2"])
            try fixture.sim.control("POST", "faults", #"{"target": "instance:wandb-0002", "forbidden": ["patch secrets"]}"#)
            try fixture.sim.control("POST", "faults", #"{"target": "instance:wandb-0003", "invalid": ["deployments"]}"#)
            let run = try fixture.provision(["--json", "--max-failures", "100%"])
            #expect(run.status == 1)
            let results = Self.results(run)
            let forbidden = results["wandb-0002"]?["detail"] as? String ?? ""
            #expect(forbidden.contains("the service account may not patch secrets in namespace wandb (403 Forbidden)"), "\(forbidden)")
            #expect(forbidden.contains(#"{apiGroups: [""], resources: ["secrets"], verbs: ["patch"], resourceNames: ["wandb-slack"]}"#), "\(forbidden)")
            let invalid = results["wandb-0003"]?["detail"] as? String ?? ""
            #expect(invalid.contains("(422 Invalid): spec.template.metadata.annotations: Forbidden"), "\(invalid)")
            #expect(results["wandb-0001"]?["result"] as? String == "changed" && results["wandb-0004"]?["result"] as? String == "changed")
        }

        @Test("an api run as an Argo Rollout: found when the inventory does not say (the Deployment's 404 audited), restarted directly when it says workload: rollout")
        func argoRollouts() throws {
            let fixture = try JobFixture(instances: 2, workspaces: 1, groups: 0, extra: ["--registrars", "operator-v2"])
            for name in ["wandb-0001", "wandb-0002"] {
                try fixture.sim.control("POST", "instances/\(name)/workload", #"{"kind": "rollout"}"#)
            }
            // wandb-0002's inventory says what it runs.
            var text = try String(contentsOfFile: fixture.sim.inventory, encoding: .utf8)
            let marker = "    app_group: wandb-0002\n"
            let start = try #require(text.range(of: marker))
            let deployment = try #require(text.range(of: "      deployment: wandb-api\n", range: start.upperBound..<text.endIndex))
            text.insert(contentsOf: "      workload: rollout\n", at: deployment.upperBound)
            let edited = fixture.directory.file("rollouts.yaml")
            try text.write(toFile: edited, atomically: true, encoding: .utf8)
            #expect(try fixture.cli.run(["inventory", "import", edited]).status == 0)

            let run = try fixture.provision(["--json"])
            #expect(run.status == 0, "\(run.output.suffix(800))")
            #expect(try fixture.sim.instances().values.allSatisfy(\.canDeliver), "both run the new app")
            let audit = try fixture.cli.run(["audit", "list", "--json"]).stdout.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            func restarts(_ instance: String) -> [String] {
                audit.filter { $0["instance"] as? String == instance && $0["action"] as? String == "restart" && $0["phase"] as? String != "intent" }
                    .map { "\($0["target"] as? String ?? "") \($0["phase"] as? String ?? "")" }
            }
            #expect(restarts("wandb-0001") == ["k8s:deployment/wandb/wandb-api failed", "k8s:rollout/wandb/wandb-api applied"], "\(restarts("wandb-0001"))")
            #expect(restarts("wandb-0002") == ["k8s:rollout/wandb/wandb-api applied"], "\(restarts("wandb-0002"))")
        }

        @Test("doctor: a healthy fleet is ready and nothing is written; a fleet with one of each problem names each exactly, with its fix")
        func doctor() throws {
            let fixture = try JobFixture(instances: 10, workspaces: 2, groups: 0)
            try fixture.sim.control("POST", "calls/reset")
            let healthy = try fixture.cli.run(["doctor"], timeout: 120)
            #expect(healthy.status == 0, "\(healthy.output)")
            #expect(healthy.stdout.contains("ready: 10 instances in 2 workspaces"))
            let calls = try fixture.sim.calls()
            let writes = calls.filter { key, _ in
                key.hasPrefix("k8s:PATCH") || ["apps.manifest.create", "apps.manifest.update", "apps.manifest.delete", "chat.postMessage", "tooling.tokens.rotate", "apps.uninstall"]
                    .contains { key == "slack:" + $0 }
            }
            #expect(writes.isEmpty, "no write call: \(calls)")
            #expect((try fixture.sim.control("GET", "mutations") as? [String: Any])?.isEmpty == true)
            #expect(try fixture.cli.run(["audit", "list"]).stdout.contains("doctor") == false, "nothing to audit")

            // One of each problem.
            try fixture.sim.control("POST", "channels/TSIM0001/settings", #"{"bot_member": false}"#)
            let tokens = try #require(try fixture.sim.control("GET", "tokens") as? [[String: Any]])
            let configToken = try #require(tokens.first { $0["kind"] as? String == "configuration" && $0["team_id"] as? String == "TSIM0002" }?["token"] as? String)
            try fixture.sim.control("POST", "tokens/revoke", #"{"token": "\#(configToken)"}"#)
            let secrets = fixture.sim.inventory + ".secrets"
            try FileManager.default.removeItem(atPath: secrets + "/TSIM0002-refresh-token")
            try FileManager.default.removeItem(atPath: secrets + "/wandb-0005-api-key")
            try fixture.sim.control("POST", "faults", #"{"target": "instance:wandb-0001", "forbidden": ["patch secrets"]}"#)
            try fixture.sim.control("POST", "instances/wandb-0003/workload", #"{"kind": "rollout"}"#)
            var text = try String(contentsOfFile: fixture.sim.inventory, encoding: .utf8)
            // wandb-0003 says its api is a Deployment: there is none.
            let start = try #require(text.range(of: "    app_group: wandb-0003\n"))
            let deployment = try #require(text.range(of: "      deployment: wandb-api\n", range: start.upperBound..<text.endIndex))
            text.insert(contentsOf: "      workload: deployment\n", at: deployment.upperBound)
            // wandb-0010's exec hook is gone.
            let exec = try #require(text.range(of: "    app_group: wandb-0010\n"))
            let command = try #require(text.range(of: "      command: [\"", range: exec.upperBound..<text.endIndex))
            text.insert(contentsOf: "/no/such/hook\", \"", at: command.upperBound)
            let edited = fixture.directory.file("broken.yaml")
            try text.write(toFile: edited, atomically: true, encoding: .utf8)
            #expect(try fixture.cli.run(["inventory", "import", edited]).status == 0)
            // wandb-0002's key is a member's, not an admin's.
            let userKey = try #require((try fixture.sim.control("GET", "instances/wandb-0002/keys") as? [String: Any])?["user_key"] as? String)
            try userKey.write(toFile: secrets + "/wandb-0002-api-key", atomically: true, encoding: .utf8)

            let broken = try fixture.cli.run(["doctor", "--json"], timeout: 120)
            #expect(broken.status == 1)
            let found = JobFixture.lines(broken).filter { $0["summary"] == nil }
            let named = Set(found.map { "\($0["instance"] as? String ?? "workspace \($0["workspace"] as? String ?? "")") \($0["check"] as? String ?? "")" })
            #expect(named == ["workspace TSIM0001 canary_channel", "workspace TSIM0002 config_token", "workspace TSIM0002 refresh_token",
                              "wandb-0001 kubernetes_access", "wandb-0002 wandb_admin", "wandb-0003 kubernetes_objects",
                              "wandb-0005 api_key", "wandb-0010 exec"], "\(broken.stdout)")
            #expect(found.count == named.count, "each once: \(broken.stdout)")
            #expect(found.allSatisfy { !($0["fix"] as? String ?? "").isEmpty })
            let table = try fixture.cli.run(["doctor"], timeout: 120)
            #expect(table.stdout.contains("not ready: 8 problems"))
            #expect(!table.output.contains(configToken), "no secret in the output")
        }
    }
}
