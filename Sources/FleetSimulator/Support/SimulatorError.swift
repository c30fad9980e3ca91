/// A failure of the simulator itself (not an error it simulates).
public struct SimulatorError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
