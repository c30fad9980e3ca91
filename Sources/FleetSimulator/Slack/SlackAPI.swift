import Foundation

/// Slack's Web API, as ../shared/reference/slack-web-api.md describes it.
extension Simulator {
    static let methodTiers: [String: SlackTier] = [
        "apps.manifest.create": .tier1, "apps.manifest.update": .tier1, "apps.manifest.delete": .tier1,
        "apps.manifest.export": .tier3, "apps.manifest.validate": .tier3,
        "tooling.tokens.rotate": .special, "auth.test": .special,
        "conversations.history": .tier3, "chat.postMessage": .special, "oauth.v2.access": .tier4,
        // docs.slack.dev/reference/methods/apps.uninstall, bots.info, conversations.info
        "apps.uninstall": .tier1, "bots.info": .tier3, "conversations.info": .tier3,
    ]

    /// The envelope of a failure: HTTP 200, `ok: false`.
    static func slackError(_ code: String, _ extra: [String: JSONValue] = [:]) -> SimResponse {
        var body = extra
        body["ok"] = false
        body["error"] = .string(code)
        return .json(.object(body))
    }

    static func slackOK(_ fields: [String: JSONValue] = [:]) -> SimResponse {
        var body = fields
        body["ok"] = true
        return .json(.object(body))
    }

    func slackMethod(_ method: String, request: SimRequest) -> SimResponse {
        guard let tier = Simulator.methodTiers[method] else { return Simulator.slackError("unknown_method") }
        let arguments: SlackArguments
        switch SlackArguments.parse(request) {
        case .success(let parsed): arguments = parsed
        case .failure(let error): return Simulator.slackError(error.code)
        }
        let response = answer(method, tier: tier, arguments: arguments, request: request)
        // Slack warns, on success, when a JSON body does not say its charset.
        guard request.mediaType == "application/json", request.charset == nil,
              case .object(var body)? = try? JSONValue.parse(response.body), body["ok"] == true else { return response }
        body["warning"] = "missing_charset"
        body["response_metadata"] = ["warnings": ["missing_charset"]]
        var warned = SimResponse.json(.object(body), status: response.status, headers: response.headers.filter { $0.0 != "Content-Type" })
        warned.delay = response.delay
        return warned
    }

