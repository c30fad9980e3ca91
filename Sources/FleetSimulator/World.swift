import Foundation

/// Settings of the simulation, changeable at run time through the control API.
public struct SimConfig: Sendable {
    /// Simulated seconds per real second: 60 makes a per-minute quota refill every second.
    public var timeScale: Double = 1
    /// Per-minute quota of each Slack method tier, per workspace and method.
    public var tierQuota: [SlackTier: Double] = [.tier1: 1, .tier2: 20, .tier3: 50, .tier4: 100, .special: 20]
    /// How many calls above the steady rate a tier tolerates at once.
    public var tierBurst: [SlackTier: Double] = [.tier1: 2, .tier2: 5, .tier3: 10, .tier4: 20, .special: 5]
    /// Whether `oauth.v2.access` checks the code before the client secret. Slack does not document
    /// its order (slack-web-api.md, OAuth v2): off, a wrong secret answers `bad_client_secret`
    /// whatever the code; on, a code that cannot exist answers `invalid_code` first.
    public var oauthChecksCodeFirst = false
    /// Whether a used refresh token stops working (unconfirmed on real Slack; on by default).
    public var refreshTokenSingleUse = true
    /// The most `allowed_ip_address_ranges` Slack accepts: the schema says 50, the settings page 10.
    public var maxIPRanges = 50
    /// Configuration tokens expire this many (simulated) seconds after issue.
    public var configTokenLifetime: Double = 43_200
    /// Real seconds from an alert to its message showing in the channel.
    public var alertDelay: Double = 0.2
    /// Real seconds from a rollout restart to the new pod serving.
    public var rolloutDelay: Double = 1
    /// Real seconds a hanging request is held before its connection is closed.
    public var hangSeconds: Double = 30
    /// The Retry-After of a 429 storm's answers.
    public var stormRetryAfter: Double = 30
    /// The address calls appear to come from, for app IP allow-lists (every client is on loopback).
    public var egressIP = "198.51.100.10"
    /// Whether a message an incoming webhook posted carries `app_id` in `conversations.history`.
    /// Slack documents `bot_id` on a `bot_message` (and `bots.info` to map it to an app); whether
    /// `app_id` is there too is not documented, so it is a switch and the client handles both.
    public var messageAppID = false
    /// Whether `Query.entities` answers. It is in W&B's published schema (wandb/wandb-js
    /// src/gql/graphql.ts, `QueryEntitiesArgs`), but whether a server lets an admin list every
    /// entity is unconfirmed: off, it answers a GraphQL error, and the client falls back to the
    /// entities the inventory names.
    public var entitiesQuery = true
    /// The share of instances whose people connect the canary entity's Slack integration as soon
    /// as Slack works on the instance (its first running credentials of a live app).
    public var connectedFraction = 0.0
    /// Integrations each instance's people connect on entities of their own at that moment: the
    /// teams' and users' alerts the operator does not own.
    public var userIntegrations = 0

    public init() {}
}

/// Slack's rate limit tiers.
public enum SlackTier: String, Sendable, CaseIterable {
    case tier1, tier2, tier3, tier4, special
}

/// Faults to inject for one target (an instance, a workspace, or everything).
public struct Faults: Sendable, Equatable {
    public var latency: Double = 0
    public var jitter: Double = 0
    /// Fraction of requests answered with a 5xx.
    public var errorRate: Double = 0
    /// Fraction of requests never answered.
    public var hangRate: Double = 0
    /// Fraction of requests whose connection is reset.
    public var resetRate: Double = 0
    /// Every Slack call for the workspace answers 429.
    public var rateLimitStorm = false
    /// The instance answers nothing useful (503 from its load balancer).
    public var down = false
    /// Extra real seconds added to rollouts.
    public var slowRollout: Double = 0
    /// Fraction of requests carried out whose answer is then lost (the connection is reset):
    /// the far side changed, the client cannot know.
    public var dropResponseRate: Double = 0
    /// The next this-many answers are lost, whatever the rate; counts down.
    public var dropResponses: Int = 0
    /// Only requests to this endpoint (such as `slack:apps.manifest.create`) are affected.
    public var endpoint: String?
    /// Every request is answered with a hostile reply of this kind instead (see `Simulator.hostileKinds`).
    public var hostile: String?
    /// `conversations.history` pages hold at most this many messages, fewer than asked, with
    /// `has_more` and a cursor (0: as many as asked). Slack: "Fewer than the requested number of
    /// items may be returned, even if the end of the list hasn't been reached"
    /// (docs.slack.dev/reference/methods/conversations.history, `limit`).
    public var shortPages = 0
    /// Fraction of Slack Web API calls answered HTTP 200 `{"ok": false, "error": "internal_error"}`
    /// (or `fatal_error`, one in four), before doing anything: Slack's method docs list both as
    /// transient failures on its side.
    public var internalErrorRate: Double = 0
    /// Kubernetes RBAC: what the instance's service account may not do, as "VERB RESOURCE"
    /// ("patch secrets", "get weightsandbiases", "patch deployments", "patch rollouts"). Such a
    /// request is answered 403 Forbidden, and a SelfSubjectAccessReview of it `allowed: false`.
    public var forbidden: Set<String> = []
    /// Resources ("secrets", "deployments", "rollouts", "weightsandbiases") whose PATCH a policy
    /// refuses: 422 Invalid with `details.causes`, as the API server answers a rejected update.
    public var invalid: Set<String> = []

