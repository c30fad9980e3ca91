import Foundation

/// rotate-secret: fresh configuration tokens, and instances moved to a new client secret without
/// losing a Slack integration that worked before.
///
/// Alerts travel through Slack integrations a person connected in W&B, each the webhook of one
/// app's installation (../shared/reference/wandb-server.md). A webhook keeps working when the
/// app's secret changes and dies with the app. So there are two ways to rotate a client secret:
///
/// - **In place** (the default, and the one to use): a person presses Regenerate on the app's
///   Slack settings page (no API does it). The run prints that link and waits in a stored stage;
///   the probe detects the regeneration; the new secret comes from `--secret-from REF`, is probed
///   before any instance gets it, is registered with every instance of the group, and becomes the
///   stored current secret. Every integration keeps delivering.
/// - **Blue/green** (for an app that must die, such as a leaked one): a new app from the current
///   one's manifest (stage `pending`), registered with every instance, and promoted only once a
///   canary integration made *through the new app* delivers a test alert. Until a person connects
///   it, the run waits in a stored stage, showing the link. The previous app is never deleted while
///   an integration from before the cutover remains on a watched entity, unless
///   `--delete-previous-breaking N` names exactly how many that breaks.
///
/// Stages are stored per app, per instance and per waiting group, so a run killed anywhere
/// resumes from the recorded stage.
public struct RotateSecret: FleetJob {
    public let name = "rotate-secret"
    /// Blue/green creates apps; --config-tokens rotates workspaces' tokens.
    public static let recoveries: [any ChangeRecovery] = [AppCreateRecovery(), ConfigTokenRecovery()]
    public var configTokens = false
    public var clientSecret = false

    /// How a client secret is rotated.
    public enum Mode: String, Sendable {
        case inPlace = "in-place"
        case blueGreen = "blue-green"
    }

    public var mode = Mode.inPlace
    /// In place: where the secret a person regenerated in Slack's settings page is.
    public var secretFrom: SecretReference?
    /// Blue/green: delete a previous app whose integrations are not all connected again, breaking
    /// exactly this many (the count must match what the run finds).
    public var deleteBreaking: Int?
    /// Rotate a configuration token when less than this is left of it.
    public var minRemaining: TimeInterval = 6 * 3600
    /// How long a replaced app is kept for rollback before a later run may delete it.
    public var grace: TimeInterval = 24 * 3600
    /// Only rotate secrets at least this old (0: rotate now).
    public var minAge: TimeInterval = 0
    /// How long to wait for each test alert in the canary channel.
    public var deliveryTimeout: TimeInterval = 60
    private let shared = Shared()

    public init() {}

    /// What `begin` learnt, for the groups' work.
    private final class Shared: @unchecked Sendable {
        let lock = NSLock()
        var tokens: [String: ConfigTokens.Outcome] = [:]
        var groups: [Inventory.AppKey: [Instance]] = [:]
        var groupCount = 0
    }

    public func expectedTier1Writes(_ group: GroupWork, context: JobContext) -> Int {
        guard clientSecret, let apps = try? AppRepository.apps(workspaceID: group.workspace.id, appGroup: group.key.appGroup, in: context.store) else { return 0 }
        let due = apps.filter { app in
            app.stage == .previous && (Timestamp.parse(app.stageChangedAt ?? app.updatedAt) ?? .distantPast).addingTimeInterval(grace) <= Date()
        }
        // In place writes nothing to Slack; blue/green creates one app, once no previous one waits.
        guard mode == .blueGreen else { return due.count }
        let pending = apps.contains { $0.stage == .pending }
        let waiting = apps.contains { $0.stage == .previous } && due.isEmpty
        return (!pending && !waiting ? 1 : 0) + due.count
    }

    public func begin(_ work: [GroupWork], context: JobContext, notes: (String) -> Void) -> Bool {
        let inventory = try? InventoryRepository.load(context.store)
        shared.lock.lock()
        shared.groupCount = work.count
        // A rotation covers every enabled instance of an app group, selected or not.
        shared.groups = (inventory?.instancesByApp ?? [:]).mapValues { $0.filter(\.isActive).sorted { $0.name < $1.name } }
        shared.lock.unlock()
        guard configTokens else { return false }
        var seen = Set<String>()
        let workspaces = work.map(\.key.workspaceID).filter { seen.insert($0).inserted }
            .compactMap { id in inventory?.workspaces.first { $0.id == id } }
        let outcomes = context.each(workspaces) { ConfigTokens.rotate($0, minRemaining: minRemaining, context: context) }
        shared.lock.lock()
        for (workspace, outcome) in zip(workspaces, outcomes) { shared.tokens[workspace.id] = outcome }
        shared.lock.unlock()
        for outcome in outcomes where outcome.outcome != .ok { notes(outcome.detail) }
        return true
    }