    private func answer(_ method: String, tier: SlackTier, arguments: SlackArguments, request: SimRequest) -> SimResponse {
        withWorld { world in
            // Methods that authenticate with something other than a token.
            if method == "tooling.tokens.rotate" { return rotateTokens(arguments, tier: tier, world: &world) }
            if method == "oauth.v2.access" {
                // Limited like every method, per workspace: the app's, when the client ID names one.
                let clientID = arguments.string("client_id") ?? Simulator.basicUser(request)
                if let app = world.liveApp(clientID: clientID),
                   let wait = world.rateLimiter.take(team: app.teamID, method: method, tier: tier, now: world.now, config: world.config) {
                    return Simulator.rateLimited(retryAfter: wait)
                }
                return oauthAccess(arguments, request: request, world: &world)
            }

            guard let value = arguments.token else { return Simulator.slackError("not_authed") }
            guard let token = world.tokens[value] else { return Simulator.slackError("invalid_auth") }
            if token.revoked { return Simulator.slackError("token_revoked") }
            if let expiresAt = token.expiresAt, world.now >= expiresAt { return Simulator.slackError("token_expired") }
            if let appID = token.appID, let app = world.apps[appID], !Simulator.ipAllowed(world.config.egressIP, app: app) {
                return Simulator.slackError("invalid_auth")
            }
            if let storm = world.faults["workspace:\(token.teamID)"], storm.rateLimitStorm {
                return Simulator.rateLimited(retryAfter: world.config.stormRetryAfter)
            }
            if let wait = world.rateLimiter.take(team: token.teamID, method: method, tier: tier, now: world.now, config: world.config) {
                return Simulator.rateLimited(retryAfter: wait)
            }
            switch method {
            case "auth.test":
                var fields: [String: JSONValue] = [
                    "url": .string("https://\(world.workspaces[token.teamID]?.name ?? "workspace").slack.com/"),
                    "team": .string(world.workspaces[token.teamID]?.name ?? ""), "user": token.kind == .bot ? "canary-reader" : "fleet-admin",
                    "team_id": .string(token.teamID), "user_id": .string(token.userID),
                ]
                if token.kind == .bot, let appID = token.appID { fields["bot_id"] = .string("B" + appID.dropFirst()) }
                return Simulator.slackOK(fields)
            case "apps.uninstall":
                return uninstall(arguments, world: &world)
            case "conversations.history", "chat.postMessage", "conversations.info", "bots.info":
                guard token.kind == .bot || token.kind == .user else { return Simulator.slackError("not_allowed_token_type") }
                // Scopes per method (docs.slack.dev/reference/methods/*): a private channel is read
                // with groups:history / groups:read, a public one with channels:history / channels:read.
                let channel = arguments.string("channel").flatMap { world.workspaces[token.teamID]?.channels[$0] }
                let scope: String
                switch method {
                case "chat.postMessage": scope = "chat:write"
                case "bots.info": scope = "users:read"
                case "conversations.info": scope = channel?.isPrivate == true ? "groups:read" : "channels:read"
                default: scope = channel?.isPrivate == true ? "groups:history" : "channels:history"
                }
                // A private channel is invisible to a bot that is not in it: Slack answers as if it
                // did not exist.
                if method != "bots.info", token.kind == .bot, let channel, channel.isPrivate, !channel.members.contains(token.userID) {
                    return Simulator.slackError("channel_not_found")
                }
                guard token.scopes.contains(scope) else { return Simulator.slackError("missing_scope", ["needed": .string(scope)]) }
                switch method {
                case "chat.postMessage": return postMessage(arguments, teamID: token.teamID, world: &world)
                case "bots.info": return botInfo(arguments, teamID: token.teamID, world: world)
                case "conversations.info": return conversationInfo(arguments, token: token, world: world)
                default:
                    // A bot token reads "any conversation the relevant bot is a member of"; for a
                    // public one it is not in, Slack answers not_in_channel
                    // (docs.slack.dev/reference/methods/conversations.history, errors).
                    if token.kind == .bot, let channel, !channel.members.contains(token.userID) { return Simulator.slackError("not_in_channel") }
                    return history(arguments, teamID: token.teamID, world: &world)
                }
            default:
                guard token.kind == .configuration else { return Simulator.slackError("not_allowed_token_type") }
                return manifestMethod(method, arguments, token: token, world: &world)
            }
        }
    }

    /// The user of a Basic Authorization header (oauth.v2.access takes the client ID there).
    static func basicUser(_ request: SimRequest) -> String? {
        guard let header = request.headers["authorization"], header.lowercased().hasPrefix("basic "),
              let decoded = Data(base64Encoded: String(header.dropFirst(6))).flatMap({ String(data: $0, encoding: .utf8) }) else { return nil }
        return decoded.split(separator: ":", maxSplits: 1).first.map(String.init)
    }

    static func rateLimited(retryAfter seconds: Double) -> SimResponse {
        var response = slackError("ratelimited")
        response.status = 429
        response.headers.append(("Retry-After", String(max(1, Int(seconds.rounded(.up))))))
        return response
    }

    static func ipAllowed(_ address: String, app: SimApp) -> Bool {
        let ranges = app.manifest["settings"]?["allowed_ip_address_ranges"]?.arrayValue?.compactMap(\.stringValue) ?? []
        guard !ranges.isEmpty else { return true }
        return ranges.contains { IPv4Range($0)?.contains(address) == true }
    }

    // MARK: apps.manifest.*

