import Foundation

/// The connections only a person can make, for `slackfleet connect`: every instance whose
/// canary has no Slack integration in the canary channel, or only one through an app being
/// retired, and every integration from before a blue/green rotation that has not been connected
/// again through the current app. Everything is read from W&B each time, so a watch stopped at
/// any point resumes by running again.
public enum ConnectionWatch {
    /// One connection a person must make.
    public struct Wanted: Sendable, Equatable {
        /// Stable across passes: the instance, entity and what it replaces.
        public let key: String
        public let action: PersonAction
    }

    /// One look at the selected groups.
    public struct Pass: Sendable {
        public var wanted: [Wanted] = []
        /// Instances that could not be read, and why.
        public var problems: [(instance: String, problem: String)] = []
        public var instances = 0
    }

    /// Looks at the selected instances of `groups`. `members`: every enabled instance of each app
    /// group, selected or not, since a retiring app's integrations are checked on all of them.
    public static func pass(_ groups: [GroupWork], members: [Inventory.AppKey: [Instance]], context: JobContext) -> Pass {
        let perGroup: [Pass] = context.each(groups, width: 4) { group in look(group, members: members[group.key] ?? group.instances, context: context) }
        var pass = Pass()
        for item in perGroup {
            pass.wanted += item.wanted
            pass.problems += item.problems
            pass.instances += item.instances
        }
        return pass
    }

    private static func look(_ group: GroupWork, members: [Instance], context: JobContext) -> Pass {
        var pass = Pass(instances: group.instances.count)
        let target = Connections.canaryTarget(group.workspace, context: context)
        let canaries: [(Instance, Result<Connections.Canary, any Error>)] = context.each(group.instances) { instance in
            (instance, Result {
                try Connections.canary(instance, wandb: try context.wandb(instance), target: target,
                                       retiring: try IntegrationBaseline.retiringIDs(instance: instance.name, in: context.store))
            })
        }
        for (instance, outcome) in canaries {
            switch outcome {
            case .success(let canary):
                if let action = canary.action { pass.wanted.append(Wanted(key: "\(instance.name)|\(action.entity ?? "")|canary", action: action)) }
            case .failure(let error):
                pass.problems.append((instance.name, ChangeExecutor.describe(error)))
            }
        }
        // Integrations that depend on an app being retired, until connected again (the canary's
        // own line, when it has one, already says it).
        let canaryWanted = Set(pass.wanted.map { $0.action.instance + "|" + ($0.action.entity ?? "") })
        do {
            let apps = try AppRepository.apps(workspaceID: group.workspace.id, appGroup: group.key.appGroup, in: context.store)
            let rotating = apps.contains { $0.stage == .pending && $0.origin == "created" }
            let whole = GroupWork(key: group.key, workspace: group.workspace, instances: members)
            let selected = Set(group.instances.map(\.name))
            for app in apps where app.stage == .previous || (app.stage == .current && rotating) {
                for left in try RotateSecret.unreconnected(app, group: whole, context: context) where selected.contains(left.instance) {
                    if canaryWanted.contains(left.instance + "|" + left.entry.entity) { continue }
                    pass.wanted.append(Wanted(key: "\(left.instance)|\(left.entry.entity)|\(left.entry.integration.id)", action: left.action))
                }
            }
        } catch {
            pass.problems.append((group.instances.first?.name ?? group.key.appGroup, ChangeExecutor.describe(error)))
        }
        return pass
    }

    /// Records a connection seen made, in the audit log (SlackFleet changed nothing).
    public static func recordSeen(_ wanted: Wanted, audit: AuditLog) throws {
        let action = wanted.action
        try audit.record(AuditDraft(instance: action.instance, target: "wandb:integration/\(action.instance)/\(action.entity ?? "")", action: "connect", phase: .observed,
                                    detail: ["entity": .string(action.entity ?? ""), "channel": .string(action.channel ?? ""),
                                             "workspace": .string(action.workspace), "why": .string(action.why)]))
    }
}
