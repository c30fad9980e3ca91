import Foundation

/// Where an instance's alerts stand. Registered credentials send nothing by themselves: alerts go
/// through Slack integrations a person connects in W&B (../shared/reference/wandb-server.md,
/// "How an alert really reaches Slack"), so "registered" and "delivering" are different states.
public enum ConnectionState: String, Sendable, Codable, CaseIterable {
    /// A test alert on the canary entity was seen in the canary channel in this run.
    case delivering
    /// The canary entity has a Slack integration in the canary channel (not proven in this run).
    case connected
    /// The canary entity has no Slack integration in the canary channel: a person must connect one.
    case awaitingConnect = "awaiting-connect"
    /// The canary's integration came through an app a rotation is retiring: it delivers until that
    /// app is deleted, and a person must connect it again through the current app.
    case onRetiringApp = "on-retiring-app"
    /// Not known: the instance could not be asked, or it has no canary in the inventory.
    case unknown
}

/// One step only a person can take, and where: connect an entity's Slack integration to a channel
/// on a W&B page (no API creates an integration without a person), or regenerate an app's client
/// secret on its Slack settings page (no API regenerates one).
public struct PersonAction: Sendable, Equatable, Encodable {
    public enum Kind: String, Sendable {
        /// Connect an entity's Slack integration in W&B.
        case connect
        /// Press Regenerate on an app's settings page.
        case regenerate
        /// The secret was regenerated: copy it from the settings page and hand it over.
        case copySecret = "copy-secret"
    }

    public let kind: Kind
    public let instance: String
    /// connect: the W&B entity to connect.
    public let entity: String?
    /// connect: `#name` when known, else the channel ID.
    public let channel: String?
    /// The workspace, by name when known.
    public let workspace: String
    public let link: String
    /// Where on that page, such as "Team Settings > Slack channel integrations".
    public let page: String
    public let why: String
    /// regenerate: what to run once the new secret is in hand.
    public let then: String?

    public init(kind: Kind = .connect, instance: String, entity: String?, channel: String?, workspace: String, link: String, page: String,
                why: String, then: String? = nil) {
        self.kind = kind
        self.instance = instance
        self.entity = entity
        self.channel = channel
        self.workspace = workspace
        self.link = link
        self.page = page
        self.why = why
        self.then = then
    }

    /// A line a person can follow.
    public var text: String {
        switch kind {
        case .connect:
            return "\(why): open \(link) (\(page)), click Connect Slack, and pick \(channel ?? "the channel") in workspace \(workspace)"
        case .regenerate:
            return "\(why): open \(link) (\(page)), press Regenerate next to Client Secret\(then.map { ", then \($0)" } ?? "")"
        case .copySecret:
            return "\(why): copy the Client Secret from \(link) (\(page))\(then.map { ", then \($0)" } ?? "")"
        }
    }

    /// Its JSON form, `text` included (a result's `--json` line and the status report).
    public var json: JSON {
        var fields: [String: JSON] = ["kind": .string(kind.rawValue), "instance": .string(instance), "workspace": .string(workspace),
                                      "link": .string(link), "page": .string(page), "why": .string(why), "text": .string(text)]
        if let entity { fields["entity"] = .string(entity) }
        if let channel { fields["channel"] = .string(channel) }
        if let then { fields["then"] = .string(then) }
        return .object(fields)
    }

    public func encode(to encoder: any Encoder) throws {
        try json.encode(to: encoder)
    }
}

/// Reading the Slack integrations that matter to SlackFleet, shared by every job that reports or
/// waits on them.
public enum Connections {
    /// The W&B page where a person connects Slack for `entity`: team settings ("Slack channel
    /// integrations") for a team, user settings ("Alerts") for a user (wandb/docs
    /// automations/create-automations/slack.md and runs/alert.md).
    public static func page(_ instance: Instance, entity: String, isTeam: Bool) -> (link: String, page: String) {
        var host = instance.hostURLs.first ?? instance.baseURL
        while host.hasSuffix("/") { host.removeLast() }
        return isTeam ? ("\(host)/\(entity)/settings", "Team Settings > Slack channel integrations")
                      : ("\(host)/settings", "User Settings > Alerts")
    }

    /// What a person must do to connect `entity` on `instance` to `channel`.
    public static func action(_ instance: Instance, entity: String, isTeam: Bool, channel: String, workspace: String, why: String) -> PersonAction {
        let (link, page) = page(instance, entity: entity, isTeam: isTeam)
        return PersonAction(kind: .connect, instance: instance.name, entity: entity, channel: channel, workspace: workspace, link: link, page: page, why: why)
    }

    /// How the canary channel and its workspace are named, to recognise an integration of W&B's
    /// (`SlackIntegration {teamName channelName}`), learnt once per run.
    public struct CanaryTarget: Sendable {
        /// Slack's name of the workspace, nil when the bot could not ask.
        public let teamName: String?
        /// The canary channel's name without `#`, nil when the bot may not read it.
        public let channelName: String?
        public let channelID: String?
        public let workspaceLabel: String

        /// `#name`, or the channel ID when the name is unknown.
        public var channelLabel: String { channelName.map { "#" + $0 } ?? channelID ?? "the canary channel" }

