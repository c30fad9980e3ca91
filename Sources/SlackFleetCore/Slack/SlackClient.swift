import Foundation

/// A Slack Web API failure: Slack's own error code (`invalid_auth`, `invalid_manifest`...) and,
/// for manifests, each problem with its JSON pointer.
public struct SlackAPIError: Error, Equatable, Sendable, CustomStringConvertible {
    public let method: String
    public let code: String
    public let problems: [Problem]
    /// With `missing_scope`: the scope the call needed, when Slack says.
    public var needed: String?

    public init(method: String, code: String, problems: [Problem] = [], needed: String? = nil) {
        self.method = method
        self.code = code
        self.problems = problems
        self.needed = needed
    }

    public struct Problem: Equatable, Sendable {
        public let message: String
        public let pointer: String
    }

    public var description: String {
        var text = "Slack refused \(method): \(code)"
        if !problems.isEmpty { text += " (" + problems.map { "\($0.pointer): \($0.message)" }.joined(separator: "; ") + ")" }
        switch code {
        case "invalid_auth", "not_authed": text += "; check the workspace's token (an app allow-list also answers invalid_auth)"
        case "token_expired": text += "; the configuration token expired: run rotate-secret --config-tokens, or store a fresh one"
        case "not_allowed_token_type": text += "; use an app configuration token (xoxe.xoxp-...), not a bot or app-level token"
        case "missing_scope": text += needed.map { "; the token's app needs the \($0) scope: add it and reinstall the app" } ?? "; the token's app lacks a scope this call needs"
        default: break
        }
        return text
    }
}

/// The Web API methods SlackFleet uses, for one workspace.
///
/// Every call is paced by the shared `SlackPacer`, retried by the one `RetryPolicy` (a 429
/// pauses the workspace's tier for everyone), and sent through the one `HTTPTransport`.
/// Tokens travel in the Authorization header only.
public struct SlackClient: Sendable {
    public let workspace: Workspace
    let pacer: SlackPacer
    let environment: CallEnvironment
    /// The quota call the run's scheduler took for the step this client serves, if any: the
    /// step's first call of that tier uses it instead of waiting on the pacer.
    let ticket: QuotaTicket?

    public init(workspace: Workspace, pacer: SlackPacer, environment: CallEnvironment, ticket: QuotaTicket? = nil) {
        self.workspace = workspace
        self.pacer = pacer
        self.environment = environment
        self.ticket = ticket
    }

    static let tiers: [String: SlackTier] = [
        "apps.manifest.create": .tier1, "apps.manifest.update": .tier1, "apps.manifest.delete": .tier1,
        "apps.manifest.export": .tier3, "apps.manifest.validate": .tier3, "conversations.history": .tier3,
        "tooling.tokens.rotate": .special, "auth.test": .special,
        // docs.slack.dev/reference/methods/*: oauth.v2.access Tier 4, bots.info and conversations.info Tier 3.
        "oauth.v2.access": .tier4, "bots.info": .tier3, "conversations.info": .tier3,
    ]

    /// How a call authenticates: a token as Bearer, or an app's client ID and secret as Basic
    /// (oauth.v2.access, "Basic auth preferred").
    public enum Credential: Sendable {
        case token(SecretValue)
        case client(id: String, secret: SecretValue)
    }

    /// Calls `method` with form fields (every method accepts them); returns the success body.
    /// `timeout`: each attempt's limit, when shorter than the transport's.
    public func call(_ method: String, token: SecretValue?, _ fields: [String: String] = [:], idempotent: Bool = true,
                     timeout: TimeInterval? = nil) throws -> JSON {
        try call(method, credential: token.map(Credential.token), fields, idempotent: idempotent, timeout: timeout)
    }

