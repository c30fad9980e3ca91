import Foundation

/// The Kubernetes API of one instance's cluster: GET and JSON merge-patch of single objects.
public struct KubernetesClient: Sendable {
    public let target: KubernetesTarget
    let token: SecretValue
    let allowInsecureHTTP: Bool
    let environment: CallEnvironment

    public init(target: KubernetesTarget, token: SecretValue, allowInsecureHTTP: Bool, environment: CallEnvironment) {
        self.target = target
        self.token = token
        self.allowInsecureHTTP = allowInsecureHTTP
        self.environment = environment
    }

    public static func secretPath(_ namespace: String, _ name: String) -> String { "/api/v1/namespaces/\(namespace)/secrets/\(name)" }
    public static func deploymentPath(_ namespace: String, _ name: String) -> String { "/apis/apps/v1/namespaces/\(namespace)/deployments/\(name)" }
    public static func resourcePath(_ version: String, _ namespace: String, _ name: String) -> String {
        "/apis/apps.wandb.com/\(version)/namespaces/\(namespace)/weightsandbiases/\(name)"
    }

    public func get(_ path: String) throws -> JSON {
        try send("GET", path, body: nil)
    }

    /// Applies an RFC 7386 merge patch.
    @discardableResult
    public func mergePatch(_ path: String, _ patch: JSON) throws -> JSON {
        try send("PATCH", path, body: patch)
    }

    private func send(_ method: String, _ path: String, body: JSON?) throws -> JSON {
        var base = target.apiURL
        while base.hasSuffix("/") { base.removeLast() }
        var headers = [("Authorization", "Bearer \(token.revealed)"), ("Accept", "application/json")]
        if body != nil { headers.append(("Content-Type", "application/merge-patch+json")) }
        var spec = HTTPRequestSpec(method: method, url: base + path, headers: headers, body: body?.data, allowInsecureHTTP: allowInsecureHTTP)
        if let left = environment.control.remaining { spec.timeout = max(0.5, min(spec.timeout, left)) }
        return try environment.retry.run(environment.control, onRetry: { _, _ in environment.metrics.retried() }) {
            environment.metrics.called("k8s:\(method)")
            let reply = try environment.transport.send(spec)
            let json = try? JSON.parse(reply.body)
            guard (200...299).contains(reply.status) else {
                throw ServiceError(service: "kubernetes", target: "\(method) \(path)", status: reply.status,
                                   code: json?["reason"]?.stringValue ?? "http_\(reply.status)", message: json?["message"]?.stringValue ?? "",
                                   retryAfter: reply.headers["retry-after"].flatMap(Double.init))
            }
            guard let json else {
                throw ServiceError(service: "kubernetes", target: "\(method) \(path)", status: reply.status, code: "unreadable_answer")
            }
            return json
        }
    }
}
