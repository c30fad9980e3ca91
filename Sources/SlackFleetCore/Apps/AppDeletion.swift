import Foundation

/// Deleting a Slack app of an app group, the one way every job does it.
public enum AppDeletion {
    /// apps.manifest.delete (Tier 1) through the executor, audited as `delete` of
    /// `slack:app/WORKSPACE/GROUP` with `detail` (the app's ID and stage added); an app Slack no
    /// longer has counts as deleted (a run that died before recording it, or a person, did it).
    /// RetireRecovery settles one a crash left without an outcome.
    static func delete(_ app: App, group: GroupWork, why: String, detail extra: [String: JSON] = [:], context: JobContext) throws {
        guard let appID = app.slackAppID else { return }
        let workspace = group.workspace
        let token = try context.vault.resolve(workspace.configToken)
        let slack = context.slack(workspace)
        var detail = extra
        detail["app_id"] = .string(appID)
        detail["stage"] = .string(app.stage.rawValue)
        try context.executor.perform(ChangeExecutor.Change(
            target: "slack:app/\(workspace.id)/\(group.key.appGroup)", action: "delete",
            summary: "delete app \(appID) (\(app.stage.rawValue)): \(why)", detail: detail), instance: nil) {
            do {
                try slack.delete(appID: appID, token: token)
            } catch let error as SlackAPIError where error.code == "app_not_found" {
                // Deleted already.
            }
        }
    }
}
