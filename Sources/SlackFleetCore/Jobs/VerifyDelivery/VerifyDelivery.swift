import Foundation

/// verify-delivery: proof, per instance, that an alert really reaches Slack, through the canary
/// entity's Slack integration (the only way W&B delivers: ../shared/reference/wandb-server.md). It
/// changes nothing, so it writes no audit entry beyond the run record.
public struct VerifyDelivery: FleetJob {
    public let name = "verify-delivery"
    /// Reads only: more of them in flight.
    public static let defaultSettings = JobSettings.base.with { $0.concurrency = 32 }
    public var checkNames: [String] { VerifyDelivery.checkNames }
    /// How long to wait for each test alert to show in the canary channel.
    public let timeout: TimeInterval
    let watcher = CanaryWatcher()

    /// The checks, in the order they run and are shown.
    public static let checkNames = ["ready", "client_id", "credentials", "redirect", "scope", "integration", "alert", "delivered"]

    public init(timeout: TimeInterval = 60) {
        self.timeout = timeout
    }

    public func expectedTier1Writes(_ group: GroupWork, context: JobContext) -> Int { 0 }

    /// Per instance: whether its test alert arrived, and how long it took.
    public func metrics(_ report: RunReport) -> String {
        let checked = report.results.filter { $0.checks != nil }.sorted(by: { $0.instance < $1.instance })
        guard !checked.isEmpty else { return "" }
        var out = "# HELP slackfleet_delivery_ok 1 when the instance's test alert reached its canary channel.\n# TYPE slackfleet_delivery_ok gauge\n"
        for result in checked { out += "slackfleet_delivery_ok{instance=\"\(result.instance)\"} \(result.outcome == .ok ? 1 : 0)\n" }
        out += "# HELP slackfleet_delivery_latency_seconds Seconds from the test alert to its message in the channel.\n# TYPE slackfleet_delivery_latency_seconds gauge\n"
        for result in checked { if let seconds = result.deliverySeconds { out += "slackfleet_delivery_latency_seconds{instance=\"\(result.instance)\"} \(seconds)\n" } }
        return out
    }

    public func begin(_ work: [GroupWork], context: JobContext, notes: (String) -> Void) -> Bool {
        Connections.prefetch(work, context: context)
        return false
    }

    /// What a rotation expects beyond the group's current app.
    public struct Expectation: Sendable {
        /// The app the instances must run on (a pending one), instead of the current app.
        public var app: App?
        /// Blue/green: the integrations that existed before the cutover. The canary must have one
        /// outside them (made through the new app), and the test alert must be posted by the new
        /// app's webhook.
        public var before: Set<String>?

        public init(app: App? = nil, before: Set<String>? = nil) {
            self.app = app
            self.before = before
        }
    }

    /// `--timeout` from when the instance took the alert, but never so early that the channel
    /// is not read at least once after the waiting starts: the group's other sends (one retried
    /// after a timeout, say) may have taken longer than that.
    private func deadline(_ item: Pending, sentAt: Date) -> Date {
        max((item.acceptedAt ?? sentAt).addingTimeInterval(timeout), Date().addingTimeInterval(min(timeout, 5)))
    }

    private struct Pending: Sendable {
        let instance: Instance
        var checks: [String: String]
        var nonce: String?
        var sentAt: Date?
        var acceptedAt: Date?
        var connection: Connections.Canary?
    }

    /// The checks start once the workspace's Tier 3 quota lets the app's export go, so a big
    /// run keeps every workspace's exports and polls busy without a 429.
    public func start(_ group: GroupWork, context: JobContext) -> GroupStep {
        .spend(.tier3) { context in .done(verify(group, expecting: Expectation(), context: context)) }
    }

    /// The app's side of the checks, read once per group: its client ID, redirect URLs and scopes
    /// (exported from Slack), and whether Slack accepts the stored secret.
    private struct AppFacts: Sendable {
        var clientID: String?
        var slackAppID: String?
        var redirects: [String] = []
        var scopes: [String] = []
        var credentials = "skipped"
        var credentialsNote: String?
        var problem: String?
    }

