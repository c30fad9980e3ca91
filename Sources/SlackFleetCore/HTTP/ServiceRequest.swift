import Foundation

/// The one request loop of every client (Slack, W&B, Kubernetes): the run's time budget clips
/// the timeout, the one retry policy decides what is tried again, and every attempt and retry
/// is counted. What differs between services is only how an answer is read (`decode`) and, for
/// Slack, the pacing around each attempt.
public struct ServiceRequest {
    public var spec: HTTPRequestSpec
    /// The call counter's key, such as `slack:apps.manifest.create` or `k8s:PATCH`.
    public var endpoint: String
    /// The retry policy, when not the environment's (a call that must not run twice).
    public var retry: RetryPolicy?
    /// Before each attempt (Slack: wait for the quota, note the call).
    public var beforeEach: () throws -> Void = {}
    /// After each attempt, answered or not (Slack: settle the quota's bucket).
    public var afterEach: () -> Void = {}
    /// After a failure that will be tried again (Slack: a 429 pauses the workspace's tier).
    public var onRetry: (any Error) -> Void = { _ in }

    public init(_ spec: HTTPRequestSpec, endpoint: String, retry: RetryPolicy? = nil) {
        self.spec = spec
        self.endpoint = endpoint
        self.retry = retry
    }

    /// `base` and `path` joined with one `/`.
    public static func url(_ base: String, _ path: String) -> String {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        return base + (path.hasPrefix("/") ? path : "/" + path)
    }

    /// Sends the request until `decode` makes a result of an answer, or a failure is final
    /// (a retryable ServiceError or TransportError thrown by the transport or by `decode` is
    /// tried again, as the policy allows).
    public func send<T>(in environment: CallEnvironment, decode: (HTTPReply) throws -> T) throws -> T {
        var spec = self.spec
        if let left = environment.control.remaining { spec.timeout = max(0.5, min(spec.timeout, left)) }
        return try (retry ?? environment.retry).run(environment.control, onRetry: { error, _ in
            environment.metrics.retried()
            onRetry(error)
        }) {
            try beforeEach()
            environment.metrics.called(endpoint)
            defer { afterEach() }
            return try decode(try environment.transport.send(spec))
        }
    }
}
