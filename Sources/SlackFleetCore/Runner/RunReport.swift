import Foundation

/// What happened to one instance in a run.
public struct InstanceResult: Sendable, Encodable, Equatable {
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
        /// Alerts cannot reach Slack until a person connects a Slack integration in W&B (the
        /// result's `action` says who, where and which channel).
        case needsConnect = "needs-connect"
        /// A stage that only a person can finish is waiting for them (a secret to regenerate in
        /// Slack's settings page, a connection through a new app); stored, so the next run picks
        /// up from it.
        case waiting
    }

    public let instance: String
    public let appGroup: String
    public let workspace: String
    public var outcome: Outcome
    public var detail: String
    public var durationMS: Int
    /// Each check's verdict (`ok`, or why not), in the job's `checkNames` order (verify-delivery).
    public var checks: [String: String]?
    /// verify-delivery: seconds from the test alert to its message in the channel.
    public var deliverySeconds: Double?
    /// rotate-secret: seconds from the first write of the new credentials to the instance
    /// reporting them (the old ones serve until then).
    public var switchSeconds: Double?
    /// Where the instance's alerts stand: registered and delivering are different states.
    public var connection: ConnectionState?
    /// What only a person can do for this instance now (connect Slack, regenerate a secret).
    public var action: PersonAction?

    enum CodingKeys: String, CodingKey {
        case instance, appGroup = "app_group", workspace, outcome = "result", detail, durationMS = "duration_ms"
        case checks, deliverySeconds = "delivery_seconds", switchSeconds = "switch_seconds", connection, action
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
        if let action {
            member(.action, true)
            out += action.json.canonicalJSON
        }
        member(.appGroup, action == nil)
        JSONText.appendQuoted(appGroup, to: &out)
        if let checks {
            member(.checks)
            out += JSON.object(checks.mapValues(JSON.string)).canonicalJSON
        }
        if let connection {
            member(.connection)
            JSONText.appendQuoted(connection.rawValue, to: &out)
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
    /// The ETA the run announced for its Tier 1 writes, if it had any.
    public var eta: TimeInterval?
    /// The share of each workspace's quota the run used, per tier (SlackPacer.utilization).
    public var quotaUtilization: [SlackTier: [String: Double]] = [:]
    /// The checks the job reports per instance, in order (FleetJob.checkNames).
    public var checkNames: [String] = []
    /// The job's own metrics, Prometheus text (FleetJob.metrics).
    public var jobMetrics = ""

    /// Why the run took more than 10% longer than its ETA, when it did (and the ETA was worth
    /// holding to: at least 10 s); nil when it kept to it.
    public var etaOverrun: String? {
        guard let eta, eta >= 10 else { return nil }
        let took = finishedAt.timeIntervalSince(startedAt)
        guard took > eta * 1.1 else { return nil }
        var reasons: [String] = []
        let limited = rateLimited.values.reduce(0, +)
        if limited > 0 { reasons.append("Slack answered 429 \(limited) time(s) (\(rateLimited.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")))") }
        if count(.failed) > 0 { reasons.append("\(count(.failed)) instance(s) failed") }
        if retries > 0 { reasons.append("\(retries) call(s) were retried") }
        let slowest = (quotaUtilization[.tier1] ?? [:]).filter { $0.value < 0.9 }.sorted { $0.key < $1.key }
        if !slowest.isEmpty { reasons.append("the Tier 1 quota of \(slowest.map { "\($0.key) (\(Int($0.value * 100))%)" }.prefix(3).joined(separator: ", ")) was not used in full: its writes waited on W&B or Kubernetes") }
        if reasons.isEmpty { reasons.append("the work after each write (registration, rollouts) took longer than the quota's pace") }
        return "the run took \(Runner.duration(took)), more than 10% over its ETA of \(Runner.duration(eta)): " + reasons.joined(separator: "; ")
    }

    public func count(_ outcome: InstanceResult.Outcome) -> Int { results.filter { $0.outcome == outcome }.count }

    /// `ok=.. changed=.. failed=.. skipped=..`, as Ansible's recap line; the rarer outcomes only
    /// when they happened.
    public var recap: String {
        let always: Set<InstanceResult.Outcome> = [.ok, .changed, .failed, .skipped]
        return InstanceResult.Outcome.allCases.filter { always.contains($0) || count($0) > 0 }
            .map { "\($0.rawValue)=\(count($0))" }.joined(separator: " ")
    }

    /// The exit status: a signal, then failures and what waits for a person (they always show),
    /// then the time budget, then a dry run's pending changes.
    public var exitStatus: ExitStatus {
        switch stop {
        case .interrupted?: return .interrupted
        case .terminated?: return .terminated
        default: break
        }
        if count(.failed) > 0 || count(.needsConnect) > 0 || count(.waiting) > 0 { return .failure }
        if stop == .timeBudget || count(.deferred) > 0 { return .temporaryFailure }
        if dryRun && count(.changed) > 0 { return .changesPending }
        return .ok
    }
}
