import Foundation

/// rotate-secret: fresh configuration tokens, and instances moved to a new client secret with
/// no moment where none works.
///
/// Slack has no API to regenerate a client secret, so `--client-secret` is blue/green: a new
/// app from the current manifest (stage `pending`), registered with every instance of the
/// group and verified there (client ID, then a test alert seen in the canary channel), then
/// promoted (`current`; the old app becomes `previous`, deleted by a later run once the grace
/// has passed). If any instance fails, every instance gets the current app's credentials
/// again and the pending app is deleted. `--propagate` pushes a secret a person regenerated in
/// Slack's UI with the same stages. Stages are stored per app and per instance, so a run
/// killed anywhere resumes from the recorded stage.
public struct RotateSecret: FleetJob {
    public let name = "rotate-secret"
    public var configTokens = false
    public var clientSecret = false
    /// `--propagate --secret-from REF`: the new secret of the group's current app.
    public var propagateFrom: SecretReference?
    /// Rotate a configuration token when less than this is left of it.
    public var minRemaining: TimeInterval = 6 * 3600
    /// How long a replaced app is kept for rollback before a later run deletes it.
    public var grace: TimeInterval = 24 * 3600
    /// Only rotate apps at least this old (0: rotate now).
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
        guard clientSecret || propagateFrom != nil,
              let apps = try? AppRepository.apps(workspaceID: group.workspace.id, appGroup: group.key.appGroup, in: context.store) else { return 0 }
        let pending = apps.contains { $0.stage == .pending }
        let due = apps.filter { app in
            app.stage == .previous && (Timestamp.parse(app.stageChangedAt ?? app.updatedAt) ?? .distantPast).addingTimeInterval(grace) <= Date()
        }
        // A rotation starts only when no previous app is waiting out its grace.
        let waiting = apps.contains { $0.stage == .previous } && due.isEmpty
        return (clientSecret && !pending && !waiting ? 1 : 0) + due.count
    }

    public func begin(_ work: [GroupWork], context: JobContext, notes: (String) -> Void) -> Bool {
        let inventory = try? InventoryRepository.load(context.store)
        shared.lock.lock()
        shared.groupCount = work.count
        // A rotation covers every enabled instance of an app group, selected or not.
        shared.groups = (inventory?.instancesByApp ?? [:]).mapValues { $0.filter(\.enabled).sorted { $0.name < $1.name } }
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

    public func run(_ group: GroupWork, context: JobContext) -> [InstanceResult] {
        shared.lock.lock()
        let token = configTokens ? shared.tokens[group.workspace.id] : nil
        let members = shared.groups[group.key] ?? group.instances
        let groupCount = shared.groupCount
        shared.lock.unlock()
        if let token, !clientSecret && propagateFrom == nil || token.outcome == .failed {
            return context.all(group, token.outcome, token.detail + (token.outcome == .failed && (clientSecret || propagateFrom != nil) ? "; the client secret was not rotated" : ""))
        }
        let whole = GroupWork(key: group.key, workspace: group.workspace, instances: members)
        if propagateFrom != nil, groupCount != 1 {
            return context.all(group, .failed, "--propagate pushes the secret of one app: the selection covers \(groupCount) app groups; select the instances of one (--instance NAME or --label)")
        }
        var results: [InstanceResult]
        do {
            guard let current = try AppRepository.current(workspaceID: group.workspace.id, appGroup: group.key.appGroup, in: context.store),
                  current.slackAppID != nil else {
                return context.all(whole, .skipped, "no Slack app for app group \(group.key.appGroup) yet: run provision-app first")
            }
            try RotateSecret.requireCanaries(whole)
            results = propagateFrom.map { propagate(whole, current: current, from: $0, context: context) } ?? rotate(whole, current: current, context: context)
        } catch {
            return context.all(whole, JobContext.outcome(of: error), ChangeExecutor.describe(error))
        }
        if let token, token.outcome == .changed {
            for index in results.indices {
                results[index].detail = token.detail + "; " + results[index].detail
                if results[index].outcome == .ok { results[index].outcome = .changed }
            }
        }
        return results
    }

    // MARK: Client secret (blue/green)

    private func rotate(_ group: GroupWork, current: App, context: JobContext) -> [InstanceResult] {
        let workspace = group.workspace, currentAppID = current.slackAppID ?? ""
        do {
            let token = try context.vault.resolve(workspace.configToken)
            let slack = context.slack(workspace)
            var pending = try AppRepository.apps(workspaceID: workspace.id, appGroup: group.key.appGroup, stage: .pending, in: context.store).first
            if let app = pending, app.origin == "created", let appID = app.slackAppID {
                // A pending app from a run that ended early: carry on with it, unless it is gone.
                do {
                    _ = try slack.export(appID: appID, token: token)
                } catch let error as SlackAPIError where ["app_not_found", "invalid_app_id"].contains(error.code) {
                    if !context.executor.dryRun { try AppRepository.retire(app, in: context.store) }
                    pending = nil
                }
            }
            var deletedNote = ""
            if pending == nil {
                let previous = try retirePrevious(group, current: current, context: context)
                if !previous.deleted.isEmpty {
                    deletedNote = "\(context.executor.dryRun ? "would delete" : "deleted") previous app \(previous.deleted.joined(separator: ", ")) (its grace has passed); "
                }
                if let kept = previous.kept {
                    return context.all(group, deletedNote.isEmpty ? .ok : .changed, deletedNote + kept)
                }
                if minAge > 0, let created = Timestamp.parse(current.createdAt), -created.timeIntervalSinceNow < minAge {
                    return context.all(group, deletedNote.isEmpty ? .ok : .changed,
                                       deletedNote + "app \(currentAppID) is \(Runner.duration(-created.timeIntervalSinceNow)) old, less than --min-age \(Runner.duration(minAge)): not rotated")
                }
                // Every instance must answer before anything is created: a group with a member
                // down cannot be promoted, so it costs no Tier 1 write and leaves no app behind.
                if let unreachable = RotateSecret.unreachable(group, context: context) {
                    return unreachable
                }
                // The new app starts from the current one's manifest as Slack has it, edits made in
                // Slack's UI included.
                let manifest = try slack.export(appID: currentAppID, token: token)
                try slack.validate(manifest, appID: nil, token: token)
                guard let created = try ProvisionApp.createAndStore(
                    manifest, group: group, stage: .pending, token: token, context: context,
                    summary: "to replace app \(currentAppID) (client secret rotation; the new app is pending until verified)",
                    detail: ["replaces": .string(currentAppID)]) else {
                    return context.all(group, .changed, "would create a new app from the manifest of \(currentAppID), register it with the \(group.instances.count) instance(s) of app group \(group.key.appGroup), verify delivery, then promote it (the old app kept \(Runner.duration(grace)))")
                }
                CrashPoint.reach("rotate:pending-stored")
                pending = created
            }
            guard let pending else { return [] }
            if context.executor.dryRun {
                return context.all(group, .changed, "would resume the rotation to pending app \(pending.slackAppID ?? ""): register it with every instance, verify, promote")
            }
            return finish(group, pending: pending, current: current, propagated: pending.origin == "propagated", context: context).map { result in
                var result = result
                result.detail = deletedNote + result.detail
                return result
            }
        } catch {
            return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error))
        }
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

    // MARK: Propagate a secret regenerated in Slack's UI

    private func propagate(_ group: GroupWork, current: App, from reference: SecretReference, context: JobContext) -> [InstanceResult] {
        let workspace = group.workspace, currentAppID = current.slackAppID ?? ""
        do {
            var pending = try AppRepository.apps(workspaceID: workspace.id, appGroup: group.key.appGroup, stage: .pending, in: context.store).first
            if pending == nil {
                _ = try retirePrevious(group, current: current, context: context)  // the previous rotation's app, if due
                let secret = try context.vault.resolve(reference)
                let fingerprint = context.vault.keyring.fingerprint(of: secret)
                if fingerprint == context.vault.keyring.fingerprint(of: try AppRepository.credentials(current, vault: context.vault).clientSecret) {
                    return context.all(group, .ok, "app \(currentAppID) already runs on this secret")
                }
                let change = ChangeExecutor.Change(
                    target: "db:app/\(workspace.id)/\(group.key.appGroup)", action: "store-secret",
                    summary: "store the client secret regenerated in Slack for app \(currentAppID) as pending",
                    detail: ["app_id": .string(currentAppID), "client_secret": .string(fingerprint)])
                guard let stored = try context.executor.perform(change, instance: nil, {
                    try AppRepository.storePropagated(secret: secret, for: current, vault: context.vault)
                }) else {
                    return context.all(group, .changed, "would push the new secret of app \(currentAppID) to this instance, verify delivery, then promote it")
                }
                pending = stored
            }
            guard let pending else { return [] }
            if context.executor.dryRun {
                return context.all(group, .changed, "would resume pushing the new secret of app \(currentAppID): register, verify, promote")
            }
            return finish(group, pending: pending, current: current, propagated: pending.origin == "propagated", context: context)
        } catch {
            return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error))
        }
    }

    // MARK: Stages

    /// Registers `pending` with every instance, verifies, and promotes it or rolls back.
    private func finish(_ group: GroupWork, pending: App, current: App, propagated: Bool, context: JobContext) -> [InstanceResult] {
        let key = group.key, workspace = group.workspace
        let credentials: SlackCredentials
        do {
            credentials = try AppRepository.credentials(pending, vault: context.vault)
        } catch {
            return context.all(group, .failed, ChangeExecutor.describe(error))
        }
        let appID = credentials.appID
        // 1. Every instance gets the pending credentials; the current ones serve until it reports them.
        let registered: [InstanceResult] = context.each(group.instances) { instance in
            do {
                let wandb = try context.wandb(instance)
                // Read first: an instance that cannot be reached is never given anything, so a
                // rollback has nothing to undo there. A new secret for the same client ID is
                // always written; a new client ID only where the instance does not report it yet.
                let reported = try wandb.serverInfo().slackClientID
                let started = Date()
                var changed = false
                if propagated || reported != credentials.clientID {
                    try AppRepository.recordInstance(instance.name, app: pending, state: "registering", in: context.store)
                    changed = try Registration.register(credentials, context: context.registration(instance, wandb: wandb), fresh: true)
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
        if let stopped = registered.first(where: { $0.outcome == .interrupted || $0.outcome == .deferred }) {
            return registered.map { result in
                var result = result
                if result.outcome == .changed { result.outcome = stopped.outcome }
                result.detail += "; the run stopped before the rotation to \(appID) was verified: the next run resumes it"
                return result
            }
        }
        // 2. Proof on every instance: it reports the new client ID and a test alert arrives.
        var failures = registered.filter { $0.outcome == .failed }.map { ($0.instance, $0.detail) }
        var verified: [String: InstanceResult] = [:]
        if failures.isEmpty {
            for result in verify(group, pending: pending, propagated: propagated, context: context) {
                verified[result.instance] = result
                if result.outcome != .ok { failures.append((result.instance, result.detail)) }
            }
        }
        guard failures.isEmpty else {
            return rollBack(group, pending: pending, current: current, propagated: propagated, failures: failures, context: context)
        }
        // 3. Promote: pending becomes current, current becomes previous.
        do {
            try context.executor.perform(ChangeExecutor.Change(
                target: "db:app/\(workspace.id)/\(key.appGroup)", action: "promote",
                summary: "promote app \(appID) (client ID \(credentials.clientID)) to current; app \(current.slackAppID ?? "") becomes previous, deleted after the grace",
                detail: ["app_id": .string(appID), "client_id": .string(credentials.clientID), "previous": .string(current.slackAppID ?? ""),
                         "client_secret": .string(context.vault.keyring.fingerprint(of: credentials.clientSecret))]), instance: nil) {
                try AppRepository.promote(pending, over: current, in: context.store)
            }
            CrashPoint.reach("rotate:promoted")
        } catch {
            return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error))
        }
        var tail = "previous app kept until \(Timestamp.format(Date().addingTimeInterval(grace)))"
        if grace <= 0 {
            do {
                if let current = try AppRepository.current(workspaceID: workspace.id, appGroup: key.appGroup, in: context.store) {
                    tail = try retirePrevious(group, current: current, context: context).kept ?? "previous app deleted (--grace 0)"
                }
            } catch {
                tail = "the previous app was not deleted: \(ChangeExecutor.describe(error))"
            }
        }
        return registered.map { result in
            var result = result
            let latency = verified[result.instance]?.deliverySeconds
            result.deliverySeconds = latency
            result.checks = nil
            result.detail = propagated
                ? "runs on the new secret of app \(appID), verified (alert delivered in \(String(format: "%.1f", latency ?? 0)) s); \(tail)"
                : "rotated to app \(appID) (client ID \(credentials.clientID)), verified (alert delivered in \(String(format: "%.1f", latency ?? 0)) s); \(tail)"
            return result
        }
    }

    /// verify-delivery's checks against the pending app. A secret pushed for the same client ID
    /// only shows once the new pods serve, and nothing reports when that is: failed instances
    /// are tried again, with a longer wait for the alert each time, until the settle timeout.
    private func verify(_ group: GroupWork, pending: App, propagated: Bool, context: JobContext) -> [InstanceResult] {
        guard propagated else { return VerifyDelivery(timeout: deliveryTimeout).verify(group, expecting: pending, context: context) }
        var window = min(deliveryTimeout, 2.0)
        var results = VerifyDelivery(timeout: window).verify(group, expecting: pending, context: context)
        let deadline = Date().addingTimeInterval(context.settings.settleTimeoutSeconds)
        while results.contains(where: { $0.outcome == .failed }), Date() < deadline, context.control.stop == nil {
            window = min(deliveryTimeout, window * 2)
            let failing = Set(results.filter { $0.outcome == .failed }.map(\.instance))
            let retry = GroupWork(key: group.key, workspace: group.workspace, instances: group.instances.filter { failing.contains($0.name) })
            let again = VerifyDelivery(timeout: window).verify(retry, expecting: pending, context: context)
            let byName = Dictionary(uniqueKeysWithValues: again.map { ($0.instance, $0) })
            results = results.map { byName[$0.instance] ?? $0 }
        }
        return results
    }

    /// Gives every instance the current app's credentials again, then deletes the pending app.
    private func rollBack(_ group: GroupWork, pending: App, current: App, propagated: Bool,
                          failures: [(instance: String, detail: String)], context: JobContext) -> [InstanceResult] {
        let key = group.key, workspace = group.workspace
        let reason = failures.prefix(3).map { "\($0.instance): \($0.detail)" }.joined(separator: "; ") + (failures.count > 3 ? "; and \(failures.count - 3) more" : "")
        let pendingID = pending.slackAppID ?? "", currentID = current.slackAppID ?? ""
        let back: [InstanceResult]
        do {
            let credentials = try AppRepository.credentials(current, vault: context.vault)
            back = context.each(group.instances) { instance in
                do {
                    // Only an instance that was given the pending credentials has anything to undo;
                    // it gets the current ones written again even if it still reports them, since a
                    // rollout of the pending ones may be under way. The others were never touched.
                    guard try AppRepository.instanceCredential(instance.name, in: context.store)?.appID == pending.id else {
                        return InstanceResult(instance: instance.name, appGroup: key.appGroup, workspace: workspace.id, outcome: .ok, detail: "")
                    }
                    let wandb = try context.wandb(instance)
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
            if !propagated, !(try AppRepository.slackAppInUse(pending, in: context.store)) {
                try deleteApp(pending, group: group, why: "its verification failed", context: context)
            } else {
                deleted = "pending secret discarded"
            }
            try AppRepository.retire(pending, in: context.store)
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

    /// Deletes the group's `previous` apps whose grace has passed, once every instance reports
    /// the current client ID. Returns why a previous app is kept, if one is, and the apps deleted.
    private func retirePrevious(_ group: GroupWork, current: App, context: JobContext) throws -> (kept: String?, deleted: [String]) {
        let workspace = group.workspace
        var deleted: [String] = []
        for previous in try AppRepository.apps(workspaceID: workspace.id, appGroup: group.key.appGroup, stage: .previous, in: context.store) {
            let since = (previous.stageChangedAt ?? previous.updatedAt)
            let due = (Timestamp.parse(since) ?? Date.distantPast).addingTimeInterval(grace)
            if due > Date() {
                return (kept: "rotated at \(since); previous app \(previous.slackAppID ?? "") is kept for rollback until \(Timestamp.format(due)) (--grace \(Runner.duration(grace))), and nothing more is rotated until it is deleted", deleted)
            }
            // Never delete credentials an instance may still run on.
            let reports: [String?] = context.each(group.instances) { instance in try? context.wandb(instance).serverInfo().slackClientID }
            if let index = reports.firstIndex(where: { $0 != current.clientID }) {
                return (kept: "previous app \(previous.slackAppID ?? "") is kept: instance \(group.instances[index].name) \(reports[index].map { "runs on client ID \($0)" } ?? "did not answer"), not \(current.clientID ?? "")", deleted)
            }
            if try AppRepository.slackAppInUse(previous, in: context.store) {
                // A superseded secret of the app still in use: nothing to delete in Slack.
                if !context.executor.dryRun { try AppRepository.retire(previous, in: context.store) }
                continue
            }
            try deleteApp(previous, group: group, why: "replaced at \(since); the grace ended at \(Timestamp.format(due))", context: context)
            if !context.executor.dryRun { try AppRepository.retire(previous, in: context.store) }
            deleted.append(previous.slackAppID ?? "")
        }
        return (nil, deleted)
    }

    /// apps.manifest.delete (Tier 1) through the executor; an app Slack no longer has counts as deleted.
    private func deleteApp(_ app: App, group: GroupWork, why: String, context: JobContext) throws {
        let workspace = group.workspace
        guard let appID = app.slackAppID else { return }
        let token = try context.vault.resolve(workspace.configToken)
        let slack = context.slack(workspace)
        try context.executor.perform(ChangeExecutor.Change(
            target: "slack:app/\(workspace.id)/\(group.key.appGroup)", action: "delete",
            summary: "delete app \(appID) (\(app.stage.rawValue)): \(why)", detail: ["app_id": .string(appID), "stage": .string(app.stage.rawValue)]), instance: nil) {
            do {
                try slack.delete(appID: appID, token: token)
            } catch let error as SlackAPIError where error.code == "app_not_found" {
                // Deleted already (by a run that died before recording it, or by a person).
            }
        }
    }

    /// A rotation is only promoted after a test alert is seen, so it needs somewhere to see it.
    static func requireCanaries(_ group: GroupWork) throws {
        let workspace = group.workspace
        guard workspace.botToken != nil, workspace.canaryChannel != nil else {
            throw FleetError.config("workspace \(workspace.id) has no bot_token and canary_channel in the inventory: a rotation is only promoted once a test alert is seen there; add them and run again")
        }
        if let missing = group.instances.first(where: { $0.canary == nil }) {
            throw FleetError.config("instance \(missing.name) has no canary entity/project in the inventory: a rotation is only promoted once a test alert from every instance is seen; add canary and run again")
        }
    }
}
