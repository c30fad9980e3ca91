import Foundation
import GRDB

/// retire: instances on their way out (marked `retire: true` in the inventory, or removed from
/// it after they were given an app's credentials) leave their app group cleanly.
///
/// For each app group with retiring instances:
/// - while other instances stay in the group, their app keeps serving them: the retiring
///   instances' host URLs and IP ranges are taken out of it (sync-redirects' own steps, against
///   the instances that stay);
/// - when none stays, the group's apps are deleted (Tier 1, one call each), but only once the
///   Slack integrations that deletion would end are counted and either none would, or
///   `--delete-app-breaking` names exactly that count;
/// - every retiring instance's Slack credentials are emptied through its registrar (where the
///   registrar can: not an exec hook), and an instance that was removed from the inventory is
///   forgotten once that is done.
/// Every change goes through the executor (audited, dry-runnable); a run that stops part-way is
/// carried on by the next, which finds what is already done (RetireRecovery settles a crash's
/// leftovers).
public struct Retire: FleetJob {
    public let name = "retire"
    public static let recoveries: [any ChangeRecovery] = [RetireRecovery()]
    /// Delete a group's apps even though exactly this many Slack integrations end with them.
    public var deleteAppBreaking: Int?

    public init(deleteAppBreaking: Int? = nil) {
        self.deleteAppBreaking = deleteAppBreaking
    }

    /// Only the instances on their way out, enabled or not.
    public func selects(_ instance: Instance) -> Bool { instance.retirement != nil }

    public func expectedTier1Writes(_ group: GroupWork, context: JobContext) -> Int {
        guard let staying = try? Retire.staying(group, store: context.store), staying.isEmpty else { return 0 }
        return (try? Retire.liveApps(group, store: context.store).count) ?? 0
    }

