import Foundation

/// A Slack Web API failure: Slack's own error code (`invalid_auth`, `invalid_manifest`...) and,
/// for manifests, each problem with its JSON pointer.
public struct SlackAPIError: Error, Equatable, Sendable, CustomStringConvertible {
    public let method: String
    public let code: String
    public let problems: [Problem]

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

    public init(workspace: Workspace, pacer: SlackPacer, environment: CallEnvironment) {
        self.workspace = workspace
        self.pacer = pacer
        self.environment = environment
    }

    static let tiers: [String: SlackTier] = [
        "apps.manifest.create": .tier1, "apps.manifest.update": .tier1, "apps.manifest.delete": .tier1,
        "apps.manifest.export": .tier3, "apps.manifest.validate": .tier3, "conversations.history": .tier3,
        "tooling.tokens.rotate": .special, "auth.test": .special,
    ]

    /// Calls `method` with form fields (every method accepts them); returns the success body.
    /// `timeout`: each attempt's limit, when shorter than the transport's.
    public func call(_ method: String, token: SecretValue?, _ fields: [String: String] = [:], idempotent: Bool = true,
                     timeout: TimeInterval? = nil) throws -> JSON {
        let retry = idempotent ? environment.retry : environment.retry.nonIdempotent
        let tier = SlackClient.tiers[method] ?? .tier3
        var base = workspace.apiURL
        if !base.hasSuffix("/") { base += "/" }
        let body = fields.sorted { $0.key < $1.key }
            .map { "\(SlackClient.formEncode($0.key))=\(SlackClient.formEncode($0.value))" }.joined(separator: "&")
        var headers = [("Content-Type", "application/x-www-form-urlencoded")]
        if let token { headers.append(("Authorization", "Bearer \(token.revealed)")) }
        var spec = HTTPRequestSpec(method: "POST", url: base + method, headers: headers, body: Data(body.utf8),
                                   allowInsecureHTTP: workspace.allowInsecureHTTP)
        if let timeout { spec.timeout = min(spec.timeout, timeout) }
        if let left = environment.control.remaining { spec.timeout = max(0.5, min(spec.timeout, left)) }
        return try retry.run(environment.control, onRetry: { error, _ in
            environment.metrics.retried()
            if let error = error as? ServiceError, error.status == 429 {
                pacer.pause(workspace: workspace.id, tier: tier, seconds: error.retryAfter ?? 30)
            }
        }) {
            try pacer.acquire(workspace: workspace.id, tier: tier, control: environment.control)
            environment.metrics.called("slack:\(method)")
            let reply = try environment.transport.send(spec)
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
                if ["internal_error", "fatal_error", "request_timeout", "service_unavailable"].contains(code) {
                    throw ServiceError(service: "slack", target: method, status: 503, code: code)
                }
                let problems = (json["errors"]?.listValue ?? []).map {
                    SlackAPIError.Problem(message: $0["message"]?.stringValue ?? "", pointer: $0["pointer"]?.stringValue ?? "")
                }
                throw SlackAPIError(method: method, code: code, problems: problems)
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

    /// Messages of `channel` newer than `oldest` (a Slack ts): text and ts, newest first, up to 200.
    /// Each attempt is limited to `timeout`: a poll that hangs must not outlast the waits it serves.
    public func history(channel: String, oldest: String, token: SecretValue, timeout: TimeInterval = 5) throws -> [(text: String, ts: Double?)] {
        let json = try call("conversations.history", token: token, ["channel": channel, "oldest": oldest, "limit": "200"], timeout: timeout)
        return json["messages"]?.listValue?.compactMap { message in
            message["text"]?.stringValue.map { ($0, message["ts"]?.stringValue.flatMap(Double.init)) }
        } ?? []
    }

    public func delete(appID: String, token: SecretValue) throws {
        _ = try call("apps.manifest.delete", token: token, ["app_id": appID])
    }
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