    public func call(_ method: String, credential: Credential?, _ fields: [String: String] = [:], idempotent: Bool = true,
                     timeout: TimeInterval? = nil) throws -> JSON {
        let retry = idempotent ? environment.retry : environment.retry.nonIdempotent
        let tier = SlackClient.tiers[method] ?? .tier3
        let body = fields.sorted { $0.key < $1.key }
            .map { "\(SlackClient.formEncode($0.key))=\(SlackClient.formEncode($0.value))" }.joined(separator: "&")
        var headers = [("Content-Type", "application/x-www-form-urlencoded")]
        switch credential {
        case .token(let token)?: headers.append(("Authorization", "Bearer \(token.revealed)"))
        case .client(let id, let secret)?: headers.append(("Authorization", "Basic " + Data("\(id):\(secret.revealed)".utf8).base64EncodedString()))
        case nil: break
        }
        var spec = HTTPRequestSpec(method: "POST", url: ServiceRequest.url(workspace.apiURL, method), headers: headers, body: Data(body.utf8),
                                   allowInsecureHTTP: workspace.allowInsecureHTTP)
        if let timeout { spec.timeout = min(spec.timeout, timeout) }
        var request = ServiceRequest(spec, endpoint: "slack:\(method)", retry: retry)
        // Each attempt waits for its workspace's quota (or uses the one the scheduler took for
        // the step), and a 429 pauses the workspace's tier for every worker.
        request.beforeEach = { [workspace, pacer, ticket, environment] in
            if ticket?.claim(workspace: workspace.id, tier: tier) != true {
                try pacer.acquire(workspace: workspace.id, tier: tier, control: environment.control)
            }
            pacer.record(workspace: workspace.id, tier: tier)
        }
        request.afterEach = { [workspace, pacer] in pacer.settle(workspace: workspace.id, tier: tier) }
        request.onRetry = { [workspace, pacer] error in
            if let error = error as? ServiceError, error.status == 429 {
                pacer.pause(workspace: workspace.id, tier: tier, seconds: error.retryAfter ?? 30)
            }
        }
        return try request.send(in: environment) { reply in
            if reply.status == 429 {
                environment.metrics.rateLimited(workspace.id)
                throw ServiceError(service: "slack", target: method, status: 429, code: "ratelimited",
                                   retryAfter: reply.headers["retry-after"].flatMap(Double.init))
            }
            guard reply.status == 200 else {
                throw ServiceError(service: "slack", target: method, status: reply.status, code: "http_\(reply.status)")
            }
            guard let json = try? JSON.parse(reply.body), json["ok"]?.boolValue != nil else {
                throw ServiceError(service: "slack", target: method, status: reply.status, code: "unreadable_answer", message: "the body is not Slack's JSON envelope")
            }
            guard json["ok"] == .bool(true) else {
                let code = json["error"]?.stringValue ?? "unknown_error"
                if SlackClient.transientErrors.contains(code) {
                    // Retried as a 5xx, except for a call that must not run twice: Slack says of
                    // internal_error and fatal_error that "it's possible some aspect of the
                    // operation succeeded before the error was raised", so for those the caller
                    // gets it as it is (status 200: not retried) and treats it as a lost answer.
                    throw ServiceError(service: "slack", target: method, status: retry.retriesAmbiguousFailures ? 503 : 200, code: code,
                                       message: "Slack's side failed; some of the call may have been carried out")
                }
                let problems = (json["errors"]?.listValue ?? []).map {
                    SlackAPIError.Problem(message: $0["message"]?.stringValue ?? "", pointer: $0["pointer"]?.stringValue ?? "")
                }
                throw SlackAPIError(method: method, code: code, problems: problems, needed: json["needed"]?.stringValue)
            }
            return json
        }
    }

