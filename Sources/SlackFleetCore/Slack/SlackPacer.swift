import Foundation

/// Slack's rate limit tiers, as the client paces them.
public enum SlackTier: String, Sendable, CaseIterable, Codable {
    case tier1, tier2, tier3, tier4, special
}

/// Paces Slack calls per (workspace, tier), shared by every worker of a run.
///
/// A token bucket per key refills at the tier's per-minute rate; a call waits for a token, so
/// writes are spread out instead of discovering the limit through 429s. A 429 still pauses that
/// key for everyone for its Retry-After.
public final class SlackPacer: @unchecked Sendable {
    /// Calls per minute and burst per tier.
    public struct Quotas: Sendable, Codable, Equatable {
        public var perMinute: [SlackTier: Double]
        public var burst: [SlackTier: Double]

        /// Slack's published tiers, with no burst used (Tier 1: one write a minute).
        public static let slack = Quotas(perMinute: [.tier1: 1, .tier2: 20, .tier3: 50, .tier4: 100, .special: 20],
                                         burst: [.tier1: 1, .tier2: 3, .tier3: 5, .tier4: 10, .special: 3])
    }

    private struct Bucket {
        var tokens: Double
        var updatedAt: TimeInterval
        var pausedUntil: TimeInterval = 0
    }

    public let quotas: Quotas
    private let lock = NSLock()
    private var buckets: [String: Bucket] = [:]

    public init(quotas: Quotas = .slack) {
        self.quotas = quotas
    }

    private static var now: TimeInterval { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Waits until `workspace` may make one more `tier` call, then takes it.
    public func acquire(workspace: String, tier: SlackTier, control: RunControl) throws {
        let key = workspace + "|" + tier.rawValue
        let rate = max(quotas.perMinute[tier] ?? 20, 0.0001) / 60
        let burst = max(1, quotas.burst[tier] ?? 1)
        while true {
            lock.lock()
            let now = SlackPacer.now
            var bucket = buckets[key] ?? Bucket(tokens: burst, updatedAt: now)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updatedAt) * rate)
            bucket.updatedAt = now
            var wait: TimeInterval = 0
            if bucket.pausedUntil > now {
                wait = bucket.pausedUntil - now
            } else if bucket.tokens >= 1 {
                bucket.tokens -= 1
            } else {
                wait = (1 - bucket.tokens) / rate
            }
            buckets[key] = bucket
            lock.unlock()
            if wait == 0 { return }
            control.extendDeadline(by: wait)
            try control.sleep(wait)
        }
    }

    /// A 429: nobody calls `tier` in `workspace` for `seconds`.
    public func pause(workspace: String, tier: SlackTier, seconds: TimeInterval) {
        let key = workspace + "|" + tier.rawValue
        lock.lock()
        let now = SlackPacer.now
        var bucket = buckets[key] ?? Bucket(tokens: 0, updatedAt: now)
        bucket.pausedUntil = max(bucket.pausedUntil, now + seconds)
        bucket.tokens = 0
        buckets[key] = bucket
        lock.unlock()
    }

    /// Seconds, at the tier's pace, that `count` more calls take in one workspace.
    public func eta(calls count: Int, tier: SlackTier) -> TimeInterval {
        let burst = max(1, quotas.burst[tier] ?? 1)
        let perMinute = max(quotas.perMinute[tier] ?? 20, 0.0001)
        return max(0, Double(count) - burst) * 60 / perMinute
    }
}
