/// What every client of a run shares: the one transport, the one retry policy, the run's (or
/// group's) control, and the call counters.
public struct CallEnvironment: Sendable {
    public let transport: HTTPTransport
    public let retry: RetryPolicy
    public let control: RunControl
    public let metrics: CallMetrics

    public init(transport: HTTPTransport, retry: RetryPolicy, control: RunControl, metrics: CallMetrics) {
        self.transport = transport
        self.retry = retry
        self.control = control
        self.metrics = metrics
    }
}