    /// A blue/green rotation's app writes (the deletion of a previous app, the new app's create)
    /// each wait for the workspace's Tier 1 quota as a step of their own; everything else runs
    /// at once.
    public func start(_ group: GroupWork, context: JobContext) -> GroupStep {
        shared.lock.lock()
        let token = configTokens ? shared.tokens[group.workspace.id] : nil
        let members = shared.groups[group.key] ?? group.instances
        let groupCount = shared.groupCount
        shared.lock.unlock()
        if let token, !clientSecret || token.outcome == .failed {
            return .done(context.all(group, token.outcome, token.detail + (token.outcome == .failed && clientSecret ? "; the client secret was not rotated" : "")))
        }
        let whole = GroupWork(key: group.key, workspace: group.workspace, instances: members)
        if secretFrom != nil, groupCount != 1 {
            return .done(context.all(group, .failed, "--secret-from is the new secret of one app: the selection covers \(groupCount) app groups; select the instances of one (--instance NAME or --label)"))
        }
        let step: GroupStep
        do {
            guard let current = try AppRepository.current(workspaceID: group.workspace.id, appGroup: group.key.appGroup, in: context.store),
                  current.slackAppID != nil else {
                return .done(context.all(whole, .skipped, "no Slack app for app group \(group.key.appGroup) yet: run provision-app first"))
            }
            try RotateSecret.requireCanaries(whole)
            // A pending change resumes as the kind it was, whichever kind this run asks for.
            if let pending = try AppRepository.apps(workspaceID: group.workspace.id, appGroup: group.key.appGroup, stage: .pending, in: context.store).first {
                step = pending.origin == "propagated" ? .done(resumeInPlace(whole, pending: pending, current: current, context: context))
                                                      : blueGreen(whole, current: current, context: context)
            } else {
                step = mode == .blueGreen ? blueGreen(whole, current: current, context: context) : .done(inPlace(whole, current: current, context: context))
            }
        } catch {
            return .done(context.all(whole, JobContext.outcome(of: error), ChangeExecutor.describe(error)))
        }
        guard let token, token.outcome == .changed else { return step }
        return step.map { results in
            results.map { result in
                var result = result
                result.detail = token.detail + "; " + result.detail
                if result.outcome == .ok { result.outcome = .changed }
                return result
            }
        }
    }

    // MARK: In place

