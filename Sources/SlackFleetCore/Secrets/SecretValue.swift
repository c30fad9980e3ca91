/// A secret: a token, a client secret, an API key.
///
/// Its descriptions are redacted, so interpolating one into a message, a log line or a
/// `dump` never prints it; only `revealed` gives the value, for the one place that sends it.
public struct SecretValue: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The value itself. Read it only to send it where it belongs.
    public let revealed: String

    public init(_ value: String) {
        revealed = value
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}
