import Foundation

extension Simulator {
    /// `GET /oauth/v2/authorize`: the page a person opens to install an app. The simulator plays
    /// the person who picks a channel (`channel`, a simulator parameter; the workspace's canary
    /// channel without it) and clicks "Allow": a valid request is redirected to `redirect_uri`
    /// with a code.
    func oauthAuthorize(_ request: SimRequest) -> SimResponse {
        withWorld { world in
            let clientID = request.query["client_id"] ?? ""
            let configured = world.liveApp(clientID: clientID)?.manifest["oauth_config"]?["redirect_urls"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let redirect = request.query["redirect_uri"] ?? configured.first ?? ""
            switch world.authorize(clientID: clientID, redirectURI: redirect, channelID: request.query["channel"], person: "a simulated person") {
            case .failure(let failure):
                return SimResponse.text("<html><body><h1>Something went wrong when authorizing this app.</h1><p>\(failure.code): \(failure.message)</p></body></html>",
                                        status: 400, contentType: "text/html; charset=utf-8")
            case .success(let code):
                var location = redirect + (redirect.contains("?") ? "&" : "?") + "code=\(code)"
                if let state = request.query["state"] { location += "&state=\(state.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }
                return SimResponse.text("", status: 302, contentType: "text/html", headers: [("Location", location)])
            }
        }
    }

    /// A redirect URI is accepted when it is https, has no fragment, and equals a configured
    /// redirect URL or lies below it.
    static func redirectAllowed(_ uri: String, configured: [String]) -> Bool {
        guard uri.lowercased().hasPrefix("https://"), !uri.contains("#") else { return false }
        return configured.contains { base in
            let base = base.hasSuffix("/") ? String(base.dropLast()) : base
            return uri == base || uri.hasPrefix(base + "/") || uri.hasPrefix(base + "?")
        }
    }

    /// `oauth.v2.access`: exchanges the authorize page's code for a bot token and an incoming
    /// webhook. Client ID and secret in Basic auth (preferred) or the form.
    func oauthAccess(_ arguments: SlackArguments, request: SimRequest, world: inout World) -> SimResponse {
        var clientID = arguments.string("client_id")
        var clientSecret = arguments.string("client_secret")
        if let header = request.headers["authorization"], header.lowercased().hasPrefix("basic "),
           let decoded = Data(base64Encoded: String(header.dropFirst(6))).flatMap({ String(data: $0, encoding: .utf8) }) {
            let parts = decoded.split(separator: ":", maxSplits: 1).map(String.init)
            if parts.count == 2 { clientID = parts[0]; clientSecret = parts[1] }
        }
        switch world.exchange(clientID: clientID, clientSecret: clientSecret, code: arguments.string("code"), redirectURI: arguments.string("redirect_uri")) {
        case .failure(let failure):
            return Simulator.slackError(failure.code)
        case .success(let installed):
            let scopes = installed.app.manifest["oauth_config"]?["scopes"]?["bot"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let workspaceName = world.workspaces[installed.app.teamID]?.name ?? ""
            return Simulator.slackOK([
                "access_token": .string(installed.botToken), "token_type": "bot", "scope": .string(scopes.joined(separator: ",")),
                "bot_user_id": .string("U" + installed.app.botID.dropFirst()), "app_id": .string(installed.app.id),
                "team": ["id": .string(installed.app.teamID), "name": .string(installed.teamName)],
                "incoming_webhook": [
                    "channel": .string(installed.channelName),
                    "channel_id": .string(installed.channelID),
                    "configuration_url": .string("https://\(workspaceName).slack.com/services/\(installed.webhookPath.split(separator: "/")[1])"),
                    "url": .string("\(world.baseURL)/services/\(installed.webhookPath)"),
                ],
            ])
        }
    }

    /// `apps.uninstall` (Tier 1; client_id, client_secret, and a token of the installation;
    /// errors per docs.slack.dev/reference/methods/apps.uninstall): "revokes all
    /// tokens associated with a single installation" (slack-web-api.md, OAuth v2); the
    /// installation's incoming webhooks die with it.
    func uninstall(_ arguments: SlackArguments, world: inout World) -> SimResponse {
        guard let value = arguments.token, let token = world.tokens[value], !token.revoked else { return Simulator.slackError("invalid_auth") }
        guard let app = world.liveApp(clientID: arguments.string("client_id")) else {
            return Simulator.slackError("invalid_client_id")
        }
        guard arguments.string("client_secret") == app.clientSecret else { return Simulator.slackError("bad_client_secret") }
        guard token.appID == app.id else { return Simulator.slackError("client_id_token_mismatch") }
        world.apps[app.id]?.uninstalled = true
        for path in app.webhooks.keys { world.apps[app.id]?.webhooks[path]?.revoked = true }
        for (key, other) in world.tokens where other.appID == app.id && other.kind == .bot { world.tokens[key]?.revoked = true }
        world.mutations["slack:uninstall", default: []].insert(app.id)
        world.note(team: app.teamID, cause: "apps.uninstall of \(app.id)")
        return Simulator.slackOK()
    }

    /// `POST /services/T.../B.../X...`: an incoming webhook, answering in plain text as Slack does.
    func incomingWebhook(_ request: SimRequest, path segments: [String]) -> SimResponse {
        let path = segments.dropFirst().joined(separator: "/")
        return withWorld { world in
            guard request.method == "POST" else { return SimResponse.text("invalid_payload", status: 400) }
            guard let app = world.apps.values.first(where: { $0.webhooks[path] != nil }), let webhook = app.webhooks[path] else {
                return SimResponse.text("no_service", status: 404)
            }
            guard !app.deleted, !app.uninstalled, !webhook.revoked else { return SimResponse.text("no_active_hooks", status: 404) }
            if let storm = world.faults["workspace:\(app.teamID)"], storm.rateLimitStorm {
                return SimResponse.text("rate_limited", status: 429, headers: [("Retry-After", "30")])
            }
            guard let channel = world.workspaces[app.teamID]?.channels[webhook.channelID] else {
                return SimResponse.text("channel_not_found", status: 404)
            }
            if channel.archived { return SimResponse.text("channel_is_archived", status: 410) }
            guard case .object(let payload)? = try? JSONValue.parse(request.body) else {
                return SimResponse.text("invalid_payload", status: 400)
            }
            guard let text = payload["text"]?.stringValue, !text.isEmpty else { return SimResponse.text("no_text", status: 400) }
            world.post(text, teamID: app.teamID, channelID: webhook.channelID, by: app.botID, delay: 0, app: app)
            return SimResponse.text("ok", status: 200)
        }
    }
}