    private func appFacts(_ group: GroupWork, expected: App?, context: JobContext) throws -> AppFacts {
        let workspace = group.workspace
        var facts = AppFacts()
        do {
            guard let app = try expected ?? AppRepository.current(workspaceID: workspace.id, appGroup: group.key.appGroup, in: context.store),
                  let appID = app.slackAppID else {
                throw FleetError.failed("no Slack app for app group \(group.key.appGroup): run provision-app")
            }
            facts.clientID = app.clientID
            facts.slackAppID = appID
            let slack = context.slack(workspace)
            let exported = try slack.export(appID: appID, token: try context.vault.resolve(workspace.configToken))
            facts.redirects = exported["oauth_config"]?["redirect_urls"]?.strings ?? []
            facts.scopes = exported["oauth_config"]?["scopes"]?["bot"]?.strings ?? []
            switch try context.facts.probe(try AppRepository.credentials(app, vault: context.vault), workspace: workspace, slack: slack) {
            case .accepted:
                facts.credentials = "ok"
            case .inconclusive:
                facts.credentials = "ok"
                facts.credentialsNote = "the credentials check is inconclusive here: Slack answers a made-up code before it checks the secret"
            case .staleSecret:
                facts.credentials = "Slack refuses the stored client secret of \(appID) (bad_client_secret, a heuristic): a person regenerated it in Slack's settings page, so new connections fail until the new one is propagated: rotate-secret --client-secret --secret-from REF"
            case .unknownClient:
                facts.credentials = "Slack knows no app with client ID \(app.clientID ?? "?") (invalid_client_id): was \(appID) deleted?"
            }
        } catch {
            if JobContext.outcome(of: error) != .failed { throw error }
            facts.problem = ChangeExecutor.describe(error)
            facts.credentials = "app unreadable"
        }
        return facts
    }