    private func manifestMethod(_ method: String, _ arguments: SlackArguments, token: SimToken, world: inout World) -> SimResponse {
        switch method {
        case "apps.manifest.create":
            if let team = arguments.string("team_id"), team != token.teamID { return Simulator.slackError("invalid_team_id") }
            let manifest: JSONValue
            switch validatedManifest(arguments, previous: nil, config: world.config) {
            case .success(let value): manifest = value
            case .failure(let failure): return failure.response
            }
            let app = SimApp(id: world.identifier("A"), teamID: token.teamID, manifest: manifest, clientID: world.clientID(),
                             clientSecret: world.hex(16), signingSecret: world.hex(16), verificationToken: world.identifier("", length: 24),
                             createdAt: world.now)
            world.apps[app.id] = app
            world.mutations["slack:create", default: []].insert(app.id)
            let scopes = manifest["oauth_config"]?["scopes"]?["bot"]?.arrayValue?.compactMap(\.stringValue).joined(separator: ",") ?? ""
            return Simulator.slackOK([
                "app_id": .string(app.id),
                "credentials": ["client_id": .string(app.clientID), "client_secret": .string(app.clientSecret),
                                "verification_token": .string(app.verificationToken), "signing_secret": .string(app.signingSecret)],
                "oauth_authorize_url": .string("\(world.baseURL)/oauth/v2/authorize?client_id=\(app.clientID)&scope=\(scopes)"),
            ])
        case "apps.manifest.update":
            guard let appID = arguments.string("app_id") else { return Simulator.slackError("invalid_app_id") }
            guard let app = world.apps[appID], !app.deleted else { return Simulator.slackError("app_not_found") }
            guard app.teamID == token.teamID else { return Simulator.slackError("no_permission") }
            let manifest: JSONValue
            switch validatedManifest(arguments, previous: app.manifest, config: world.config) {
            case .success(let value): manifest = value
            case .failure(let failure): return failure.response
            }
            let permissionsUpdated = Simulator.permissionFields(app.manifest) != Simulator.permissionFields(manifest)
            world.apps[appID]?.manifest = manifest
            world.mutations["slack:update", default: []].insert(appID)
            world.note(team: token.teamID, cause: "apps.manifest.update of \(appID)")
            return Simulator.slackOK(["app_id": .string(appID), "permissions_updated": .bool(permissionsUpdated)])
        case "apps.manifest.export":
            guard let appID = arguments.string("app_id") else { return Simulator.slackError("invalid_app_id") }
            guard let app = world.apps[appID], !app.deleted, app.teamID == token.teamID else { return Simulator.slackError("app_not_found") }
            return Simulator.slackOK(["manifest": Simulator.exported(app.manifest)])
        case "apps.manifest.validate":
            var previous: JSONValue?
            if let appID = arguments.string("app_id") {
                guard let app = world.apps[appID], !app.deleted, app.teamID == token.teamID else { return Simulator.slackError("app_not_found") }
                previous = app.manifest
            }
            switch validatedManifest(arguments, previous: previous, config: world.config) {
            case .success: return Simulator.slackOK(["errors": []])
            case .failure(let failure): return failure.response
            }
        case "apps.manifest.delete":
            guard let appID = arguments.string("app_id") else { return Simulator.slackError("invalid_app_id") }
            guard let app = world.apps[appID], !app.deleted, app.teamID == token.teamID else { return Simulator.slackError("app_not_found") }
            world.apps[appID]?.deleted = true
            world.mutations["slack:delete", default: []].insert(appID)
            world.note(team: token.teamID, cause: "apps.manifest.delete of \(appID)")
            return Simulator.slackOK()
        default:
            return Simulator.slackError("unknown_method")
        }
    }

