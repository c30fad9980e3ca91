import Foundation

/// Slack's rate limit tiers, as the client paces them.
public enum SlackTier: String, Sendable, CaseIterable, Codable {
    case tier1, tier2, tier3, tier4, special

    /// "Tier 1", as messages say it.
    public var label: String {
        switch self {
        case .tier1: "Tier 1"
        case .tier2: "Tier 2"
        case .tier3: "Tier 3"
        case .tier4: "Tier 4"
        case .special: "special-tier"
        }
    }
}

/// Paces Slack calls per (workspace, tier), shared by every worker of a run.
///
/// A token bucket per key refills at the tier's per-minute rate; a call takes a token, so calls
/// are spread out instead of discovering the limit through 429s. A 429 still pauses that key
/// for everyone for its Retry-After. The run's scheduler takes a token for a step before a worker
/// runs it (`take`), so workers never sleep here on a call it planned; `acquire` waits only for
/// calls nobody planned (a second write in one step, a canary poll).
public final class SlackPacer: @unchecked Sendable {
    /// Calls per minute and burst per tier.
    public struct Quotas: Sendable, Codable, Equatable {
        public var perMinute: [SlackTier: Double]
        public var burst: [SlackTier: Double]

        /// Slack's published tiers, with no burst used (Tier 1: one write a minute).
        public static let slack = Quotas(perMinute: [.tier1: 1, .tier2: 20, .tier3: 50, .tier4: 100, .special: 20],
                                         burst: [.tier1: 1, .tier2: 3, .tier3: 5, .tier4: 10, .special: 3])

        /// The pace kept under each quota. Calls paced at exactly a quota's rate reach Slack with
        /// the network's jitter, and one that arrives a little early is a 429; 2% under the rate
        /// keeps them apart (1.2 s a minute at Tier 1) for a 2% longer run.
        static let margin = 0.02

        /// Calls a second the quota allows.
        func allowed(_ tier: SlackTier) -> Double { max(perMinute[tier] ?? 20, 0.0001) / 60 }
        /// Calls a second the pacer lets go: the quota's, less the margin.
        func rate(_ tier: SlackTier) -> Double { allowed(tier) * (1 - Quotas.margin) }
        func burst(_ tier: SlackTier) -> Double { max(1, burst[tier] ?? 1) }
    }

    private struct Bucket {
        var tokens: Double
        var updatedAt: TimeInterval
        var pausedUntil: TimeInterval = 0
        /// When the bucket was made (full), until its first call's answer moves that to then.
        var createdAt: TimeInterval
        var anchored = false
    }

    /// What one (workspace, tier) spent in the run: calls, and when the first and last went.
    public struct Usage: Sendable, Equatable {
        public var calls = 0
        public var first: TimeInterval = 0
        public var last: TimeInterval = 0
    }

    public let quotas: Quotas
    /// When the run began (uptime seconds), for the share of a quota used.
    public let started = SlackPacer.now
    private let lock = NSLock()
    private var buckets: [String: Bucket] = [:]
    private var usage: [String: Usage] = [:]

    public init(quotas: Quotas = .slack) {
        self.quotas = quotas
    }

