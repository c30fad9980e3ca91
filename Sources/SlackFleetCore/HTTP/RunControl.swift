import Foundation

/// Whether a run may go on: a stop asked for (SIGINT, SIGTERM, the failure budget, the run's
/// time budget) ends every wait at once. Every sleep in a run goes through here.
public final class RunControl: @unchecked Sendable {
    public enum Stop: String, Sendable {
        case interrupted, terminated, failureBudget = "failure budget", timeBudget = "time budget"
    }

    private let condition = NSCondition()
    private var stopReason: Stop?
    /// When the run must stop starting new work.
    public let deadline: Date?

    public init(maxDuration: TimeInterval? = nil) {
        deadline = maxDuration.map { Date().addingTimeInterval($0) }
    }

    public var stop: Stop? {
        condition.lock()
        defer { condition.unlock() }
        if stopReason == nil, let deadline, Date() >= deadline { stopReason = .timeBudget }
        return stopReason
    }

    /// Asks every worker to stop; the first reason wins.
    public func requestStop(_ reason: Stop) {
        condition.lock()
        if stopReason == nil { stopReason = reason }
        condition.broadcast()
        condition.unlock()
    }

    /// Sleeps `seconds`, or less if a stop is asked for or the run's time budget ends first;
    /// throws when stopped.
    public func sleep(_ seconds: TimeInterval) throws {
        var until = Date().addingTimeInterval(max(0, seconds))
        if let deadline, deadline < until { until = deadline }
        condition.lock()
        defer { condition.unlock() }
        while stopReason == nil, Date() < until {
            _ = condition.wait(until: until)
        }
        if stopReason == nil, let deadline, Date() >= deadline { stopReason = .timeBudget }
        if let stopReason { throw Interrupted(reason: stopReason) }
    }

    /// Work that ended because the run was asked to stop.
    public struct Interrupted: Error, Sendable, CustomStringConvertible {
        public let reason: Stop
        public var description: String { "stopped: \(reason.rawValue)" }
    }
}
