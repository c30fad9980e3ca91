import Foundation

/// A job's defaults, as shipped in `jobs/<job>.json`: concurrency, timeouts, retries, the
/// failure budget, the Slack pace and, for provision-app, the manifest template.
public struct JobSettings: Codable, Sendable, Equatable {
    public var concurrency: Int
    /// Seconds one app group's work may take before it is reported failed.
    public var groupTimeoutSeconds: Double
    /// Seconds to wait for an instance to report new credentials after a registration.
    public var settleTimeoutSeconds: Double
    /// `N` instances or `P%` of the selected ones; more failures than this and no new work starts.
    public var maxFailures: String
    public var retry: Retry
    public var slackQuotas: SlackPacer.Quotas
    /// provision-app: the manifest every app starts from; `{app_group}` and `{workspace}` are filled in.
    public var manifest: JSON?

    public struct Retry: Codable, Sendable, Equatable {
        public var maxAttempts: Int
        public var baseDelaySeconds: Double
        public var maxDelaySeconds: Double
        public var maxRetryAfterSeconds: Double

        enum CodingKeys: String, CodingKey {
            case maxAttempts = "max_attempts", baseDelaySeconds = "base_delay_seconds"
            case maxDelaySeconds = "max_delay_seconds", maxRetryAfterSeconds = "max_retry_after_seconds"
        }
    }

    enum CodingKeys: String, CodingKey {
        case concurrency
        case groupTimeoutSeconds = "group_timeout_seconds"
        case settleTimeoutSeconds = "settle_timeout_seconds"
        case maxFailures = "max_failures"
        case retry
        case slackQuotas = "slack_quotas"
        case manifest
    }

    public var retryPolicy: RetryPolicy {
        var policy = RetryPolicy()
        policy.maxAttempts = max(1, retry.maxAttempts)
        policy.baseDelay = retry.baseDelaySeconds
        policy.maxDelay = retry.maxDelaySeconds
        policy.maxRetryAfter = retry.maxRetryAfterSeconds
        return policy
    }

    /// What every job starts from: 16 calls in flight, 15 minutes per app group, 5 minutes for
    /// an instance to take new credentials, a failure budget of 10%, Slack's published quotas.
    /// A job changes what it needs (FleetJob.defaultSettings).
    public static let base = JobSettings(
        concurrency: 16, groupTimeoutSeconds: 900, settleTimeoutSeconds: 300, maxFailures: "10%",
        retry: Retry(maxAttempts: 5, baseDelaySeconds: 0.5, maxDelaySeconds: 30, maxRetryAfterSeconds: 300),
        slackQuotas: .slack, manifest: nil)

    /// These settings with `change` made.
    public func with(_ change: (inout JobSettings) -> Void) -> JobSettings {
        var copy = self
        change(&copy)
        return copy
    }

    /// A job's settings: its job file, else its defaults.
    public static func load(job: String, defaults: JobSettings, file: String?) throws -> JobSettings {
        guard let file else { return defaults }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw FleetError.config("cannot read the job file \(file)")
        }
        do {
            return try JSONDecoder().decode(JobSettings.self, from: data)
        } catch {
            throw FleetError.config("the job file \(file) is not valid: \(error): compare it with jobs/\(job).json")
        }
    }
}

extension SlackPacer.Quotas {
    enum CodingKeys: String, CodingKey {
        case perMinute = "per_minute", burst
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func tiers(_ key: CodingKeys) throws -> [SlackTier: Double] {
            let raw = try container.decode([String: Double].self, forKey: key)
            var result: [SlackTier: Double] = [:]
            for (name, value) in raw {
                guard let tier = SlackTier(rawValue: name) else {
                    throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "unknown tier \(name): use tier1..tier4 or special")
                }
                result[tier] = value
            }
            return result
        }
        self.init(perMinute: try tiers(.perMinute), burst: try tiers(.burst))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Dictionary(uniqueKeysWithValues: perMinute.map { ($0.key.rawValue, $0.value) }), forKey: .perMinute)
        try container.encode(Dictionary(uniqueKeysWithValues: burst.map { ($0.key.rawValue, $0.value) }), forKey: .burst)
    }
}

extension JSON: Encodable {
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .list(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }
}
