import Foundation

/// The shape of a simulated fleet.
public struct FleetSpec: Sendable {
    public var instances: Int
    public var workspaces: Int
    /// Groups of instances that share one Slack app (in one workspace); the rest have their own.
    public var sharedGroups: Int
    public var groupSize: Int
    /// `mixed` (80% operator-v2, 10% operator-v1, 10% exec), or one kind for every instance.
    public var registrars = "mixed"
    /// Entities per instance whose people connect Slack integrations of their own (see
    /// `SimConfig.userIntegrations`); each workspace gets a channel for each.
    public var userIntegrations = 0
    /// Instances per workspace, in order (a skewed fleet: `[100, 2, 2]`); nil spreads them round
    /// robin. Shared app groups are spread round robin either way.
    public var workspaceSizes: [Int]?

    public init(instances: Int, workspaces: Int, sharedGroups: Int = 0, groupSize: Int = 5) {
        self.instances = instances
        self.workspaces = max(1, workspaces)
        self.sharedGroups = sharedGroups
        self.groupSize = max(1, groupSize)
    }
}

extension FleetSpec {
    /// The workspace (its index) instance `index` goes to.
    func workspace(of index: Int, group: Int?) -> Int {
        if let group { return group % workspaces }
        guard let sizes = workspaceSizes, !sizes.isEmpty else { return index % workspaces }
        var start = 0
        for (workspace, size) in sizes.enumerated() {
            if index < start + size { return workspace % workspaces }
            start += size
        }
        return index % workspaces
    }
}

/// The credentials the simulator issued for a fleet: what an operator would hold.
public struct IssuedFleet: Sendable {
    public struct Workspace: Sendable {
        public let id: String
        public let name: String
        public let configToken: String
        public let refreshToken: String
        public let configTokenExpiresAt: Double
        public let botToken: String
        public let canaryChannel: String
    }

    public struct Instance: Sendable {
        public let name: String
        public let teamID: String
        public let appGroup: String
        public let hostURL: String
        public let adminKey: String
        public let userKey: String
        public let registrar: String
        public let kubeToken: String
        /// The entities besides the canary whose integrations the operator asks SlackFleet to watch.
        public var watchedEntities: [String] = []
    }

    public var workspaces: [Workspace] = []
    public var instances: [Instance] = []
}

