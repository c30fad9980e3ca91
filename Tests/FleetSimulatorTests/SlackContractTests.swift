import FleetSimulator
import Foundation
import Testing

@Suite("fleet-sim: Slack Web API")
struct SlackContractTests {
    @Test("the envelope: errors are HTTP 200 with ok false and a code")
    func envelopeErrors() async throws {
        let sim = try SimHarness()
        let token = sim.workspace.configToken
        #expect(try await sim.slack("apps.nothing", token: token).json["error"] == "unknown_method")
        let missing = try await sim.slack("auth.test", token: nil)
        #expect(missing.status == 200)
        #expect(missing.json["ok"] == false)
        #expect(missing.json["error"] == "not_authed")
        #expect(try await sim.slack("auth.test", token: "xoxb-unknown").json["error"] == "invalid_auth")
        #expect(try await sim.slack("auth.test", token: nil, ["token": token]).json["ok"] == true, "the token argument works in a form body")
        _ = try await sim.control("POST", "tokens/revoke", ["token": .string(sim.fleet.workspaces[1].configToken)])
        #expect(try await sim.slack("auth.test", token: sim.fleet.workspaces[1].configToken).json["error"] == "token_revoked")
        #expect(try await sim.slack("apps.manifest.export", token: sim.workspace.botToken, ["app_id": "A1"]).json["error"] == "not_allowed_token_type")
        let wrongType = try await sim.send("POST", "/api/auth.test", headers: ["Content-Type": "text/plain", "Authorization": "Bearer \(token)"], body: Data("x".utf8))
        #expect(wrongType.json["error"] == "invalid_post_type")
        let latin1 = try await sim.send("POST", "/api/auth.test", headers: ["Content-Type": "application/x-www-form-urlencoded; charset=iso-8859-1", "Authorization": "Bearer \(token)"], body: Data())
        #expect(latin1.json["error"] == "invalid_charset")
    }

    @Test("header spellings: the Bearer scheme and content types in any case, spaces around the content type")
    func headerSpellings() async throws {
        let sim = try SimHarness()
        let token = sim.workspace.configToken
        for authorization in ["Bearer \(token)", "bearer \(token)", "BEARER \(token)"] {
            let reply = try await sim.send("POST", "/api/auth.test", headers: ["Content-Type": " Application/X-WWW-Form-URLEncoded ; Charset=UTF-8", "Authorization": authorization], body: Data())
            #expect(reply.json["ok"] == true, "\(authorization): \(reply.text)")
        }
        for authorization in ["Bearer\(token)", "Basic \(token)", "Bearer"] {
            let reply = try await sim.send("POST", "/api/auth.test", headers: ["Content-Type": "application/x-www-form-urlencoded", "Authorization": authorization], body: Data())
            #expect(reply.json["error"] == "not_authed", "\(authorization)")
        }
    }

    @Test("JSON bodies need the token in the Authorization header")
    func jsonBodyAuth() async throws {
        let sim = try SimHarness()
        let manifest = SimHarness.manifest(redirects: ["https://a.example.com"])
        let inBody = try await sim.slackJSON("apps.manifest.validate", token: nil, ["token": .string(sim.workspace.configToken), "manifest": manifest])
        #expect(inBody.json["error"] == "not_authed")
        let bearer = try await sim.slackJSON("apps.manifest.validate", token: sim.workspace.configToken, ["manifest": manifest])
        #expect(bearer.json["ok"] == true, "a manifest may be an object in a JSON body")
        let asString = try await sim.slackJSON("apps.manifest.validate", token: sim.workspace.configToken, ["manifest": .string(manifest.serialized)])
        #expect(asString.json["ok"] == true, "or a JSON string")
        #expect(asString.json["warning"] == nil, "charset given: no warning")
        let noCharset = try await sim.send("POST", "/api/auth.test", headers: ["Content-Type": "application/json", "Authorization": "Bearer \(sim.workspace.configToken)"], body: Data("{}".utf8))
        #expect(noCharset.json["warning"] == "missing_charset")
        #expect(noCharset.json["response_metadata"]?["warnings"] == ["missing_charset"])
    }