    /// The manifest argument, parsed and checked against Slack's schema and the server-side rules.
    private func validatedManifest(_ arguments: SlackArguments, previous: JSONValue?, config: SimConfig) -> Result<JSONValue, SlackFailure> {
        guard let raw = arguments.value("manifest") else { return .failure(SlackFailure(Simulator.slackError("invalid_arguments"))) }
        let manifest: JSONValue
        var violations: [JSONSchema.Violation]
        if case .string(let text) = raw {
            if let known = manifestVerdicts.verdict(text) {
                (manifest, violations) = known
            } else {
                guard let parsed = try? JSONValue.parse(text) else {
                    return .failure(SlackFailure(Simulator.invalidManifest([JSONSchema.Violation(message: "the manifest is not valid JSON", pointer: "/")])))
                }
                manifest = parsed
                violations = manifestSchema.validate(parsed)
                manifestVerdicts.remember(text, manifest: parsed, violations: violations)
            }
        } else {
            manifest = raw
            violations = manifestSchema.validate(manifest)
        }
        let ranges = manifest["settings"]?["allowed_ip_address_ranges"]?.arrayValue?.count ?? 0
        if ranges > config.maxIPRanges {
            violations.append(JSONSchema.Violation(message: "must have at most \(config.maxIPRanges) items", pointer: "/settings/allowed_ip_address_ranges"))
        }
        if previous?["oauth_config"]?["token_management_enabled"] == .bool(true), manifest["oauth_config"]?["token_management_enabled"] != .bool(true) {
            violations.append(JSONSchema.Violation(message: "token management cannot be turned off once it is on", pointer: "/oauth_config/token_management_enabled"))
        }
        return violations.isEmpty ? .success(manifest) : .failure(SlackFailure(Simulator.invalidManifest(violations)))
    }

    static func invalidManifest(_ violations: [JSONSchema.Violation]) -> SimResponse {
        slackError("invalid_manifest", ["errors": .array(violations.map { ["message": .string($0.message), "pointer": .string($0.pointer)] })])
    }

    /// What `permissions_updated` watches: scopes, redirect URLs, PKCE, token management.
    static func permissionFields(_ manifest: JSONValue) -> [JSONValue?] {
        let oauth = manifest["oauth_config"]
        return [oauth?["scopes"], oauth?["redirect_urls"], oauth?["pkce_enabled"], oauth?["token_management_enabled"]]
    }

    /// A manifest as export returns it: with Slack's own metadata and defaults added.
    static func exported(_ manifest: JSONValue) -> JSONValue {
        guard case .object(var fields) = manifest else { return manifest }
        fields["_metadata"] = ["major_version": 1, "minor_version": 1]
        var settings = fields["settings"]?.objectValue ?? [:]
        for key in ["org_deploy_enabled", "socket_mode_enabled", "token_rotation_enabled"] where settings[key] == nil {
            settings[key] = false
        }
        fields["settings"] = .object(settings)
        return .object(fields)
    }

    // MARK: tooling.tokens.rotate

    private func rotateTokens(_ arguments: SlackArguments, tier: SlackTier, world: inout World) -> SimResponse {
        guard let value = arguments.string("refresh_token") else { return Simulator.slackError("invalid_arguments") }
        guard let refresh = world.tokens[value], refresh.kind == .refresh, !refresh.revoked else {
            return Simulator.slackError("invalid_refresh_token")
        }
        if let wait = world.rateLimiter.take(team: refresh.teamID, method: "tooling.tokens.rotate", tier: tier, now: world.now, config: world.config) {
            return Simulator.rateLimited(retryAfter: wait)
        }
        if world.config.refreshTokenSingleUse { world.tokens[value]?.revoked = true }
        let pair = world.issueConfigurationTokens(teamID: refresh.teamID, userID: refresh.userID)
        let issued = world.tokens[pair.token]
        return Simulator.slackOK([
            "token": .string(pair.token), "refresh_token": .string(pair.refresh),
            "team_id": .string(refresh.teamID), "user_id": .string(refresh.userID),
            "iat": .integer(Int64(issued?.issuedAt ?? 0)), "exp": .integer(Int64(issued?.expiresAt ?? 0)),
        ])
    }