    /// The checks for every instance of `group`, against the group's current app or what
    /// `expectation` says: rotate-secret verifies a pending app with them before promoting it.
    public func verify(_ group: GroupWork, expecting expectation: Expectation, context: JobContext) -> [InstanceResult] {
        let workspace = group.workspace
        let app: AppFacts
        do {
            app = try appFacts(group, expected: expectation.app, context: context)
        } catch {
            return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error))
        }
        let target = Connections.canaryTarget(workspace, context: context)

        // Every instance of the group checks and sends first (in parallel); then all wait together.
        let pending: [Pending] = context.each(group.instances) { instance in
            var item = Pending(instance: instance, checks: [:])
            do {
                let wandb = try context.wandb(instance)
                item.checks["ready"] = try wandb.ready() ? "ok" : "not ready (/ready did not answer 200)"
                // The canary's integrations come in the same request as serverInfo.
                let read = try wandb.serverInfo(withIntegrationsOf: instance.canary?.entity)
                let info = read.info
                if let problem = app.problem {
                    item.checks["client_id"] = problem
                } else if info.slackClientID == app.clientID {
                    item.checks["client_id"] = "ok"
                } else {
                    item.checks["client_id"] = "runs on \(info.slackClientID ?? "no Slack app"), not \(app.clientID ?? "?")"
                }
                item.checks["credentials"] = app.credentials
                let host = info.frontendHost ?? instance.hostURLs.first ?? ""
                let normalised = (try? EndpointRules.checkURL(host, role: .hostURL, allowInsecureHTTP: true).get()) ?? host
                item.checks["redirect"] = app.problem != nil ? "app unreadable"
                    : app.redirects.contains(where: { normalised == $0 || normalised.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }) ? "ok"
                    : "\(normalised) is not among the app's redirect URLs"
                item.checks["scope"] = app.problem != nil ? "app unreadable" : app.scopes.contains("incoming-webhook") ? "ok" : "the app's bot scopes lack incoming-webhook"
                guard let canary = instance.canary else {
                    item.checks["integration"] = "no canary entity/project in the inventory"
                    return item
                }
                let connection = try Connections.state(instance, found: read.integrations ?? nil, target: target,
                                                       retiring: try IntegrationBaseline.retiringIDs(instance: instance.name, in: context.store),
                                                       before: expectation.before, newApp: app.slackAppID)
                item.connection = connection
                guard connection.state != .awaitingConnect else {
                    item.checks["integration"] = connection.note
                    return item
                }
                item.checks["integration"] = "ok"
                let nonce = "slackfleet-canary-" + UUID().uuidString.lowercased().prefix(13)
                let sentAt = Date()
                let sent = try wandb.notifyAlert(entity: canary.entity, project: canary.project, run: "slackfleet-verify",
                                                 title: "SlackFleet delivery check \(nonce)", text: "Test alert \(nonce) from SlackFleet verify-delivery for \(instance.name).")
                item.checks["alert"] = sent ? "ok" : "notifyScriptableRunAlert answered success: false"
                if sent {
                    item.nonce = nonce
                    item.sentAt = sentAt
                    // The wait starts when the instance took the alert: a send retried after a
                    // timeout must not eat the time the message has to show.
                    item.acceptedAt = Date()
                }
            } catch {
                let failed = VerifyDelivery.checkNames.first { item.checks[$0] == nil } ?? "ready"
                item.checks[failed] = ChangeExecutor.describe(error)
            }
            return item
        }
        if let stop = context.control.stop {
            return context.all(group, JobContext.outcome(of: RunControl.Interrupted(reason: stop)), "stopped: \(stop.rawValue)")
        }

        let botToken = workspace.botToken.flatMap { try? context.vault.resolve($0) }
        let slack = context.slack(workspace)
        if let channel = workspace.canaryChannel {
            for item in pending { if let nonce = item.nonce, let sentAt = item.sentAt { watcher.expect(nonce: nonce, sentAt: sentAt, channel: workspace.id + "/" + channel) } }
        }
        let requiredApp = expectation.before != nil ? app.slackAppID : nil
        return context.each(pending) { item in
            var checks = item.checks
            var latency: Double?
            if let nonce = item.nonce, let sentAt = item.sentAt {
                if let botToken, let channel = workspace.canaryChannel {
                    do {
                        let deadline = deadline(item, sentAt: sentAt)
                        var sighting: CanaryWatcher.Sighting?
                        var postedBy: [String] = []
                        // Blue/green: the message must come from the new app's webhook; a sighting of
                        // the old app's only is waited past, until the deadline.
                        while true {
                            sighting = try watcher.await(nonce: nonce, sentAt: sentAt, channel: workspace.id + "/" + channel, deadline: deadline, control: context.control) { oldest in
                                do {
                                    return try slack.history(channel: channel, oldest: oldest, token: botToken)
                                } catch {
                                    // The bot not in the channel, a private channel, a missing scope: say what to do.
                                    if let found = context.facts.canaryProblem(error, workspace: workspace, slack: slack, botToken: botToken) {
                                        throw FleetError.failed("\(found.problem): \(found.fix)")
                                    }
                                    throw error
                                }
                            }
                            guard let seen = sighting, let requiredApp else { break }
                            postedBy = seen.messages.compactMap { context.facts.app(of: $0, workspace: workspace, slack: slack, botToken: botToken) }
                            if postedBy.contains(requiredApp) || (postedBy.isEmpty && !seen.messages.contains { $0.botID != nil }) || Date() >= deadline { break }
                            try context.control.sleep(1)
                        }
                        latency = sighting?.latency
                        if sighting == nil {
                            checks["delivered"] = "not seen in \(channel) within \(Int(timeout)) s"
                        } else if let requiredApp, !postedBy.isEmpty, !postedBy.contains(requiredApp) {
                            checks["delivered"] = "seen in \(channel), but posted only by \(postedBy.joined(separator: ", ")), not the new app \(requiredApp)"
                        } else {
                            checks["delivered"] = "ok"
                        }
                    } catch {
                        checks["delivered"] = ChangeExecutor.describe(error)
                    }
                } else {
                    checks["delivered"] = "workspace \(workspace.id) has no bot_token or canary_channel to read"
                }
            }
            for name in VerifyDelivery.checkNames where checks[name] == nil { checks[name] = "skipped" }
            let failures = VerifyDelivery.checkNames.filter { checks[$0] != "ok" && checks[$0] != "skipped" }
            let needsConnect = item.connection?.state == .awaitingConnect
            let outcome: InstanceResult.Outcome = needsConnect && failures == ["integration"] ? .needsConnect : failures.isEmpty ? .ok : .failed
            var detail: String
            switch outcome {
            case .ok: detail = String(format: "alert delivered in %.1f s", latency ?? 0)
            case .needsConnect: detail = "registered, not delivering: " + (item.connection?.note ?? "a person must connect Slack")
            default: detail = failures.map { "\($0): \(checks[$0] ?? "")" }.joined(separator: "; ")
            }
            if let note = app.credentialsNote { detail += "; " + note }
            if item.connection?.state == .onRetiringApp, outcome == .ok { detail += "; " + (item.connection?.note ?? "") }
            var result = InstanceResult(instance: item.instance.name, appGroup: group.key.appGroup, workspace: workspace.id, outcome: outcome, detail: detail)
            result.checks = checks
            result.deliverySeconds = latency
            if let connection = item.connection {
                result.connection = checks["delivered"] == "ok" ? (connection.state == .onRetiringApp ? .onRetiringApp : .delivering) : connection.state
                result.action = connection.action
            } else {
                result.connection = .unknown
            }
            return result
        }
    }
}