    public func start(_ group: GroupWork, context: JobContext) -> GroupStep {
        do {
            let live = try Retire.liveApps(group, store: context.store)
            let staying = try Retire.staying(group, store: context.store)
            if !staying.isEmpty { return takeOut(group, live: live, staying: staying, context: context) }
            return deleteApps(group, live: live, context: context)
        } catch {
            return .done(context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error)))
        }
    }

    // MARK: Others stay: the app stays, without these instances

    /// The retiring instances' host URLs and IP ranges out of the group's app (sync-redirects'
    /// steps, against the instances in service), then their credentials.
    private func takeOut(_ group: GroupWork, live: [App], staying: [(name: String, enabled: Bool)], context: JobContext) -> GroupStep {
        let appID = live.first { $0.stage == .current }?.slackAppID
        let sync: GroupStep
        if appID == nil {
            sync = .done(context.all(group, .ok, "app group \(group.key.appGroup) has no app: no redirect URL to take out"))
        } else if group.members.isEmpty {
            // Only disabled instances stay: the app is theirs, and no sync runs for them.
            let kept = staying.map(\.name).joined(separator: ", ")
            sync = .done(context.all(group, .ok, "app \(appID ?? "") is kept for the disabled instance(s) that stay in the group (\(kept)); retire or remove them to delete it"))
        } else {
            sync = SyncRedirects().start(group, context: context).map { results in
                results.map { result in
                    var result = result
                    if result.outcome == .ok { result.detail = "its host URLs are out of app \(appID ?? "") already" }
                    return result
                }
            }
        }
        return sync.then { synced in .done(self.unregister(group, after: synced, context: context)) }
    }

    // MARK: None stays: the apps go

    /// Counts the integrations the deletion would end; refuses unless none would or the flag
    /// names that count; empties the credentials; then deletes each live app at Slack's Tier 1
    /// pace.
    private func deleteApps(_ group: GroupWork, live: [App], context: JobContext) -> GroupStep {
        guard !live.isEmpty else {
            return .done(unregister(group, after: context.all(group, .ok, "app group \(group.key.appGroup) has no app left to delete"), context: context))
        }
        let ids = live.compactMap(\.slackAppID).joined(separator: ", ")
        let ending = Retire.integrationsEnded(group, context: context)
        let unasked = ending.unasked.isEmpty ? "" : "; not asked (their integrations are not counted): "
            + ending.unasked.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: ", ")
        let count = ending.found.count
        if count > 0, deleteAppBreaking != count {
            let who = ending.found.prefix(5).map { "\($0.instance)/\($0.entity) in #\($0.integration.channelName)" }.joined(separator: ", ")
                + (count > 5 ? " and \(count - 5) more" : "")
            let refusal = "app \(ids) is kept: deleting it would end \(count) Slack integration(s) (\(who)); once nobody needs them, run again with --delete-app-breaking \(count)"
                + (deleteAppBreaking.map { " (--delete-app-breaking \($0) does not match)" } ?? "") + unasked
            let results = unregister(group, after: context.all(group, .failed, refusal), context: context)
            return .done(results)
        }
        let ended: [JSON] = ending.found.map { ["instance": .string($0.instance), "entity": .string($0.entity), "integration": .string($0.integration.id),
                                                "team": .string($0.integration.teamName), "channel": .string($0.integration.channelName)] }
        let why = count == 0 ? "no instance of app group \(group.key.appGroup) is left, and no Slack integration depends on it"
                             : "no instance of app group \(group.key.appGroup) is left; deleted with --delete-app-breaking \(count): \(count) integration(s) end"
        // The credentials go first: no instance is left holding those of a deleted app.
        let emptied = unregister(group, after: context.all(group, .ok, ""), context: context, forget: false)
        let deletion = Deletion(group: group, ids: ids, why: why, ended: ended, unasked: ending.unasked, unaskedNote: unasked, emptied: emptied)
        return deletion.steps(live[...], context: context, forget: { self.forget($0, group: group, context: context) })
    }

    /// The deletion of a group's apps, one Tier 1 step each, then the instances' results.
    struct Deletion: Sendable {
        let group: GroupWork
        let ids: String
        let why: String
        let ended: [JSON]
        let unasked: [String: String]
        let unaskedNote: String
        /// The instances' results from emptying their credentials.
        let emptied: [InstanceResult]

        func steps(_ remaining: ArraySlice<App>, context: JobContext, forget: @escaping @Sendable (InstanceResult) -> InstanceResult) -> GroupStep {
            guard let app = remaining.first else {
                let verb = context.executor.dryRun ? "would delete" : "deleted"
                let done = context.all(group, .changed, "\(verb) app \(ids): \(why)\(unaskedNote)")
                return .done(Retire.merge(done, emptied).map(forget))
            }
            let call: @Sendable (JobContext) -> GroupStep = { context in
                do {
                    try Retire.delete(app, group: group, why: why, ended: ended, unasked: unasked, context: context)
                    return steps(remaining.dropFirst(), context: context, forget: forget)
                } catch {
                    return .done(Retire.merge(context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error)), emptied))
                }
            }
            // A dry run records the deletion as planned and calls nothing: no quota to wait for.
            return context.executor.dryRun ? call(context) : .spend(.tier1, next: call)
        }
    }

    /// The app deleted (AppDeletion), then its rows marked retired. The audit entry names the
    /// integrations that end and the instances that could not be asked.
    static func delete(_ app: App, group: GroupWork, why: String, ended: [JSON], unasked: [String: String], context: JobContext) throws {
        guard let appID = app.slackAppID else { return }
        var detail: [String: JSON] = ["integrations_ended": .list(ended)]
        if !unasked.isEmpty { detail["instances_not_asked"] = .list(unasked.keys.sorted().map(JSON.string)) }
        try AppDeletion.delete(app, group: group, why: why, detail: detail, context: context)
        if context.executor.dryRun { return }
        for row in try AppRepository.apps(workspaceID: group.workspace.id, appGroup: group.key.appGroup, in: context.store)
            where row.slackAppID == appID && row.stage != .retired {
            try AppRepository.retire(row, in: context.store)
        }
    }

    /// One integration a deletion would end.
    struct Ending: Sendable {
        let instance: String
        let entity: String
        let integration: WandbClient.SlackIntegration
    }

    /// The Slack integrations in the group's workspace of every entity each retiring instance
    /// watches (the canary, `watch_entities`, every entity the server lists): each is a webhook of
    /// an installation of the group's app, and ends with it. An instance that does not answer is
    /// named with why, not counted.
    static func integrationsEnded(_ group: GroupWork, context: JobContext) -> (found: [Ending], unasked: [String: String]) {
        let target = Connections.canaryTarget(group.workspace, context: context)
        let asked: [Result<[Ending], any Error>] = context.each(group.instances) { instance in
            Result {
                let wandb = try context.wandb(instance)
                var found: [Ending] = []
                for entity in try Connections.watchedEntities(instance, wandb: wandb) {
                    for integration in try wandb.slackIntegrations(entity: entity)?.slack ?? [] where target.inWorkspace(integration) {
                        found.append(Ending(instance: instance.name, entity: entity, integration: integration))
                    }
                }
                return found
            }
        }
        var found: [Ending] = []
        var unasked: [String: String] = [:]
        for (instance, result) in zip(group.instances, asked) {
            switch result {
            case .success(let items): found += items
            case .failure(let error): unasked[instance.name] = ChangeExecutor.describe(error)
            }
        }
        return (found, unasked)
    }

    // MARK: Every retiring instance: its credentials, and forgetting a removed one

    /// Empties each instance's credentials through its registrar and adds what that came to to
    /// its result from `after` (the step before); then forgets a removed instance whose retiring
    /// is complete (`forget`).
    private func unregister(_ group: GroupWork, after: [InstanceResult], context: JobContext, forget: Bool = true) -> [InstanceResult] {
        let emptied: [InstanceResult] = context.each(group.instances) { instance in
            do {
                let wandb = try context.wandb(instance)
                let outcome = try Unregistration.unregister(context: context.registration(instance, wandb: wandb))
                return InstanceResult(instance: instance.name, appGroup: group.key.appGroup, workspace: group.workspace.id,
                                      outcome: outcome.changed ? .changed : .ok, detail: outcome.note)
            } catch {
                return context.failure(instance, group, error)
            }
        }
        let merged = Retire.merge(after, emptied)
        return forget ? merged.map { self.forget($0, group: group, context: context) } : merged
    }

    /// Forgets the instance of `result` if it was removed from the inventory and its retiring
    /// went through: its row is deleted (audited).
    private func forget(_ result: InstanceResult, group: GroupWork, context: JobContext) -> InstanceResult {
        guard let instance = group.instances.first(where: { $0.name == result.instance }) else { return result }
        var result = result
        guard result.outcome == .ok || result.outcome == .changed else { return result }
        guard instance.retirement == .removed else {
            result.detail += "; retired (the inventory still lists it with retire: true)"
            return result
        }
        do {
            try context.executor.perform(ChangeExecutor.Change(
                target: "inventory:instance/\(instance.name)", action: "forget",
                summary: "forget instance \(instance.name): removed from the inventory and now retired"), instance: instance.name) {
                try context.store.write("forgetting instance \(instance.name)") { db in
                    try db.execute(sql: "DELETE FROM instance WHERE name = ? AND retirement = ?", arguments: [instance.name, Retirement.removed.rawValue])
                }
            }
            result.outcome = .changed
            result.detail += context.executor.dryRun ? "; would be forgotten (it was removed from the inventory)" : "; forgotten (it was removed from the inventory)"
        } catch {
            result.outcome = JobContext.outcome(of: error)
            result.detail += "; could not be forgotten: \(ChangeExecutor.describe(error))"
        }
        return result
    }

    /// Two steps' results for the same instances, as one: the worse outcome, both details.
    static func merge(_ first: [InstanceResult], _ second: [InstanceResult]) -> [InstanceResult] {
        let seconds = Dictionary(second.map { ($0.instance, $0) }, uniquingKeysWith: { first, _ in first })
        return first.map { result in
            guard let other = seconds[result.instance] else { return result }
            var merged = result
            merged.outcome = severity(other.outcome) > severity(result.outcome) ? other.outcome : result.outcome
            merged.detail = [result.detail, other.detail].filter { !$0.isEmpty }.joined(separator: "; ")
            merged.durationMS = result.durationMS + other.durationMS
            return merged
        }
    }

    private static func severity(_ outcome: InstanceResult.Outcome) -> Int {
        switch outcome {
        case .ok, .skipped: return 0
        case .changed: return 1
        case .waiting, .needsConnect: return 2
        case .deferred: return 3
        case .interrupted: return 4
        case .failed: return 5
        }
    }

    // MARK: What the store says

    /// The group's apps not yet retired that Slack may hold, newest first: one row per Slack app
    /// (a propagated secret leaves two rows for one app).
    static func liveApps(_ group: GroupWork, store: FleetStore) throws -> [App] {
        var seen = Set<String>()
        return try AppRepository.apps(workspaceID: group.workspace.id, appGroup: group.key.appGroup, in: store)
            .filter { $0.stage != .retired && $0.slackAppID.map { seen.insert($0).inserted } == true }
    }

    /// The instances of the group that are not retiring, enabled or not: the app is still theirs.
    static func staying(_ group: GroupWork, store: FleetStore) throws -> [(name: String, enabled: Bool)] {
        try store.read("reading the instances of app group \(group.key.appGroup)") { db in
            try Row.fetchAll(db, sql: "SELECT name, enabled FROM instance WHERE workspace_id = ? AND app_group = ? AND retirement IS NULL ORDER BY name",
                             arguments: [group.workspace.id, group.key.appGroup]).map { ($0["name"], $0["enabled"]) }
        }
    }
}
