/// Why a request got no usable answer. Its description never carries a URL query, a header or
/// a body, so it is safe to print, store and use as a metric label.
public struct TransportError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case timeout, connectionReset = "connection reset", connectFailed = "connection failed", responseTooLarge = "response too large"
        case redirectRefused = "redirect refused", insecureURL = "insecure URL", invalidURL = "invalid URL", tls = "TLS failure"
        case other = "transport failure"
    }

    public let kind: Kind
    /// Where, such as `POST 127.0.0.1:8080/api/apps.manifest.create`; never a query or a body.
    public let target: String
    public let detail: String

    public init(_ kind: Kind, target: String, detail: String = "") {
        self.kind = kind
        self.target = target
        self.detail = detail
    }

    /// Whether trying again later can help.
    public var isRetryable: Bool {
        switch kind {
        case .timeout, .connectionReset, .connectFailed, .other: true
        default: false
        }
    }

    public var description: String {
        "\(kind.rawValue) on \(target)" + (detail.isEmpty ? "" : ": \(detail)")
    }
}

/// An answer that is not what the far side should have sent: an HTTP error status, or a body
/// that does not parse. Carries the status and the service's own error code when there is one.
public struct ServiceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `slack`, `wandb`, `kubernetes`.
    public let service: String
    public let target: String
    public let status: Int
    /// The service's code: Slack's `error`, Kubernetes' `reason`, a GraphQL message.
    public let code: String
    public let message: String
    /// Seconds the service asked us to wait (Retry-After), when it did.
    public let retryAfter: Double?

    public init(service: String, target: String, status: Int, code: String, message: String = "", retryAfter: Double? = nil) {
        self.service = service
        self.target = target
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    /// 429 and 5xx may pass; other answers will not change by asking again.
    public var isRetryable: Bool { status == 429 || (500...599).contains(status) || code == "ratelimited" }

    public var description: String {
        "\(service) answered \(status == 200 ? "" : "HTTP \(status) ")\(code)" + (message.isEmpty ? "" : " (\(message))")
            + (retryAfter.flatMap { $0.isFinite && abs($0) < 1e12 ? " with Retry-After \(Int($0)) s" : nil } ?? "") + " on \(target)"
    }
}
