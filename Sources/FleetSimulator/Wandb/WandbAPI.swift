import Foundation

extension Simulator {
    /// One W&B instance: `/graphql` (Basic auth, user `api`), `/healthz`, `/ready`.
    func wandb(_ request: SimRequest, instance name: String, route: String) async -> SimResponse {
        guard let instance = withWorld({ world -> SimInstance? in
            world.settle(name)
            return world.instances[name]
        }) else { return .notFound }
        switch route {
        case "healthz", "ready":
            return .text("ok", status: 200)
        case "graphql":
            guard request.method == "POST" else { return WandbGraphQL.errors(["use POST"], status: 405) }
            guard let header = request.headers["authorization"], header.lowercased().hasPrefix("basic "),
                  let decoded = Data(base64Encoded: String(header.dropFirst(6))).flatMap({ String(data: $0, encoding: .utf8) }) else {
                return WandbGraphQL.errors(["authentication required: HTTP Basic with user api and an API key"], status: 401)
            }
            let parts = decoded.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0] == "api", parts[1] == instance.adminKey || parts[1] == instance.userKey else {
                return WandbGraphQL.errors(["invalid API key"], status: 401)
            }
            let context = WandbGraphQL.Context(simulator: self, instance: name, admin: parts[1] == instance.adminKey)
            return await graphQL.execute(request.body, context: context)
        default:
            return .notFound
        }
    }

    func serverInfo(instance name: String) -> WandbGraphQL.ServerInfo? {
        withWorld { world in
            world.settle(name)
            // `ServerInfo.slackClientID` is `String!`: empty when no Slack app is configured.
            return world.instances[name].map { WandbGraphQL.ServerInfo(slackClientID: $0.effectiveClientID ?? "", frontendHost: $0.hostURL) }
        }
    }

    /// What `notifyScriptableRunAlert` does: throttle repeats of a title, then post through each
    /// Slack integration of the entity, via its incoming webhook, after a delay. With no
    /// integration nothing is posted; a webhook of a deleted or uninstalled app posts nothing.
    /// Like W&B, it reports success either way (wandb-server.md: `success: true` whatever Slack did).
    func sendAlert(instance name: String, entity: String, title: String, text: String, severity: String, runName: String, waitDuration: Double?) -> Bool {
        withWorld { world in
            world.settle(name)
            guard let instance = world.instances[name] else { return false }
            let now = world.now
            if let wait = waitDuration, wait > 0, let last = instance.alertTitles[title], (now - last) * 1000 < wait {
                return true
            }
            world.instances[name]?.alertTitles[title] = now
            world.instances[name]?.alertsSent += 1
            var delivered = false
            for integration in instance.integrations where integration.entity == entity && world.delivers(integration) {
                guard let app = world.apps[integration.appID] else { continue }
                delivered = true
                world.post("[\(severity)] \(title)\n\(text)\n(run \(runName) on \(instance.hostURL))", teamID: integration.teamID,
                           channelID: integration.channelID, by: app.botID, delay: world.config.alertDelay, app: app)
            }
            if delivered { world.instances[name]?.alertsDelivered += 1 }
            return true
        }
    }

    /// The Slack integrations of an entity on an instance; nil when the entity does not exist.
    func integrations(instance name: String, entity: String) -> [SimIntegration]? {
        withWorld { world in
            guard let instance = world.instances[name], instance.entities[entity] != nil else { return nil }
            return instance.integrations.filter { $0.entity == entity }
        }
    }

    func entity(instance name: String, entity: String) -> SimEntity? {
        withWorld { world in world.instances[name]?.entities[entity] }
    }

    /// Every entity of an instance, by name; nil when `Query.entities` is switched off.
    func entities(instance name: String) -> [SimEntity]? {
        withWorld { world in
            guard world.config.entitiesQuery else { return nil }
            return world.instances[name]?.entities.values.sorted { $0.name < $1.name }
        }
    }

    func createSlackIntegration(instance name: String, entity: String, code: String, redirectURI: String) -> Result<SimIntegration, ConnectFailure> {
        withWorld { world in world.createSlackIntegration(instance: name, entity: entity, code: code, redirectURI: redirectURI) }
    }

    /// `deleteIntegration`: a person removes an integration in W&B's settings.
    func deleteIntegration(instance name: String, id: String) -> Bool {
        withWorld { world in
            guard let index = world.instances[name]?.integrations.firstIndex(where: { $0.id == id }) else { return false }
            world.instances[name]?.integrations.remove(at: index)
            world.note(names: [name], cause: "an integration deleted in W&B's settings")
            return true
        }
    }
}