    public init() {}
}

/// The simulated clock: real time, scaled, plus any advance the tests ask for.
struct SimClock {
    let realStart = Date()
    let simStart: Double
    var advanced: Double = 0

    init(start: Double = Date().timeIntervalSince1970) {
        simStart = start
    }

    func now(scale: Double) -> Double {
        simStart + Date().timeIntervalSince(realStart) * scale + advanced
    }
}

/// What kind of token a string is, from its prefix, as Slack tells them apart.
enum TokenKind: String, Sendable {
    case configuration, refresh, bot, appLevel, user
}

struct SimToken {
    let value: String
    let kind: TokenKind
    let teamID: String
    let userID: String
    /// The app a bot token belongs to (its allow-list applies).
    var appID: String?
    let issuedAt: Double
    var expiresAt: Double?
    var revoked = false
    var scopes: Set<String>
}

struct SimMessage {
    let ts: String
    let text: String
    let visibleAt: Double
    let sentBy: String
    /// A message an app posted (an incoming webhook): `subtype: bot_message` with its bot.
    var botID: String?
    var appID: String?
}

struct SimChannel {
    let id: String
    let name: String
    var archived = false
    /// Oldest first, in `ts` order.
    var messages: [SimMessage] = []
    /// A private channel: reading it needs `groups:history` instead of `channels:history`, and a
    /// bot that is not a member cannot see it at all.
    var isPrivate = false
    /// The users (people and bots) in the channel. A bot token reads only conversations its bot
    /// is a member of (docs.slack.dev/reference/methods/conversations.history, token types).
    var members: Set<String> = []
}

struct SimWorkspace {
    let id: String
    let name: String
    let userID: String
    var channels: [String: SimChannel]
    let canaryChannelID: String
    /// The bot user of the canary reader app (its token's user).
    var botUserID = ""
}

struct SimApp {
    let id: String
    let teamID: String
    var manifest: JSONValue
    let clientID: String
    var clientSecret: String
    let signingSecret: String
    let verificationToken: String
    let createdAt: Double
    var deleted = false
    /// `apps.uninstall` ended its installation: every token and webhook issued so far is dead.
    var uninstalled = false
    /// Incoming webhooks issued through OAuth installs, by path (`T.../B.../X...`).
    var webhooks: [String: SimWebhook] = [:]

    /// The bot user of the app's installation, as `bot_id` names it on the messages it posts.
    var botID: String { "B" + id.dropFirst() }
}

/// One incoming webhook: a channel of one installation of one app.
struct SimWebhook {
    let channelID: String
    /// Ended with its installation (`apps.uninstall`); a new install issues new webhooks.
    var revoked = false
}

/// A Slack integration of a W&B entity: what "Connect Slack" stores (the installation's incoming
/// webhook), shown through GraphQL as `SlackIntegration {id teamName channelName}`.
struct SimIntegration {
    let id: String
    let entity: String
    let teamID: String
    let teamName: String
    let channelID: String
    /// As Slack's `incoming_webhook.channel` gives it: `#name`.
    let channelName: String
    let appID: String
    let webhookPath: String
    let createdAt: Double
}

/// A W&B entity (a team or a user) of one instance.
struct SimEntity {
    let name: String
    let isTeam: Bool
}

enum SimRegistrarKind: String, Sendable {
    case operatorV2 = "operator-v2"
    case operatorV1 = "operator-v1"
    case exec
}

struct SimKubeObject {
    var body: JSONValue
    var resourceVersion: Int
}

struct PendingRollout {
    let completesAt: Date
    /// For operator v1 (and exec): the credentials the new pods will use; v2 reads its Secret at completion.
    let credentials: (clientID: String, secret: String)?
}

struct SimInstance {
    let name: String
    let teamID: String
    let hostURL: String
    let adminKey: String
    let userKey: String
    let registrar: SimRegistrarKind
    let kubeToken: String
    var effectiveClientID: String?
    var effectiveSecret: String?
    var secrets: [String: SimKubeObject] = [:]
    var resource: SimKubeObject?
    /// The api workload: a Deployment, or, where the operator runs it as an Argo Rollout
    /// (`argoproj.io/v1alpha1`), a Rollout and no Deployment.
    var deployment: SimKubeObject?
    var rollout: SimKubeObject?
    var pendingRollout: PendingRollout?
    var lastRolloutError: String?
    /// Last send time (simulated seconds) of each alert title, for `waitDuration`.
    var alertTitles: [String: Double] = [:]
    var alertsSent = 0
    var alertsDelivered = 0
    /// Whether a new connection would work, as of the last change that could alter it.
    var couldConnect = false
    /// Times the instance went from able to make a new connection to unable (a connect gap:
    /// existing integrations keep delivering, new ones fail), and the last one's cause.
    var connectLosses = 0
    var lastConnectLoss: String?
    /// The instance's entities; the canary entity `ops` is a team.
    var entities: [String: SimEntity] = [:]
    var integrations: [SimIntegration] = []
    /// (entity, channel) pairs that some integration delivers to, as of the last change that
    /// could alter it: a pair that stops being delivered to is an integration lost.
    var deliveringPaths: Set<String> = []
    /// Each delivery path lost, with its cause.
    var lostPaths: [(path: String, cause: String)] = []
    /// People connect their integrations the first time Slack works here (`connected_fraction`,
    /// `user_integrations`); then this is set.
    var peopleConnected = false
}