extension Simulator {
    /// Creates workspaces (with configuration, refresh and canary-reading bot tokens) and
    /// instances (with W&B API keys and, for operator kinds, their Kubernetes objects).
    /// About 80% of instances use operator-v2, 10% operator-v1, 10% an exec hook.
    @discardableResult
    public func buildFleet(_ spec: FleetSpec) -> IssuedFleet {
        withWorld { world in
            world.config.userIntegrations = spec.userIntegrations
            var issued = IssuedFleet()
            for index in 0..<spec.workspaces {
                let id = String(format: "TSIM%04d", index + 1)
                let userID = String(format: "USIMADM%03d", index + 1)
                let channelID = String(format: "CCANARY%03d", index + 1)
                let botUserID = String(format: "UCANARYBOT%03d", index + 1)
                // The reader bot was invited to the canary channel (/invite), as an operator does.
                var channels = [channelID: SimChannel(id: channelID, name: "wandb-canary", members: [userID, botUserID])]
                for team in 0..<spec.userIntegrations {
                    let userChannel = World.userChannelID(teamID: id, index: team)
                    channels[userChannel] = SimChannel(id: userChannel, name: "team-\(team + 1)-alerts", members: [userID])
                }
                world.workspaces[id] = SimWorkspace(id: id, name: String(format: "sim-workspace-%02d", index + 1), userID: userID,
                                                    channels: channels, canaryChannelID: channelID, botUserID: botUserID)
                let pair = world.issueConfigurationTokens(teamID: id, userID: userID)
                // The bot of a small app that reads the canary channel.
                let reader = SimApp(id: world.identifier("A"), teamID: id,
                                    manifest: ["display_information": ["name": "canary reader"],
                                               "oauth_config": ["scopes": ["bot": .array(World.readerScopes.map(JSONValue.string))]]],
                                    clientID: world.clientID(), clientSecret: world.hex(16), signingSecret: world.hex(16),
                                    verificationToken: world.hex(12), createdAt: world.now)
                world.apps[reader.id] = reader
                let bot = "xoxb-" + world.hex(20)
                world.tokens[bot] = SimToken(value: bot, kind: .bot, teamID: id, userID: botUserID, appID: reader.id, issuedAt: world.now,
                                             scopes: Set(World.readerScopes))
                issued.workspaces.append(.init(id: id, name: world.workspaces[id]?.name ?? id, configToken: pair.token, refreshToken: pair.refresh,
                                               configTokenExpiresAt: world.tokens[pair.token]?.expiresAt ?? 0, botToken: bot, canaryChannel: channelID))
            }
            let shared = min(spec.instances, spec.sharedGroups * spec.groupSize)
            for index in 0..<spec.instances {
                let name = String(format: "wandb-%04d", index + 1)
                let group = index < shared ? index / spec.groupSize : nil
                let workspace = issued.workspaces[spec.workspace(of: index, group: group)]
                let kind: SimRegistrarKind = SimRegistrarKind(rawValue: spec.registrars)
                    ?? (index % 10 == 8 ? .operatorV1 : index % 10 == 9 ? .exec : .operatorV2)
                let host = "https://\(name).wandb.fleet-sim.test"
                var instance = SimInstance(name: name, teamID: workspace.id, hostURL: host, adminKey: world.hex(20), userKey: world.hex(20),
                                           registrar: kind, kubeToken: world.hex(24))
                instance.entities[World.canaryEntity] = SimEntity(name: World.canaryEntity, isTeam: true)
                for (entity, _) in World.userEntities(instance: instance, count: spec.userIntegrations) {
                    instance.entities[entity] = SimEntity(name: entity, isTeam: true)
                }
                world.sequence += 1
                switch kind {
                case .operatorV2:
                    instance.secrets["wandb-slack"] = SimKubeObject(body: Simulator.withResourceVersion(
                        ["apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": ["name": "wandb-slack", "namespace": "wandb"], "data": [:]],
                        world.sequence), resourceVersion: world.sequence)
                    instance.resource = SimKubeObject(body: Simulator.withResourceVersion([
                        "apiVersion": "apps.wandb.com/v2", "kind": "WeightsAndBiases", "metadata": ["name": "wandb", "namespace": "wandb"],
                        "spec": ["wandb": ["notifications": ["slack": [
                            "clientId": ["name": "wandb-slack", "key": "SLACK_CLIENT_ID"],
                            "clientSecret": ["name": "wandb-slack", "key": "SLACK_SECRET"],
                        ]]], "values": ["global": ["host": .string(host)]]],
                    ], world.sequence), resourceVersion: world.sequence)
                case .operatorV1:
                    instance.resource = SimKubeObject(body: Simulator.withResourceVersion([
                        "apiVersion": "apps.wandb.com/v1", "kind": "WeightsAndBiases", "metadata": ["name": "wandb", "namespace": "wandb"],
                        "spec": ["values": ["global": ["host": .string(host)]]],
                    ], world.sequence), resourceVersion: world.sequence)
                case .exec:
                    break
                }
                if kind != .exec { instance.useDeployment(sequence: &world.sequence) }
                world.instances[name] = instance
                issued.instances.append(.init(name: name, teamID: workspace.id, appGroup: group.map { "shared-\($0 + 1)" } ?? name, hostURL: host,
                                              adminKey: instance.adminKey, userKey: instance.userKey, registrar: kind.rawValue,
                                              kubeToken: instance.kubeToken,
                                              watchedEntities: World.userEntities(instance: instance, count: spec.userIntegrations).map(\.entity)))
            }
            return issued
        }
    }
}

extension SimInstance {
    /// The api runs as a Deployment `wandb-api` (restarted through its pod template's
    /// `kubectl.kubernetes.io/restartedAt` annotation).
    mutating func useDeployment(sequence: inout Int) {
        sequence += 1
        rollout = nil
        deployment = SimKubeObject(body: Simulator.withResourceVersion([
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": ["name": "wandb-api", "namespace": "wandb"],
            "spec": ["replicas": 2, "template": ["metadata": ["annotations": [:]]]],
        ], sequence), resourceVersion: sequence)
    }

    /// The api runs as an Argo Rollout `wandb-api` and there is no Deployment: a restart sets
    /// `spec.restartAt` to an RFC 3339 time, "which indicates to the Rollout controller that all
    /// of a Rollout's Pods should have been created after this timestamp"
    /// (argoproj.github.io/argo-rollouts/features/restart).
    mutating func useRollout(sequence: inout Int) {
        sequence += 1
        deployment = nil
        rollout = SimKubeObject(body: Simulator.withResourceVersion([
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": ["name": "wandb-api", "namespace": "wandb"],
            "spec": ["replicas": 2, "strategy": ["canary": [:]], "template": ["metadata": ["annotations": [:]]]],
        ], sequence), resourceVersion: sequence)
    }
}
