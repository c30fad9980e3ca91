import Foundation
import GRDB

/// The Slack integrations that came through an app a blue/green rotation moves instances off:
/// read from every watched entity just before each instance gets the new app, and again as it
/// first reports it. Deleting that app ends every one of them (its webhooks die with it), so it is
/// kept until each is gone or connected again through the current app, unless an operator names
/// the count it will break.
public enum IntegrationBaseline {
    /// One integration that depends on a retiring app.
    public struct Entry: Sendable, Equatable, Hashable {
        public let instance: String
        public let entity: String
        public let integration: WandbClient.SlackIntegration
    }

    /// Adds `integrations` of `entity` on `instance` as depending on `app` (kept once).
    public static func record(_ integrations: [WandbClient.SlackIntegration], entity: String, instance: String, app: App, in store: FleetStore) throws {
        guard let appID = app.id, !integrations.isEmpty else { return }
        try store.write("recording the Slack integrations of \(instance) that depend on app \(app.slackAppID ?? "")") { db in
            let now = Timestamp.now()
            for integration in integrations {
                try db.execute(sql: """
                    INSERT OR IGNORE INTO integration_baseline (app_id, instance, entity, integration_id, team_name, channel_name, recorded_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [appID, instance, entity, integration.id, integration.teamName, integration.channelName, now])
            }
        }
    }

    /// The integrations recorded as depending on `app`.
    public static func entries(of app: App, in store: FleetStore) throws -> [Entry] {
        guard let appID = app.id else { return [] }
        return try store.read("reading the integrations that depend on app \(app.slackAppID ?? "")") { db in
            try Row.fetchAll(db, sql: "SELECT instance, entity, integration_id, team_name, channel_name FROM integration_baseline WHERE app_id = ? ORDER BY instance, entity, integration_id",
                             arguments: [appID]).map { row in
                Entry(instance: row[0], entity: row[1], integration: WandbClient.SlackIntegration(id: row[2], teamName: row[3], channelName: row[4]))
            }
        }
    }

    /// The IDs of integrations of `instance` that depend on an app not yet deleted and no longer
    /// the one its group runs on (`previous`), or on the current app while a pending one takes
    /// over: they deliver until that app goes, and must be connected again.
    public static func retiringIDs(instance: String, in store: FleetStore) throws -> Set<String> {
        // A cached statement: every instance of a provisioning or verifying run asks.
        try store.read("reading the integrations of \(instance) on apps being retired") { db in
            Set(try String.fetchAll(db.cachedStatement(sql: """
                SELECT b.integration_id FROM integration_baseline b JOIN app a ON a.id = b.app_id
                WHERE b.instance = ? AND (a.stage = 'previous'
                    OR (a.stage = 'current' AND EXISTS (SELECT 1 FROM app p WHERE p.workspace_id = a.workspace_id AND p.app_group = a.app_group
                                                        AND p.stage = 'pending' AND p.origin = 'created')))
                """), arguments: [instance]))
        }
    }

    /// Whether anything was recorded for `instance` against `app`.
    public static func hasEntries(instance: String, app: App, in store: FleetStore) throws -> Bool {
        guard let appID = app.id else { return false }
        return try store.read("reading the integration baseline of \(instance)") { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM integration_baseline WHERE app_id = ? AND instance = ?)", arguments: [appID, instance]) ?? false
        }
    }
}
