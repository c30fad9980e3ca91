import FleetSimulator
import Foundation
import Testing

let alertMutation = """
    mutation NotifyScriptableRunAlert($entityName: String!, $projectName: String!, $runName: String!, $title: String!, $text: String!,
                                      $severity: AlertSeverity = INFO, $waitDuration: Duration) {
      notifyScriptableRunAlert(input: {entityName: $entityName, projectName: $projectName, runName: $runName, title: $title,
                                       text: $text, severity: $severity, waitDuration: $waitDuration}) { success }
    }
    """

func alertVariables(_ title: String, waitDuration: Int64? = nil) -> JSONValue {
    var fields: [String: JSONValue] = ["entityName": "ops", "projectName": "slack-canary", "runName": "canary", "title": .string(title), "text": "test alert"]
    if let waitDuration { fields["waitDuration"] = .integer(waitDuration) }
    return .object(fields)
}

extension SimHarness {
    func instance(_ kind: String, index: Int = 0) -> IssuedFleet.Instance {
        fleet.instances.filter { $0.registrar == kind }[index]
    }

    /// Registers credentials the operator-v2 way: patch the Secret, restart the api Deployment.
    func registerV2(_ instance: IssuedFleet.Instance, clientID: String, secret: String) async throws {
        let data: JSONValue = ["data": ["SLACK_CLIENT_ID": .string(Data(clientID.utf8).base64EncodedString()),
                                        "SLACK_SECRET": .string(Data(secret.utf8).base64EncodedString())]]
        let patched = try await kube("PATCH", instance, "/api/v1/namespaces/wandb/secrets/wandb-slack", patch: data)
        guard patched.status == 200 else { throw SimulatorError("secret patch: \(patched.text)") }
        let restart: JSONValue = ["spec": ["template": ["metadata": ["annotations": ["kubectl.kubernetes.io/restartedAt": .string(UUID().uuidString)]]]]]
        let restarted = try await kube("PATCH", instance, "/apis/apps/v1/namespaces/wandb/deployments/wandb-api", patch: restart)
        guard restarted.status == 200 else { throw SimulatorError("restart: \(restarted.text)") }
    }

    func serverClientID(_ instance: IssuedFleet.Instance) async throws -> JSONValue? {
        try await graphql(instance.name, key: instance.adminKey, "{ serverInfo { slackClientID frontendHost } }").json["data"]?["serverInfo"]?["slackClientID"]
    }

    func canaryMessages() async throws -> [String] {
        try await control("GET", "channels/\(workspace.id)").arrayValue?.compactMap { $0["text"]?.stringValue } ?? []
    }
}

