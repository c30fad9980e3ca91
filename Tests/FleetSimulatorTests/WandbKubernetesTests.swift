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

    func canaryMessages(_ teamID: String? = nil) async throws -> [String] {
        try await control("GET", "channels/\(teamID ?? workspace.id)").arrayValue?.compactMap { $0["text"]?.stringValue } ?? []
    }

    /// A person's "Connect Slack" for `entity` on `instance`, picking `channel` (the canary channel by default).
    @discardableResult
    func connect(_ instance: IssuedFleet.Instance, entity: String = "ops", channel: String? = nil) async throws -> JSONValue {
        var body: [String: JSONValue] = ["instance": .string(instance.name), "entity": .string(entity)]
        if let channel { body["channel"] = .string(channel) }
        return try await control("POST", "connect", .object(body))
    }

    /// Sends a test alert on the canary entity; returns whether it showed in the canary channel.
    func alert(_ instance: IssuedFleet.Instance, _ title: String) async throws -> Bool {
        let reply = try await graphql(instance.name, key: instance.adminKey, alertMutation, variables: alertVariables(title))
        guard reply.json["data"]?["notifyScriptableRunAlert"]?["success"] == true else { throw SimulatorError("W&B reports success either way: \(reply.text)") }
        return try await canaryMessages(instance.teamID).contains { $0.contains(title) }
    }

    func simInstance(_ instance: IssuedFleet.Instance) async throws -> JSONValue {
        try await control("GET", "instances/\(instance.name)")
    }
}

