import Foundation

/// How far a run is: app groups finished, and instance results so far.
public struct RunProgress: Sendable {
    public let groupsDone: Int
    public let groups: Int
    public let changed: Int
    public let failed: Int
    /// Seconds the Tier 1 writes still expected take at the quotas (the busiest workspace's).
    public var quotaETA: TimeInterval?
}

/// The lanes' shared list: the next group to take and the results so far.
final class SharedRunState: @unchecked Sendable {
    private let lock = NSLock()
    private var done = 0
    private var failures = 0
    private var changes = 0
    private var finished: [Int: [InstanceResult]] = [:]
    private var earlyRecordClaimed = false
    private var early: Set<Int> = []

    /// True for the one caller that asks first: it records the results finished so far.
    func claimEarlyRecord() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let first = !earlyRecordClaimed
        earlyRecordClaimed = true
        return first
    }

    /// The groups whose results were recorded before the run's end.
    var recordedEarly: Set<Int> {
        get { lock.lock(); defer { lock.unlock() }; return early }
        set { lock.lock(); early = newValue; lock.unlock() }
    }

    /// Keeps a group's results; returns the counts so far (kept as running totals: a run of
    /// thousands of groups must not gather every result again after each one).
    func finish(_ index: Int, _ results: [InstanceResult], groups: Int) -> RunProgress {
        lock.lock()
        defer { lock.unlock() }
        finished[index] = results
        done += 1
        failures += results.filter { $0.outcome == .failed }.count
        changes += results.filter { $0.outcome == .changed }.count
        return RunProgress(groupsDone: done, groups: groups, changed: changes, failed: failures)
    }

    var results: [Int: [InstanceResult]] {
        lock.lock()
        defer { lock.unlock() }
        return finished
    }
}

/// Each group's own control (its timeout, and the run's stop), made when its first step runs:
/// time a group's step spends queued for a quota does not count against its timeout.
final class GroupControls: @unchecked Sendable {
    private let lock = NSLock()
    private var controls: [Int: (control: RunControl, started: DispatchTime)] = [:]
    private let timeout: TimeInterval
    private let run: RunControl

    init(timeout: TimeInterval, run: RunControl) {
        self.timeout = timeout
        self.run = run
    }

    func control(for group: Int, queuedSince: DispatchTime) -> RunControl {
        lock.withLock {
            if let known = controls[group] {
                known.control.extendDeadline(by: Double(DispatchTime.now().uptimeNanoseconds - queuedSince.uptimeNanoseconds) / 1e9)
                return known.control
            }
            let made = RunControl(group: timeout, of: run)
            controls[group] = (made, DispatchTime.now())
            return made
        }
    }

    func started(_ group: Int) -> Bool { lock.withLock { controls[group] != nil } }

    /// Milliseconds since the group's first step began.
    func elapsedMS(_ group: Int) -> Int {
        lock.withLock {
            controls[group].map { Int((DispatchTime.now().uptimeNanoseconds - $0.started.uptimeNanoseconds) / 1_000_000) } ?? 0
        }
    }
}
