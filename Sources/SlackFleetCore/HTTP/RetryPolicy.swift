import Foundation

/// The one retry policy: exponential backoff with full jitter for failures that may pass
/// (timeouts, resets, 5xx, 429), honouring Retry-After within bounds; never for answers that
/// will not change (invalid_auth, invalid_manifest, other 4xx).
public struct RetryPolicy: Sendable {
    public var maxAttempts = 5
    public var baseDelay: TimeInterval = 0.5
    public var maxDelay: TimeInterval = 30
    /// A Retry-After longer than this is not waited for: the call fails, and a later run retries.
    public var maxRetryAfter: TimeInterval = 300
    /// Whether a failure after which the request may have been carried out (a timeout, a reset)
    /// is retried. Off for calls that must not run twice, such as creating an app: the answer
    /// is lost, not the app.
    public var retriesAmbiguousFailures = true

    public init() {}

    /// This policy for a call that must not be carried out twice.
    public var nonIdempotent: RetryPolicy {
        var copy = self
        copy.retriesAmbiguousFailures = false
        return copy
    }

    /// The full-jitter delay before attempt `attempt` (1-based retries).
    func backoff(_ attempt: Int) -> TimeInterval {
        let ceiling = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return Double.random(in: 0...ceiling)
    }

    /// Runs `body` until it succeeds, fails for good, runs out of attempts, or the run stops.
    /// `onRetry` sees each retryable failure (for counting, and for rate-limit pauses).
    public func run<T>(_ control: RunControl, onRetry: (any Error, Int) -> Void = { _, _ in }, _ body: () throws -> T) throws -> T {
        var attempt = 1
        while true {
            do {
                return try body()
            } catch {
                guard attempt < maxAttempts, let wait = delay(after: error, attempt: attempt) else { throw error }
                onRetry(error, attempt)
                try control.sleep(wait)
                attempt += 1
            }
        }
    }

    /// How long to wait before trying again after `error`, or nil if trying again cannot help.
    func delay(after error: any Error, attempt: Int) -> TimeInterval? {
        if let error = error as? ServiceError, error.isRetryable {
            if let retryAfter = error.retryAfter {
                guard retryAfter <= maxRetryAfter else { return nil }
                return max(0, retryAfter) + Double.random(in: 0...0.25)
            }
            return backoff(attempt)
        }
        if let error = error as? TransportError, error.isRetryable {
            guard retriesAmbiguousFailures || error.kind == .connectFailed else { return nil }
            return backoff(attempt)
        }
        return nil
    }
}