let integrationsQuery = """
    query SlackIntegrationsByEntity($entityName: String!, $cursor: String, $perPage: Int) {
      entity(name: $entityName) {
        isTeam
        integrations(after: $cursor, first: $perPage) {
          pageInfo { endCursor hasNextPage }
          edges { cursor node { __typename ... on SlackIntegration { id teamName channelName } } }
        }
      }
    }
    """

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
        #expect(info["data"]?["serverInfo"]?["slackClientID"] == "", "no Slack app yet: slackClientID is String!, empty")
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

    @Test("an alert is posted only through the entity's Slack integrations: none, nothing; a stale secret does not stop it; a deleted app does")
    func deliveryThroughIntegrations() async throws {
        let sim = try SimHarness()
        let instance = sim.instance("operator-v2")
        #expect(try await sim.alert(instance, "no app") == false)
        let (appID, clientID, secret) = try await sim.createApp(for: [instance])
        try await sim.registerV2(instance, clientID: clientID, secret: secret)
        #expect(try await sim.serverClientID(instance) == .string(clientID))
        #expect(try await sim.alert(instance, "registered, not connected") == false, "registering credentials sends nothing by itself")

        let connected = try await sim.connect(instance)
        #expect(connected["ok"] == true, "\(connected)")
        #expect(connected["integration"]?["app_id"]?.stringValue == appID)
        #expect(try await sim.canaryMessages().contains { $0.contains("added an integration to this channel") }, "Slack says so in the channel")
        #expect(try await sim.alert(instance, "connected") == true)
        // The message is the app's: a bot_message with its bot, which bots.info maps to the app.
        let history = try await sim.slack("conversations.history", token: sim.workspace.botToken, ["channel": sim.workspace.canaryChannel]).json
        let posted = try #require(history["messages"]?.arrayValue?.first { $0["text"]?.stringValue?.contains("connected") == true })
        #expect(posted["subtype"] == "bot_message")
        #expect(posted["app_id"] == nil, "app_id only with the message_app_id switch")
        let bot = try await sim.slack("bots.info", token: sim.workspace.botToken, ["bot": posted["bot_id"]?.stringValue ?? ""]).json
        #expect(bot["bot"]?["app_id"]?.stringValue == appID)

        // Delivery does not use the secret: a regenerated one leaves the webhook working.
        _ = try await sim.control("POST", "apps/\(appID)/regenerate-secret")
        #expect(try await sim.alert(instance, "after regenerate") == true)
        #expect(try await sim.simInstance(instance)["can_connect"] == false, "but new connections fail with the stale secret")

        _ = try await sim.slack("apps.manifest.delete", token: sim.workspace.configToken, ["app_id": appID])
        #expect(try await sim.alert(instance, "app deleted") == false, "the webhook died with the app")
        let state = try await sim.simInstance(instance)
        #expect(state["delivery_losses"] == 1)
        #expect(state["integrations_lost"]?.arrayValue?.first?["cause"]?.stringValue?.contains("apps.manifest.delete") == true)
        #expect(try await sim.control("GET", "losses")["total"] == 1)
    }

    @Test("a connection needs the running client ID and secret, a redirect URL over the host, and incoming-webhook; it fails as Slack answers")
    func connectionRules() async throws {
        let sim = try SimHarness()
        let instance = sim.instance("operator-v2")
        let other = sim.fleet.instances.first { $0.teamID == instance.teamID && $0.name != instance.name && $0.registrar == "operator-v2" && $0.appGroup != instance.appGroup }!
        #expect(try await sim.connect(instance)["error"] == "slack_not_configured")

        let (appID, clientID, secret) = try await sim.createApp(for: [instance])
        try await sim.registerV2(instance, clientID: clientID, secret: "not-the-secret")
        let stale = try await sim.connect(instance)
        #expect(stale["error"] == "bad_client_secret" && stale["stage"] == "exchange", "\(stale)")

        let (_, otherID, otherSecret) = try await sim.createApp(for: [other])
        try await sim.registerV2(instance, clientID: otherID, secret: otherSecret)
        #expect(try await sim.connect(instance)["error"] == "bad_redirect_uri")

        let (_, noScopeID, noScopeSecret) = try await sim.createApp(for: [instance], scopes: ["chat:write"])
        try await sim.registerV2(instance, clientID: noScopeID, secret: noScopeSecret)
        #expect(try await sim.connect(instance)["error"] == "invalid_scope")

        try await sim.registerV2(instance, clientID: clientID, secret: secret)
        #expect(try await sim.connect(instance, channel: "CNOSUCH")["error"] == "channel_not_found")
        #expect(try await sim.connect(instance)["ok"] == true)
        _ = try await sim.slack("apps.manifest.delete", token: sim.workspace.configToken, ["app_id": appID])
        #expect(try await sim.connect(instance)["error"] == "invalid_client_id")
    }

    @Test("createSlackIntegration exchanges a code with the running credentials; integrations page by cursor and are told apart by __typename; deleteIntegration")
    func integrationsThroughGraphQL() async throws {
        let sim = try SimHarness()
        let instance = sim.instance("operator-v2")
        let (_, clientID, secret) = try await sim.createApp(for: [instance])
        try await sim.registerV2(instance, clientID: clientID, secret: secret)
        let redirect = instance.hostURL + "/oauth2/slack/callback"
        let authorize = try await sim.send("GET", "/oauth/v2/authorize?client_id=\(clientID)&scope=incoming-webhook&redirect_uri=\(redirect.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")",
                                           followRedirects: false)
        #expect(authorize.status == 302)
        let code = try #require(authorize.headers["location"].flatMap { URLComponents(string: $0)?.queryItems?.first { $0.name == "code" }?.value })
        let create = """
            mutation Create($code: String!, $entity: String!, $redirect: String!) {
              createSlackIntegration(input: {code: $code, entityName: $entity, redirectURI: $redirect}) { integration { __typename ... on SlackIntegration { id teamName channelName } } }
            }
            """
        let created = try await sim.graphql(instance.name, key: instance.adminKey, create, variables: ["code": .string(code), "entity": "ops", "redirect": .string(redirect)]).json
        let integration = try #require(created["data"]?["createSlackIntegration"]?["integration"])
        #expect(integration["channelName"] == "#wandb-canary")
        #expect(integration["teamName"]?.stringValue == sim.fleet.workspaces.first { $0.id == instance.teamID }?.name)
        let reused = try await sim.graphql(instance.name, key: instance.adminKey, create, variables: ["code": .string(code), "entity": "ops", "redirect": .string(redirect)]).json
        #expect(reused["errors"]?.arrayValue?.first?["message"]?.stringValue?.contains("invalid_code") == true, "a code is used once")
        for _ in 0..<2 { try await sim.connect(instance) }

        // Three Slack integrations and a generic webhook, two to a page.
        var ids: [String] = []
        var kinds = Set<String>()
        var cursor: JSONValue = .null
        for _ in 0..<5 {
            let page = try await sim.graphql(instance.name, key: instance.adminKey, integrationsQuery,
                                             variables: ["entityName": "ops", "cursor": cursor, "perPage": 2]).json["data"]?["entity"]
            #expect(page?["isTeam"] == true)
            for edge in page?["integrations"]?["edges"]?.arrayValue ?? [] {
                kinds.insert(edge["node"]?["__typename"]?.stringValue ?? "")
                if let id = edge["node"]?["id"]?.stringValue { ids.append(id) }
            }
            guard page?["integrations"]?["pageInfo"]?["hasNextPage"] == true else { break }
            cursor = page?["integrations"]?["pageInfo"]?["endCursor"] ?? .null
        }
        #expect(ids.count == 3 && Set(ids).count == 3)
        #expect(kinds == ["SlackIntegration", "GenericWebhookIntegration"])
        let missing = try await sim.graphql(instance.name, key: instance.adminKey, integrationsQuery, variables: ["entityName": "nobody"]).json
        #expect(missing["data"]?["entity"] == .null)

        let delete = "mutation Delete($id: ID!) { deleteIntegration(input: {id: $id}) { success } }"
        #expect(try await sim.graphql(instance.name, key: instance.adminKey, delete, variables: ["id": .string(ids[0])]).json["data"]?["deleteIntegration"]?["success"] == true)
        #expect(try await sim.alert(instance, "two left") == true)
        #expect(try await sim.simInstance(instance)["integrations"]?.arrayValue?.count == 2)
    }

    @Test("apps.uninstall ends the installation's webhooks; a new connection installs it again")
    func uninstall() async throws {
        let sim = try SimHarness()
        let instance = sim.instance("operator-v2")
        let (_, clientID, secret) = try await sim.createApp(for: [instance])
        try await sim.registerV2(instance, clientID: clientID, secret: secret)
        try await sim.connect(instance)
        #expect(try await sim.alert(instance, "before uninstall") == true)
        // W&B's own bot token of the installation, as oauth.v2.access gave it.
        let bot = try #require(try await sim.control("GET", "tokens").arrayValue?.last { $0["kind"] == "bot" && $0["app_id"] != .null }?["token"]?.stringValue)
        #expect(try await sim.slack("apps.uninstall", token: bot, ["client_id": clientID, "client_secret": "wrong"]).json["error"] == "bad_client_secret")
        #expect(try await sim.slack("apps.uninstall", token: bot, ["client_id": clientID, "client_secret": secret]).json["ok"] == true)
        #expect(try await sim.alert(instance, "after uninstall") == false)
        #expect(try await sim.simInstance(instance)["delivery_losses"] == 1)
        try await sim.connect(instance)
        #expect(try await sim.alert(instance, "connected again") == true)
    }

    @Test("Query.entities lists every entity, unless the switch says the server refuses it")
    func entitiesQuery() async throws {
        let sim = try SimHarness()
        let instance = sim.fleet.instances[0]
        let query = "{ entities(first: 100) { edges { node { name isTeam } } } }"
        let listed = try await sim.graphql(instance.name, key: instance.adminKey, query).json
        #expect(listed["data"]?["entities"]?["edges"]?.arrayValue?.compactMap { $0["node"]?["name"]?.stringValue } == ["ops"])
        _ = try await sim.control("POST", "config", ["entities_query": false])
        #expect(try await sim.graphql(instance.name, key: instance.adminKey, query).json["errors"] != nil)
    }

    @Test("people connect when Slack first works: the canary for the connected share, and their own integrations")
    func peopleConnect() async throws {
        let sim = try SimHarness(instances: 6, sharedGroups: 0, configure: { $0.connectedFraction = 0.5 }, userIntegrations: 2)
        for instance in sim.fleet.instances.filter({ $0.registrar == "operator-v2" }) {
            let (_, clientID, secret) = try await sim.createApp(for: [instance], token: sim.fleet.workspaces.first { $0.id == instance.teamID }?.configToken)
            try await sim.registerV2(instance, clientID: clientID, secret: secret)
            _ = try await sim.serverClientID(instance)
        }
        let states = try await sim.control("GET", "instances").arrayValue ?? []
        let v2 = states.filter { $0["registrar"] == "operator-v2" }
        #expect(v2.allSatisfy { ($0["integrations"]?.arrayValue ?? []).filter { $0["entity"] != "ops" }.count == 2 }, "two user integrations each")
        let withCanary = v2.filter { ($0["integrations"]?.arrayValue ?? []).contains { $0["entity"] == "ops" } }
        #expect(withCanary.count >= 1 && withCanary.count < v2.count, "about half connect the canary: \(withCanary.count) of \(v2.count)")
        #expect(states.filter { $0["registrar"] != "operator-v2" }.allSatisfy { $0["integrations"]?.arrayValue?.isEmpty == true }, "no Slack, no connection")
    }

    @Test("waitDuration drops repeats of one title")
    func waitDuration() async throws {
        let sim = try SimHarness()
        let instance = sim.instance("operator-v2")
        let (_, clientID, secret) = try await sim.createApp(for: [instance])
        try await sim.registerV2(instance, clientID: clientID, secret: secret)
        try await sim.connect(instance)
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
        try await sim.connect(instance)
        _ = try await sim.graphql(instance.name, key: instance.adminKey, alertMutation, variables: alertVariables("delayed"))
        let history = try await sim.slack("conversations.history", token: sim.workspace.botToken, ["channel": sim.workspace.canaryChannel]).json
        #expect(history["messages"]?.arrayValue?.contains { $0["text"]?.stringValue?.contains("delayed") == true } == false)
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
        #expect(try await sim.serverClientID(instance) == "", "a patched Secret alone changes nothing in the running pods")
        _ = try await sim.kube("PATCH", instance, "/apis/apps.wandb.com/v2/namespaces/wandb/weightsandbiases/wandb",
                               patch: ["spec": ["wandb": ["notifications": ["slack": ["clientId": ["name": "missing-secret", "key": "ID"]]]]]])
        _ = try await sim.kube("PATCH", instance, "/apis/apps/v1/namespaces/wandb/deployments/wandb-api",
                               patch: ["spec": ["template": ["metadata": ["annotations": ["kubectl.kubernetes.io/restartedAt": "1"]]]]])
        #expect(try await sim.serverClientID(instance) == "", "a selector to a missing Secret: the new pods fail, the old ones keep serving")
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
        #expect(try await sim.serverClientID(instance) == "")
        #expect(try await sim.control("GET", "instances/\(instance.name)")["rollout_pending"] == true)
    }

    @Test("operator-v1: the CR's spec.values.global.slack is what the instance runs with, once the api Deployment restarts")
    func operatorV1() async throws {
        let sim = try SimHarness(instances: 10)
        let instance = sim.instance("operator-v1")
        let (_, clientID, secret) = try await sim.createApp(for: [instance], token: sim.fleet.workspaces.first { $0.id == instance.teamID }?.configToken)
        let patched = try await sim.kube("PATCH", instance, "/apis/apps.wandb.com/v1/namespaces/wandb/weightsandbiases/wandb",
                                         patch: ["spec": ["values": ["global": ["slack": ["clientId": .string(clientID), "secret": .string(secret)]]]]])
        #expect(patched.status == 200)
        // The chart loads the release Secret with envFrom and no checksum: nothing restarts by itself.
        #expect(try await sim.serverClientID(instance) == "")
        #expect(try await sim.control("GET", "instances/\(instance.name)")["rollout_pending"] == false)
        _ = try await sim.kube("PATCH", instance, "/apis/apps/v1/namespaces/wandb/deployments/wandb-api",
                               patch: ["spec": ["template": ["metadata": ["annotations": ["kubectl.kubernetes.io/restartedAt": "1"]]]]])
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
