import Foundation

/// Slack's per-workspace, per-method rate limits as token buckets on the simulated clock.
struct RateLimiter {
    private struct Bucket {
        var tokens: Double
        var updatedAt: Double
    }

    private var buckets: [String: Bucket] = [:]
    /// 429s answered, per workspace.
    private(set) var limited: [String: Int] = [:]

    /// Takes one call from the bucket of (`team`, `method`); returns nil when allowed, or the
    /// real seconds to wait (for `Retry-After`) when over quota.
    mutating func take(team: String, method: String, tier: SlackTier, now: Double, config: SimConfig) -> Double? {
        let perMinute = config.tierQuota[tier] ?? 20
        let burst = max(1, config.tierBurst[tier] ?? 1)
        let rate = perMinute / 60
        let key = team + "|" + method
        var bucket = buckets[key] ?? Bucket(tokens: burst, updatedAt: now)
        bucket.tokens = min(burst, bucket.tokens + max(0, now - bucket.updatedAt) * rate)
        bucket.updatedAt = now
        defer { buckets[key] = bucket }
        if bucket.tokens >= 1 {
            bucket.tokens -= 1
            return nil
        }
        limited[team, default: 0] += 1
        let simulatedWait = (1 - bucket.tokens) / max(rate, 1e-9)
        return simulatedWait / max(config.timeScale, 1e-9)
    }

    mutating func reset() {
        buckets.removeAll()
        limited.removeAll()
    }
}