    static var now: TimeInterval { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    private static func key(_ workspace: String, _ tier: SlackTier) -> String { workspace + "|" + tier.rawValue }

    /// The bucket of `key` brought up to `now` (the caller holds the lock).
    private func bucket(_ key: String, _ tier: SlackTier, now: TimeInterval) -> Bucket {
        var bucket = buckets[key] ?? Bucket(tokens: quotas.burst(tier), updatedAt: now, createdAt: now)
        bucket.tokens = min(quotas.burst(tier), bucket.tokens + max(0, now - bucket.updatedAt) * quotas.rate(tier))
        bucket.updatedAt = now
        return bucket
    }

    /// When (uptime seconds) `workspace` may next make a `tier` call; now or earlier if it may now.
    public func availableAt(workspace: String, tier: SlackTier) -> TimeInterval {
        let key = SlackPacer.key(workspace, tier)
        return lock.withLock {
            let now = SlackPacer.now
            let current = bucket(key, tier, now: now)
            let refill = current.tokens >= 1 ? now : now + (1 - current.tokens) / quotas.rate(tier)
            return max(refill, current.pausedUntil)
        }
    }

    /// Takes one `tier` call of `workspace` if it may go now; false otherwise (nothing taken).
    public func take(workspace: String, tier: SlackTier) -> Bool {
        let key = SlackPacer.key(workspace, tier)
        return lock.withLock {
            let now = SlackPacer.now
            var current = bucket(key, tier, now: now)
            guard current.pausedUntil <= now, current.tokens >= 1 else {
                buckets[key] = current
                return false
            }
            current.tokens -= 1
            buckets[key] = current
            return true
        }
    }

    /// Gives back a call taken with `take` and not made.
    public func refund(workspace: String, tier: SlackTier) {
        let key = SlackPacer.key(workspace, tier)
        lock.withLock {
            var current = bucket(key, tier, now: SlackPacer.now)
            current.tokens = min(quotas.burst(tier), current.tokens + 1)
            buckets[key] = current
        }
    }

    /// Waits until `workspace` may make one more `tier` call, then takes it.
    public func acquire(workspace: String, tier: SlackTier, control: RunControl) throws {
        while true {
            if take(workspace: workspace, tier: tier) { return }
            let wait = max(0.001, availableAt(workspace: workspace, tier: tier) - SlackPacer.now)
            control.extendDeadline(by: wait)
            try control.sleep(wait)
        }
    }

    /// Notes a call that went (its token taken through `take` or `acquire`), for `usage`.
    func record(workspace: String, tier: SlackTier) {
        let key = SlackPacer.key(workspace, tier)
        lock.withLock {
            let now = SlackPacer.now
            var entry = usage[key] ?? Usage(calls: 0, first: now, last: now)
            entry.calls += 1
            entry.last = now
            usage[key] = entry
        }
    }

    /// A call of `tier` in `workspace` was answered (or failed). Slack's bucket for the pair
    /// starts full when the first call reaches it, which is after this one was made full, by the
    /// first call's wait for a connection and its trip: if this bucket counted from its own
    /// start, it would run ahead of Slack's by that much, and the call after a burst would draw a
    /// 429. So the refill before the first answer is taken back once: from then on this bucket is
    /// never ahead of Slack's (calls taken later than they reach Slack leave the two levels alike).
    func settle(workspace: String, tier: SlackTier) {
        let key = SlackPacer.key(workspace, tier)
        lock.withLock {
            guard buckets[key]?.anchored == false else { return }
            let now = SlackPacer.now
            var current = bucket(key, tier, now: now)
            current.tokens -= max(0, now - current.createdAt) * quotas.rate(tier)
            current.anchored = true
            buckets[key] = current
        }
    }

    /// A 429: nobody calls `tier` in `workspace` for `seconds`.
    public func pause(workspace: String, tier: SlackTier, seconds: TimeInterval) {
        let key = SlackPacer.key(workspace, tier)
        lock.withLock {
            let now = SlackPacer.now
            var current = bucket(key, tier, now: now)
            current.pausedUntil = max(current.pausedUntil, now + seconds)
            current.tokens = 0
            buckets[key] = current
        }
    }

    /// Seconds from now until the last of `count` more `tier` calls of `workspace` may go at the
    /// pace: what its bucket holds goes at once (after a 429's pause), the rest at the rate.
    public func eta(workspace: String, calls count: Int, tier: SlackTier) -> TimeInterval {
        guard count > 0 else { return 0 }
        let key = SlackPacer.key(workspace, tier)
        return lock.withLock {
            let now = SlackPacer.now
            let current = bucket(key, tier, now: now)
            let start = max(now, current.pausedUntil)
            let tokens = min(quotas.burst(tier), current.tokens + (start - now) * quotas.rate(tier))
            return (start - now) + max(0, Double(count) - tokens) / quotas.rate(tier)
        }
    }

    /// The share of each workspace's `tier` quota the run used: its calls against what the quota
    /// allowed from the run's start to its last call (the burst, up to the calls made, plus the
    /// rate over that time). 1 means no call could have gone sooner.
    public func utilization(tier: SlackTier) -> [String: Double] {
        lock.withLock {
            var shares: [String: Double] = [:]
            for (key, entry) in usage where key.hasSuffix("|" + tier.rawValue) && entry.calls > 0 {
                let workspace = String(key.dropLast(tier.rawValue.count + 1))
                let allowed = min(quotas.burst(tier), Double(entry.calls)) + max(0, entry.last - started) * quotas.allowed(tier)
                shares[workspace] = min(1, Double(entry.calls) / max(allowed, 1))
            }
            return shares
        }
    }
}
