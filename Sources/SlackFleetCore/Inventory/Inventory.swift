import Foundation

/// A fleet: the Slack workspaces alerts go to and the W&B instances that send them.
public struct Inventory: Sendable, Equatable {
    public var workspaces: [Workspace]
    public var instances: [Instance]

    public init(workspaces: [Workspace] = [], instances: [Instance] = []) {
        self.workspaces = workspaces
        self.instances = instances
    }
}

/// A Slack workspace (team) and the tokens SlackFleet uses in it.
public struct Workspace: Sendable, Equatable {
    /// Slack's team id, such as `T0123ABCD`.
    public var id: String
    /// A short name for people (a slug).
    public var name: String
    /// The Web API base, `https://slack.com/api/` unless a simulator or proxy stands in.
    public var apiURL: String
    /// Whether plain http is allowed to a loopback `apiURL` (tests and the simulator only).
    public var allowInsecureHTTP: Bool
    /// The app configuration token (`xoxe.xoxp-...`), valid 12 hours.
    public var configToken: SecretReference
    /// The refresh token (`xoxe-1-...`) that renews it; single use.
    public var refreshToken: SecretReference
    /// When the configuration token expires, if known.
    public var configTokenExpiresAt: String?
    /// A bot token that can read the canary channel (`channels:history`), for verify-delivery.
    public var botToken: SecretReference?
    /// The channel test alerts go to, such as `C0CANARY01`.
    public var canaryChannel: String?
    /// The shard (1-based) this workspace is pinned to when the fleet is split (Shard); nil: by
    /// a hash of its ID.
    public var runner: Int?

    public static let defaultAPIURL = "https://slack.com/api/"

    public init(id: String, name: String, apiURL: String = Workspace.defaultAPIURL, allowInsecureHTTP: Bool = false,
                configToken: SecretReference, refreshToken: SecretReference, configTokenExpiresAt: String? = nil,
                botToken: SecretReference? = nil, canaryChannel: String? = nil, runner: Int? = nil) {
        self.id = id
        self.name = name
        self.apiURL = apiURL
        self.allowInsecureHTTP = allowInsecureHTTP
        self.configToken = configToken
        self.refreshToken = refreshToken
        self.configTokenExpiresAt = configTokenExpiresAt
        self.botToken = botToken
        self.canaryChannel = canaryChannel
        self.runner = runner
    }
}

/// A W&B Server deployment whose alerts go to Slack.
public struct Instance: Sendable, Equatable {
    /// A unique slug, such as `prod-us-east`.
    public var name: String
    /// Where the W&B API answers (GraphQL at `/graphql`).
    public var baseURL: String
    /// The host URLs people reach the instance at, normalised; they become the app's redirect URLs.
    public var hostURLs: [String]
    /// IPv4 addresses or CIDR ranges for the app's "Restrict API Token Usage" list.
    public var ipAllowlist: [String]
    /// The Slack team id of the workspace alerts go to.
    public var workspaceID: String
    /// Instances with the same app group (in one workspace) share one Slack app.
    public var appGroup: String
    /// A W&B admin API key.
    public var apiKey: SecretReference
    /// Where verify-delivery sends its test alerts.
    public var canary: Canary?
    /// W&B entities besides the canary whose Slack integrations SlackFleet watches: a blue/green
    /// rotation never deletes an app while an integration from before it remains on one of them.
    public var watchEntities: [String]
    /// Free-form labels for selection (`--label env=prod`).
    public var labels: [String: String]
    /// How the Slack credentials reach the instance.
    public var registrar: Registrar
    /// Whether plain http is allowed to loopback URLs of this instance (tests and the simulator only).
    public var allowInsecureHTTP: Bool
    /// Disabled instances stay in the inventory but no job touches them.
    public var enabled: Bool
    /// Whether the instance is on its way out: only `retire` works on it.
    public var retirement: Retirement?

    /// Enabled and not retiring: what every job but `retire` works on.
    public var isActive: Bool { enabled && retirement == nil }

    public init(name: String, baseURL: String, hostURLs: [String], ipAllowlist: [String] = [], workspaceID: String,
                appGroup: String? = nil, apiKey: SecretReference, canary: Canary? = nil, watchEntities: [String] = [], labels: [String: String] = [:],
                registrar: Registrar, allowInsecureHTTP: Bool = false, enabled: Bool = true, retirement: Retirement? = nil) {
        self.name = name
        self.baseURL = baseURL
        self.hostURLs = hostURLs
        self.ipAllowlist = ipAllowlist
        self.workspaceID = workspaceID
        self.appGroup = appGroup ?? name
        self.apiKey = apiKey
        self.canary = canary
        self.watchEntities = watchEntities
        self.labels = labels
        self.registrar = registrar
        self.allowInsecureHTTP = allowInsecureHTTP
        self.enabled = enabled
        self.retirement = retirement
    }
}

