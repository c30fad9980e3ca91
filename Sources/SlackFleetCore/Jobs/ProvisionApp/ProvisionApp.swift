import Foundation

/// provision-app: a Slack app exists for each app group, with the incoming-webhook scope, the
/// group's redirect URLs and IP allow-list, and every instance of the group runs with its
/// client ID and secret.
public struct ProvisionApp: FleetJob {
    public let name = "provision-app"
    public static let recoveries: [any ChangeRecovery] = [AppCreateRecovery()]
    /// The manifest every app starts from; `{app_group}` and `{workspace}` are filled in.
    public static let defaultSettings = JobSettings.base.with {
        $0.manifest = [
            "display_information": [
                "name": "W&B alerts {app_group}",
                "description": "Alerts from Weights & Biases to this workspace, managed by SlackFleet",
                "background_color": "#1a1c1f",
            ],
            "features": ["bot_user": ["display_name": "W&B alerts", "always_online": false]],
            "oauth_config": ["scopes": ["bot": ["incoming-webhook"]]],
            "settings": ["org_deploy_enabled": false, "socket_mode_enabled": false, "token_rotation_enabled": false],
        ]
    }
    private let apps = CurrentApps()

    public init() {}

    /// The desired redirect URLs of a group: the union of its instances' host URLs, sorted.
    public static func redirectURLs(_ instances: [Instance]) -> [String] {
        Array(Set(instances.flatMap(\.hostURLs))).sorted()
    }

    public static func ipRanges(_ instances: [Instance]) -> [String] {
        Array(Set(instances.flatMap(\.ipAllowlist))).sorted()
    }

    /// The manifest of a new app: the job's template, named for the group, with the group's
    /// redirect URLs and allow-list. Slack allows 35 characters in a name.
    public static func manifest(template: JSON?, group: GroupWork) -> JSON {
        var manifest = template ?? ["display_information": ["name": "W&B alerts {app_group}"], "oauth_config": ["scopes": ["bot": ["incoming-webhook"]]]]
        let fill = { (text: String) in text.replacingOccurrences(of: "{app_group}", with: group.key.appGroup).replacingOccurrences(of: "{workspace}", with: group.workspace.name) }
        if let name = manifest["display_information"]?["name"]?.stringValue {
            manifest = manifest.setting(["display_information", "name"], to: .string(String(fill(name).prefix(35))))
        }
        if let description = manifest["display_information"]?["description"]?.stringValue {
            manifest = manifest.setting(["display_information", "description"], to: .string(String(fill(description).prefix(140))))
        }
        var scopes = manifest["oauth_config"]?["scopes"]?["bot"]?.strings ?? []
        if !scopes.contains("incoming-webhook") { scopes.append("incoming-webhook") }
        manifest = manifest.setting(["oauth_config", "scopes", "bot"], to: .list(scopes.map(JSON.string)))
        manifest = manifest.setting(["oauth_config", "redirect_urls"], to: .list(redirectURLs(group.members).map(JSON.string)))
        let ranges = ipRanges(group.members)
        if !ranges.isEmpty { manifest = manifest.setting(["settings", "allowed_ip_address_ranges"], to: .list(ranges.map(JSON.string))) }
        return manifest
    }

    public func prepare(context: JobContext) {
        // A failure here is met again, and reported, by each group.
        try? apps.load(store: context.store, run: context.runID)
    }

    public func begin(_ work: [GroupWork], context: JobContext, notes: (String) -> Void) -> Bool {
        if !context.executor.dryRun { Connections.prefetch(work, context: context) }
        return false
    }

    public func expectedTier1Writes(_ group: GroupWork, context: JobContext) -> Int {
        (try? apps.app(workspaceID: group.workspace.id, appGroup: group.key.appGroup, store: context.store, run: context.runID)) == nil ? 1 : 0
    }