    // MARK: Messages

    private func postMessage(_ arguments: SlackArguments, teamID: String, world: inout World) -> SimResponse {
        guard let channelID = arguments.string("channel") else { return Simulator.slackError("channel_not_found") }
        guard let channel = world.workspaces[teamID]?.channels[channelID] else { return Simulator.slackError("channel_not_found") }
        if channel.archived { return Simulator.slackError("is_archived") }
        guard let text = arguments.string("text"), !text.isEmpty else { return Simulator.slackError("no_text") }
        let message = world.post(text, teamID: teamID, channelID: channelID, by: "bot", delay: 0)
        return Simulator.slackOK(["channel": .string(channelID), "ts": .string(message.ts), "message": ["type": "message", "text": .string(text), "ts": .string(message.ts)]])
    }

    /// `bots.info`: the app a bot belongs to (`bot.app_id`), as docs.slack.dev describes it.
    private func botInfo(_ arguments: SlackArguments, teamID: String, world: World) -> SimResponse {
        guard let botID = arguments.string("bot"), let app = world.apps.values.first(where: { $0.botID == botID && $0.teamID == teamID }) else {
            return Simulator.slackError("bot_not_found")
        }
        return Simulator.slackOK(["bot": ["id": .string(botID), "app_id": .string(app.id), "deleted": .bool(app.deleted),
                                          "name": .string(app.manifest["display_information"]?["name"]?.stringValue ?? ""),
                                          "updated": .integer(Int64(app.createdAt))]])
    }

    /// `conversations.info`: a channel's name and whether it is private or archived.
    /// `conversations.info`: the channel, with `is_member` for the calling user (the bot).
    private func conversationInfo(_ arguments: SlackArguments, token: SimToken, world: World) -> SimResponse {
        guard let channelID = arguments.string("channel"), let channel = world.workspaces[token.teamID]?.channels[channelID] else {
            return Simulator.slackError("channel_not_found")
        }
        return Simulator.slackOK(["channel": ["id": .string(channel.id), "name": .string(channel.name), "is_channel": .bool(!channel.isPrivate),
                                              "is_private": .bool(channel.isPrivate), "is_archived": .bool(channel.archived),
                                              "is_member": .bool(channel.members.contains(token.userID))]])
    }

    private func history(_ arguments: SlackArguments, teamID: String, world: inout World) -> SimResponse {
        guard let channelID = arguments.string("channel"), let channel = world.workspaces[teamID]?.channels[channelID] else {
            return Simulator.slackError("channel_not_found")
        }
        let now = world.now
        let oldest = arguments.string("oldest").flatMap(Double.init) ?? 0
        let latest = arguments.string("latest").flatMap(Double.init) ?? .infinity
        let limit = min(max(Int(arguments.string("limit") ?? "") ?? 100, 1), 999)
        var visible = channel.messages.filter { message in
            let ts = Double(message.ts) ?? 0
            return message.visibleAt <= now && ts > oldest && ts <= latest
        }
        visible.reverse()
        // The cursor holds the ts of the last message served: the next page goes on from there,
        // whatever arrived meanwhile (the messages are newest first).
        if let cursor = arguments.string("cursor"), !cursor.isEmpty {
            guard let decoded = Data(base64Encoded: cursor).flatMap({ String(data: $0, encoding: .utf8) }),
                  decoded.hasPrefix("before:"), let before = Double(decoded.dropFirst(7)) else { return Simulator.slackError("invalid_cursor") }
            visible = visible.filter { (Double($0.ts) ?? 0) < before }
        }
        // Short pages: fewer than asked, though more remain (a switch; see Faults.shortPages).
        let cap = [world.faults["all"], world.faults["workspace:\(teamID)"]].compactMap { $0?.shortPages }.filter { $0 > 0 }.min()
        let size = cap.map { cap in min(limit, max(1, cap / 2 + Int(world.random.next() % UInt64(cap - cap / 2 + 1)))) } ?? limit
        let page = Array(visible.prefix(size))
        world.historyServed["\(teamID)/\(channelID)", default: 0] += page.count
        let hasMore = page.count < visible.count
        let next = hasMore ? Data("before:\(page.last?.ts ?? "0")".utf8).base64EncodedString() : ""
        return Simulator.slackOK([
            "messages": .array(page.map { message in
                var fields: [String: JSONValue] = ["type": "message", "ts": .string(message.ts), "text": .string(message.text)]
                if let botID = message.botID {
                    // An app's post: `subtype: bot_message` with `bot_id` (bot_message event docs);
                    // `app_id` only when the switch says Slack adds it.
                    fields["subtype"] = "bot_message"
                    fields["bot_id"] = .string(botID)
                    if world.config.messageAppID, let appID = message.appID { fields["app_id"] = .string(appID) }
                } else {
                    fields["user"] = .string(message.sentBy)
                }
                return .object(fields)
            }),
            "has_more": .bool(hasMore),
            "response_metadata": ["next_cursor": .string(next)],
        ])
    }
}