    /// The in-place rotation of `current`'s secret: wait for a person to regenerate it, then
    /// propagate what `--secret-from` gives.
    private func inPlace(_ group: GroupWork, current: App, context: JobContext) -> [InstanceResult] {
        let workspace = group.workspace, appID = current.slackAppID ?? ""
        do {
            let housekeeping = try retireInline(group, current: current, context: context)
            let slack = context.slack(workspace)
            let stored = try AppRepository.credentials(current, vault: context.vault)
            guard let reference = secretFrom else {
                if minAge > 0, let created = Timestamp.parse(current.createdAt), -created.timeIntervalSinceNow < minAge {
                    return context.all(group, .ok, housekeeping.note + "the client secret of \(appID) is \(Runner.duration(-created.timeIntervalSinceNow)) old, less than --min-age \(Runner.duration(minAge)): not rotated")
                }
                let probe = try context.facts.probe(stored, workspace: workspace, slack: slack)
                let regenerated = probe == .staleSecret
                let why = regenerated
                    ? "Slack refuses the stored client secret of \(appID) (bad_client_secret): a person regenerated it, and new connections fail until the new one is propagated"
                    : "the client secret of \(appID) is due for rotation; only a person can regenerate it"
                let name = "slack/\(workspace.id)/\(group.key.appGroup)/client-secret"
                let then = "store the new secret with `slackfleet secrets set \(name)` (on stdin) and run `slackfleet rotate-secret --client-secret --secret-from secret:\(name) \(RotateSecret.selection(group))`"
                let link = "https://api.slack.com/apps/\(appID)/general"
                if context.executor.dryRun {
                    return context.all(group, .changed, "would wait for a person to regenerate the client secret of \(appID) at \(link)")
                }
                try RotationWait.set(.awaitingRegenerate, workspaceID: workspace.id, appGroup: group.key.appGroup, app: current, in: context.store)
                let since = try RotationWait.get(workspaceID: workspace.id, appGroup: group.key.appGroup, in: context.store)?.since ?? Timestamp.now()
                return group.instances.map { instance in
                    var result = InstanceResult(instance: instance.name, appGroup: group.key.appGroup, workspace: workspace.id, outcome: .waiting,
                                                detail: housekeeping.note + "waiting since \(since) for a person to regenerate the client secret of \(appID)"
                                                    + (regenerated ? " (done: Slack refuses the stored one; give the new one with --secret-from)" : "")
                                                    + (probe == .inconclusive ? " (Slack's answers here cannot show whether it was regenerated)" : ""))
                    result.action = PersonAction(kind: regenerated ? .copySecret : .regenerate, instance: instance.name, entity: nil, channel: nil, workspace: workspace.name,
                                                 link: link, page: "Basic Information > App Credentials", why: why, then: then)
                    return result
                }
            }
            let secret = try context.vault.resolve(reference)
            let fingerprint = context.vault.keyring.fingerprint(of: secret)
            if fingerprint == context.vault.keyring.fingerprint(of: stored.clientSecret) {
                if !context.executor.dryRun { try RotationWait.clear(workspaceID: workspace.id, appGroup: group.key.appGroup, in: context.store) }
                return context.all(group, .ok, housekeeping.note + "app \(appID) already runs on this secret")
            }
            // Probed before any instance gets it: a secret Slack refuses would break new connections.
            let candidate = SlackCredentials(appID: appID, clientID: stored.clientID, clientSecret: secret)
            switch try context.facts.probe(candidate, workspace: workspace, slack: slack) {
            case .staleSecret:
                throw FleetError.data("the secret from \(reference) is not the current client secret of app \(appID): Slack answers bad_client_secret; copy it again from https://api.slack.com/apps/\(appID)/general")
            case .unknownClient:
                throw FleetError.failed("Slack knows no app with client ID \(stored.clientID): was \(appID) deleted?")
            case .accepted, .inconclusive:
                break
            }
            let change = ChangeExecutor.Change(
                target: "db:app/\(workspace.id)/\(group.key.appGroup)", action: "store-secret",
                summary: "store the client secret regenerated in Slack for app \(appID) as pending",
                detail: ["app_id": .string(appID), "client_secret": .string(fingerprint)])
            guard let pending = try context.executor.perform(change, instance: nil, {
                try AppRepository.storePropagated(secret: secret, for: current, vault: context.vault)
            }) else {
                return context.all(group, .changed, "would push the new secret of app \(appID) to this instance, then keep it as the current one")
            }
            try RotationWait.clear(workspaceID: workspace.id, appGroup: group.key.appGroup, in: context.store)
            return resumeInPlace(group, pending: pending, current: current, context: context)
        } catch {
            return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error))
        }
    }

    /// Registers the pending secret with every instance, keeps it as the current one, and checks
    /// delivery through the existing integrations. Nothing is rolled back: once a person
    /// regenerated the secret, Slack refuses the old one, so an instance that failed is tried
    /// again by the next run.
    private func resumeInPlace(_ group: GroupWork, pending: App, current: App, context: JobContext) -> [InstanceResult] {
        if context.executor.dryRun {
            return context.all(group, .changed, "would resume pushing the new secret of app \(pending.slackAppID ?? ""): register, then keep it")
        }
        let registered = register(group, pending: pending, propagated: true, context: context)
        if let stopped = registered.stopped { return stopped }
        let failures = registered.results.filter { $0.outcome == .failed }
        guard failures.isEmpty else {
            return registered.results.map { result in
                var result = result
                if result.outcome != .failed { result.outcome = .failed; result.detail = "runs on the new secret; " }
                result.detail += "; the new secret of \(pending.slackAppID ?? "") is kept pending and the next run tries the others again (Slack refuses the old one)"
                return result
            }
        }
        do {
            try promote(group, pending: pending, current: current, context: context)
        } catch {
            return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error))
        }
        // Delivery never used the secret: the existing integrations must still deliver.
        let verified = Dictionary(uniqueKeysWithValues: VerifyDelivery(timeout: deliveryTimeout).verify(group, expecting: .init(app: pending), context: context).map { ($0.instance, $0) })
        return registered.results.map { result in
            let check = verified[result.instance]
            var result = result.verified(by: check)
            switch check?.outcome {
            case .ok?:
                result.detail = "runs on the new secret of app \(pending.slackAppID ?? ""); its integrations still deliver (alert in \(String(format: "%.1f", check?.deliverySeconds ?? 0)) s)"
            case .needsConnect?:
                result.detail = "runs on the new secret of app \(pending.slackAppID ?? ""); " + (check?.detail ?? "")
            default:
                result.outcome = .failed
                result.detail = "runs on the new secret of app \(pending.slackAppID ?? ""), but delivery failed: \(check?.detail ?? "not checked")"
            }
            return result
        }
    }

    // MARK: Blue/green

    /// The blue/green rotation of `group` as steps: a previous app due for deletion goes first
    /// (a Tier 1 step each), then, unless a previous app is kept, the new app's create (a Tier 1
    /// step), then its registration, verification and promotion. `deleted`: what earlier steps
    /// of this run deleted (or, in a dry run, would).
    private func blueGreen(_ group: GroupWork, current: App, context: JobContext, deleted: [App] = []) -> GroupStep {
        let workspace = group.workspace, currentAppID = current.slackAppID ?? ""
        do {
            let token = try context.vault.resolve(workspace.configToken)
            let slack = context.slack(workspace)
            if let pending = try AppRepository.apps(workspaceID: workspace.id, appGroup: group.key.appGroup, stage: .pending, in: context.store).first,
               pending.origin == "created", let appID = pending.slackAppID {
                // A pending app from a run that ended early: carry on with it, unless it is gone.
                do {
                    _ = try slack.export(appID: appID, token: token)
                    if context.executor.dryRun {
                        return .done(context.all(group, .changed, "would resume the rotation to pending app \(appID): register it with every instance, verify, promote"))
                    }
                    return .done(finishBlueGreen(group, pending: pending, current: current, context: context))
                } catch let error as SlackAPIError where ["app_not_found", "invalid_app_id"].contains(error.code) {
                    if !context.executor.dryRun { try AppRepository.retire(pending, in: context.store) }
                }
            }
            let previous = try retirement(group, current: current, skipping: Set(deleted.compactMap(\.id)), context: context)
            if let doomed = previous.delete {
                if context.executor.dryRun {
                    try deleteApp(doomed.app, group: group, why: doomed.why, breaking: doomed.breaking, context: context)
                    return blueGreen(group, current: current, context: context, deleted: deleted + [doomed.app])
                }
                return .spend(.tier1) { context in
                    do {
                        try self.deleteApp(doomed.app, group: group, why: doomed.why, breaking: doomed.breaking, context: context)
                        try AppRepository.retire(doomed.app, in: context.store)
                    } catch {
                        return .done(context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error)))
                    }
                    return self.blueGreen(group, current: current, context: context, deleted: deleted + [doomed.app])
                }
            }
            let note = deleted.isEmpty ? "" : "\(context.executor.dryRun ? "would delete" : "deleted") previous app \(deleted.compactMap(\.slackAppID).joined(separator: ", ")) (no integration depends on it any more, or --delete-previous-breaking said how many may break); "
            if let kept = previous.kept {
                return .done(previous.results(group, outcome: note.isEmpty ? .ok : .changed, detail: note + kept))
            }
            if minAge > 0, let created = Timestamp.parse(current.createdAt), -created.timeIntervalSinceNow < minAge {
                return .done(context.all(group, note.isEmpty ? .ok : .changed,
                                         note + "app \(currentAppID) is \(Runner.duration(-created.timeIntervalSinceNow)) old, less than --min-age \(Runner.duration(minAge)): not rotated"))
            }
            // Every instance must answer before anything is created: a group with a member
            // down cannot be promoted, so it costs no Tier 1 write and leaves no app behind.
            if let unreachable = RotateSecret.unreachable(group, context: context) {
                return .done(unreachable)
            }
            // The new app starts from the current one's manifest as Slack has it, edits made in
            // Slack's UI included.
            let manifest = try slack.export(appID: currentAppID, token: token)
            try slack.validate(manifest, appID: nil, token: token)
            let create: @Sendable (JobContext) -> [InstanceResult] = { context in
                do {
                    guard let created = try ProvisionApp.createAndStore(
                        manifest, group: group, stage: .pending, token: token, context: context,
                        summary: "to replace app \(currentAppID) (blue/green rotation; the new app is pending until a canary integration made through it delivers)",
                        detail: ["replaces": .string(currentAppID)]) else {
                        return context.all(group, .changed, note + "would create a new app from the manifest of \(currentAppID), register it with the \(group.instances.count) instance(s) of app group \(group.key.appGroup), wait for a person to connect the canary through it, then promote it (the old app kept while integrations from before depend on it)")
                    }
                    CrashPoint.reach("rotate:pending-stored")
                    return self.finishBlueGreen(group, pending: created, current: current, context: context).map { result in
                        var result = result
                        result.detail = note + result.detail
                        return result
                    }
                } catch {
                    return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error))
                }
            }
            // A dry run records the create as planned and calls nothing: no quota to wait for.
            return context.executor.dryRun ? .done(create(context)) : .spend(.tier1) { .done(create($0)) }
        } catch {
            return .done(context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error)))
        }
    }

    /// Registers `pending` with every instance (recording first what integrations depend on the
    /// current app), verifies, and promotes it, waits for a person, or rolls back.
    private func finishBlueGreen(_ group: GroupWork, pending: App, current: App, context: JobContext) -> [InstanceResult] {
        let workspace = group.workspace, appID = pending.slackAppID ?? ""
        let registered = register(group, pending: pending, propagated: false, baseline: current, context: context)
        if let stopped = registered.stopped { return stopped }
        var failures = registered.results.filter { $0.outcome == .failed }.map { ($0.instance, $0.detail) }
        var verified: [String: InstanceResult] = [:]
        if failures.isEmpty {
            do {
                let before = Set(try IntegrationBaseline.entries(of: current, in: context.store).map(\.integration.id))
                for result in VerifyDelivery(timeout: deliveryTimeout).verify(group, expecting: .init(app: pending, before: before), context: context) {
                    verified[result.instance] = result
                    if result.outcome == .failed { failures.append((result.instance, result.detail)) }
                }
            } catch {
                return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error))
            }
        }
        guard failures.isEmpty else {
            return rollBack(group, pending: pending, current: current, failures: failures, context: context)
        }
        // A person must connect the canary through the new app before it can be promoted.
        if verified.values.contains(where: { $0.outcome == .needsConnect }) {
            do {
                try RotationWait.set(.awaitingConnect, workspaceID: workspace.id, appGroup: group.key.appGroup, app: pending, in: context.store)
                let since = try RotationWait.get(workspaceID: workspace.id, appGroup: group.key.appGroup, in: context.store)?.since ?? Timestamp.now()
                return registered.results.map { result in
                    var result = result
                    let check = verified[result.instance]
                    result.outcome = .waiting
                    result.connection = check?.connection
                    result.action = check?.action
                    result.detail = "runs on new app \(appID); the rotation waits since \(since) for "
                        + (check?.outcome == .needsConnect ? "a person to connect the canary through it: \(check?.action?.text ?? "")"
                                                          : "the other instances' canaries to be connected through it (this one delivers through it)")
                    return result
                }
            } catch {
                return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error))
            }
        }
        var tail = "previous app kept until \(Timestamp.format(Date().addingTimeInterval(grace))) and until every integration from before is connected again"
        do {
            try promote(group, pending: pending, current: current, context: context)
            if grace <= 0, let now = try AppRepository.current(workspaceID: workspace.id, appGroup: group.key.appGroup, in: context.store) {
                let retired = try retireInline(group, current: now, context: context)
                tail = retired.kept ?? "previous app deleted (--grace 0)"
                for (instance, action) in retired.actions { verified[instance]?.action = action }
            }
        } catch {
            return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error))
        }
        return registered.results.map { result in
            let check = verified[result.instance]
            var result = result.verified(by: check)
            result.detail = "rotated to app \(appID) (client ID \(pending.clientID ?? "")), verified through a canary integration made through it (alert delivered in \(String(format: "%.1f", check?.deliverySeconds ?? 0)) s); \(tail)"
            return result
        }
    }

    // MARK: Stages shared by both ways

    /// What registering a pending app or secret with every instance of a group came to.
    private struct Registered {
        var results: [InstanceResult]
        /// The group's results when the run was asked to stop mid-way.
        var stopped: [InstanceResult]?
    }

    /// Gives every instance `pending`'s credentials; the current ones serve until it reports
    /// them. `baseline`: blue/green, the app being left: the integrations that depend on it are
    /// recorded from every watched entity before the instance gets the new app, and again once it
    /// reports it (anything connected in between came through the old app too).
    private func register(_ group: GroupWork, pending: App, propagated: Bool, baseline: App? = nil, context: JobContext) -> Registered {
        let key = group.key, workspace = group.workspace
        let credentials: SlackCredentials
        do {
            credentials = try AppRepository.credentials(pending, vault: context.vault)
        } catch {
            return Registered(results: context.all(group, .failed, ChangeExecutor.describe(error)))
        }
        let appID = credentials.appID
        let results: [InstanceResult] = context.each(group.instances) { instance in
            do {
                let wandb = try context.wandb(instance)
                // Read first: an instance that cannot be reached is never given anything, so a
                // rollback has nothing to undo there. A new secret for the same client ID is
                // always written; a new client ID only where the instance does not report it yet.
                let reported = try wandb.serverInfo().slackClientID
                let started = Date()
                var changed = false
                if propagated || reported != credentials.clientID {
                    if let baseline { try RotateSecret.recordBaseline(instance, wandb: wandb, app: baseline, context: context) }
                    try AppRepository.recordInstance(instance.name, app: pending, state: "registering", in: context.store)
                    changed = try Registration.register(credentials, context: context.registration(instance, wandb: wandb), fresh: true).changed
                    if let baseline { try RotateSecret.recordBaseline(instance, wandb: wandb, app: baseline, context: context) }
                }
                try AppRepository.recordInstance(instance.name, app: pending, state: "running", in: context.store)
                CrashPoint.reach("rotate:instance-registered")
                var result = InstanceResult(instance: instance.name, appGroup: key.appGroup, workspace: workspace.id, outcome: .changed,
                                            detail: "runs on app \(appID)")
                result.switchSeconds = changed ? Date().timeIntervalSince(started) : 0
                return result
            } catch {
                return context.failure(instance, group, error)
            }
        }
        if let stopped = results.first(where: { $0.outcome == .interrupted || $0.outcome == .deferred }) {
            return Registered(results: results, stopped: results.map { result in
                var result = result
                if result.outcome == .changed { result.outcome = stopped.outcome }
                result.detail += "; the run stopped before the rotation to \(appID) was finished: the next run resumes it"
                return result
            })
        }
        return Registered(results: results)
    }

    /// Records the Slack integrations of every watched entity of `instance` as depending on `app`.
    static func recordBaseline(_ instance: Instance, wandb: WandbClient, app: App, context: JobContext) throws {
        for entity in try Connections.watchedEntities(instance, wandb: wandb) {
            guard let found = try wandb.slackIntegrations(entity: entity) else { continue }
            try IntegrationBaseline.record(found.slack, entity: entity, instance: instance.name, app: app, in: context.store)
        }
    }

    /// Pending becomes current, current becomes previous, in one transaction, through the executor.
    private func promote(_ group: GroupWork, pending: App, current: App, context: JobContext) throws {
        let workspace = group.workspace
        let credentials = try AppRepository.credentials(pending, vault: context.vault)
        try context.executor.perform(ChangeExecutor.Change(
            target: "db:app/\(workspace.id)/\(group.key.appGroup)", action: "promote",
            summary: "promote app \(credentials.appID) (client ID \(credentials.clientID)) to current; app \(current.slackAppID ?? "") becomes previous",
            detail: ["app_id": .string(credentials.appID), "client_id": .string(credentials.clientID), "previous": .string(current.slackAppID ?? ""),
                     "client_secret": .string(context.vault.keyring.fingerprint(of: credentials.clientSecret))]), instance: nil) {
            try AppRepository.promote(pending, over: current, in: context.store)
        }
        try RotationWait.clear(workspaceID: workspace.id, appGroup: group.key.appGroup, in: context.store)
        CrashPoint.reach("rotate:promoted")
    }

    /// Reads every instance of `group`; nil when all answer, else the group's results: the
    /// instances that did not answer fail with their error, the others with theirs named.
    static func unreachable(_ group: GroupWork, context: JobContext) -> [InstanceResult]? {
        let answers: [(Instance, String?)] = context.each(group.instances) { instance in
            do {
                _ = try context.wandb(instance).serverInfo()
                return (instance, nil)
            } catch {
                return (instance, ChangeExecutor.describe(error))
            }
        }
        let failed = answers.compactMap { instance, error in error.map { (instance.name, $0) } }
        guard let first = failed.first else { return nil }
        let reason = "\(first.0): \(first.1)" + (failed.count > 1 ? " (and \(failed.count - 1) more)" : "")
        return answers.map { instance, error in
            InstanceResult(instance: instance.name, appGroup: group.key.appGroup, workspace: group.workspace.id, outcome: .failed,
                           detail: "rotation not started, nothing created: " + (error.map { "this instance did not answer: \($0)" } ?? "another instance failed: \(reason)")
                               + "; app group \(group.key.appGroup) is rotated once every instance answers")
        }
    }

    /// Gives every instance the current app's credentials again, then deletes the pending app,
    /// unless integrations were connected through it meanwhile: then it is kept as a previous app
    /// with those as its dependants, retired like any other once they are connected again.
    private func rollBack(_ group: GroupWork, pending: App, current: App, failures: [(instance: String, detail: String)], context: JobContext) -> [InstanceResult] {
        let key = group.key, workspace = group.workspace
        let reason = failures.prefix(3).map { "\($0.instance): \($0.detail)" }.joined(separator: "; ") + (failures.count > 3 ? "; and \(failures.count - 3) more" : "")
        let pendingID = pending.slackAppID ?? "", currentID = current.slackAppID ?? ""
        let back: [InstanceResult]
        do {
            let credentials = try AppRepository.credentials(current, vault: context.vault)
            let before = Set(try IntegrationBaseline.entries(of: current, in: context.store).map(\.integration.id))
            back = context.each(group.instances) { instance in
                do {
                    // Only an instance that was given the pending credentials has anything to undo;
                    // it gets the current ones written again even if it still reports them, since a
                    // rollout of the pending ones may be under way. The others were never touched.
                    guard try AppRepository.instanceCredential(instance.name, in: context.store)?.appID == pending.id else {
                        return InstanceResult(instance: instance.name, appGroup: key.appGroup, workspace: workspace.id, outcome: .ok, detail: "")
                    }
                    let wandb = try context.wandb(instance)
                    // Integrations made since the cutover came through the pending app.
                    for entity in try Connections.watchedEntities(instance, wandb: wandb) {
                        let made = (try wandb.slackIntegrations(entity: entity)?.slack ?? []).filter { !before.contains($0.id) }
                        try IntegrationBaseline.record(made, entity: entity, instance: instance.name, app: pending, in: context.store)
                    }
                    try Registration.register(credentials, context: context.registration(instance, wandb: wandb), fresh: true)
                    try AppRepository.recordInstance(instance.name, app: current, state: "running", in: context.store)
                    return InstanceResult(instance: instance.name, appGroup: key.appGroup, workspace: workspace.id, outcome: .ok, detail: "")
                } catch {
                    return context.failure(instance, group, error)
                }
            }
        } catch {
            return context.all(group, .failed, "rotation failed (\(reason)) and the rollback could not start: \(ChangeExecutor.describe(error))")
        }
        let stuck = back.filter { $0.outcome != .ok }
        guard stuck.isEmpty else {
            return context.all(group, .failed, "rotation to \(pendingID) failed (\(reason)), and the rollback did not reach \(stuck.map(\.instance).joined(separator: ", ")) (\(stuck[0].detail)): pending app \(pendingID) is kept, since they may run on it; run again")
        }
        var deleted = "pending app \(pendingID) deleted"
        do {
            let dependants = try IntegrationBaseline.entries(of: pending, in: context.store)
            if !dependants.isEmpty {
                // Deleting it would end what people connected through it: it retires as any previous app.
                try AppRepository.demote(pending, in: context.store)
                deleted = "pending app \(pendingID) kept as a previous app: \(dependants.count) integration(s) were connected through it and must be connected again first"
            } else {
                try deleteApp(pending, group: group, why: "its verification failed", context: context)
                try AppRepository.retire(pending, in: context.store)
            }
            try RotationWait.clear(workspaceID: workspace.id, appGroup: key.appGroup, in: context.store)
            CrashPoint.reach("rotate:rolled-back")
            try context.executor.perform(ChangeExecutor.Change(
                target: "db:app/\(workspace.id)/\(key.appGroup)", action: "rollback",
                summary: "rolled back the rotation to \(pendingID): \(reason)", detail: ["app_id": .string(pendingID), "kept": .string(currentID)]), instance: nil) {}
        } catch {
            deleted = "pending app \(pendingID) not deleted (\(ChangeExecutor.describe(error))); the next run deletes it"
        }
        let failed = Dictionary(failures.map { ($0.instance, $0.detail) }, uniquingKeysWith: { first, _ in first })
        return group.instances.map { instance in
            InstanceResult(instance: instance.name, appGroup: key.appGroup, workspace: workspace.id, outcome: .failed,
                           detail: "rotation rolled back: " + (failed[instance.name].map { "this instance failed: \($0)" } ?? "another instance failed: \(reason)")
                               + "; every instance runs on app \(currentID) again, \(deleted)")
        }
    }

    /// What the group's previous apps call for now.
    private struct Retirement {
        /// Why a previous app is kept, if one is.
        var kept: String?
        /// Per instance, who must connect again before the previous app may go.
        var actions: [String: PersonAction] = [:]
        /// Whether the grace of the app kept is over (people, not time, keep it).
        var graceOver = false
        /// A previous app to delete now, why, and the integrations that ends (for the audit log).
        var delete: (app: App, why: String, breaking: [JSON])?

        /// The group's results while a previous app is kept: instances whose people must connect
        /// again carry the action, and wait for it once the grace is over.
        func results(_ group: GroupWork, outcome: InstanceResult.Outcome, detail: String) -> [InstanceResult] {
            group.instances.map { instance in
                var result = InstanceResult(instance: instance.name, appGroup: group.key.appGroup, workspace: group.workspace.id, outcome: outcome, detail: detail)
                if let action = actions[instance.name] {
                    result.action = action
                    if graceOver { result.outcome = .waiting }
                }
                return result
            }
        }
    }

    /// Decides what the group's `previous` apps call for, writing nothing to Slack: one to delete
    /// now once its grace has passed, every instance reports the current client ID and no
    /// integration from before the cutover still depends on it (each gone, or its entity has a
    /// newer integration in the same channel), or `--delete-previous-breaking` names exactly how
    /// many it would break; else why it is kept. `skipping`: apps this run has dealt with.
    private func retirement(_ group: GroupWork, current: App, skipping: Set<Int64> = [], context: JobContext) throws -> Retirement {
        let workspace = group.workspace
        var retirement = Retirement()
        for previous in try AppRepository.apps(workspaceID: workspace.id, appGroup: group.key.appGroup, stage: .previous, in: context.store)
            where !skipping.contains(previous.id ?? -1) {
            let since = (previous.stageChangedAt ?? previous.updatedAt)
            let due = (Timestamp.parse(since) ?? Date.distantPast).addingTimeInterval(grace)
            let previousID = previous.slackAppID ?? ""
            if try AppRepository.slackAppInUse(previous, in: context.store) {
                // A superseded secret of the app still in use: nothing to delete in Slack.
                if !context.executor.dryRun { try AppRepository.retire(previous, in: context.store) }
                continue
            }
            // Who must still connect again, reported on every run, grace or not.
            let remaining = try RotateSecret.unreconnected(previous, group: group, context: context)
            for entry in remaining where retirement.actions[entry.instance] == nil {
                retirement.actions[entry.instance] = entry.action
            }
            let who = remaining.prefix(5).map { "\($0.instance)/\($0.entry.entity) in #\($0.entry.integration.channelName)" }.joined(separator: ", ")
                + (remaining.count > 5 ? " and \(remaining.count - 5) more" : "")
            if due > Date() {
                retirement.kept = "rotated at \(since); previous app \(previousID) is kept for rollback until \(Timestamp.format(due)) (--grace \(Runner.duration(grace)))"
                    + (remaining.isEmpty ? "" : ", and then until \(remaining.count) integration(s) from before are connected again (\(who))")
                    + "; nothing more is rotated until it is deleted"
                return retirement
            }
            retirement.graceOver = true
            // Never delete credentials an instance may still run on.
            let reports: [String?] = context.each(group.instances) { instance in try? context.wandb(instance).serverInfo().slackClientID }
            if let index = reports.firstIndex(where: { $0 != current.clientID }) {
                retirement.kept = "previous app \(previousID) is kept: instance \(group.instances[index].name) \(reports[index].map { "runs on client ID \($0)" } ?? "did not answer"), not \(current.clientID ?? "")"
                return retirement
            }
            if !remaining.isEmpty, deleteBreaking != remaining.count {
                retirement.kept = "previous app \(previousID) is kept: deleting it would end \(remaining.count) Slack integration(s) from before the rotation that have not been connected again (\(who)); a person must connect each through the current app (`slackfleet connect` lists them), or delete it anyway with --delete-previous-breaking \(remaining.count)"
                    + (deleteBreaking.map { " (--delete-previous-breaking \($0) does not match)" } ?? "")
                return retirement
            }
            let broken: [JSON] = remaining.map { ["instance": .string($0.instance), "entity": .string($0.entry.entity), "integration": .string($0.entry.integration.id),
                                                  "team": .string($0.entry.integration.teamName), "channel": .string($0.entry.integration.channelName)] }
            retirement.actions = [:]
            retirement.delete = (previous, remaining.isEmpty ? "replaced at \(since); no integration depends on it any more"
                                                             : "deleted anyway with --delete-previous-breaking \(remaining.count): \(remaining.count) integration(s) end", broken)
            return retirement
        }
        return retirement
    }

    /// The group's previous apps dealt with on this thread, each deletion's Tier 1 call waited for
    /// on the pacer: for the paths that meet a previous app mid-way (an in-place rotation, the end
    /// of a blue/green one with --grace 0).
    private func retireInline(_ group: GroupWork, current: App, context: JobContext) throws -> (kept: String?, note: String, actions: [String: PersonAction]) {
        var deleted: [App] = []
        while true {
            let previous = try retirement(group, current: current, skipping: Set(deleted.compactMap(\.id)), context: context)
            guard let doomed = previous.delete else {
                let note = deleted.isEmpty ? "" : "\(context.executor.dryRun ? "would delete" : "deleted") previous app \(deleted.compactMap(\.slackAppID).joined(separator: ", ")); "
                return (previous.kept, note, previous.actions)
            }
            try deleteApp(doomed.app, group: group, why: doomed.why, breaking: doomed.breaking, context: context)
            if !context.executor.dryRun { try AppRepository.retire(doomed.app, in: context.store) }
            deleted.append(doomed.app)
        }
    }

    /// An integration that depends on a retiring app and has not been connected again.
    struct Unreconnected: Sendable {
        let instance: String
        let entry: IntegrationBaseline.Entry
        let action: PersonAction
    }

    /// The integrations recorded as depending on `app` that still exist and whose entity has no
    /// newer integration in the same workspace and channel.
    static func unreconnected(_ app: App, group: GroupWork, context: JobContext) throws -> [Unreconnected] {
        let entries = try IntegrationBaseline.entries(of: app, in: context.store)
        guard !entries.isEmpty else { return [] }
        let dependants = Set(entries.map(\.integration.id))
        let byInstance = Dictionary(grouping: entries, by: \.instance)
        let instances = Dictionary(uniqueKeysWithValues: group.instances.map { ($0.name, $0) })
        let found: [[Unreconnected]] = try context.each(byInstance.keys.sorted()) { name -> Result<[Unreconnected], any Error> in
            Result {
                let entries = byInstance[name] ?? []
                guard let instance = instances[name] else {
                    // Not in the group any more: nothing can be read, so nothing is taken as reconnected.
                    return entries.map { Unreconnected(instance: name, entry: $0, action: PersonAction(
                        instance: name, entity: $0.entity, channel: "#" + $0.integration.channelName, workspace: $0.integration.teamName, link: "", page: "",
                        why: "instance \(name) is no longer in app group \(group.key.appGroup), so its integrations cannot be checked")) }
                }
                let wandb = try context.wandb(instance)
                var left: [Unreconnected] = []
                for (entity, items) in Dictionary(grouping: entries, by: \.entity) {
                    guard let now = try wandb.slackIntegrations(entity: entity) else { continue }
                    let live = Set(now.slack.map(\.id))
                    for item in items where live.contains(item.integration.id) {
                        let again = now.slack.contains { !dependants.contains($0.id) && $0.teamName == item.integration.teamName && $0.channelName == item.integration.channelName }
                        if again { continue }
                        left.append(Unreconnected(instance: name, entry: item, action: Connections.action(
                            instance, entity: entity, isTeam: now.isTeam, channel: "#" + item.integration.channelName, workspace: item.integration.teamName,
                            why: "the Slack integration of \(entity) in #\(item.integration.channelName) came through app \(app.slackAppID ?? "") that a rotation is retiring")))
                    }
                }
                return left.sorted { ($0.entry.entity, $0.entry.integration.id) < ($1.entry.entity, $1.entry.integration.id) }
            }
        }.map { try $0.get() }
        return found.flatMap { $0 }
    }

    /// The app's deletion (AppDeletion); `breaking`: the integrations it ends, recorded in the audit log.
    private func deleteApp(_ app: App, group: GroupWork, why: String, breaking: [JSON] = [], context: JobContext) throws {
        try AppDeletion.delete(app, group: group, why: why, detail: breaking.isEmpty ? [:] : ["integrations_broken": .list(breaking)], context: context)
    }

    /// A command-line selection of a group, for a message a person can paste: one instance
    /// stands for its group (a rotation covers every enabled instance of it).
    static func selection(_ group: GroupWork) -> String {
        "--instance \(group.instances.first?.name ?? group.key.appGroup)"
    }

    /// A rotation is only finished after a test alert is seen, so it needs somewhere to see it.
    static func requireCanaries(_ group: GroupWork) throws {
        let workspace = group.workspace
        guard workspace.botToken != nil, workspace.canaryChannel != nil else {
            throw FleetError.config("workspace \(workspace.id) has no bot_token and canary_channel in the inventory: a rotation is only finished once a test alert is seen there; add them and run again")
        }
        if let missing = group.instances.first(where: { $0.canary == nil }) {
            throw FleetError.config("instance \(missing.name) has no canary entity/project in the inventory: a rotation is only finished once a test alert from every instance is seen; add canary and run again")
        }
    }
}

extension InstanceResult {
    /// This result with what verify-delivery found for the instance: latency, connection, action.
    func verified(by check: InstanceResult?) -> InstanceResult {
        var result = self
        result.deliverySeconds = check?.deliverySeconds
        result.connection = check?.connection
        result.action = check?.action
        return result
    }
}
