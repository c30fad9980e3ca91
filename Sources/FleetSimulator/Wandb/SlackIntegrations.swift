import Foundation

/// How an alert really reaches Slack from W&B, as ../shared/reference/wandb-server.md ("How an
/// alert really reaches Slack") and ../shared/reference/slack-web-api.md ("OAuth v2") describe it:
///
/// - A person clicks "Connect Slack" in W&B (team settings > Slack channel integrations, or user
///   settings > Alerts). W&B sends the browser to Slack's authorize page with the instance's
///   *running* client ID and a redirect URI below its host URL; the `incoming-webhook` scope shows
///   a channel picker; the person picks a channel and approves. Slack posts "<person> added an
///   integration to this channel: <app>" there (wandb/docs automations/create-automations/slack.md).
/// - W&B exchanges the code with `oauth.v2.access` using its running client ID **and secret**, and
///   stores the installation's incoming webhook as a Slack integration of the entity
///   (`createSlackIntegration(input: {code, entityName, redirectURI})` in wandb/wandb-js
///   src/gql/graphql.ts; `SlackIntegration {id teamName channelName}` in wandb/wandb
///   tools/graphql_codegen/automations/queries.graphql).
/// - `notifyScriptableRunAlert` posts through the entity's integrations' webhooks: delivery does
///   not use the client secret, and a webhook dies with its app's installation (deleted app,
///   `apps.uninstall`).
///
/// The simulated person's part is `connect`; the rest is what W&B and Slack do.
struct ConnectFailure: Error {
    /// `authorize` (Slack's page refused), `exchange` (oauth.v2.access refused W&B's request) or
    /// `wandb` (W&B refused before sending anyone to Slack).
    let stage: String
    let code: String
    let message: String

    var json: JSONValue {
        ["ok": false, "stage": .string(stage), "error": .string(code), "message": .string(message)]
    }
}

/// What an approved OAuth exchange installs: the bot token and the incoming webhook.
struct SimInstallation {
    let app: SimApp
    let botToken: String
    let webhookPath: String
    let channelID: String
    let channelName: String
    let teamName: String
}

extension World {
    /// The path below an instance's host URL that W&B's "Connect Slack" sends as `redirect_uri`.
    /// W&B's own path is not public; any path below the host URL passes Slack's prefix rule the
    /// same way, and that rule is what the simulation checks.
    static let connectCallbackPath = "/oauth2/slack/callback"

    /// Slack's authorize page approved by a person who picked `channelID`: a code for the app
    /// whose client ID is `clientID`, or the page's error.
    mutating func authorize(clientID: String, redirectURI: String, channelID: String?, person: String) -> Result<String, ConnectFailure> {
        guard let app = liveApp(clientID: clientID) else {
            return .failure(ConnectFailure(stage: "authorize", code: "invalid_client_id", message: "Slack's authorize page: invalid_client_id"))
        }
        let configured = app.manifest["oauth_config"]?["redirect_urls"]?.arrayValue?.compactMap(\.stringValue) ?? []
        guard Simulator.redirectAllowed(redirectURI, configured: configured) else {
            return .failure(ConnectFailure(stage: "authorize", code: "bad_redirect_uri",
                                           message: "redirect_uri did not match any configured URIs. Passed URI: \(redirectURI)"))
        }
        let scopes = app.manifest["oauth_config"]?["scopes"]?["bot"]?.arrayValue?.compactMap(\.stringValue) ?? []
        guard scopes.contains("incoming-webhook") else {
            return .failure(ConnectFailure(stage: "authorize", code: "invalid_scope", message: "the app does not request incoming-webhook"))
        }
        guard let workspace = workspaces[app.teamID] else {
            return .failure(ConnectFailure(stage: "authorize", code: "invalid_team", message: "the app's workspace is gone"))
        }
        let channel = channelID ?? workspace.canaryChannelID
        guard let picked = workspace.channels[channel] else {
            return .failure(ConnectFailure(stage: "authorize", code: "channel_not_found",
                                           message: "the channel picker of workspace \(workspace.name) has no channel \(channel)"))
        }
        if picked.archived {
            return .failure(ConnectFailure(stage: "authorize", code: "is_archived", message: "channel \(channel) is archived"))
        }
        let code = "\(identifier("", length: 12)).\(hex(8))"
        oauthCodes[code] = (app.id, redirectURI, channel, now + 600)
        let name = app.manifest["display_information"]?["name"]?.stringValue ?? app.id
        post("\(person) added an integration to this channel: \(name)", teamID: workspace.id, channelID: channel, by: "USLACKBOT", delay: 0)
        return .success(code)
    }