extension World {
    /// Issues a configuration token (12 hours) and its refresh token.
    mutating func issueConfigurationTokens(teamID: String, userID: String) -> (token: String, refresh: String) {
        let token = "xoxe.xoxp-1-" + hex(24)
        let refresh = "xoxe-1-" + hex(24)
        let now = self.now
        tokens[token] = SimToken(value: token, kind: .configuration, teamID: teamID, userID: userID, issuedAt: now,
                                 expiresAt: now + config.configTokenLifetime, scopes: ["app_configurations:write", "app_configurations:read"])
        tokens[refresh] = SimToken(value: refresh, kind: .refresh, teamID: teamID, userID: userID, issuedAt: now, scopes: [])
        return (token, refresh)
    }

    /// Posts a message that reaches Slack after `delay` real seconds (the sender's own delay, such
    /// as W&B's alert pipeline): Slack stamps `ts` when it takes the message, so a message is in
    /// the history from its `ts` on, in `ts` order. `app`: the app whose incoming webhook posts
    /// it (a `bot_message` of the app's bot).
    @discardableResult
    mutating func post(_ text: String, teamID: String, channelID: String, by sender: String, delay: Double, app: SimApp? = nil) -> SimMessage {
        sequence += 1
        let arrives = now + delay * config.timeScale
        // Slack's ts is its wall clock, which the simulated clock (fast, for quotas and token
        // lifetimes) is not: the real time of arrival, in milliseconds, then a per-message
        // sequence in the last three digits (unique per channel, as Slack's are).
        let wall = Date().timeIntervalSince1970 + delay
        let ts = String(format: "%.6f", (wall * 1000).rounded(.down) / 1000 + Double(sequence % 1000) / 1_000_000)
        let message = SimMessage(ts: ts, text: text, visibleAt: arrives, sentBy: sender, botID: app?.botID, appID: app?.id)
        let value = Double(ts) ?? 0
        var index = workspaces[teamID]?.channels[channelID]?.messages.count ?? 0
        while index > 0, let previous = workspaces[teamID]?.channels[channelID]?.messages[index - 1], (Double(previous.ts) ?? 0) > value { index -= 1 }
        workspaces[teamID]?.channels[channelID]?.messages.insert(message, at: index)
        return message
    }
}

/// A Web API call answered with an error before it could do anything.
struct SlackFailure: Error {
    let response: SimResponse

    init(_ response: SimResponse) {
        self.response = response
    }
}

/// The arguments of a Web API call: form fields, query parameters or a JSON body.
struct SlackArguments {
    struct Failure: Error {
        let code: String
    }