    /// Percent-encodes every UTF-8 byte but ASCII letters, digits and `-._~` (RFC 3986's
    /// unreserved set), by hand: Foundation's version built a character set on every call and
    /// every manifest goes through here.
    public static func formEncode(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: Methods

    /// The credentials `apps.manifest.create` returns, the only time Slack shows them.
    public struct CreatedApp: Sendable {
        public let appID: String
        public let clientID: String
        public let clientSecret: SecretValue
        public let signingSecret: SecretValue
        public let verificationToken: SecretValue
    }

    public func createApp(_ manifest: JSON, token: SecretValue) throws -> CreatedApp {
        let json = try call("apps.manifest.create", token: token, ["manifest": manifest.canonicalJSON, "team_id": workspace.id], idempotent: false)
        guard let appID = json["app_id"]?.stringValue, let credentials = json["credentials"],
              let clientID = credentials["client_id"]?.stringValue, let clientSecret = credentials["client_secret"]?.stringValue else {
            throw ServiceError(service: "slack", target: "apps.manifest.create", status: 200, code: "unreadable_answer",
                               message: "no app_id or credentials in the answer")
        }
        return CreatedApp(appID: appID, clientID: clientID, clientSecret: SecretValue(clientSecret),
                          signingSecret: SecretValue(credentials["signing_secret"]?.stringValue ?? ""),
                          verificationToken: SecretValue(credentials["verification_token"]?.stringValue ?? ""))
    }

    public func validate(_ manifest: JSON, appID: String?, token: SecretValue) throws {
        var fields = ["manifest": manifest.canonicalJSON]
        if let appID { fields["app_id"] = appID }
        _ = try call("apps.manifest.validate", token: token, fields)
    }

    public func export(appID: String, token: SecretValue) throws -> JSON {
        let json = try call("apps.manifest.export", token: token, ["app_id": appID])
        guard let manifest = json["manifest"], manifest.objectValue != nil else {
            throw ServiceError(service: "slack", target: "apps.manifest.export", status: 200, code: "unreadable_answer", message: "no manifest in the answer")
        }
        return manifest
    }

    @discardableResult
    public func update(appID: String, manifest: JSON, token: SecretValue) throws -> Bool {
        try call("apps.manifest.update", token: token, ["app_id": appID, "manifest": manifest.canonicalJSON])["permissions_updated"]?.boolValue ?? false
    }

    /// Messages of `channel` newer than `oldest` (a Slack ts), newest first, up to 200.
    /// Each attempt is limited to `timeout`: a poll that hangs must not outlast the waits it serves.
    /// Slack's `ok: false` codes for a failure on its side that may pass.
    static let transientErrors: Set<String> = ["internal_error", "fatal_error", "request_timeout", "service_unavailable"]

    /// The most pages one read of a channel follows: 250 pages of up to 200 messages.
    public static let historyPageLimit = 250

    /// `conversations.history`: every message after `oldest` (exclusive), newest first, following
    /// `response_metadata.next_cursor` through every page. Slack may return "fewer than the
    /// requested number of items ... even if the end of the list hasn't been reached", so the
    /// cursor, not a short page, says when the read is complete. Each page is a Tier 3 call.
    public func history(channel: String, oldest: String, token: SecretValue, timeout: TimeInterval = 5) throws -> [ChannelMessage] {
        var messages: [ChannelMessage] = []
        var cursor = ""
        for _ in 0..<SlackClient.historyPageLimit {
            var fields = ["channel": channel, "oldest": oldest, "limit": "200"]
            if !cursor.isEmpty { fields["cursor"] = cursor }
            let json = try call("conversations.history", token: token, fields, timeout: timeout)
            messages += json["messages"]?.listValue?.compactMap(ChannelMessage.init) ?? []
            cursor = json["response_metadata"]?["next_cursor"]?.stringValue ?? ""
            if cursor.isEmpty { return messages }
        }
        throw FleetError.failed("channel \(channel) holds more than \(SlackClient.historyPageLimit) pages of messages since \(oldest): use a quieter canary channel")
    }

    /// `bots.info`: the app a bot belongs to (its `app_id`), or nil when Slack does not say.
    public func appOfBot(_ botID: String, token: SecretValue) throws -> String? {
        try call("bots.info", token: token, ["bot": botID])["bot"]?["app_id"]?.stringValue
    }

    /// `conversations.info`: the channel object (`name`, `is_private`, `is_archived`, and
    /// `is_member` for the token's user).
    public func channelInfo(_ channel: String, token: SecretValue) throws -> JSON {
        try call("conversations.info", token: token, ["channel": channel])["channel"] ?? .object([:])
    }

    /// `conversations.info`: a channel's name, without `#`.
    public func channelName(_ channel: String, token: SecretValue) throws -> String? {
        try call("conversations.info", token: token, ["channel": channel])["channel"]?["name"]?.stringValue
    }

    /// `auth.test`: the workspace's name as Slack shows it (W&B's `SlackIntegration.teamName`).
    public func teamName(token: SecretValue) throws -> String? {
        try call("auth.test", token: token)["team"]?.stringValue
    }

    /// `oauth.v2.access` with the app's client ID and `secret` and a code that cannot exist: a
    /// probe of the credentials that needs no person. `invalid_code` means Slack got past the
    /// client ID and secret; `bad_client_secret` that the secret is not the app's current one.
    /// Slack does not document the order of its checks, so this is a heuristic (see
    /// `CredentialProbe.calibrated`).
    public func probe(clientID: String, secret: SecretValue) throws -> CredentialProbe {
        let code = "slackfleet-probe-" + UUID().uuidString.lowercased()
        do {
            _ = try call("oauth.v2.access", credential: .client(id: clientID, secret: secret), ["code": code])
            // A code nobody issued was accepted: nothing this probe can tell.
            return .inconclusive
        } catch let error as SlackAPIError {
            switch error.code {
            case "invalid_code", "invalid_grant": return .accepted
            case "bad_client_secret": return .staleSecret
            case "invalid_client_id": return .unknownClient
            default: throw error
            }
        }
    }

    public func delete(appID: String, token: SecretValue) throws {
        _ = try call("apps.manifest.delete", token: token, ["app_id": appID])
    }
}

/// One message of a channel's history: its text and timestamp, and for an app's post (an
/// incoming webhook's `bot_message`) the bot, and the app when Slack names it.
public struct ChannelMessage: Sendable, Equatable {
    public let text: String
    public let ts: Double?
    /// `ts` as Slack wrote it: a message's ID in its channel, and what `oldest` takes.
    public let tsText: String?
    public let botID: String?
    public let appID: String?