    @Test("create returns credentials once; export never does; the client id is text that looks like a number")
    func createAndExport() async throws {
        let sim = try SimHarness()
        let create = try await sim.slack("apps.manifest.create", token: sim.workspace.configToken,
                                         ["manifest": SimHarness.manifest(redirects: ["https://a.example.com"]).serialized])
        let json = create.json
        let appID = try #require(json["app_id"]?.stringValue)
        #expect(appID.hasPrefix("A"))
        let clientID = try #require(json["credentials"]?["client_id"]?.stringValue)
        #expect(clientID.range(of: #"^[0-9]+\.[0-9]+$"#, options: .regularExpression) != nil)
        #expect(create.text.contains("\"client_id\":\"\(clientID)\""), "serialised as a JSON string, not a number")
        for key in ["client_secret", "verification_token", "signing_secret"] { #expect(json["credentials"]?[key]?.stringValue?.isEmpty == false) }
        let export = try await sim.slack("apps.manifest.export", token: sim.workspace.configToken, ["app_id": appID])
        #expect(!export.text.contains("client_secret"))
        #expect(export.json["manifest"]?["_metadata"]?["major_version"] == 1, "export adds Slack's own metadata")
        #expect(export.json["manifest"]?["settings"]?["token_rotation_enabled"] == false, "and its defaults")
        #expect(try await sim.slack("apps.manifest.create", token: sim.workspace.configToken, ["manifest": "{}", "team_id": "TOTHER"]).json["error"] == "invalid_team_id")
    }

    @Test("update replaces the whole manifest and says when permissions changed")
    func updateReplaces() async throws {
        let sim = try SimHarness()
        let token = sim.workspace.configToken
        let (appID, _, _) = try await sim.createApp(for: [sim.fleet.instances[0]])
        var manifest = SimHarness.manifest(redirects: [sim.fleet.instances[0].hostURL])
        if case .object(var fields) = manifest {
            fields["display_information"] = ["name": "W&B alerts", "description": "set by a person"]
            manifest = .object(fields)
        }
        let described = try await sim.slack("apps.manifest.update", token: token, ["app_id": appID, "manifest": manifest.serialized])
        #expect(described.json["permissions_updated"] == false, "a description is not a permission")
        let bare = SimHarness.manifest(redirects: [sim.fleet.instances[0].hostURL, "https://new.example.com"])
        let changed = try await sim.slack("apps.manifest.update", token: token, ["app_id": appID, "manifest": bare.serialized])
        #expect(changed.json["permissions_updated"] == true, "redirect URLs are")
        let export = try await sim.slack("apps.manifest.export", token: token, ["app_id": appID])
        #expect(export.json["manifest"]?["display_information"]?["description"] == nil, "what the update left out is gone")
        #expect(try await sim.slack("apps.manifest.update", token: token, ["app_id": "ANOPE", "manifest": bare.serialized]).json["error"] == "app_not_found")
        let other = sim.fleet.workspaces[1].configToken
        #expect(try await sim.slack("apps.manifest.update", token: other, ["app_id": appID, "manifest": bare.serialized]).json["error"] == "no_permission")
    }

    @Test("invalid manifests are refused with each problem's pointer", arguments: [
        ("name too long", SimHarness.manifest(name: String(repeating: "x", count: 36), redirects: ["https://a.example.com"]), "/display_information/name"),
        ("duplicate redirect", SimHarness.manifest(redirects: ["https://a.example.com", "https://a.example.com"]), "/oauth_config/redirect_urls"),
        ("too many redirects", SimHarness.manifest(redirects: (0...1000).map { "https://r\($0).example.com" }), "/oauth_config/redirect_urls"),
        ("IPv6 range", SimHarness.manifest(redirects: ["https://a.example.com"], ranges: ["2001:db8::/32"]), "/settings/allowed_ip_address_ranges/0"),
        ("51 ranges", SimHarness.manifest(redirects: ["https://a.example.com"], ranges: (0...50).map { "203.0.\($0).0/24" }), "/settings/allowed_ip_address_ranges"),
        ("no display information", JSONValue.object(["oauth_config": ["scopes": ["bot": ["incoming-webhook"]]]]), ""),
    ])
    func invalidManifests(_ label: String, _ manifest: JSONValue, _ pointer: String) async throws {
        let sim = try SimHarness()
        for method in ["apps.manifest.validate", "apps.manifest.create"] {
            let reply = try await sim.slack(method, token: sim.workspace.configToken, ["manifest": manifest.serialized])
            #expect(reply.json["error"] == "invalid_manifest", "\(label) via \(method)")
            let pointers = reply.json["errors"]?.arrayValue?.compactMap { $0["pointer"]?.stringValue } ?? []
            #expect(pointers.contains(pointer), "\(label): \(pointers)")
        }
    }

    @Test("the IP range limit is a switch: 50 per the schema, 10 per Slack's settings page")
    func ipRangeSwitch() async throws {
        let sim = try SimHarness()
        let manifest = SimHarness.manifest(redirects: ["https://a.example.com"], ranges: (0..<11).map { "203.0.\($0).0/24" })
        #expect(try await sim.slack("apps.manifest.validate", token: sim.workspace.configToken, ["manifest": manifest.serialized]).json["ok"] == true)
        sim.simulator.configure { $0.maxIPRanges = 10 }
        #expect(try await sim.slack("apps.manifest.validate", token: sim.workspace.configToken, ["manifest": manifest.serialized]).json["error"] == "invalid_manifest")
    }

    @Test("delete removes the app for good")
    func delete() async throws {
        let sim = try SimHarness()
        let (appID, _, _) = try await sim.createApp(for: [sim.fleet.instances[0]])
        #expect(try await sim.slack("apps.manifest.delete", token: sim.workspace.configToken, ["app_id": appID]).json["ok"] == true)
        #expect(try await sim.slack("apps.manifest.export", token: sim.workspace.configToken, ["app_id": appID]).json["error"] == "app_not_found")
        #expect(try await sim.slack("apps.manifest.delete", token: sim.workspace.configToken, ["app_id": appID]).json["error"] == "app_not_found")
    }

    @Test("Tier 1 allows a small burst, then answers 429 with Retry-After, per workspace")
    func rateLimits() async throws {
        let sim = try SimHarness(slackQuotas: true)
        let manifest = SimHarness.manifest(redirects: ["https://a.example.com"]).serialized
        var statuses: [Int] = []
        for _ in 0..<3 { statuses.append(try await sim.slack("apps.manifest.create", token: sim.workspace.configToken, ["manifest": manifest]).status) }
        #expect(statuses == [200, 200, 429])
        let limited = try await sim.slack("apps.manifest.create", token: sim.workspace.configToken, ["manifest": manifest])
        #expect(limited.json["error"] == "ratelimited")
        #expect(Int(limited.headers["retry-after"] ?? "") ?? 0 >= 1)
        #expect(try await sim.slack("apps.manifest.create", token: sim.fleet.workspaces[1].configToken, ["manifest": manifest]).status == 200,
                "another workspace has its own quota")
        _ = try await sim.control("POST", "clock/advance", ["seconds": 60])
        #expect(try await sim.slack("apps.manifest.create", token: sim.workspace.configToken, ["manifest": manifest]).status == 200, "a minute later there is room again")
        let calls = try await sim.control("GET", "calls")
        #expect(calls["ratelimited"]?[sim.workspace.id] == 2)
    }

