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

    /// Answers one request.
    public func handle(_ request: SimRequest) async -> SimResponse {
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
            let name = segments[1]
            let route = segments[2...].joined(separator: "/")
            if let fault = fault(target: "instance:\(name)", endpoint: "wandb:\(route)") { return fault }
            var response = await wandb(request, instance: name, route: route)
            response.delay += latency(target: "instance:\(name)")
            return response
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
            return nil
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
        if segments.contains("weightsandbiases") { return "weightsandbiases" }
        return "other"
    }

    func bearerToken(_ request: SimRequest) -> String? {
        guard let header = request.headers["authorization"], header.lowercased().hasPrefix("bearer ") else { return nil }
        return String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }
}
