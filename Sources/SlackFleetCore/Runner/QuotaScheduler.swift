import Foundation

/// Hands the steps of a run's app groups to its workers, with Slack's per-(workspace, tier)
/// quotas as the resource being scheduled.
///
/// A step that spends a quota (GroupStep.spend) is handed out only when its workspace's next
/// call of that tier may go now, and then with that call already taken from the quota; among
/// several, the workspace with the most waiting goes first (the longest queue sets the run's
/// length). Steps that spend nothing go when no quota step can. When neither can, workers wait
/// until the earliest quota frees or a running step adds work. So no worker sleeps on one
/// workspace's quota while another workspace has work that could go, and every workspace with
/// writes waiting writes at its full rate at once. A quota step that could only go after the
/// run's time budget ends is not started: the next run does it.
final class QuotaScheduler: @unchecked Sendable {
    /// One step waiting to run.
    struct Item: Sendable {
        let group: Int
        let workspace: String
        /// The tier whose call the step makes first; nil for a step that spends no quota.
        let tier: SlackTier?
        let step: @Sendable (JobContext) -> GroupStep
        /// When it was added: time queued for a quota does not count against a group's timeout.
        let queuedAt = DispatchTime.now()

        init(group: Int, workspace: String, tier: SlackTier?, step: @escaping @Sendable (JobContext) -> GroupStep) {
            self.group = group
            self.workspace = workspace
            self.tier = tier
            self.step = step
        }
    }

    /// A step handed to a worker, with the quota call taken for it, if any.
    struct Taken: Sendable {
        let item: Item
        let ticket: QuotaTicket?
    }

    private let condition = NSCondition()
    private var plain: [Item] = []
    private var plainHead = 0
    /// Quota steps by (workspace, tier), oldest first.
    private var spending: [String: [Item]] = [:]
    private var running = 0
    /// Tier 1 writes still expected per workspace (from the job), for the ETA.
    private var writesLeft: [String: Int] = [:]
    private var deferredGroups: [Int: String] = [:]
    private let pacer: SlackPacer
    private let control: RunControl

    init(pacer: SlackPacer, control: RunControl) {
        self.pacer = pacer
        self.control = control
    }

    private static func key(_ workspace: String, _ tier: SlackTier) -> String { workspace + "|" + tier.rawValue }

    /// The Tier 1 writes the job expects per workspace, for `eta`.
    func expectWrites(_ writes: [String: Int]) {
        condition.withLock { writesLeft = writes.filter { $0.value > 0 } }
    }

    /// Groups whose next step could not go before the time budget, and why.
    var deferred: [Int: String] { condition.withLock { deferredGroups } }

    /// Adds a step (a group's first, or the next one a running step asked for).
    func add(_ item: Item) {
        condition.lock()
        if let tier = item.tier {
            spending[QuotaScheduler.key(item.workspace, tier), default: []].append(item)
        } else {
            plain.append(item)
        }
        condition.broadcast()
        condition.unlock()
    }

    /// A step handed out by `take` is over (its next step, if any, added before this).
    func stepFinished() {
        condition.lock()
        running -= 1
        condition.broadcast()
        condition.unlock()
    }

    /// The next step to run, waiting as long as needed; nil when no work is left or the run was
    /// asked to stop.
    func take() -> Taken? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if control.stop != nil { return nil }
            let now = SlackPacer.now
            var earliest = TimeInterval.infinity
            // The quota steps whose workspace may call now, the longest queue first.
            let keys = spending.keys.sorted { first, second in
                let (a, b) = (spending[first]?.count ?? 0, spending[second]?.count ?? 0)
                return a != b ? a > b : first < second
            }
            for key in keys {
                guard let item = spending[key]?.first, let tier = item.tier else { continue }
                if pacer.take(workspace: item.workspace, tier: tier) {
                    spending[key]?.removeFirst()
                    if spending[key]?.isEmpty == true { spending.removeValue(forKey: key) }
                    if tier == .tier1, let left = writesLeft[item.workspace] { writesLeft[item.workspace] = max(0, left - 1) }
                    running += 1
                    return Taken(item: item, ticket: QuotaTicket(workspace: item.workspace, tier: tier))
                }
                earliest = min(earliest, pacer.availableAt(workspace: item.workspace, tier: tier))
            }
            if plainHead < plain.count {
                let item = plain[plainHead]
                plainHead += 1
                running += 1
                return Taken(item: item, ticket: nil)
            }
            if spending.isEmpty && running == 0 { return nil }
            // A quota that frees only after the time budget ends: those steps wait for the next run.
            if let left = control.deadline?.timeIntervalSinceNow, earliest.isFinite, earliest - now > left {
                deferSteps(after: now + left)
                continue
            }
            let wait = earliest.isFinite ? min(max(earliest - now, 0.001), 1) : 1
            _ = condition.wait(until: Date().addingTimeInterval(wait))
        }
    }

    /// Takes out every quota step whose workspace may call only after `limit` (uptime seconds).
    private func deferSteps(after limit: TimeInterval) {
        for (key, items) in spending {
            guard let first = items.first, let tier = first.tier else { continue }
            let at = pacer.availableAt(workspace: first.workspace, tier: tier)
            guard at > limit else { continue }
            let why = "its \(tier.label) call to Slack could not go before --max-duration ends (workspace \(first.workspace)'s quota allows the next in \(Runner.duration(at - SlackPacer.now))); the next run does it"
            for item in items { deferredGroups[item.group] = why }
            spending.removeValue(forKey: key)
        }
    }

    /// Seconds the Tier 1 writes still expected take at the quotas: the busiest workspace's.
    func eta() -> TimeInterval? {
        condition.withLock {
            writesLeft.filter { $0.value > 0 }.map { pacer.eta(workspace: $0.key, calls: $0.value, tier: .tier1) }.max()
        }
    }
}

/// One quota call the scheduler took for a step: the step's first call of that tier in that
/// workspace uses it instead of waiting on the pacer. Given back if the step does not use it.
public final class QuotaTicket: @unchecked Sendable {
    let workspace: String
    let tier: SlackTier
    private let lock = NSLock()
    private var spent = false

    init(workspace: String, tier: SlackTier) {
        self.workspace = workspace
        self.tier = tier
    }

    /// Whether this call (of `tier` in `workspace`) may use the ticket; true once.
    func claim(workspace: String, tier: SlackTier) -> Bool {
        guard workspace == self.workspace, tier == self.tier else { return false }
        return lock.withLock {
            defer { spent = true }
            return !spent
        }
    }

    /// Whether a call used it.
    var used: Bool { lock.withLock { spent } }
}