    public init(text: String, ts: Double?, tsText: String? = nil, botID: String? = nil, appID: String? = nil) {
        self.text = text
        self.ts = ts
        self.tsText = tsText
        self.botID = botID
        self.appID = appID
    }

    init?(_ json: JSON) {
        guard let text = json["text"]?.stringValue else { return nil }
        let ts = json["ts"]?.stringValue
        self.init(text: text, ts: ts.flatMap(Double.init), tsText: ts, botID: json["bot_id"]?.stringValue,
                  appID: json["app_id"]?.stringValue ?? json["bot_profile"]?["app_id"]?.stringValue)
    }
}

/// What Slack said to a credential probe (`SlackClient.probe`).
public enum CredentialProbe: String, Sendable {
    /// `invalid_code`: Slack accepted the client ID and secret (a heuristic).
    case accepted
    /// `bad_client_secret`: the secret is not the app's current one; a person regenerated it.
    case staleSecret = "stale-secret"
    /// `invalid_client_id`: Slack knows no such app.
    case unknownClient = "unknown-client"
    /// The probe cannot tell: Slack checks the code before the secret in this workspace.
    case inconclusive
}

/// Counts of calls, retries and 429s, shared by every worker of a run.
public final class CallMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: Int] = [:]
    private var retries = 0
    private var limited: [String: Int] = [:]

    public init() {}

    func called(_ endpoint: String) { lock.lock(); counts[endpoint, default: 0] += 1; lock.unlock() }
    func retried() { lock.lock(); retries += 1; lock.unlock() }
    func rateLimited(_ workspace: String) { lock.lock(); limited[workspace, default: 0] += 1; lock.unlock() }

    public var snapshot: (calls: [String: Int], retries: Int, rateLimited: [String: Int]) {
        lock.lock()
        defer { lock.unlock() }
        return (counts, retries, limited)
    }
}