    /// `oauth.v2.access`: the code exchanged with the app's client ID and secret. The checks run
    /// client ID, then secret, then code, unless `oauthChecksCodeFirst` (Slack does not document
    /// its order).
    mutating func exchange(clientID: String?, clientSecret: String?, code: String?, redirectURI: String?) -> Result<SimInstallation, ConnectFailure> {
        func refused(_ code: String) -> Result<SimInstallation, ConnectFailure> {
            .failure(ConnectFailure(stage: "exchange", code: code, message: "oauth.v2.access answered \(code)"))
        }
        let issued = code.flatMap { oauthCodes[$0] }
        let codeValid = issued.map { $0.expiresAt > now } ?? false
        if config.oauthChecksCodeFirst, !codeValid { return refused("invalid_code") }
        guard let app = liveApp(clientID: clientID) else { return refused("invalid_client_id") }
        guard clientSecret == app.clientSecret else { return refused("bad_client_secret") }
        guard let code, let issued, codeValid, issued.appID == app.id else { return refused("invalid_code") }
        oauthCodes.removeValue(forKey: code)
        if let redirectURI, redirectURI != issued.redirectURI { return refused("bad_redirect_uri") }
        guard let workspace = workspaces[app.teamID], let channel = workspace.channels[issued.channelID] else { return refused("invalid_team") }
        // A new install after apps.uninstall reinstalls the app; the webhooks revoked stay dead.
        apps[app.id]?.uninstalled = false
        let scopes = app.manifest["oauth_config"]?["scopes"]?["bot"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let botToken = "xoxb-" + hex(20)
        tokens[botToken] = SimToken(value: botToken, kind: .bot, teamID: app.teamID, userID: workspace.userID, appID: app.id,
                                    issuedAt: now, scopes: Set(scopes))
        let path = "\(workspace.id)/\(identifier("B"))/\(hex(12))"
        apps[app.id]?.webhooks[path] = SimWebhook(channelID: channel.id)
        return .success(SimInstallation(app: app, botToken: botToken, webhookPath: path, channelID: channel.id,
                                        channelName: "#" + channel.name, teamName: workspace.name))
    }

    /// What W&B does with a code from its own "Connect Slack" redirect: the exchange with the
    /// instance's running credentials, then a Slack integration of `entity`.
    mutating func createSlackIntegration(instance name: String, entity: String, code: String, redirectURI: String) -> Result<SimIntegration, ConnectFailure> {
        settle(name, noting: false)
        guard let instance = instances[name] else { return .failure(ConnectFailure(stage: "wandb", code: "not_found", message: "no instance \(name)")) }
        guard instance.entities[entity] != nil else {
            return .failure(ConnectFailure(stage: "wandb", code: "entity_not_found", message: "entity \(entity) does not exist"))
        }
        let installed: SimInstallation
        switch exchange(clientID: instance.effectiveClientID, clientSecret: instance.effectiveSecret, code: code, redirectURI: redirectURI) {
        case .success(let value): installed = value
        case .failure(let failure): return .failure(failure)
        }
        sequence += 1
        let integration = SimIntegration(id: Data("Integration:\(sequence)".utf8).base64EncodedString(), entity: entity,
                                         teamID: installed.app.teamID, teamName: installed.teamName, channelID: installed.channelID,
                                         channelName: installed.channelName, appID: installed.app.id, webhookPath: installed.webhookPath,
                                         createdAt: now)
        instances[name]?.integrations.append(integration)
        noteIntegrations(names: [name], cause: "a connection")
        return .success(integration)
    }

    /// A person plays "Connect Slack" end to end on `instance` for `entity`, picking `channelID`.
    mutating func connect(instance name: String, entity: String, channelID: String?, person: String = "a simulated person") -> Result<SimIntegration, ConnectFailure> {
        settle(name, noting: false)
        guard let instance = instances[name] else { return .failure(ConnectFailure(stage: "wandb", code: "not_found", message: "no instance \(name)")) }
        guard let clientID = instance.effectiveClientID, !clientID.isEmpty else {
            return .failure(ConnectFailure(stage: "wandb", code: "slack_not_configured",
                                           message: "Slack is not configured on \(name): it runs no Slack client ID, so W&B shows no Connect Slack button"))
        }
        let redirect = instance.hostURL + World.connectCallbackPath
        switch authorize(clientID: clientID, redirectURI: redirect, channelID: channelID, person: person) {
        case .failure(let failure): return .failure(failure)
        case .success(let code): return createSlackIntegration(instance: name, entity: entity, code: code, redirectURI: redirect)
        }
    }

    /// Whether `integration`'s webhook still posts: its app lives and is installed, the webhook
    /// was not revoked, and its channel exists and is not archived.
    func delivers(_ integration: SimIntegration) -> Bool {
        guard let app = apps[integration.appID], !app.deleted, !app.uninstalled,
              let webhook = app.webhooks[integration.webhookPath], !webhook.revoked,
              let channel = workspaces[integration.teamID]?.channels[webhook.channelID] else { return false }
        return !channel.archived
    }

    /// The (entity, channel) pairs some integration of the instance delivers to.
    func deliveringPaths(_ instance: SimInstance) -> Set<String> {
        Set(instance.integrations.filter(delivers).map { "\($0.entity) -> \($0.teamID)/\($0.channelID)" })
    }

    /// Records, for each instance of `teamID` (or the named ones), every delivery path that
    /// stopped since the last look, with `cause`: an integration lost. A path still served by
    /// another integration (a person reconnected through a new app) is not lost.
    mutating func noteIntegrations(team teamID: String? = nil, names: [String]? = nil, cause: String) {
        let affected = names ?? instances.values.filter { teamID == nil || $0.teamID == teamID }.map(\.name)
        for name in affected {
            guard let instance = instances[name] else { continue }
            let now = deliveringPaths(instance)
            for lost in instance.deliveringPaths.subtracting(now).sorted() {
                instances[name]?.lostPaths.append((lost, cause))
                integrationLosses[cause, default: 0] += 1
            }
            instances[name]?.deliveringPaths = now
        }
    }

    /// The people of an instance connect their integrations the first time Slack works there:
    /// the canary for `connected_fraction` of instances, and `user_integrations` of their own.
    mutating func peopleConnect(_ name: String) {
        guard config.connectedFraction > 0 || config.userIntegrations > 0,
              let instance = instances[name], !instance.peopleConnected, canConnect(name) else { return }
        instances[name]?.peopleConnected = true
        let index = Int(name.filter(\.isNumber)) ?? 0
        // Spread evenly: instance i connects when the running share crosses a whole number.
        let fraction = config.connectedFraction
        if fraction > 0, Int(Double(index) * fraction) != Int(Double(index - 1) * fraction) || fraction >= 1 {
            _ = connect(instance: name, entity: World.canaryEntity, channelID: nil, person: "ops-oncall")
        }
        for (entity, channel) in World.userEntities(instance: instance, count: config.userIntegrations) {
            _ = connect(instance: name, entity: entity, channelID: channel, person: "\(entity)-admin")
        }
    }

    /// The canary entity every simulated instance has (the inventory's `canary.entity`).
    static let canaryEntity = "ops"

    /// The entities of people who own alerts of their own, and the channel each connects.
    static func userEntities(instance: SimInstance, count: Int) -> [(entity: String, channel: String)] {
        (0..<count).map { ("team-\($0 + 1)", World.userChannelID(teamID: instance.teamID, index: $0)) }
    }

    /// The channels of a workspace that teams' own alerts go to.
    static func userChannelID(teamID: String, index: Int) -> String {
        "CALERTS" + teamID.suffix(3) + String(index + 1)
    }

    /// Whether a new connection would work on `name` now: its running credentials belong to a
    /// live app of its workspace whose redirect URLs cover its host and whose bot scopes include
    /// incoming-webhook.
    mutating func canConnect(_ name: String) -> Bool {
        guard let instance = instances[name], let secret = instance.effectiveSecret,
              let app = liveApp(clientID: instance.effectiveClientID) else { return false }
        guard app.clientSecret == secret, app.teamID == instance.teamID else { return false }
        let scopes = app.manifest["oauth_config"]?["scopes"]?["bot"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let redirects = app.manifest["oauth_config"]?["redirect_urls"]?.arrayValue?.compactMap(\.stringValue) ?? []
        return scopes.contains("incoming-webhook") && Simulator.redirectAllowed(instance.hostURL + World.connectCallbackPath, configured: redirects)
    }

    /// Whether an alert on the canary entity would reach Slack now.
    func canDeliver(_ name: String) -> Bool {
        instances[name]?.integrations.contains { $0.entity == World.canaryEntity && delivers($0) } ?? false
    }
}
