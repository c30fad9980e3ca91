import Foundation

/// verify-delivery: proof, per instance, that an alert really reaches Slack. It changes nothing,
/// so it writes no audit entry beyond the run record.
public struct VerifyDelivery: FleetJob {
    public let name = "verify-delivery"
    /// How long to wait for each test alert to show in the canary channel.
    public let timeout: TimeInterval
    let watcher = CanaryWatcher()

    /// The checks, in the order they run and are shown.
    public static let checkNames = ["ready", "client_id", "redirect", "scope", "alert", "delivered"]

    public init(timeout: TimeInterval = 60) {
        self.timeout = timeout
    }

    public func expectedTier1Writes(_ group: GroupWork, context: JobContext) -> Int { 0 }

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
    }

    public func run(_ group: GroupWork, context: JobContext) -> [InstanceResult] {
        verify(group, expecting: nil, context: context)
    }

    /// The checks for every instance of `group` against `app` (the group's current app if nil):
    /// rotate-secret verifies a pending app with them before promoting it.
    public func verify(_ group: GroupWork, expecting expected: App?, context: JobContext) -> [InstanceResult] {
        let workspace = group.workspace
        // What the app is: its client ID from the store, its redirect URLs and scopes from Slack.
        var appProblem: String?
        var clientID: String?, redirects: [String] = [], scopes: [String] = []
        do {
            guard let app = try expected ?? AppRepository.current(workspaceID: workspace.id, appGroup: group.key.appGroup, in: context.store),
                  let appID = app.slackAppID else {
                throw FleetError.failed("no Slack app for app group \(group.key.appGroup): run provision-app")
            }
            clientID = app.clientID
            let exported = try context.slack(workspace).export(appID: appID, token: try context.vault.resolve(workspace.configToken))
            redirects = exported["oauth_config"]?["redirect_urls"]?.strings ?? []
            scopes = exported["oauth_config"]?["scopes"]?["bot"]?.strings ?? []
        } catch {
            if JobContext.outcome(of: error) != .failed { return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error)) }
            appProblem = ChangeExecutor.describe(error)
        }

        // Every instance of the group checks and sends first (in parallel); then all wait together.
        let expectedClientID = clientID, knownProblem = appProblem, appRedirects = redirects, appScopes = scopes
        let pending: [Pending] = context.each(group.instances) { instance in
            var item = Pending(instance: instance, checks: [:])
            do {
                let wandb = try context.wandb(instance)
                item.checks["ready"] = try wandb.ready() ? "ok" : "not ready (/ready did not answer 200)"
                let info = try wandb.serverInfo()
                if let knownProblem {
                    item.checks["client_id"] = knownProblem
                } else if info.slackClientID == expectedClientID {
                    item.checks["client_id"] = "ok"
                } else {
                    item.checks["client_id"] = "runs on \(info.slackClientID ?? "no Slack app"), not \(expectedClientID ?? "?")"
                }
                let host = info.frontendHost ?? instance.hostURLs.first ?? ""
                let normalised = (try? EndpointRules.checkURL(host, role: .hostURL, allowInsecureHTTP: true).get()) ?? host
                item.checks["redirect"] = knownProblem != nil ? "app unreadable"
                    : appRedirects.contains(where: { normalised == $0 || normalised.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }) ? "ok"
                    : "\(normalised) is not among the app's redirect URLs"
                item.checks["scope"] = knownProblem != nil ? "app unreadable" : appScopes.contains("incoming-webhook") ? "ok" : "the app's bot scopes lack incoming-webhook"
                guard let canary = instance.canary else {
                    item.checks["alert"] = "no canary entity/project in the inventory"
                    return item
                }
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
        return context.each(pending) { item in
            var checks = item.checks
            var latency: Double?
            if let nonce = item.nonce, let sentAt = item.sentAt {
                if let botToken, let channel = workspace.canaryChannel {
                    do {
                        latency = try watcher.await(nonce: nonce, sentAt: sentAt, channel: workspace.id + "/" + channel,
                                                    deadline: deadline(item, sentAt: sentAt), control: context.control) { oldest in
                            try slack.history(channel: channel, oldest: oldest, token: botToken)
                        }
                        checks["delivered"] = latency == nil ? "not seen in \(channel) within \(Int(timeout)) s" : "ok"
                    } catch {
                        checks["delivered"] = ChangeExecutor.describe(error)
                    }
                } else {
                    checks["delivered"] = "workspace \(workspace.id) has no bot_token or canary_channel to read"
                }
            }
            for name in VerifyDelivery.checkNames where checks[name] == nil { checks[name] = "skipped" }
            let failures = VerifyDelivery.checkNames.filter { checks[$0] != "ok" }
            var result = InstanceResult(instance: item.instance.name, appGroup: group.key.appGroup, workspace: workspace.id,
                                        outcome: failures.isEmpty ? .ok : .failed,
                                        detail: failures.isEmpty ? String(format: "alert delivered in %.1f s", latency ?? 0)
                                                                  : failures.map { "\($0): \(checks[$0] ?? "")" }.joined(separator: "; "))
            result.checks = checks
            result.deliverySeconds = latency
            return result
        }
    }
}