    var fields: [String: JSONValue]
    var token: String?

    func value(_ name: String) -> JSONValue? { fields[name] }

    func string(_ name: String) -> String? {
        switch fields[name] {
        case .string(let text)?: return text
        case .integer(let number)?: return String(number)
        case .bool(let flag)?: return flag ? "true" : "false"
        default: return nil
        }
    }

    static func parse(_ request: SimRequest) -> Result<SlackArguments, Failure> {
        var fields = request.query.mapValues(JSONValue.string)
        let bearer = request.headers["authorization"].flatMap { $0.lowercased().hasPrefix("bearer ") ? String($0.dropFirst(7)) : nil }
        if request.method == "POST", !request.body.isEmpty || !request.mediaType.isEmpty {
            if let charset = request.charset, charset != "utf-8", charset != "utf8" { return .failure(Failure(code: "invalid_charset")) }
            switch request.mediaType {
            case "application/json":
                // With JSON the token must be in the Authorization header; one in the body is ignored.
                // An empty body means no arguments (slack_sdk sends one for auth.test).
                if request.body.isEmpty { return .success(SlackArguments(fields: fields, token: bearer)) }
                guard case .object(let body)? = try? JSONValue.parse(request.body) else { return .failure(Failure(code: "invalid_json")) }
                fields.merge(body.filter { $0.key != "token" }) { _, new in new }
                return .success(SlackArguments(fields: fields, token: bearer))
            case "application/x-www-form-urlencoded", "":
                guard let text = String(data: request.body, encoding: .utf8) else { return .failure(Failure(code: "invalid_charset")) }
                fields.merge(SimRequest.formFields(text).mapValues(JSONValue.string)) { _, new in new }
            case "multipart/form-data":
                return .failure(Failure(code: "invalid_form_data"))
            default:
                return .failure(Failure(code: "invalid_post_type"))
            }
        } else if request.method != "GET" && request.method != "POST" {
            return .failure(Failure(code: "invalid_post_type"))
        }
        return .success(SlackArguments(fields: fields, token: bearer ?? fields["token"]?.stringValue))
    }
}

/// An IPv4 address or CIDR range.
struct IPv4Range {
    let network: UInt32
    let mask: UInt32

    init?(_ text: String) {
        let parts = text.split(separator: "/")
        guard let address = IPv4Range.address(String(parts[0])) else { return nil }
        let prefix = parts.count == 2 ? Int(parts[1]) ?? -1 : 32
        guard (0...32).contains(prefix) else { return nil }
        mask = prefix == 0 ? 0 : ~UInt32(0) << (32 - prefix)
        network = address & mask
    }

    func contains(_ text: String) -> Bool {
        guard let address = IPv4Range.address(text) else { return false }
        return address & mask == network
    }

    static func address(_ text: String) -> UInt32? {
        let octets = text.split(separator: ".").compactMap { UInt32($0) }
        guard octets.count == 4, octets.allSatisfy({ $0 <= 255 }) else { return nil }
        return octets.reduce(0) { $0 << 8 | $1 }
    }
}

/// The schema's verdict on manifest texts seen lately: a client validates a manifest and then
/// sends the same text to create or update, and the verdict on one text never changes.
final class ManifestVerdicts: @unchecked Sendable {
    private let lock = NSLock()
    private var verdicts: [String: (JSONValue, [JSONSchema.Violation])] = [:]
    private static let capacity = 512

    func verdict(_ text: String) -> (JSONValue, [JSONSchema.Violation])? {
        lock.lock()
        defer { lock.unlock() }
        return verdicts[text]
    }

    func remember(_ text: String, manifest: JSONValue, violations: [JSONSchema.Violation]) {
        lock.lock()
        if verdicts.count >= ManifestVerdicts.capacity { verdicts.removeAll(keepingCapacity: true) }
        verdicts[text] = (manifest, violations)
        lock.unlock()
    }
}