/// Everything the simulator knows, guarded by one lock.
struct World {
    /// The scopes of each workspace's canary reader bot: read the channel's history
    /// (`channels:history`), its name (`channels:read`), which app a bot belongs to (`users:read`,
    /// for bots.info), and post (`chat:write`).
    static let readerScopes = ["channels:history", "channels:read", "users:read", "chat:write"]

    var config = SimConfig()
    var clock = SimClock()
    var baseURL = ""
    var workspaces: [String: SimWorkspace] = [:]
    var tokens: [String: SimToken] = [:]
    var apps: [String: SimApp] = [:] {
        didSet { appIDsByClientID = nil }
    }
    /// App IDs by client ID, built when first asked after a change to `apps`: an authorize page,
    /// an exchange and every rollout's check look an app up by client ID.
    private var appIDsByClientID: [String: String]?
    var instances: [String: SimInstance] = [:]
    /// Faults keyed `all`, `workspace:T...` or `instance:NAME`.
    var faults: [String: Faults] = [:]
    var calls: [String: Int] = [:]
    /// Messages `conversations.history` has answered with, per channel (`TEAM/CHANNEL`), since
    /// the last reset: against the channel's own count, how often each was read.
    var historyServed: [String: Int] = [:]
    /// What was changed, by kind (`slack:create`, `slack:update`, `slack:delete` with app ids;
    /// `k8s:secrets`, `k8s:deployments`, `k8s:weightsandbiases`, `exec` with instance names): the
    /// far side's own record, for checking the audit log against.
    var mutations: [String: Set<String>] = [:]
    var rateLimiter = RateLimiter()
    /// OAuth codes issued by the authorize page: code -> (app, redirect URI, the channel the
    /// person picked, expiry).
    var oauthCodes: [String: (appID: String, redirectURI: String, channelID: String, expiresAt: Double)] = [:]
    /// Integrations lost (a delivery path of an entity that stopped), by cause.
    var integrationLosses: [String: Int] = [:]
    var sequence = 0
    var random: SimRandom

    var now: Double { clock.now(scale: config.timeScale) }

    /// The app that is not deleted whose client ID is `clientID`.
    mutating func liveApp(clientID: String?) -> SimApp? {
        guard let clientID else { return nil }
        if appIDsByClientID == nil {
            var index: [String: String] = [:]
            for app in apps.values where !app.deleted { index[app.clientID] = app.id }
            appIDsByClientID = index
        }
        return appIDsByClientID?[clientID].flatMap { apps[$0] }.flatMap { $0.deleted ? nil : $0 }
    }

    init(seed: UInt64) {
        random = SimRandom(seed: seed)
    }

    // Written byte by byte: a provisioning run makes thousands of these, and String(format:)
    // cost a tenth of fleet-sim's time in it.
    private static let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZ23456789".utf8)
    private static let hexDigits = Array("0123456789abcdef".utf8)
    private static let digits = Array("0123456789".utf8)

    /// A fresh identifier: a prefix and upper-case letters and digits, unique in this world.
    mutating func identifier(_ prefix: String, length: Int = 10) -> String {
        sequence += 1
        var text = Array(prefix.utf8)
        for _ in 0..<(length - 4) { text.append(World.alphabet[Int(random.next() % UInt64(World.alphabet.count))]) }
        let number = sequence % 10_000
        for divisor in [1000, 100, 10, 1] { text.append(World.digits[number / divisor % 10]) }
        return String(decoding: text, as: UTF8.self)
    }

    /// Random lowercase hex, for secrets.
    mutating func hex(_ bytes: Int) -> String {
        var text: [UInt8] = []
        text.reserveCapacity(bytes * 2)
        for _ in 0..<bytes {
            let byte = Int(random.next() & 0xff)
            text.append(World.hexDigits[byte >> 4])
            text.append(World.hexDigits[byte & 0x0f])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// A Slack-shaped client ID: digits, a dot, digits. It looks like a number and is not one.
    mutating func clientID() -> String {
        var text: [UInt8] = [UInt8(ascii: "1")]
        for index in 0..<23 {
            let digit = World.digits[Int(random.next() % 10)]
            // The first of the ten left-hand draws is replaced by the leading 1.
            if index == 10 { text.append(UInt8(ascii: ".")) }
            if index != 0 { text.append(digit) }
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// A small seeded generator (SplitMix64) so a fleet and its faults replay from a seed.
struct SimRandom {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A uniform value in [0, 1).
    mutating func unit() -> Double {
        Double(next() >> 11) / Double(1 << 53)
    }
}