/// Why an instance is on its way out. `retire` takes its host URLs out of its group's app,
/// removes its credentials, deletes the app once no instance of the group is left, and then
/// forgets a removed instance.
public enum Retirement: String, Sendable, Equatable {
    /// The inventory says `retire: true`.
    case marked
    /// Removed from the inventory (`inventory import --prune`, `inventory remove`) after it was
    /// given an app's credentials: kept as a tombstone until retired.
    case removed
}

/// The W&B entity and project verify-delivery posts its test alerts in.
public struct Canary: Sendable, Equatable, Codable {
    public var entity: String
    public var project: String

    public init(entity: String, project: String) {
        self.entity = entity
        self.project = project
    }
}

/// How Slack credentials reach an instance.
public enum Registrar: Sendable, Equatable {
    /// The W&B Kubernetes operator, `apps.wandb.com/v2`: a Secret the CR's selectors point at.
    case operatorV2(KubernetesTarget)
    /// The operator v1 / Helm values: `spec.values.global.slack` of the CR.
    case operatorV1(KubernetesTarget)
    /// A command of the operator's own, given the credentials as JSON on stdin.
    case exec(ExecHook)

    /// The `kind` as written in the inventory.
    public var kind: String {
        switch self {
        case .operatorV2: "operator-v2"
        case .operatorV1: "operator-v1"
        case .exec: "exec"
        }
    }
}

/// Where an instance's WeightsAndBiases resource lives in Kubernetes.
public struct KubernetesTarget: Sendable, Equatable {
    /// The Kubernetes API server.
    public var apiURL: String
    /// A service account token.
    public var token: SecretReference
    public var namespace: String
    /// The name of the WeightsAndBiases custom resource.
    public var resource: String
    /// The name of the api workload to restart so it reads new credentials (required for
    /// operator-v2): a Deployment, or an Argo Rollout (`workload`).
    public var deployment: String?
    /// What kind of workload `deployment` names; nil: a Deployment, or an Argo Rollout of that
    /// name when no such Deployment exists.
    public var workload: WorkloadKind?
    /// A CA bundle to trust for the API server's certificate.
    public var caFile: String?

    public init(apiURL: String, token: SecretReference, namespace: String, resource: String, deployment: String? = nil,
                workload: WorkloadKind? = nil, caFile: String? = nil) {
        self.apiURL = apiURL
        self.token = token
        self.namespace = namespace
        self.resource = resource
        self.deployment = deployment
        self.workload = workload
        self.caFile = caFile
    }
}

/// How the W&B operator runs the api: a Deployment (`apps/v1`), or an Argo Rollout
/// (`argoproj.io/v1alpha1`), restarted through `spec.restartAt`.
public enum WorkloadKind: String, Sendable, Equatable, CaseIterable {
    case deployment, rollout
}

/// A command that registers credentials with an instance SlackFleet cannot reach otherwise.
public struct ExecHook: Sendable, Equatable {
    /// The program and its arguments (no shell).
    public var command: [String]
    /// How long it may run.
    public var timeoutSeconds: Int

    public static let defaultTimeoutSeconds = 120

    public init(command: [String], timeoutSeconds: Int = ExecHook.defaultTimeoutSeconds) {
        self.command = command
        self.timeoutSeconds = timeoutSeconds
    }
}

extension Inventory {
    /// One Slack app's share of the fleet: the instances of one app group in one workspace.
    public struct AppKey: Hashable, Sendable, Comparable {
        public let workspaceID: String
        public let appGroup: String

        public init(workspaceID: String, appGroup: String) {
            self.workspaceID = workspaceID
            self.appGroup = appGroup
        }

        public static func < (lhs: AppKey, rhs: AppKey) -> Bool {
            (lhs.workspaceID, lhs.appGroup) < (rhs.workspaceID, rhs.appGroup)
        }
    }

    /// The instances of each app, keyed by workspace and app group.
    public var instancesByApp: [AppKey: [Instance]] {
        Dictionary(grouping: instances) { AppKey(workspaceID: $0.workspaceID, appGroup: $0.appGroup) }
    }
}