@Suite("fleet-sim: W&B instances")
struct WandbContractTests {
    @Test("GraphQL needs Basic auth with user api; viewer tells admins apart")
    func authentication() async throws {
        let sim = try SimHarness()
        let instance = sim.fleet.instances[0]
        let anonymous = try await sim.send("POST", "/wandb/\(instance.name)/graphql", headers: ["Content-Type": "application/json"], body: Data(#"{"query":"{ viewer { id } }"}"#.utf8))
        #expect(anonymous.status == 401)
        #expect(anonymous.json["errors"]?.arrayValue?.isEmpty == false)
        #expect(try await sim.graphql(instance.name, key: "wrong", "{ viewer { id } }").status == 401)
        #expect(try await sim.graphql(instance.name, key: instance.adminKey, "{ viewer { id username admin } }").json["data"]?["viewer"]?["admin"] == true)
        #expect(try await sim.graphql(instance.name, key: instance.userKey, "{ viewer { admin } }").json["data"]?["viewer"]?["admin"] == false)
    }

    @Test("queries are parsed and validated as real GraphQL")
    func realGraphQL() async throws {
        let sim = try SimHarness()
        let instance = sim.fleet.instances[0]
        let syntax = try await sim.graphql(instance.name, key: instance.adminKey, "{ serverInfo { slackClientID ")
        #expect(syntax.status == 400)
        #expect(syntax.json["errors"]?.arrayValue?.first?["message"]?.stringValue?.contains("Syntax Error") == true)
        let unknownField = try await sim.graphql(instance.name, key: instance.adminKey, "{ serverInfo { slackSecret } }")
        #expect(unknownField.status == 400)
        #expect(unknownField.json["errors"]?.arrayValue?.first?["message"]?.stringValue?.contains("slackSecret") == true)
        let badEnum = try await sim.graphql(instance.name, key: instance.adminKey, alertMutation,
                                            variables: .object((alertVariables("x").objectValue ?? [:]).merging(["severity": "LOUD"]) { _, new in new }))
        #expect(badEnum.json["errors"] != nil)
        let info = try await sim.graphql(instance.name, key: instance.adminKey, "{ serverInfo { slackClientID frontendHost } }").json
        #expect(info["data"]?["serverInfo"]?["slackClientID"] == .null, "no Slack app yet")
        #expect(info["data"]?["serverInfo"]?["frontendHost"]?.stringValue == instance.hostURL)
    }

    @Test("health and readiness; a down instance answers 503")
    func health() async throws {
        let sim = try SimHarness()
        let instance = sim.fleet.instances[0]
        #expect(try await sim.send("GET", "/wandb/\(instance.name)/healthz").status == 200)
        #expect(try await sim.send("GET", "/wandb/\(instance.name)/ready").status == 200)
        _ = try await sim.control("POST", "faults", ["target": .string("instance:\(instance.name)"), "down": true])
        #expect(try await sim.send("GET", "/wandb/\(instance.name)/ready").status == 503)
        #expect(try await sim.send("GET", "/wandb/\(sim.fleet.instances[1].name)/ready").status == 200)
    }

    @Test("an alert reaches the canary channel when, and only when, the running credentials belong to a live app covering the host with incoming-webhook")
    func deliveryRule() async throws {
        let sim = try SimHarness()
        let instance = sim.instance("operator-v2")
        let other = sim.fleet.instances.first { $0.teamID == instance.teamID && $0.name != instance.name && $0.registrar == "operator-v2" && $0.appGroup != instance.appGroup }!
        func alert(_ title: String) async throws -> Bool {
            let reply = try await sim.graphql(instance.name, key: instance.adminKey, alertMutation, variables: alertVariables(title))
            #expect(reply.json["data"]?["notifyScriptableRunAlert"]?["success"] == true, "W&B reports success either way")
            return try await sim.canaryMessages().contains { $0.contains(title) }
        }
        #expect(try await alert("no app") == false)

        let (appID, clientID, secret) = try await sim.createApp(for: [instance])
        try await sim.registerV2(instance, clientID: clientID, secret: "not-the-secret")
        #expect(try await alert("wrong secret") == false)

        try await sim.registerV2(instance, clientID: clientID, secret: secret)
        #expect(try await sim.serverClientID(instance) == .string(clientID))
        #expect(try await alert("all good") == true)

        let (_, otherID, otherSecret) = try await sim.createApp(for: [other])
        try await sim.registerV2(instance, clientID: otherID, secret: otherSecret)
        #expect(try await alert("redirects do not cover the host") == false)

        let (_, noScopeID, noScopeSecret) = try await sim.createApp(for: [instance], scopes: ["chat:write"])
        try await sim.registerV2(instance, clientID: noScopeID, secret: noScopeSecret)
        #expect(try await alert("no incoming-webhook scope") == false)

        let (_, foreignID, foreignSecret) = try await sim.createApp(for: [instance], token: sim.fleet.workspaces[1].configToken)
        try await sim.registerV2(instance, clientID: foreignID, secret: foreignSecret)
        #expect(try await alert("app of another workspace") == false)

        try await sim.registerV2(instance, clientID: clientID, secret: secret)
        #expect(try await alert("back on the right app") == true)
        _ = try await sim.slack("apps.manifest.delete", token: sim.workspace.configToken, ["app_id": appID])
        #expect(try await alert("app deleted") == false)
    }

    @Test("waitDuration drops repeats of one title")
    func waitDuration() async throws {
        let sim = try SimHarness()
        let instance = sim.instance("operator-v2")
        let (_, clientID, secret) = try await sim.createApp(for: [instance])
        try await sim.registerV2(instance, clientID: clientID, secret: secret)
        for _ in 0..<3 {
            _ = try await sim.graphql(instance.name, key: instance.adminKey, alertMutation, variables: alertVariables("repeated", waitDuration: 60_000))
        }
        #expect(try await sim.canaryMessages().filter { $0.contains("repeated") }.count == 1)
        _ = try await sim.control("POST", "clock/advance", ["seconds": 61])
        _ = try await sim.graphql(instance.name, key: instance.adminKey, alertMutation, variables: alertVariables("repeated", waitDuration: 60_000))
        #expect(try await sim.canaryMessages().filter { $0.contains("repeated") }.count == 2)
    }

    @Test("a delivered alert shows in conversations.history only after its delay")
    func alertDelay() async throws {
        let sim = try SimHarness(configure: { $0.alertDelay = 3600 })
        let instance = sim.instance("operator-v2")
        let (_, clientID, secret) = try await sim.createApp(for: [instance])
        try await sim.registerV2(instance, clientID: clientID, secret: secret)
        _ = try await sim.graphql(instance.name, key: instance.adminKey, alertMutation, variables: alertVariables("delayed"))
        let history = try await sim.slack("conversations.history", token: sim.workspace.botToken, ["channel": sim.workspace.canaryChannel]).json
        #expect(history["messages"]?.arrayValue?.isEmpty == true)
        _ = try await sim.control("POST", "clock/advance", ["seconds": 3601])
        let later = try await sim.slack("conversations.history", token: sim.workspace.botToken, ["channel": sim.workspace.canaryChannel]).json
        #expect(later["messages"]?.arrayValue?.first?["text"]?.stringValue?.contains("delayed") == true)
    }
}

@Suite("fleet-sim: Kubernetes")
struct KubernetesContractTests {
    @Test("Bearer auth, Status objects, the CR's selectors")
    func readObjects() async throws {
        let sim = try SimHarness()
        let instance = sim.instance("operator-v2")
        let unauthorized = try await sim.kube("GET", instance, "/apis/apps.wandb.com/v2/namespaces/wandb/weightsandbiases/wandb", token: "wrong")
        #expect(unauthorized.status == 401)
        #expect(unauthorized.json["kind"] == "Status")
        #expect(unauthorized.json["reason"] == "Unauthorized")
        let resource = try await sim.kube("GET", instance, "/apis/apps.wandb.com/v2/namespaces/wandb/weightsandbiases/wandb").json
        #expect(resource["spec"]?["wandb"]?["notifications"]?["slack"]?["clientId"] == ["name": "wandb-slack", "key": "SLACK_CLIENT_ID"])
        let missing = try await sim.kube("GET", instance, "/api/v1/namespaces/wandb/secrets/nope")
        #expect(missing.status == 404)
        #expect(missing.json["reason"] == "NotFound")
        #expect(try await sim.kube("GET", instance, "/apis/apps.wandb.com/v1/namespaces/wandb/weightsandbiases/wandb").status == 404, "a v2 instance has no v1 resource")
    }

    @Test("merge-patch only, 409 on a stale resourceVersion, base64 checked, admission webhook enforced")
    func patchRules() async throws {
        let sim = try SimHarness()
        let instance = sim.instance("operator-v2")
        let path = "/api/v1/namespaces/wandb/secrets/wandb-slack"
        #expect(try await sim.kube("PATCH", instance, path, patch: ["data": [:]], contentType: "application/json-patch+json").status == 415)
        let version = try #require(try await sim.kube("GET", instance, path).json["metadata"]?["resourceVersion"]?.stringValue)
        let first = try await sim.kube("PATCH", instance, path, patch: ["metadata": ["resourceVersion": .string(version)], "data": ["A": "YQ=="]])
        #expect(first.status == 200)
        #expect(first.json["data"]?["A"] == "YQ==")
        let stale = try await sim.kube("PATCH", instance, path, patch: ["metadata": ["resourceVersion": .string(version)], "data": ["A": "Yg=="]])
        #expect(stale.status == 409)
        #expect(stale.json["reason"] == "Conflict")
        #expect(try await sim.kube("PATCH", instance, path, patch: ["data": ["A": "not base64!"]]).status == 400)
        let removal = try await sim.kube("PATCH", instance, path, patch: ["data": ["A": .null]])
        #expect(removal.json["data"]?["A"] == nil, "null removes a key (RFC 7386)")
        let denied = try await sim.kube("PATCH", instance, "/apis/apps.wandb.com/v2/namespaces/wandb/weightsandbiases/wandb",
                                        patch: ["spec": ["wandb": ["notifications": ["slack": ["clientSecret": .null]]]]])
        #expect(denied.status == 400)
        #expect(denied.json["message"]?.stringValue?.contains("admission webhook") == true)
    }

    @Test("new credentials take effect only after a rollout restart, and only if the Secret the CR names has them")
    func rolloutRules() async throws {
        let sim = try SimHarness()
        let instance = sim.instance("operator-v2")
        let (_, clientID, secret) = try await sim.createApp(for: [instance])
        let data: JSONValue = ["data": ["SLACK_CLIENT_ID": .string(Data(clientID.utf8).base64EncodedString()), "SLACK_SECRET": .string(Data(secret.utf8).base64EncodedString())]]
        _ = try await sim.kube("PATCH", instance, "/api/v1/namespaces/wandb/secrets/wandb-slack", patch: data)
        #expect(try await sim.serverClientID(instance) == .null, "a patched Secret alone changes nothing in the running pods")
        _ = try await sim.kube("PATCH", instance, "/apis/apps.wandb.com/v2/namespaces/wandb/weightsandbiases/wandb",
                               patch: ["spec": ["wandb": ["notifications": ["slack": ["clientId": ["name": "missing-secret", "key": "ID"]]]]]])
        _ = try await sim.kube("PATCH", instance, "/apis/apps/v1/namespaces/wandb/deployments/wandb-api",
                               patch: ["spec": ["template": ["metadata": ["annotations": ["kubectl.kubernetes.io/restartedAt": "1"]]]]])
        #expect(try await sim.serverClientID(instance) == .null, "a selector to a missing Secret: the new pods fail, the old ones keep serving")
        let state = try await sim.control("GET", "instances/\(instance.name)")
        #expect(state["last_rollout_error"]?.stringValue?.isEmpty == false)
        _ = try await sim.kube("PATCH", instance, "/apis/apps.wandb.com/v2/namespaces/wandb/weightsandbiases/wandb",
                               patch: ["spec": ["wandb": ["notifications": ["slack": ["clientId": ["name": "wandb-slack", "key": "SLACK_CLIENT_ID"]]]]]])
        _ = try await sim.kube("PATCH", instance, "/apis/apps/v1/namespaces/wandb/deployments/wandb-api",
                               patch: ["spec": ["template": ["metadata": ["annotations": ["kubectl.kubernetes.io/restartedAt": "2"]]]]])
        #expect(try await sim.serverClientID(instance) == .string(clientID))
    }

    @Test("a slow rollout keeps the old client ID until it completes")
    func slowRollout() async throws {
        let sim = try SimHarness(configure: { $0.rolloutDelay = 3600 })
        let instance = sim.instance("operator-v2")
        let (_, clientID, secret) = try await sim.createApp(for: [instance])
        try await sim.registerV2(instance, clientID: clientID, secret: secret)
        #expect(try await sim.serverClientID(instance) == .null)
        #expect(try await sim.control("GET", "instances/\(instance.name)")["rollout_pending"] == true)
    }

    @Test("operator-v1: the CR's spec.values.global.slack is what the instance runs with")
    func operatorV1() async throws {
        let sim = try SimHarness(instances: 10)
        let instance = sim.instance("operator-v1")
        let (_, clientID, secret) = try await sim.createApp(for: [instance], token: sim.fleet.workspaces.first { $0.id == instance.teamID }?.configToken)
        let patched = try await sim.kube("PATCH", instance, "/apis/apps.wandb.com/v1/namespaces/wandb/weightsandbiases/wandb",
                                         patch: ["spec": ["values": ["global": ["slack": ["clientId": .string(clientID), "secret": .string(secret)]]]]])
        #expect(patched.status == 200)
        #expect(try await sim.serverClientID(instance) == .string(clientID))
    }

    @Test("exec instances: credentials change through the control call a hook makes")
    func execInstances() async throws {
        let sim = try SimHarness(instances: 10)
        let instance = sim.instance("exec")
        #expect(try await sim.kube("GET", instance, "/apis/apps/v1/namespaces/wandb/deployments/wandb-api").status == 404)
        let reply = try await sim.control("POST", "instances/\(instance.name)/credentials", ["client_id": "123.456", "client_secret": "s"])
        #expect(reply["ok"] == true)
        #expect(try await sim.serverClientID(instance) == .string("123.456"))
    }
}

@Suite("fleet-sim: faults and control")
struct FaultTests {
    @Test("error, reset and hang faults, per instance")
    func faults() async throws {
        let sim = try SimHarness(configure: { $0.hangSeconds = 2 })
        let broken = sim.fleet.instances[0], healthy = sim.fleet.instances[1]
        _ = try await sim.control("POST", "faults", ["target": .string("instance:\(broken.name)"), "error_rate": 1])
        #expect([500, 502, 503].contains(try await sim.send("GET", "/wandb/\(broken.name)/healthz").status))
        #expect(try await sim.send("GET", "/wandb/\(healthy.name)/healthz").status == 200)
        _ = try await sim.control("POST", "faults", ["target": .string("instance:\(broken.name)"), "error_rate": 0, "reset_rate": 1])
        await #expect(throws: (any Error).self) { try await sim.send("GET", "/wandb/\(broken.name)/healthz") }
        _ = try await sim.control("POST", "faults", ["target": .string("instance:\(broken.name)"), "reset_rate": 0, "hang_rate": 1])
        await #expect(throws: (any Error).self) { try await sim.send("GET", "/wandb/\(broken.name)/healthz", timeout: 1) }
        _ = try await sim.control("DELETE", "faults")
        #expect(try await sim.send("GET", "/wandb/\(broken.name)/healthz").status == 200)
    }

    @Test("latency delays answers by at least the latency set")
    func latency() async throws {
        let sim = try SimHarness()
        _ = try await sim.control("POST", "faults", ["target": "all", "latency_ms": 300])
        let start = Date()
        _ = try await sim.send("GET", "/wandb/\(sim.fleet.instances[0].name)/healthz")
        #expect(Date().timeIntervalSince(start) >= 0.3)
    }

    @Test("call counts tell which endpoints were called, so a test can assert that no write happened")
    func callCounts() async throws {
        let sim = try SimHarness()
        _ = try await sim.control("POST", "calls/reset")
        _ = try await sim.createApp(for: [sim.fleet.instances[0]])
        _ = try await sim.slack("auth.test", token: sim.workspace.configToken)
        let calls = try await sim.control("GET", "calls")["calls"]
        #expect(calls?["slack:apps.manifest.create"] == 1)
        #expect(calls?["slack:auth.test"] == 1)
        #expect(calls?["slack:apps.manifest.update"] == nil)
    }

    @Test("unknown control endpoints and bad fault targets are refused")
    func controlErrors() async throws {
        let sim = try SimHarness()
        #expect(try await sim.control("POST", "faults", ["target": "everything"])["error"] != nil)
        #expect(try await sim.control("GET", "nothing")["error"] != nil)
    }
}
