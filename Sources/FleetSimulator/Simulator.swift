import Foundation

/// A local stand-in for Slack, a fleet of W&B Server instances and their Kubernetes APIs.
///
/// Routes, on one base URL:
/// - `/api/<method>`, `/oauth/v2/authorize`, `/services/...`: Slack, as on slack.com;
/// - `/wandb/<instance>/graphql`, `/healthz`, `/ready`: each W&B instance;
/// - `/k8s/<instance>/api/...`, `/apis/...`: each instance's Kubernetes API;
/// - `/_sim/...`: the control API (faults, clock, state, call counts).
public final class Simulator: @unchecked Sendable {
    private let lock = NSLock()
    private var world: World
    let manifestSchema: JSONSchema
    let manifestVerdicts = ManifestVerdicts()
    let graphQL: WandbGraphQL
    /// The requests in flight, for `/_sim/calls`.
    let inFlight = InFlightGauge()

    public init(seed: UInt64 = 1) throws {
        world = World(seed: seed)
        manifestSchema = try JSONSchema.slackManifest()
        graphQL = try WandbGraphQL()
    }

    /// Runs `body` with the world locked.
    func withWorld<T>(_ body: (inout World) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&world)
    }

    /// The base URL the server listens on, such as `http://127.0.0.1:40123`.
    public var baseURL: String { withWorld { $0.baseURL } }

    func setBaseURL(_ url: String) {
        withWorld { $0.baseURL = url }
    }

    /// Changes the simulation's settings.
    public func configure(_ change: (inout SimConfig) -> Void) {
        withWorld { change(&$0.config) }
    }

    /// Sets the faults of `target` (`all`, `workspace:TEAM` or `instance:NAME`).
    public func setFaults(target: String, _ change: (inout Faults) -> Void) {
        withWorld { world in
            var faults = world.faults[target] ?? Faults()
            change(&faults)
            world.faults[target] = faults
        }
    }

    /// Answers one request: at once (see `answerAtOnce`), or, for a W&B instance, after its
    /// GraphQL has run.
    public func handle(_ request: SimRequest) async -> SimResponse {
        if let response = answerAtOnce(request) { return response }
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let name = segments[1]
        let route = segments[2...].joined(separator: "/")
        if let fault = fault(target: "instance:\(name)", endpoint: "wandb:\(route)") { return fault }
        var response = await wandb(request, instance: name, route: route)
        response.delay += latency(target: "instance:\(name)")
        return response
    }

    /// The answer to every request but a W&B instance's (whose GraphQL runs async), or nil for
    /// those: the server answers these on its event loop, without a hop to a task.
    public func answerAtOnce(_ request: SimRequest) -> SimResponse? {
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard let first = segments.first else { return .notFound }
        switch first {
        case "_sim":
            return control(request, segments: Array(segments.dropFirst()))
        case "api" where segments.count == 2:
            return withFaults(target: slackTarget(request), endpoint: "slack:\(segments[1])") {
                slackMethod(segments[1], request: request)
            }
        case "oauth" where segments == ["oauth", "v2", "authorize"]:
            return withFaults(target: nil, endpoint: "slack:oauth.authorize") { oauthAuthorize(request) }
        case "services" where segments.count == 4:
            return withFaults(target: "workspace:\(segments[1])", endpoint: "slack:webhook") { incomingWebhook(request, path: segments) }
        case "wandb" where segments.count >= 3:
            return nil
        case "k8s" where segments.count >= 3:
            let name = segments[1]
            return withFaults(target: "instance:\(name)", endpoint: "k8s:\(request.method) \(kubeEndpointKind(segments))") {
                kubernetes(request, instance: name, segments: Array(segments.dropFirst(2)))
            }
        default:
            return .notFound
        }
    }

    // MARK: Faults and counting

    private func withFaults(target: String?, endpoint: String, _ body: () -> SimResponse) -> SimResponse {
        if let fault = fault(target: target, endpoint: endpoint) { return fault }
        var response = body()
        response.delay += latency(target: target)
        if dropsResponse(target: target, endpoint: endpoint) { response.disposition = .reset }
        return response
    }

    /// Whether the answer to a request already carried out is lost.
    private func dropsResponse(target: String?, endpoint: String) -> Bool {
        withWorld { world in
            for key in ["all", target].compactMap({ $0 }) {
                if let fault = world.faults[key], fault.dropResponses > 0, fault.endpoint == nil || fault.endpoint == endpoint {
                    world.faults[key]?.dropResponses -= 1
                    return true
                }
            }
            let rate = [world.faults["all"], target.flatMap { world.faults[$0] }].compactMap { $0 }
                .filter { $0.endpoint == nil || $0.endpoint == endpoint }.map(\.dropResponseRate).max() ?? 0
            return rate > 0 && world.random.unit() < rate
        }
    }

    /// Counts the call, then decides whether a fault answers it instead of the service.
    private func fault(target: String?, endpoint: String) -> SimResponse? {
        withWorld { world in
            world.calls[endpoint, default: 0] += 1
            let faults = [world.faults["all"], target.flatMap { world.faults[$0] }].compactMap { $0 }
                .filter { $0.endpoint == nil || $0.endpoint == endpoint }
            guard !faults.isEmpty else { return nil }
            if faults.contains(where: \.down), target?.hasPrefix("instance:") == true {
                return SimResponse.text("no healthy upstream", status: 503)
            }
            if let kind = faults.compactMap(\.hostile).first { return Simulator.hostile(kind) }
            let roll = world.random.unit()
            let hang = faults.map(\.hangRate).max() ?? 0
            let reset = faults.map(\.resetRate).max() ?? 0
            let error = faults.map(\.errorRate).max() ?? 0
            if roll < hang {
                var response = SimResponse(status: 0)
                response.disposition = .hang(seconds: world.config.hangSeconds)
                return response
            }
            if roll < hang + reset {
                var response = SimResponse(status: 0)
                response.disposition = .reset
                return response
            }
            if roll < hang + reset + error {
                let statuses = [500, 502, 503]
                return SimResponse.text("simulated server error", status: statuses[Int(world.random.next() % 3)])
            }
            // Slack's own failures come as HTTP 200 with ok:false: internal_error ("likely due to a
            // transient issue on our end") and fatal_error ("a catastrophic error"), in every
            // Web API method's error list (docs.slack.dev/reference/methods/*).
            let slackFailure = faults.map(\.internalErrorRate).max() ?? 0
            if slackFailure > 0, endpoint.hasPrefix("slack:"), endpoint != "slack:webhook", endpoint != "slack:oauth.authorize",
               world.random.unit() < slackFailure {
                return Simulator.slackError(world.random.next() % 4 == 0 ? "fatal_error" : "internal_error")
            }
            return nil
        }
    }

    /// The kinds of hostile answer a fault can give.
    public static let hostileKinds = ["truncated_json", "wrong_types", "huge_body", "html", "redirect",
                                      "retry_after_year", "retry_after_negative", "graphql_errors"]

    /// A reply a broken or malicious far side could send.
    static func hostile(_ kind: String) -> SimResponse {
        let json = [("Content-Type", "application/json; charset=utf-8")]
        switch kind {
        case "truncated_json":
            return SimResponse(status: 200, headers: json, body: Data(#"{"ok": true, "manifest": {"display_infor"#.utf8))
        case "wrong_types":
            return SimResponse(status: 200, headers: json, body: Data(#"{"ok": "yes", "manifest": [1, 2], "app_id": 7, "messages": "none", "data": {"serverInfo": 42, "notifyScriptableRunAlert": "sure"}, "spec": []}"#.utf8))
        case "huge_body":
            var body = Data(#"{"ok": true, "pad": ""#.utf8)
            body.append(Data(repeating: UInt8(ascii: "x"), count: 50 * 1024 * 1024))
            body.append(Data(#""}"#.utf8))
            return SimResponse(status: 200, headers: json, body: body)
        case "html":
            return SimResponse.text("<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>", status: 502, contentType: "text/html")
        case "redirect":
            return SimResponse(status: 302, headers: [("Location", "https://attacker.example.com/collect")], body: Data())
        case "retry_after_year":
            return SimResponse.text("slow down", status: 429, headers: [("Retry-After", "31536000")])
        case "retry_after_negative":
            return SimResponse.text("slow down", status: 429, headers: [("Retry-After", "-30")])
        default:  // graphql_errors: an errors array next to data
            return SimResponse(status: 200, headers: json, body: Data(#"{"data": {"serverInfo": null, "notifyScriptableRunAlert": null}, "errors": [{"message": "internal resolver failure", "path": ["serverInfo"]}]}"#.utf8))
        }
    }

    private func latency(target: String?) -> Double {
        withWorld { world in
            let faults = [world.faults["all"], target.flatMap { world.faults[$0] }].compactMap { $0 }
            var delay = 0.0
            for fault in faults where fault.latency > 0 || fault.jitter > 0 {
                delay = max(delay, fault.latency + (world.random.unit() * 2 - 1) * fault.jitter)
            }
            return max(0, delay)
        }
    }

    /// The workspace a Slack call is about, from its token, for per-workspace faults.
    private func slackTarget(_ request: SimRequest) -> String? {
        guard let token = bearerToken(request) ?? request.query["token"] else { return nil }
        return withWorld { world in world.tokens[token].map { "workspace:\($0.teamID)" } }
    }

    private func kubeEndpointKind(_ segments: [String]) -> String {
        if segments.contains("secrets") { return "secret" }
        if segments.contains("deployments") { return "deployment" }
        if segments.contains("rollouts") { return "rollout" }
        if segments.contains("selfsubjectaccessreviews") { return "selfsubjectaccessreview" }
        if segments.contains("weightsandbiases") { return "weightsandbiases" }
        return "other"
    }

    func bearerToken(_ request: SimRequest) -> String? {
        guard let header = request.headers["authorization"], SimRequest.lowercasedASCII(header.prefix(7)) == "bearer " else { return nil }
        return String(SimRequest.trimmed(header.dropFirst(7)))
    }
}
