import Foundation
import GRDB

/// A rotation stage that only a person can finish, stored so that it lasts across runs and the
/// status shows since when: in place, "regenerate the secret in Slack's settings page"; blue/green,
/// "connect the canary through the new app".
public enum RotationWait {
    public enum Stage: String, Sendable {
        case awaitingRegenerate = "awaiting-regenerate"
        case awaitingConnect = "awaiting-connect"
    }

    /// Records that the group's rotation of `app` waits at `stage` (keeping the first `since`).
    public static func set(_ stage: Stage, workspaceID: String, appGroup: String, app: App, in store: FleetStore) throws {
        try store.write("recording that the rotation of \(appGroup) waits for a person") { db in
            try db.execute(sql: """
                INSERT INTO rotation_wait (workspace_id, app_group, stage, app_id, since) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(workspace_id, app_group) DO UPDATE SET
                    since = CASE WHEN rotation_wait.stage = excluded.stage AND rotation_wait.app_id = excluded.app_id THEN rotation_wait.since ELSE excluded.since END,
                    stage = excluded.stage, app_id = excluded.app_id
                """, arguments: [workspaceID, appGroup, stage.rawValue, app.id, Timestamp.now()])
        }
    }

    /// The group's waiting stage and since when, if it waits.
    public static func get(workspaceID: String, appGroup: String, in store: FleetStore) throws -> (stage: Stage, since: String)? {
        try store.read("reading the rotation stage of \(appGroup)") { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT stage, since FROM rotation_wait WHERE workspace_id = ? AND app_group = ?",
                                             arguments: [workspaceID, appGroup]),
                  let stage = Stage(rawValue: row["stage"]) else { return nil }
            return (stage, row["since"])
        }
    }

    /// The group no longer waits for a person.
    public static func clear(workspaceID: String, appGroup: String, in store: FleetStore) throws {
        try store.write("recording that the rotation of \(appGroup) waits no more") { db in
            try db.execute(sql: "DELETE FROM rotation_wait WHERE workspace_id = ? AND app_group = ?", arguments: [workspaceID, appGroup])
        }
    }
}
