import Foundation
import SlackFleetTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension JobSuites {
    @Suite("The connection step: registered is not delivering")
    struct ConnectionTests {
        @Test("provision-app says awaiting connect with the exact action; verify-delivery says needs-connect; once a person connects, the nonce is seen")
        func provisionThenConnect() throws {
            let fixture = try JobFixture(instances: 6, workspaces: 2, groups: 1, groupSize: 2, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100}"#,
                                         connected: 0)
            let metrics = fixture.directory.file("provision.prom")
            let provisioned = try fixture.provision(["--json", "--metrics-file", metrics])
            #expect(provisioned.status == 0, "provisioning did its part: \(provisioned.output)")
            let lines = JobFixture.lines(provisioned).filter { $0["instance"] != nil }
            #expect(lines.count == 6 && lines.allSatisfy { $0["connection"] as? String == "awaiting-connect" })
            let action = try #require(lines.first { $0["instance"] as? String == "wandb-0001" }?["action"] as? [String: Any])
            #expect(action["link"] as? String == "https://wandb-0001.wandb.fleet-sim.test/ops/settings")
            #expect(action["page"] as? String == "Team Settings > Slack channel integrations")
            #expect(action["channel"] as? String == "#wandb-canary" && action["workspace"] as? String == "sim-workspace-01")
            let text = try String(contentsOfFile: metrics, encoding: .utf8)
            #expect(text.contains(#"slackfleet_connections{job="provision-app",state="awaiting-connect"} 6"#), "\(text)")
            #expect(text.contains(#"slackfleet_instance_connection{job="provision-app",instance="wandb-0001",state="awaiting-connect"} 1"#))

            let before = try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "5s", "--json"], timeout: 120)
            #expect(before.status == 1)
            let verdicts = JobFixture.lines(before).filter { $0["instance"] != nil }
            #expect(verdicts.allSatisfy { $0["result"] as? String == "needs-connect" }, "a distinct result, not a generic failure")
            #expect(verdicts.allSatisfy { ($0["checks"] as? [String: String])?["alert"] == "skipped" }, "no alert is sent where none can arrive")
            #expect(JobFixture.lines(before).last?["counts"].flatMap { ($0 as? [String: Int])?["needs-connect"] } == 6)
            let table = try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "5s"], timeout: 120)
            #expect(table.stdout.contains("Needs a person (6):") && table.stdout.contains("click Connect Slack, and pick #wandb-canary"))

            // The simulated person connects every canary, through the app each instance runs.
            for index in 1...6 { #expect(try fixture.connect(String(format: "wandb-%04d", index))["ok"] as? Bool == true) }
            let after = try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "20s", "--json"], timeout: 120)
            #expect(after.status == 0, "\(after.output)")
            #expect(JobFixture.lines(after).filter { $0["instance"] != nil }.allSatisfy { $0["connection"] as? String == "delivering" })
            let channel = try fixture.sim.control("GET", "channels/TSIM0001") as? [[String: Any]] ?? []
            #expect(channel.contains { ($0["text"] as? String ?? "").contains("slackfleet-canary-") && $0["app_id"] is String }, "the nonce came through an app's webhook")
            let again = try fixture.provision(["--json"])
            #expect(JobFixture.lines(again).filter { $0["instance"] != nil }.allSatisfy { $0["connection"] as? String == "connected" && $0["result"] as? String == "ok" })
        }

        @Test("connect lists who must act; --wait sees each connection, records it in the audit log, and stops on SIGINT to resume later")
        func watch() throws {
            let fixture = try JobFixture(instances: 3, workspaces: 1, groups: 0, simConfig: #"{"rollout_delay_ms": 100}"#, connected: 0)
            #expect(try fixture.provision().status == 0)
            let listed = try fixture.cli.run(["connect", "--all"])
            #expect(listed.status == 1)
            #expect(listed.stdout.contains("3 connections wait for a person"))
            #expect(listed.stdout.contains("https://wandb-0002.wandb.fleet-sim.test/ops/settings"))

            // Ctrl-C stops a watch cleanly; nothing is lost, since the next run reads W&B again.
            let interrupted = try fixture.cli.start(["connect", "--all", "--wait", "--timeout", "60s"])
            Thread.sleep(forTimeInterval: 1.5)
            kill(interrupted.processIdentifier, SIGINT)
            interrupted.waitUntilExit()
            #expect(interrupted.terminationStatus == 130)

            let result = Box()
            let done = DispatchSemaphore(value: 0)
            let cli = fixture.cli
            DispatchQueue.global().async {
                result.value = try? cli.run(["connect", "--all", "--wait", "--timeout", "60s"], timeout: 90)
                done.signal()
            }
            Thread.sleep(forTimeInterval: 1)
            try fixture.connect("wandb-0001")
            Thread.sleep(forTimeInterval: 6)
            try fixture.connect("wandb-0002")
            try fixture.connect("wandb-0003")
            #expect(done.wait(timeout: .now() + 80) == .success)
            let watched = try #require(result.value)
            #expect(watched.status == 0, "\(watched.output)")
            #expect(watched.stdout.components(separatedBy: "connected: ").count - 1 == 3, "\(watched.stdout)")
            #expect(watched.stderr.contains("waiting]"), "progress on stderr")
            let audit = try fixture.cli.run(["audit", "list", "--json"]).stdout
            #expect(audit.components(separatedBy: #""phase":"observed""#).count - 1 == 3)
            #expect(try fixture.cli.run(["connect", "--all"]).stdout.contains("No connection waits for a person"))
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
        }

        @Test("the credentials probe: inconclusive, and said so, where Slack checks the code before the secret")
        func probeOrder() throws {
            let fixture = try JobFixture(instances: 2, workspaces: 1, groups: 0, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100, "oauth_checks_code_first": true}"#)
            #expect(try fixture.provision().status == 0)
            let app = try #require(try fixture.liveApp("wandb-0001")?["app_id"] as? String)
            try fixture.sim.control("POST", "apps/\(app)/regenerate-secret")
            let run = try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "20s", "--json"], timeout: 120)
            let lines = JobFixture.lines(run).filter { $0["instance"] != nil }
            #expect(run.status == 0, "no check can fail on an answer that means nothing: \(run.output)")
            #expect(lines.allSatisfy { ($0["detail"] as? String ?? "").contains("inconclusive") })
            let rotation = try fixture.rotate(["--client-secret", "--instance", "wandb-0001"])
            #expect(rotation.stdout.contains("cannot show whether it was regenerated"), "\(rotation.stdout)")
        }

        @Test("blue/green attribution: the test alert must come from the new app's webhook, whether Slack puts app_id on a message or only bots.info tells", arguments: [false, true])
        func attribution(_ appIDOnMessages: Bool) throws {
            let fixture = try JobFixture(instances: 1, workspaces: 1, groups: 0,
                                         simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100, "message_app_id": \#(appIDOnMessages)}"#)
            #expect(try fixture.provision().status == 0)
            #expect(try fixture.rotate(["--client-secret", "--blue-green"]).status == 1)
            try fixture.connect("wandb-0001")
            try fixture.sim.control("POST", "calls/reset")
            let promoted = try fixture.rotate(["--client-secret", "--blue-green", "--json"])
            #expect(promoted.status == 0, "\(promoted.output)")
            let botsInfo = try fixture.sim.calls()["slack:bots.info"] ?? 0
            #expect(appIDOnMessages ? botsInfo == 0 : botsInfo >= 1, "bots.info calls: \(botsInfo)")
        }

        @Test("operator-v1: an instance picks up new credentials only through the restart of its api Deployment")
        func operatorV1() throws {
            let fixture = try JobFixture(instances: 3, workspaces: 1, groups: 0, simConfig: #"{"rollout_delay_ms": 100}"#, extra: ["--registrars", "operator-v1"])
            let run = try fixture.provision(["--json"])
            #expect(run.status == 0, "\(run.output)")
            for (name, item) in try fixture.simInstances() {
                let state = try fixture.sim.control("GET", "instances/\(name)") as? [String: Any]
                let annotations = ((((state?["deployment"] as? [String: Any])?["spec"] as? [String: Any])?["template"] as? [String: Any])?["metadata"] as? [String: Any])?["annotations"] as? [String: Any]
                #expect(annotations?["kubectl.kubernetes.io/restartedAt"] is String, "\(name) was restarted")
                #expect(item["can_deliver"] as? Bool == true && item["can_connect"] as? Bool == true)
            }
            let audit = try fixture.cli.run(["audit", "list", "--json"]).stdout
            #expect(audit.contains(#""action":"restart""#) && audit.contains("k8s:weightsandbiases"))
        }

        @Test("watched entities: with no way to list every entity, the inventory's watch_entities still keep the old app alive")
        func watchedWithoutEntitiesQuery() throws {
            let fixture = try JobFixture(instances: 1, workspaces: 1, groups: 0, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100, "entities_query": false}"#,
                                         userIntegrations: 2)
            #expect(try fixture.provision().status == 0)
            #expect(try fixture.rotate(["--client-secret", "--blue-green", "--grace", "0"]).status == 1)
            try fixture.connect("wandb-0001")
            let promoted = try fixture.rotate(["--client-secret", "--blue-green", "--grace", "0"])
            #expect(promoted.stdout.contains("would end 2"), "team-1 and team-2 are watched from the inventory: \(promoted.stdout)")
            #expect(try fixture.integrationsLost() == 0)
        }
    }
}

/// A value filled in on another thread.
private final class Box: @unchecked Sendable {
    var value: SlackFleetCLI.Result?
}
