import FleetSimulator
import Foundation
import Testing

/// What real fleets hit first, as fleet-sim models it: short history pages, a reader bot that is
/// not in its channel, Slack's own failures, RBAC, Argo Rollouts, refused updates.
@Suite("fleet-sim: what real fleets hit")
struct RealFleetTests {
    @Test("short pages: fewer messages than asked though more remain; the cursor reaches every one, each once, whatever arrives meanwhile")
    func shortPages() async throws {
        let sim = try SimHarness()
        let bot = sim.workspace.botToken, channel = sim.workspace.canaryChannel
        for index in 0..<60 {
            _ = try await sim.slack("chat.postMessage", token: bot, ["channel": channel, "text": "message \(index)"])
        }
        _ = try await sim.control("POST", "faults", ["target": .string("workspace:\(sim.workspace.id)"), "short_pages": 7])
        var seen: [String] = []
        var cursor = ""
        var pages = 0
        repeat {
            var form = ["channel": channel, "limit": "200"]
            if !cursor.isEmpty { form["cursor"] = cursor }
            let page = try await sim.slack("conversations.history", token: bot, form).json
            let texts = page["messages"]?.arrayValue?.compactMap { $0["text"]?.stringValue } ?? []
            #expect(texts.count <= 7, "a short page")
            seen += texts
            cursor = page["response_metadata"]?["next_cursor"]?.stringValue ?? ""
            #expect((page["has_more"] == true) == !cursor.isEmpty)
            pages += 1
            // A message that arrives between pages is newer: the cursor goes on below it.
            if pages == 2 { _ = try await sim.slack("chat.postMessage", token: bot, ["channel": channel, "text": "late"]) }
        } while !cursor.isEmpty && pages < 100
        let posted = (0..<60).reversed().map { "message \($0)" }
        #expect(seen.filter { $0 != "late" } == posted, "newest first, each once")
        #expect(pages >= 60 / 7)
    }

    @Test("a bot token reads only channels its bot is in: not_in_channel for a public one, channel_not_found for a private one; conversations.info says is_member")
    func membership() async throws {
        let sim = try SimHarness()
        let bot = sim.workspace.botToken, channel = sim.workspace.canaryChannel, team = sim.workspace.id
        #expect(try await sim.slack("conversations.info", token: bot, ["channel": channel]).json["channel"]?["is_member"] == true)
        _ = try await sim.control("POST", "channels/\(team)/settings", ["bot_member": false])
        #expect(try await sim.slack("conversations.history", token: bot, ["channel": channel]).json["error"] == "not_in_channel")
        #expect(try await sim.slack("conversations.info", token: bot, ["channel": channel]).json["channel"]?["is_member"] == false)
        _ = try await sim.control("POST", "channels/\(team)/settings", ["private": true])
        #expect(try await sim.slack("conversations.history", token: bot, ["channel": channel]).json["error"] == "channel_not_found")
        #expect(try await sim.slack("conversations.info", token: bot, ["channel": channel]).json["error"] == "channel_not_found")
        _ = try await sim.control("POST", "channels/\(team)/settings", ["bot_member": true])
        #expect(try await sim.slack("conversations.history", token: bot, ["channel": channel]).json["error"] == "missing_scope", "a private channel needs groups:history")
        #expect(try await sim.slack("auth.test", token: bot).json["user"] == "canary-reader", "the bot's name, for /invite")
    }

    @Test("Slack's own failures: HTTP 200 with ok:false, internal_error or fatal_error, at the rate asked")
    func internalErrors() async throws {
        let sim = try SimHarness()
        _ = try await sim.control("POST", "faults", ["target": .string("workspace:\(sim.workspace.id)"), "internal_error_rate": 1])
        let reply = try await sim.slack("auth.test", token: sim.workspace.botToken)
        #expect(reply.status == 200)
        #expect(reply.json["ok"] == false)
        #expect(["internal_error", "fatal_error"].contains(reply.json["error"]?.stringValue ?? ""))
        #expect(try await sim.slack("auth.test", token: sim.fleet.workspaces[1].botToken).json["ok"] == true, "another workspace is not affected")
    }

