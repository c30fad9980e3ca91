import Foundation

/// Whether a run may go on: a stop asked for (SIGINT, SIGTERM, the failure budget, the run's
/// time budget) ends every wait at once. Every sleep in a run goes through here.
public final class RunControl: @unchecked Sendable {
    public enum Stop: String, Sendable {
        case interrupted, terminated, failureBudget = "failure budget", timeBudget = "time budget"
        /// One app group's work took longer than the job's group_timeout_seconds.
        case groupTimeout = "group timeout"
    }

    private let condition = NSCondition()
    private var stopReason: Stop?
    /// When the run (or, for a group's control, the group) must stop.
    public var deadline: Date? {
        condition.lock()
        defer { condition.unlock() }
        return deadlineValue
    }
    private var deadlineValue: Date?
    /// The run's control, for a group's: its stop is the group's stop too.
    private let parent: RunControl?

    public init(maxDuration: TimeInterval? = nil) {
        deadlineValue = maxDuration.map { Date().addingTimeInterval($0) }
        parent = nil
    }

    /// A control for one group's work: stops when the run stops, or after `timeout`.
    public init(group timeout: TimeInterval, of parent: RunControl) {
        deadlineValue = Date().addingTimeInterval(timeout)
        self.parent = parent
    }

    /// Moves a group's deadline later by `seconds`: time spent waiting for Slack's quota is not
    /// the group's own. The run's time budget is never extended.
    public func extendDeadline(by seconds: TimeInterval) {
        guard parent != nil else { return }
        condition.lock()
        deadlineValue = deadlineValue?.addingTimeInterval(seconds)
        condition.unlock()
    }

    private var deadlineReason: Stop { parent == nil ? .timeBudget : .groupTimeout }

    public var stop: Stop? {
        if let stopped = parent?.stop { return stopped }
        condition.lock()
        defer { condition.unlock() }
        if stopReason == nil, let deadline = deadlineValue, Date() >= deadline { stopReason = deadlineReason }
        return stopReason
    }

    /// Seconds left before the deadline (of the group, or of the run), if there is one.
    public var remaining: TimeInterval? {
        let own = deadline.map { $0.timeIntervalSinceNow }

        let inherited = parent?.remaining
        switch (own, inherited) {
        case let (a?, b?): return min(a, b)
        case let (a?, nil): return a
        case let (nil, b?): return b
        default: return nil
        }
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
        condition.lock()
        defer { condition.unlock() }
        if let deadline = deadlineValue, deadline < until { until = deadline }
        while stopReason == nil, Date() < until {
            if let parent {
                // A group's sleep also ends when the run is stopped: look every 100 ms.
                if let stopped = parent.stop { stopReason = stopped; break }
                _ = condition.wait(until: min(until, Date().addingTimeInterval(0.1)))
            } else {
                _ = condition.wait(until: until)
            }
        }
        if stopReason == nil, let deadline = deadlineValue, Date() >= deadline { stopReason = deadlineReason }
        if let stopReason { throw Interrupted(reason: stopReason) }
    }

    /// Work that ended because the run was asked to stop.
    public struct Interrupted: Error, Sendable, CustomStringConvertible {
        public let reason: Stop
        public var description: String { "stopped: \(reason.rawValue)" }
    }
}
