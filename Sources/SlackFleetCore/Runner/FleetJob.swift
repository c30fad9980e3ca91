import Foundation

/// A job: what it makes true for one app group, reported per instance.
///
/// A job implements `start` (its work as steps, each step that spends a limited Slack quota
/// announced before it runs, so the run's scheduler can keep every workspace's quota busy) or,
/// for work with no quota to plan, `run`; each has a default in terms of the other.
public protocol FleetJob: Sendable {
    var name: String { get }
    /// Calls to Slack's Tier 1 this job may make for `group`, for the ETA (0 if unknown or none).
    func expectedTier1Writes(_ group: GroupWork, context: JobContext) -> Int
    /// The work on `group`: its results, or a step that spends one call of a limited tier first.
    /// It makes no quota call itself before it returns a `.spend` step for it.
    func start(_ group: GroupWork, context: JobContext) -> GroupStep
    /// The work on `group` done inline, any quota waited for on the pacer.
    func run(_ group: GroupWork, context: JobContext) -> [InstanceResult]
    /// Work done once per run before the app groups, such as rotating each workspace's
    /// configuration token. Returns whether it stored workspace credentials: the groups are
    /// then built again, with the tokens it stored.
    func begin(_ work: [GroupWork], context: JobContext, notes: (String) -> Void) -> Bool
    /// Reads what every group will need (such as the stored apps) on a thread of its own while
    /// the run recovers and announces itself, so the lanes do not all wait for it at their start.
    func prepare(context: JobContext)

    /// The settings the job runs with when no job file is given (`jobs/<name>.json` holds the
    /// same; a test keeps them equal).
    static var defaultSettings: JobSettings { get }
    /// How a run settles the changes this job makes that a crash left without an outcome.
    static var recoveries: [any ChangeRecovery] { get }
    /// The checks the job reports per instance (InstanceResult.checks), in order: a table shows
    /// a column each.
    var checkNames: [String] { get }
    /// Metrics of its own (Prometheus text), written after the run's in the metrics file.
    func metrics(_ report: RunReport) -> String
    /// Whether the job works on `instance` when the selection names it: instances in service
    /// (enabled, not retiring), unless the job is about the others.
    func selects(_ instance: Instance) -> Bool
}

extension FleetJob {
    public func begin(_ work: [GroupWork], context: JobContext, notes: (String) -> Void) -> Bool { false }
    public func prepare(context: JobContext) {}
    public static var defaultSettings: JobSettings { .base }
    public static var recoveries: [any ChangeRecovery] { [] }
    public var checkNames: [String] { [] }
    public func metrics(_ report: RunReport) -> String { "" }
    public func selects(_ instance: Instance) -> Bool { instance.isActive }

    public func start(_ group: GroupWork, context: JobContext) -> GroupStep {
        .done(run(group, context: context))
    }

    public func run(_ group: GroupWork, context: JobContext) -> [InstanceResult] {
        start(group, context: context).inline(group, context: context)
    }
}

/// What a job's work on one app group asks of the run next: nothing more (its results), or a
/// step that first makes one Slack call of a limited tier.
public enum GroupStep: Sendable {
    /// The group's work is over.
    case done([InstanceResult])
    /// Run `next` once the group's workspace may make one `tier` call: the scheduler takes that
    /// call from the workspace's quota before a worker runs the step (JobContext.ticket), so no
    /// worker sleeps on one workspace's quota while another has work that could go.
    case spend(SlackTier, next: @Sendable (JobContext) -> GroupStep)

    /// The same work, its results passed through `transform` at the end.
    public func map(_ transform: @escaping @Sendable ([InstanceResult]) -> [InstanceResult]) -> GroupStep {
        switch self {
        case .done(let results): return .done(transform(results))
        case .spend(let tier, let next): return .spend(tier) { next($0).map(transform) }
        }
    }

    /// This work, then `next` with its results: one job's steps followed by more (another
    /// job's, or a step of its own), each quota step still announced to the scheduler.
    public func then(_ next: @escaping @Sendable ([InstanceResult]) -> GroupStep) -> GroupStep {
        switch self {
        case .done(let results): return next(results)
        case .spend(let tier, let step): return .spend(tier) { step($0).then(next) }
        }
    }

    /// Runs the remaining steps on this thread, each quota call waited for on the pacer (work
    /// outside a run's scheduler, such as a job called by another job).
    func inline(_ group: GroupWork, context: JobContext) -> [InstanceResult] {
        var step = self
        while true {
            switch step {
            case .done(let results):
                return results
            case .spend(let tier, let next):
                do {
                    try context.pacer.acquire(workspace: group.workspace.id, tier: tier, control: context.control)
                } catch {
                    return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error))
                }
                var stepContext = context
                let ticket = QuotaTicket(workspace: group.workspace.id, tier: tier)
                stepContext.ticket = ticket
                step = next(stepContext)
                if !ticket.used { context.pacer.refund(workspace: group.workspace.id, tier: tier) }
            }
        }
    }
}
