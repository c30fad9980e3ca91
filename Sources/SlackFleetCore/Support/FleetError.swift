import Foundation

/// An error that says itself to people: its message is what results, notes and the audit log
/// show (ChangeExecutor.describe). It never carries a secret value.
public protocol DescribedError: Error {
    var message: String { get }
}

/// A failure a user can act on: what went wrong, for what, and what to do about it.
///
/// Its message never carries a secret value, so it is safe to print, log and store.
public struct FleetError: DescribedError, CustomStringConvertible, Sendable {
    /// The process exit code this failure maps to (see `ExitStatus`).
    public let exitStatus: ExitStatus
    /// The message shown to the user.
    public let message: String

    public init(_ exitStatus: ExitStatus, _ message: String) {
        self.exitStatus = exitStatus
        self.message = message
    }

    public var description: String { message }

    /// Bad inventory or input data (exit 65).
    public static func data(_ message: String) -> FleetError { FleetError(.dataError, message) }
    /// Missing or broken configuration, such as a master key (exit 78).
    public static func config(_ message: String) -> FleetError { FleetError(.configError, message) }
    /// A condition that may clear by itself: a lock held, a busy database (exit 75).
    public static func temporary(_ message: String) -> FleetError { FleetError(.temporaryFailure, message) }
    /// A command used wrongly (exit 64).
    public static func usage(_ message: String) -> FleetError { FleetError(.usage, message) }
    /// Something failed that the user has to look at (exit 1).
    public static func failed(_ message: String) -> FleetError { FleetError(.failure, message) }
}

/// The exit codes of every `slackfleet` command, shared with cron and make.
public enum ExitStatus: Int32, Sendable, CaseIterable {
    /// Everything asked for is done.
    case ok = 0
    /// Some instances (or checks) failed; the others are done.
    case failure = 1
    /// A dry run found changes to apply.
    case changesPending = 2
    /// The command line is wrong.
    case usage = 64
    /// The inventory or other input data is wrong.
    case dataError = 65
    /// Locked, busy or out of time: run again later.
    case temporaryFailure = 75
    /// Configuration is missing or wrong (database, master key).
    case configError = 78
    /// Stopped by SIGINT: nothing new started, the steps in flight ended or were marked interrupted.
    case interrupted = 130
    /// Stopped by SIGTERM, likewise.
    case terminated = 143
}