    @Test("configuration tokens expire 12 hours after issue; rotate issues a new pair and kills the old refresh token")
    func configurationTokens() async throws {
        let sim = try SimHarness()
        let rotated = try await sim.slack("tooling.tokens.rotate", token: nil, ["refresh_token": sim.workspace.refreshToken]).json
        let token = try #require(rotated["token"]?.stringValue)
        let refresh = try #require(rotated["refresh_token"]?.stringValue)
        #expect(token.hasPrefix("xoxe.xoxp-") && refresh.hasPrefix("xoxe-1-"))
        #expect((rotated["exp"]?.int64Value ?? 0) - (rotated["iat"]?.int64Value ?? 0) == 43_200)
        #expect(rotated["team_id"]?.stringValue == sim.workspace.id)
        #expect(try await sim.slack("tooling.tokens.rotate", token: nil, ["refresh_token": sim.workspace.refreshToken]).json["error"] == "invalid_refresh_token")
        #expect(try await sim.slack("auth.test", token: token).json["ok"] == true)
        _ = try await sim.control("POST", "clock/advance", ["seconds": 43_201])
        #expect(try await sim.slack("auth.test", token: token).json["error"] == "token_expired")
        sim.simulator.configure { $0.refreshTokenSingleUse = false }
        let again = try await sim.slack("tooling.tokens.rotate", token: nil, ["refresh_token": refresh]).json
        #expect(again["ok"] == true)
        #expect(try await sim.slack("tooling.tokens.rotate", token: nil, ["refresh_token": refresh]).json["ok"] == true,
                "with the switch off a refresh token can be used again")
    }

    @Test("OAuth authorize accepts a redirect_uri equal to or below a configured URL, and nothing else")
    func oauthRedirects() async throws {
        let sim = try SimHarness()
        let instance = sim.fleet.instances[0]
        let (_, clientID, clientSecret) = try await sim.createApp(for: [instance])
        func authorize(_ redirect: String) async throws -> SimHarness.Reply {
            let encoded = redirect.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            return try await sim.send("GET", "/oauth/v2/authorize?client_id=\(clientID)&scope=incoming-webhook&state=s1&redirect_uri=\(encoded)",
                                      followRedirects: false)
        }
        for accepted in [instance.hostURL, instance.hostURL + "/oauth2/slack/callback"] {
            let reply = try await authorize(accepted)
            #expect(reply.status == 302, "\(accepted)")
            #expect(reply.headers["location"]?.hasPrefix(accepted + "?code=") == true)
            #expect(reply.headers["location"]?.hasSuffix("&state=s1") == true)
        }
        for refused in ["https://evil.example.com/cb", instance.hostURL.replacingOccurrences(of: "https", with: "http"), instance.hostURL + "evil", instance.hostURL + "/#x"] {
            let reply = try await authorize(refused)
            #expect(reply.status == 400, "\(refused)")
            #expect(reply.text.contains("bad_redirect_uri"))
        }
        let unknown = try await sim.send("GET", "/oauth/v2/authorize?client_id=1.2&redirect_uri=x")
        #expect(unknown.text.contains("invalid_client_id"))
        let access = try await sim.slack("oauth.v2.access", token: nil, ["client_id": clientID, "client_secret": "wrong", "code": "x"])
        #expect(access.json["error"] == "bad_client_secret")
        #expect(try await sim.slack("oauth.v2.access", token: nil, ["client_id": clientID, "client_secret": clientSecret, "code": "nope"]).json["error"] == "invalid_code")

        // The whole install: the code becomes a bot token and an incoming webhook that posts to the channel.
        let location = try #require(try await authorize(instance.hostURL).headers["location"])
        let code = try #require(URLComponents(string: location)?.queryItems?.first { $0.name == "code" }?.value)
        let installed = try await sim.slack("oauth.v2.access", token: nil, ["client_id": clientID, "client_secret": clientSecret, "code": code]).json
        let webhook = try #require(installed["incoming_webhook"]?["url"]?.stringValue)
        #expect(installed["incoming_webhook"]?["channel_id"]?.stringValue == sim.workspace.canaryChannel)
        #expect(try await sim.slack("oauth.v2.access", token: nil, ["client_id": clientID, "client_secret": clientSecret, "code": code]).json["error"] == "invalid_code",
                "a code is single use")
        let path = String(webhook.dropFirst(sim.baseURL.count))
        let posted = try await sim.send("POST", path, headers: ["Content-Type": "application/json"], body: Data(#"{"text":"hello from a webhook"}"#.utf8))
        #expect(posted.status == 200)
        #expect(posted.text == "ok")
        let messages = try await sim.control("GET", "channels/\(sim.workspace.id)")
        #expect(messages.arrayValue?.contains { $0["text"] == "hello from a webhook" } == true)
        #expect(try await sim.send("POST", path, headers: ["Content-Type": "application/json"], body: Data(#"{"blocks":[]}"#.utf8)).text == "no_text")
        #expect(try await sim.send("POST", path, body: Data("not json".utf8)).status == 400)
        let unknownHook = try await sim.send("POST", "/services/T1/B1/X1", body: Data(#"{"text":"x"}"#.utf8))
        #expect(unknownHook.status == 404)
        #expect(unknownHook.text == "no_service")
        _ = try await sim.control("POST", "channels/\(sim.workspace.id)/archive", ["archived": true])
        let archived = try await sim.send("POST", path, body: Data(#"{"text":"x"}"#.utf8))
        #expect(archived.status == 410)
        #expect(archived.text == "channel_is_archived")
    }

    @Test("an app's IP allow-list applies to Web API calls made with its tokens")
    func ipAllowList() async throws {
        let sim = try SimHarness()
        let instance = sim.fleet.instances[0]
        let manifest = SimHarness.manifest(redirects: [instance.hostURL], scopes: ["incoming-webhook", "chat:write"], ranges: ["203.0.113.0/24"])
        let created = try await sim.slack("apps.manifest.create", token: sim.workspace.configToken, ["manifest": manifest.serialized]).json
        let clientID = try #require(created["credentials"]?["client_id"]?.stringValue)
        let secret = try #require(created["credentials"]?["client_secret"]?.stringValue)
        let location = try #require(try await sim.send("GET", "/oauth/v2/authorize?client_id=\(clientID)&redirect_uri=\(instance.hostURL)", followRedirects: false).headers["location"])
        let code = try #require(URLComponents(string: location)?.queryItems?.first { $0.name == "code" }?.value)
        let bot = try #require(try await sim.slack("oauth.v2.access", token: nil, ["client_id": clientID, "client_secret": secret, "code": code]).json["access_token"]?.stringValue)
        #expect(try await sim.slack("auth.test", token: bot).json["error"] == "invalid_auth", "calls from outside the list are refused")
        _ = try await sim.control("POST", "config", ["egress_ip": "203.0.113.9"])
        #expect(try await sim.slack("auth.test", token: bot).json["ok"] == true)
    }

    @Test("auth.test, chat.postMessage and conversations.history with oldest, limit and cursor")
    func messages() async throws {
        let sim = try SimHarness()
        let bot = sim.workspace.botToken
        let channel = sim.workspace.canaryChannel
        let auth = try await sim.slack("auth.test", token: bot).json
        #expect(auth["team_id"]?.stringValue == sim.workspace.id)
        #expect(auth["bot_id"]?.stringValue?.isEmpty == false)
        var stamps: [String] = []
        for index in 0..<5 {
            stamps.append(try #require(try await sim.slack("chat.postMessage", token: bot, ["channel": channel, "text": "message \(index)"]).json["ts"]?.stringValue))
        }
        let page = try await sim.slack("conversations.history", token: bot, ["channel": channel, "limit": "2"]).json
        #expect(page["messages"]?.arrayValue?.compactMap { $0["text"]?.stringValue } == ["message 4", "message 3"], "newest first")
        #expect(page["has_more"] == true)
        let cursor = try #require(page["response_metadata"]?["next_cursor"]?.stringValue)
        let next = try await sim.slack("conversations.history", token: bot, ["channel": channel, "limit": "2", "cursor": cursor]).json
        #expect(next["messages"]?.arrayValue?.compactMap { $0["text"]?.stringValue } == ["message 2", "message 1"])
        let recent = try await sim.slack("conversations.history", token: bot, ["channel": channel, "oldest": stamps[2]]).json
        #expect(recent["messages"]?.arrayValue?.count == 2, "oldest is exclusive")
        #expect(try await sim.slack("conversations.history", token: bot, ["channel": "CNOPE"]).json["error"] == "channel_not_found")
        #expect(try await sim.slack("conversations.history", token: sim.workspace.configToken, ["channel": channel]).json["error"] == "not_allowed_token_type")
    }

    @Test("a storm of 429s hits one workspace only")
    func storm() async throws {
        let sim = try SimHarness()
        _ = try await sim.control("POST", "faults", ["target": .string("workspace:\(sim.workspace.id)"), "ratelimit_storm": true])
        let stormy = try await sim.slack("auth.test", token: sim.workspace.configToken)
        #expect(stormy.status == 429)
        #expect(stormy.headers["retry-after"] != nil)
        #expect(try await sim.slack("auth.test", token: sim.fleet.workspaces[1].configToken).status == 200)
    }

    @Test("a person's edit in the Slack UI shows in the export")
    func personEdit() async throws {
        let sim = try SimHarness()
        let (appID, _, _) = try await sim.createApp(for: [sim.fleet.instances[0]])
        let edit = try await sim.control("POST", "apps/\(appID)/edit", ["pointer": "/display_information/description", "value": "hand-made"])
        #expect(edit["ok"] == true)
        let export = try await sim.slack("apps.manifest.export", token: sim.workspace.configToken, ["app_id": appID])
        #expect(export.json["manifest"]?["display_information"]?["description"] == "hand-made")
    }
}
