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
            return world.instances[name].map { WandbGraphQL.ServerInfo(slackClientID: $0.effectiveClientID, frontendHost: $0.hostURL) }
        }
    }

    /// What `notifyScriptableRunAlert` does: throttle repeats of a title, then post to the
    /// workspace's canary channel, after a delay, if and only if the instance's running Slack
    /// credentials belong to a live app whose redirect URLs cover the instance's host and whose
    /// bot scopes include incoming-webhook. Like W&B, it reports success either way.
    func sendAlert(instance name: String, title: String, text: String, severity: String, runName: String, waitDuration: Double?) -> Bool {
        withWorld { world in
            world.settle(name)
            guard let instance = world.instances[name] else { return false }
            let now = world.now
            if let wait = waitDuration, wait > 0, let last = instance.alertTitles[title], (now - last) * 1000 < wait {
                return true
            }
            world.instances[name]?.alertTitles[title] = now
            world.instances[name]?.alertsSent += 1
            guard world.canDeliver(name), let workspace = world.workspaces[instance.teamID] else { return true }
            world.instances[name]?.alertsDelivered += 1
            world.post("[\(severity)] \(title)\n\(text)\n(run \(runName) on \(instance.hostURL))", teamID: workspace.id,
                       channelID: workspace.canaryChannelID, by: "wandb", delay: world.config.alertDelay)
            return true
        }
    }
}

extension World {
    /// Whether an alert from `name` would reach Slack now.
    func canDeliver(_ name: String) -> Bool {
        guard let instance = instances[name], let clientID = instance.effectiveClientID, let secret = instance.effectiveSecret,
              let app = apps.values.first(where: { $0.clientID == clientID && !$0.deleted }) else { return false }
        guard app.clientSecret == secret, app.teamID == instance.teamID else { return false }
        let scopes = app.manifest["oauth_config"]?["scopes"]?["bot"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let redirects = app.manifest["oauth_config"]?["redirect_urls"]?.arrayValue?.compactMap(\.stringValue) ?? []
        return scopes.contains("incoming-webhook") && Simulator.redirectAllowed(instance.hostURL, configured: redirects)
    }

    /// Notes whether each instance of `teamID` (or the named ones) can still deliver alerts
    /// after `cause`: an instance that could and no longer can has a credential gap, which
    /// tests read from the control API (`delivery_losses`).
    mutating func noteDelivery(team teamID: String? = nil, names: [String]? = nil, cause: String) {
        let affected = names ?? instances.values.filter { teamID == nil || $0.teamID == teamID }.map(\.name)
        for name in affected {
            settle(name, noting: false)
            let now = canDeliver(name)
            if instances[name]?.couldDeliver == true, !now {
                instances[name]?.deliveryLosses += 1
                instances[name]?.lastDeliveryLoss = cause
            }
            instances[name]?.couldDeliver = now
        }
    }

    /// Applies a rollout whose time has come: the new pods read their credentials now.
    mutating func settle(_ name: String, noting: Bool = true) {
        guard let pending = instances[name]?.pendingRollout, Date() >= pending.completesAt else { return }
        defer { if noting { noteDelivery(names: [name], cause: "a rollout of \(name) completed") } }
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