    /// A group with an app: register it. Without: validate its manifest now, and create it once
    /// the workspace's Tier 1 quota lets a write go (the scheduler's step), then register it.
    public func start(_ group: GroupWork, context: JobContext) -> GroupStep {
        let workspace = group.workspace
        do {
            if let existing = try apps.app(workspaceID: workspace.id, appGroup: group.key.appGroup, store: context.store, run: context.runID) {
                return .done(register(group, app: existing, createdNow: false, context: context))
            }
            let token = try context.vault.resolve(workspace.configToken)
            let manifest = ProvisionApp.manifest(template: context.settings.manifest, group: group)
            try context.slack(workspace).validate(manifest, appID: nil, token: token)
            // A dry run records the create as planned and calls nothing: no quota to wait for.
            if context.executor.dryRun { return .done(create(group, manifest: manifest, token: token, context: context)) }
            return .spend(.tier1) { context in .done(create(group, manifest: manifest, token: token, context: context)) }
        } catch {
            return .done(context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error)))
        }
    }

    /// Creates the group's app (Tier 1) and stores its credentials at once, then registers it.
    private func create(_ group: GroupWork, manifest: JSON, token: SecretValue, context: JobContext) -> [InstanceResult] {
        let workspace = group.workspace
        do {
            let urls = manifest["oauth_config"]?["redirect_urls"]?.strings ?? []
            guard let app = try ProvisionApp.createAndStore(
                manifest, group: group, stage: .current, token: token, context: context,
                summary: "in workspace \(workspace.id) with \(urls.count) redirect URL\(urls.count == 1 ? "" : "s")",
                detail: ["redirect_urls": .list(urls.map(JSON.string)), "ip_allowlist": .list(ProvisionApp.ipRanges(group.members).map(JSON.string))]) else {
                // A dry run: the app would be created, then registered with every instance.
                return context.all(group, .changed, "would create a Slack app for app group \(group.key.appGroup) and register it with this instance")
            }
            return register(group, app: app, createdNow: true, context: context)
        } catch {
            return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error))
        }
    }

    /// Registers `app` with every instance of the group, each with its connection state.
    private func register(_ group: GroupWork, app: App, createdNow: Bool, context: JobContext) -> [InstanceResult] {
        let workspace = group.workspace
        guard let clientID = app.clientID, let appID = app.slackAppID else {
            return context.all(group, .failed, "the stored app of app group \(group.key.appGroup) has no Slack app ID or client ID")
        }
        let credentials: SlackCredentials
        do {
            credentials = try AppRepository.credentials(app, vault: context.vault)
        } catch {
            return context.all(group, .failed, ChangeExecutor.describe(error))
        }
        let target = context.executor.dryRun ? nil : Connections.canaryTarget(workspace, context: context)
        return context.each(group.instances) { instance in
            do {
                let wandb = try context.wandb(instance)
                // The canary's integrations come with the last serverInfo read: no call of their own.
                let registered = try Registration.register(credentials, context: context.registration(instance, wandb: wandb), fresh: createdNow,
                                                           integrationsOf: target == nil ? nil : instance.canary?.entity)
                let changed = registered.changed
                let what = context.executor.dryRun ? "would register" : "registered"
                var result = InstanceResult(instance: instance.name, appGroup: group.key.appGroup, workspace: workspace.id,
                                            outcome: changed || createdNow ? .changed : .ok,
                                            detail: changed ? "\(what) app \(appID) (client ID \(clientID))\(createdNow ? ", created in this run" : "")"
                                                            : "runs on app \(appID) (client ID \(clientID))")
                // Registered is not delivering: alerts flow only once a person connects Slack.
                if let target {
                    ProvisionApp.connection(of: instance, read: registered.integrations, wandb: wandb, target: target, context: context, into: &result)
                }
                return result
            } catch {
                return context.failure(instance, group, error)
            }
        }
    }

    /// Adds the canary's connection state to a registered instance's result: "connected", or
    /// "awaiting connect" with what a person must do. A failure to read it changes nothing else.
    static func connection(of instance: Instance, read: WandbClient.EntityIntegrations??, wandb: WandbClient, target: Connections.CanaryTarget,
                           context: JobContext, into result: inout InstanceResult) {
        guard let entity = instance.canary?.entity else {
            result.connection = .unknown
            return
        }
        do {
            let found = try read ?? wandb.slackIntegrations(entity: entity)
            let canary = try Connections.state(instance, found: found, target: target,
                                               retiring: try IntegrationBaseline.retiringIDs(instance: instance.name, in: context.store))
            result.connection = canary.state
            result.action = canary.action
            switch canary.state {
            case .awaitingConnect: result.detail += "; registered, awaiting connect (\(canary.note))"
            case .onRetiringApp: result.detail += "; \(canary.note)"
            default: result.detail += "; the canary is connected (verify-delivery proves delivery)"
            }
        } catch {
            result.connection = .unknown
            result.detail += "; the canary's Slack integrations could not be read: \(ChangeExecutor.describe(error))"
        }
    }

    /// Creates an app from `manifest` (Tier 1) through the executor and stores its credentials
    /// at once as `stage`; the audit intent names the generation it is stored as, so a crash
    /// in between is told apart from a lost answer. Returns nil in a dry run.
    static func createAndStore(_ manifest: JSON, group: GroupWork, stage: AppStage, token: SecretValue, context: JobContext,
                               summary: String, detail extra: [String: JSON]) throws -> App? {
        let workspace = group.workspace
        let slack = context.slack(workspace)
        let name = manifest["display_information"]?["name"]?.stringValue ?? ""
        var detail = extra
        detail["name"] = .string(name)
        detail["generation"] = .int(try AppRepository.nextGeneration(workspaceID: workspace.id, appGroup: group.key.appGroup, in: context.store))
        detail["stage"] = .string(stage.rawValue)
        let change = ChangeExecutor.Change(target: "slack:app/\(workspace.id)/\(group.key.appGroup)", action: "create",
                                           summary: "create Slack app \"\(name)\" \(summary)", detail: detail)
        // One create through the executor; `anotherFollows` only changes what a lost answer says.
        func createOnce(anotherFollows: Bool) throws -> App? {
            try context.executor.perform(change, instance: nil) { () throws -> App in
                let created: SlackClient.CreatedApp
                do {
                    created = try slack.createApp(manifest, token: token)
                } catch let error as ServiceError where SlackClient.transientErrors.contains(error.code) {
                    throw LostCreateAnswer(message: "Slack answered apps.manifest.create with \(error.code), which it says may follow a partial success: Slack may now hold an app named \"\(name)\" in workspace \(workspace.id) whose credentials SlackFleet never saw (a possible orphan). Look for it in Slack's app list and delete it; " + (anotherFollows ? "SlackFleet creates another at once" : "the next run creates a new one"))
                } catch let error as TransportError where error.kind == .timeout || error.kind == .connectionReset || error.kind == .other {
                    throw LostCreateAnswer(message: "the answer to apps.manifest.create was lost (\(error.kind.rawValue)): Slack may now hold an app named \"\(name)\" in workspace \(workspace.id) whose credentials SlackFleet never saw (a possible orphan). Look for it in Slack's app list and delete it; " + (anotherFollows ? "SlackFleet creates another at once" : "the next run creates a new one"))
                }
                CrashPoint.reach("create:answered")
                let app = try context.executor.audit.commit("storing the credentials of Slack app \(created.appID)") { db in
                    try AppRepository.storeCreated(created, workspaceID: workspace.id, appGroup: group.key.appGroup, stage: stage, vault: context.vault, in: db)
                }
                CrashPoint.reach("create:stored")
                return app
            }
        }
        // A create is never retried as such (Slack may have made the app), but once its answer is
        // lost, one more create in the same run does what the next run would do: the lost one is
        // named in the audit log as a possible orphan either way. Never a third.
        if context.control.stop == nil {
            do { return try createOnce(anotherFollows: true) } catch is LostCreateAnswer {}
        }
        return try createOnce(anotherFollows: false)
    }

    /// The answer to a create was lost: the app may exist (ChangeExecutor.describe shows the message).
    struct LostCreateAnswer: DescribedError {
        let message: String
    }
}
