import Foundation

/// Everything a job's work needs, shared by all lanes of a run.
public struct JobContext: Sendable {
    public let store: FleetStore
    public let vault: SecretVault
    public let executor: ChangeExecutor
    public let transport: HTTPTransport
    public let pacer: SlackPacer
    public let retry: RetryPolicy
    /// The group's control (its deadline and the run's stop) while a group is worked on.
    public var control: RunControl
    public let metrics: CallMetrics
    public let settings: JobSettings
    /// What the run learnt about each workspace once (names, bots' apps, probe order).
    public let facts: WorkspaceFacts
    /// The quota call the scheduler took for the step being run, if any (see GroupStep).
    public var ticket: QuotaTicket?
    /// How many instances of one group are worked on at once (`--concurrency`).
    public var width = 16

    public init(store: FleetStore, vault: SecretVault, executor: ChangeExecutor, transport: HTTPTransport, pacer: SlackPacer,
                retry: RetryPolicy, control: RunControl, metrics: CallMetrics, settings: JobSettings, facts: WorkspaceFacts = WorkspaceFacts()) {
        self.store = store
        self.vault = vault
        self.executor = executor
        self.transport = transport
        self.pacer = pacer
        self.retry = retry
        self.control = control
        self.metrics = metrics
        self.settings = settings
        self.facts = facts
    }

    /// A context for work outside a job run (apps restore, connect): the transport, pacer and
    /// retries of `settings`, no dry run.
    public static func standalone(store: FleetStore, vault: SecretVault, audit: AuditLog, settings: JobSettings,
                                  transport: HTTPTransport, control: RunControl) -> JobContext {
        JobContext(store: store, vault: vault, executor: ChangeExecutor(audit: audit, dryRun: false, control: control), transport: transport,
                   pacer: SlackPacer(quotas: settings.slackQuotas), retry: settings.retryPolicy, control: control, metrics: CallMetrics(), settings: settings)
    }

    /// The run this context belongs to.
    public var runID: String { executor.audit.context.runID }

    /// The clients' shared plumbing, with this group's control.
    public var environment: CallEnvironment {
        CallEnvironment(transport: transport, retry: retry, control: control, metrics: metrics)
    }

    public func slack(_ workspace: Workspace) -> SlackClient {
        SlackClient(workspace: workspace, pacer: pacer, environment: environment, ticket: ticket)
    }

    public func wandb(_ instance: Instance) throws -> WandbClient {
        WandbClient(instance: instance, apiKey: try vault.resolve(instance.apiKey), environment: environment)
    }

    public func registration(_ instance: Instance, wandb: WandbClient) -> RegistrationContext {
        RegistrationContext(instance: instance, executor: executor, wandb: wandb, vault: vault, environment: environment,
                            settleTimeout: settings.settleTimeoutSeconds)
    }

    /// Runs `body` for every item, up to `width` (the run's `--concurrency` unless given) at once
    /// on lanes of their own (serial DispatchQueues, like the runner's), and returns the results
    /// in the items' order. For the instances of a large app group, which would otherwise wait on
    /// one another.
    public func each<Item: Sendable, Result: Sendable>(_ items: [Item], width: Int? = nil, _ body: @escaping @Sendable (Item) -> Result) -> [Result] {
        let width = max(1, width ?? self.width)
        guard items.count > 1, width > 1 else { return items.map(body) }
        let results = OrderedResults<Result>(count: items.count)
        let group = DispatchGroup()
        for lane in 0..<min(width, items.count) {
            DispatchQueue(label: "slackfleet.instance-lane.\(lane)").async(group: group) {
                while let index = results.take(limit: items.count) {
                    results.set(index, body(items[index]))
                }
            }
        }
        group.wait()
        return results.all()
    }

    /// The results for every instance of `group` when the whole group failed or stopped.
    public func all(_ group: GroupWork, _ outcome: InstanceResult.Outcome, _ detail: String) -> [InstanceResult] {
        group.instances.map { InstanceResult(instance: $0.name, appGroup: group.key.appGroup, workspace: group.workspace.id, outcome: outcome, detail: detail) }
    }

    /// The result of `error` for one instance: interrupted or deferred when the run was stopped.
    public func failure(_ instance: Instance, _ group: GroupWork, _ error: any Error) -> InstanceResult {
        InstanceResult(instance: instance.name, appGroup: group.key.appGroup, workspace: group.workspace.id,
                       outcome: JobContext.outcome(of: error), detail: ChangeExecutor.describe(error))
    }

    static func outcome(of error: any Error) -> InstanceResult.Outcome {
        guard let stopped = error as? RunControl.Interrupted else { return .failed }
        switch stopped.reason {
        case .interrupted, .terminated: return .interrupted
        case .groupTimeout: return .failed
        case .failureBudget, .timeBudget: return .deferred
        }
    }
}