extension World {
    /// Notes, after `cause`, what each instance of `teamID` (or the named ones) can still do:
    /// delivery paths lost (integrations lost) and whether a new connection still works (a
    /// moment where none would is a connect gap).
    mutating func note(team teamID: String? = nil, names: [String]? = nil, cause: String) {
        let affected = names ?? instances.values.filter { teamID == nil || $0.teamID == teamID }.map(\.name)
        noteIntegrations(names: affected, cause: cause)
        for name in affected {
            settle(name, noting: false)
            let now = canConnect(name)
            if instances[name]?.couldConnect == true, !now {
                instances[name]?.connectLosses += 1
                instances[name]?.lastConnectLoss = cause
            }
            instances[name]?.couldConnect = now
            if now { peopleConnect(name) }
        }
    }

    /// Applies a rollout whose time has come: the new pods read their credentials now.
    mutating func settle(_ name: String, noting: Bool = true) {
        guard let pending = instances[name]?.pendingRollout, Date() >= pending.completesAt else { return }
        defer { if noting { note(names: [name], cause: "a rollout of \(name) completed") } }
        instances[name]?.pendingRollout = nil
        if let credentials = pending.credentials {
            instances[name]?.effectiveClientID = credentials.clientID
            instances[name]?.effectiveSecret = credentials.secret
            instances[name]?.lastRolloutError = nil
            return
        }
        guard let instance = instances[name], let credentials = World.configuredCredentials(instance) else {
            // The new pods cannot start (CreateContainerConfigError); the old ones keep serving.
            let kind = instances[name]?.registrar.rawValue ?? ""
            instances[name]?.lastRolloutError = "the Slack credentials the \(kind) configuration names are missing"
            return
        }
        instances[name]?.effectiveClientID = credentials.clientID
        instances[name]?.effectiveSecret = credentials.secret
        instances[name]?.lastRolloutError = nil
    }

    /// The credentials new api pods would start with: for operator-v2 the Secret keys the CR's
    /// selectors name; for operator-v1 the CR's `spec.values.global.slack`.
    static func configuredCredentials(_ instance: SimInstance) -> (clientID: String, secret: String)? {
        switch instance.registrar {
        case .operatorV2:
            guard let slack = instance.resource?.body["spec"]?["wandb"]?["notifications"]?["slack"],
                  let idName = slack["clientId"]?["name"]?.stringValue, let idKey = slack["clientId"]?["key"]?.stringValue,
                  let secretName = slack["clientSecret"]?["name"]?.stringValue, let secretKey = slack["clientSecret"]?["key"]?.stringValue,
                  let id = instance.secrets[idName]?.body["data"]?[idKey]?.stringValue.flatMap(World.base64Decoded),
                  let secret = instance.secrets[secretName]?.body["data"]?[secretKey]?.stringValue.flatMap(World.base64Decoded) else { return nil }
            return (id, secret)
        case .operatorV1:
            guard let slack = instance.resource?.body["spec"]?["values"]?["global"]?["slack"],
                  let id = slack["clientId"]?.stringValue, let secret = slack["secret"]?.stringValue else { return nil }
            return (id, secret)
        case .exec:
            return nil
        }
    }

    static func base64Decoded(_ text: String) -> String? {
        Data(base64Encoded: text).flatMap { String(data: $0, encoding: .utf8) }
    }
}