        /// Whether `integration` posts into the canary channel; an unknown name matches any.
        public func matches(_ integration: WandbClient.SlackIntegration) -> Bool {
            (teamName == nil || integration.teamName == teamName) && (channelName == nil || integration.channelName == channelName)
        }

        /// Whether `integration` is in the canary channel's workspace.
        public func inWorkspace(_ integration: WandbClient.SlackIntegration) -> Bool {
            teamName == nil || integration.teamName == teamName
        }
    }

    public static func canaryTarget(_ workspace: Workspace, context: JobContext) -> CanaryTarget {
        context.facts.canaryTarget(workspace.id) {
            let slack = context.slack(workspace)
            let botToken = workspace.botToken.flatMap { try? context.vault.resolve($0) }
            let team = context.facts.teamName(workspace, slack: slack, botToken: botToken)
            return CanaryTarget(teamName: team, channelName: context.facts.canaryChannelName(workspace, slack: slack, botToken: botToken),
                                channelID: workspace.canaryChannel, workspaceLabel: team ?? workspace.name)
        }
    }

    /// Learns every workspace's canary names at once, before the groups start: otherwise every
    /// lane that reaches a workspace's first groups waits for the same two calls (measured: the
    /// lanes, working through the groups in order, waited about 40 ms at each workspace).
    public static func prefetch(_ work: [GroupWork], context: JobContext) {
        var seen = Set<String>()
        let workspaces = work.map(\.workspace).filter { seen.insert($0.id).inserted }
        _ = context.each(workspaces) { canaryTarget($0, context: context) }
    }

    /// The canary entity's integrations in the canary channel, and the state they imply.
    public struct Canary: Sendable {
        public var state: ConnectionState
        public var integrations: [WandbClient.SlackIntegration]
        public var action: PersonAction?
        /// Why the state is what it is, for a result's detail.
        public var note: String
    }

    /// Reads the canary entity's Slack integrations on `instance`. `retiring`: integrations that
    /// came through an app being retired (IntegrationBaseline), which must be connected again.
    /// `before`: for a blue/green cutover, the integrations that existed before it; only one made
    /// since (through the new app, `newApp`) counts.
    public static func canary(_ instance: Instance, wandb: WandbClient, target: CanaryTarget, retiring: Set<String> = [],
                              before: Set<String>? = nil, newApp: String? = nil) throws -> Canary {
        guard let canary = instance.canary else {
            return Canary(state: .unknown, integrations: [], action: nil, note: "no canary entity in the inventory")
        }
        return try state(instance, found: try wandb.slackIntegrations(entity: canary.entity), target: target, retiring: retiring, before: before, newApp: newApp)
    }

    /// The same from integrations read already (with a `serverInfo`, say): nil when the canary
    /// entity does not exist.
    public static func state(_ instance: Instance, found: WandbClient.EntityIntegrations?, target: CanaryTarget, retiring: Set<String> = [],
                             before: Set<String>? = nil, newApp: String? = nil) throws -> Canary {
        guard let canary = instance.canary else {
            return Canary(state: .unknown, integrations: [], action: nil, note: "no canary entity in the inventory")
        }
        guard let found else {
            throw FleetError.config("instance \(instance.name): the canary entity \(canary.entity) does not exist on the instance: create it (a team) or fix canary.entity in the inventory")
        }
        var matching = found.slack.filter(target.matches)
        func action(_ why: String) -> PersonAction {
            Connections.action(instance, entity: canary.entity, isTeam: found.isTeam, channel: target.channelLabel, workspace: target.workspaceLabel, why: why)
        }
        if let before {
            matching = matching.filter { !before.contains($0.id) }
            if matching.isEmpty {
                let why = "the canary entity \(canary.entity) has no Slack integration in \(target.channelLabel) made through the new app \(newApp ?? "") yet"
                return Canary(state: .awaitingConnect, integrations: [], action: action(why), note: why)
            }
        }
        if matching.isEmpty {
            let elsewhere = found.slack.filter(target.inWorkspace).map { "#" + $0.channelName }
            let why = elsewhere.isEmpty
                ? "the canary entity \(canary.entity) has no Slack integration in \(target.channelLabel)"
                : "the canary entity \(canary.entity) is connected to \(elsewhere.joined(separator: ", ")), not \(target.channelLabel)"
            return Canary(state: .awaitingConnect, integrations: [], action: action(why), note: why)
        }
        if matching.allSatisfy({ retiring.contains($0.id) }) {
            let why = "the canary's integration came through an app being retired; connect it again so alerts go on after it is deleted"
            return Canary(state: .onRetiringApp, integrations: matching, action: action(why), note: why)
        }
        return Canary(state: .connected, integrations: matching, action: nil, note: "connected in \(target.channelLabel)")
    }

    /// The entities whose integrations a rotation must not break on `instance`: the canary, the
    /// inventory's `watch_entities`, and every entity if the server lets an admin list them
    /// (`Query.entities`; whether it does is unconfirmed, so nil from it falls back to the list).
    public static func watchedEntities(_ instance: Instance, wandb: WandbClient) throws -> [String] {
        var names = (instance.canary.map { [$0.entity] } ?? []) + instance.watchEntities
        if let all = try wandb.entityNames() { names += all }
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }
}
