import Foundation

extension Simulator {
    /// `GET /oauth/v2/authorize`: the page a person opens to install an app. The simulator plays
    /// the person who clicks "Allow": a valid request is redirected to `redirect_uri` with a code.
    func oauthAuthorize(_ request: SimRequest) -> SimResponse {
        withWorld { world in
            guard let clientID = request.query["client_id"],
                  let app = world.apps.values.first(where: { $0.clientID == clientID && !$0.deleted }) else {
                return SimResponse.text("<html><body><h1>Something went wrong</h1><p>invalid_client_id</p></body></html>", status: 400, contentType: "text/html; charset=utf-8")
            }
            let configured = app.manifest["oauth_config"]?["redirect_urls"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let redirect = request.query["redirect_uri"] ?? configured.first ?? ""
            guard Simulator.redirectAllowed(redirect, configured: configured) else {
                return SimResponse.text("<html><body><h1>Something went wrong when authorizing this app.</h1><p>bad_redirect_uri: redirect_uri did not match any configured URIs. Passed URI: \(redirect)</p></body></html>",
                                        status: 400, contentType: "text/html; charset=utf-8")
            }
            let code = "\(world.identifier("", length: 12)).\(world.hex(8))"
            world.oauthCodes[code] = (app.id, redirect, world.now + 600)
            var location = redirect + (redirect.contains("?") ? "&" : "?") + "code=\(code)"
            if let state = request.query["state"] { location += "&state=\(state.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }
            return SimResponse.text("", status: 302, contentType: "text/html", headers: [("Location", location)])
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

    /// `oauth.v2.access`: exchanges the authorize page's code for a bot token and an incoming webhook.
    func oauthAccess(_ arguments: SlackArguments, request: SimRequest, world: inout World) -> SimResponse {
        var clientID = arguments.string("client_id")
        var clientSecret = arguments.string("client_secret")
        if let header = request.headers["authorization"], header.lowercased().hasPrefix("basic "),
           let decoded = Data(base64Encoded: String(header.dropFirst(6))).flatMap({ String(data: $0, encoding: .utf8) }) {
            let parts = decoded.split(separator: ":", maxSplits: 1).map(String.init)
            if parts.count == 2 { clientID = parts[0]; clientSecret = parts[1] }
        }
        guard let clientID, let app = world.apps.values.first(where: { $0.clientID == clientID && !$0.deleted }) else {
            return Simulator.slackError("invalid_client_id")
        }
        guard clientSecret == app.clientSecret else { return Simulator.slackError("bad_client_secret") }
        guard let code = arguments.string("code"), let issued = world.oauthCodes.removeValue(forKey: code),
              issued.appID == app.id, issued.expiresAt > world.now else { return Simulator.slackError("invalid_code") }
        if let redirect = arguments.string("redirect_uri"), redirect != issued.redirectURI { return Simulator.slackError("bad_redirect_uri") }
        guard let workspace = world.workspaces[app.teamID] else { return Simulator.slackError("invalid_team") }
        let scopes = app.manifest["oauth_config"]?["scopes"]?["bot"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let botToken = "xoxb-" + world.hex(20)
        world.tokens[botToken] = SimToken(value: botToken, kind: .bot, teamID: app.teamID, userID: workspace.userID, appID: app.id,
                                          issuedAt: world.now, scopes: Set(scopes))
        var fields: [String: JSONValue] = [
            "access_token": .string(botToken), "token_type": "bot", "scope": .string(scopes.joined(separator: ",")),
            "bot_user_id": .string(world.identifier("U")), "app_id": .string(app.id),
            "team": ["id": .string(workspace.id), "name": .string(workspace.name)],
        ]
        if scopes.contains("incoming-webhook") {
            let path = "\(workspace.id)/\(world.identifier("B"))/\(world.hex(12))"
            world.apps[app.id]?.webhooks[path] = workspace.canaryChannelID
            fields["incoming_webhook"] = [
                "channel": .string("#" + (workspace.channels[workspace.canaryChannelID]?.name ?? "alerts")),
                "channel_id": .string(workspace.canaryChannelID),
                "configuration_url": .string("https://\(workspace.name).slack.com/services/\(path.split(separator: "/")[1])"),
                "url": .string("\(world.baseURL)/services/\(path)"),
            ]
        }
        return Simulator.slackOK(fields)
    }

    /// `POST /services/T.../B.../X...`: an incoming webhook, answering in plain text as Slack does.
    func incomingWebhook(_ request: SimRequest, path segments: [String]) -> SimResponse {
        let path = segments.dropFirst().joined(separator: "/")
        return withWorld { world in
            guard request.method == "POST" else { return SimResponse.text("invalid_payload", status: 400) }
            guard let app = world.apps.values.first(where: { $0.webhooks[path] != nil }) else {
                return SimResponse.text("no_service", status: 404)
            }
            guard !app.deleted else { return SimResponse.text("no_active_hooks", status: 404) }
            if let storm = world.faults["workspace:\(app.teamID)"], storm.rateLimitStorm {
                return SimResponse.text("rate_limited", status: 429, headers: [("Retry-After", "30")])
            }
            guard let channelID = app.webhooks[path], let channel = world.workspaces[app.teamID]?.channels[channelID] else {
                return SimResponse.text("channel_not_found", status: 404)
            }
            if channel.archived { return SimResponse.text("channel_is_archived", status: 410) }
            guard case .object(let payload)? = try? JSONValue.parse(request.body) else {
                return SimResponse.text("invalid_payload", status: 400)
            }
            guard let text = payload["text"]?.stringValue, !text.isEmpty else { return SimResponse.text("no_text", status: 400) }
            world.post(text, teamID: app.teamID, channelID: channelID, by: "webhook", delay: 0)
            return SimResponse.text("ok", status: 200)
        }
    }
}
