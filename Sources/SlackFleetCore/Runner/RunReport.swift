import Foundation

/// What happened to one instance in a run.
public struct InstanceResult: Sendable, Codable, Equatable {
    public enum Outcome: String, Sendable, Codable, CaseIterable {
        /// Already as it should be; nothing changed.
        case ok
        /// Changed (or, in a dry run, would change).
        case changed
        case failed
        /// Not worked on, with the reason (no app yet, disabled...).
        case skipped
        /// Stopped by SIGINT or SIGTERM mid-way.
        case interrupted
        /// Not started: the run's time or failure budget ran out; the next run does it.
        case deferred
    }

    public let instance: String
    public let appGroup: String
    public let workspace: String
    public var outcome: Outcome
    public var detail: String
    public var durationMS: Int
    /// verify-delivery: each check's verdict (`ok`, or why not), in `VerifyDelivery.checkNames` order.
    public var checks: [String: String]?
    /// verify-delivery: seconds from the test alert to its message in the channel.
    public var deliverySeconds: Double?
    /// rotate-secret: seconds from the first write of the new credentials to the instance
    /// reporting them (the old ones serve until then).
    public var switchSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case instance, appGroup = "app_group", workspace, outcome = "result", detail, durationMS = "duration_ms"
        case checks, deliverySeconds = "delivery_seconds", switchSeconds = "switch_seconds"
    }

    /// Appends the `--json` line (without its newline) to `out`: the Encodable form's members,
    /// in sorted order, as the canonical JSON writer spells them, written member by member
    /// (JSONEncoder took a tenth of a converged thousand-instance run's own time).
    public func appendJSONLine(to out: inout String) {
        func member(_ key: CodingKeys, _ first: Bool = false) {
            out += first ? "{" : ","
            JSONText.appendQuoted(key.rawValue, to: &out)
            out += ":"
        }
        member(.appGroup, true)
        JSONText.appendQuoted(appGroup, to: &out)
        if let checks {
            member(.checks)
            out += JSON.object(checks.mapValues(JSON.string)).canonicalJSON
        }
        if let deliverySeconds {
            member(.deliverySeconds)
            out += JSON.double(deliverySeconds).canonicalJSON
        }
        member(.detail)
        JSONText.appendQuoted(detail, to: &out)
        member(.durationMS)
        out += String(durationMS)
        member(.instance)
        JSONText.appendQuoted(instance, to: &out)
        member(.outcome)
        JSONText.appendQuoted(outcome.rawValue, to: &out)
        if let switchSeconds {
            member(.switchSeconds)
            out += JSON.double(switchSeconds).canonicalJSON
        }
        member(.workspace)
        JSONText.appendQuoted(workspace, to: &out)
        out += "}"
    }

    public init(instance: String, appGroup: String, workspace: String, outcome: Outcome, detail: String, durationMS: Int = 0) {
        self.instance = instance
        self.appGroup = appGroup
        self.workspace = workspace
        self.outcome = outcome
        self.detail = detail
        self.durationMS = durationMS
    }
}

/// A whole run: its results, counts, and how it ended.
public struct RunReport: Sendable {
    public let runID: String
    public let job: String
    public let dryRun: Bool
    public let startedAt: Date
    public var finishedAt = Date()
    public var results: [InstanceResult] = []
    public var stop: RunControl.Stop?
    /// Calls per endpoint, retries, 429s per workspace.
    public var calls: [String: Int] = [:]
    public var retries = 0
    public var rateLimited: [String: Int] = [:]
    /// The changes a dry run would make, by instance ("" for app-wide changes).
    public var planned: [String: [String]] = [:]

    public func count(_ outcome: InstanceResult.Outcome) -> Int { results.filter { $0.outcome == outcome }.count }

    /// `ok=.. changed=.. failed=.. skipped=..`, as Ansible's recap line.
    public var recap: String {
        InstanceResult.Outcome.allCases.filter { $0 != .interrupted && $0 != .deferred || count($0) > 0 }
            .map { "\($0.rawValue)=\(count($0))" }.joined(separator: " ")
    }

    /// The exit status: a signal, then failures (they always show), then the time budget,
    /// then a dry run's pending changes.
    public var exitStatus: ExitStatus {
        switch stop {
        case .interrupted?: return .interrupted
        case .terminated?: return .terminated
        default: break
        }
        if count(.failed) > 0 { return .failure }
        if stop == .timeBudget || count(.deferred) > 0 { return .temporaryFailure }
        if dryRun && count(.changed) > 0 { return .changesPending }
        return .ok
    }
}