    @Test("RBAC: a verb the service account lacks is 403 Forbidden with the API server's message; a SelfSubjectAccessReview says so without trying")
    func rbac() async throws {
        let sim = try SimHarness()
        let instance = sim.fleet.instances[0]
        _ = try await sim.control("POST", "faults", ["target": .string("instance:\(instance.name)"), "forbidden": ["patch secrets"]])
        let refused = try await sim.kube("PATCH", instance, "/api/v1/namespaces/wandb/secrets/wandb-slack", patch: ["data": ["A": "Yg=="]])
        #expect(refused.status == 403)
        #expect(refused.json["reason"] == "Forbidden")
        #expect(refused.json["message"]?.stringValue == #"secrets "wandb-slack" is forbidden: User "system:serviceaccount:wandb:slackfleet" cannot patch resource "secrets" in API group "" in the namespace "wandb""#)
        #expect(try await sim.kube("GET", instance, "/api/v1/namespaces/wandb/secrets/wandb-slack").status == 200, "get is still allowed")
        func review(_ verb: String, _ resource: String, _ group: String) async throws -> JSONValue {
            let body: JSONValue = ["apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                                   "spec": ["resourceAttributes": ["namespace": "wandb", "verb": .string(verb), "resource": .string(resource), "group": .string(group)]]]
            return try await sim.kube("POST", instance, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", patch: body, contentType: "application/json").json
        }
        #expect(try await review("patch", "secrets", "")["status"]?["allowed"] == false)
        #expect(try await review("patch", "deployments", "apps")["status"]?["allowed"] == true)
        let calls = try await sim.control("GET", "mutations")
        #expect(calls.objectValue?.isEmpty == true, "a review changes nothing")
    }

    @Test("an Argo Rollout api: no Deployment (404); a spec.restartAt patch restarts the pods, which then run the Secret's credentials")
    func argoRollout() async throws {
        let sim = try SimHarness()
        let instance = try #require(sim.fleet.instances.first { $0.registrar == "operator-v2" })
        _ = try await sim.control("POST", "instances/\(instance.name)/workload", ["kind": "rollout"])
        let data: JSONValue = ["data": ["SLACK_CLIENT_ID": .string(Data("123.456".utf8).base64EncodedString()), "SLACK_SECRET": .string(Data("s3".utf8).base64EncodedString())]]
        #expect(try await sim.kube("PATCH", instance, "/api/v1/namespaces/wandb/secrets/wandb-slack", patch: data).status == 200)
        let deployment = try await sim.kube("PATCH", instance, "/apis/apps/v1/namespaces/wandb/deployments/wandb-api",
                                            patch: ["spec": ["template": ["metadata": ["annotations": ["kubectl.kubernetes.io/restartedAt": "2026-12-01T00:00:00Z"]]]]])
        #expect(deployment.status == 404)
        let restarted = try await sim.kube("PATCH", instance, "/apis/argoproj.io/v1alpha1/namespaces/wandb/rollouts/wandb-api", patch: ["spec": ["restartAt": "2026-12-01T00:00:00Z"]])
        #expect(restarted.status == 200)
        let info = try await sim.graphql(instance.name, key: instance.adminKey, "{ serverInfo { slackClientID } }").json
        #expect(info["data"]?["serverInfo"]?["slackClientID"] == "123.456")
    }

    @Test("a refused update: 422 Invalid with details.causes naming the field")
    func invalid() async throws {
        let sim = try SimHarness()
        let instance = sim.fleet.instances[0]
        _ = try await sim.control("POST", "faults", ["target": .string("instance:\(instance.name)"), "invalid": ["secrets"]])
        let refused = try await sim.kube("PATCH", instance, "/api/v1/namespaces/wandb/secrets/wandb-slack", patch: ["data": ["A": "Yg=="]])
        #expect(refused.status == 422)
        #expect(refused.json["reason"] == "Invalid")
        #expect(refused.json["details"]?["causes"]?.arrayValue?.first?["field"] == "data")
    }
}
