import Foundation
import GRDB

/// Where a Slack app stands in its life: blue/green rotation moves apps through these.
public enum AppStage: String, Codable, Sendable, CaseIterable {
    /// Created, credentials stored, not yet verified on every instance.
    case pending
    /// The app the instances run on.
    case current
    /// The app before the current one, kept for rollback until the grace period ends.
    case previous
    /// Deleted from Slack; kept for the record.
    case retired
}

/// A Slack app of one app group in one workspace, one row per generation.
///
/// Credentials are never in this row: only references to secrets sealed in the database.
public struct App: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "app"

    public var id: Int64?
    public var workspaceID: String
    public var appGroup: String
    public var generation: Int
    public var stage: AppStage
    /// Slack's app id, such as `A0123ABCD`.
    public var slackAppID: String?
    /// The OAuth client id: text, compared exactly (it looks like a number and must never become one).
    public var clientID: String?
    public var clientSecretRef: String?
    public var signingSecretRef: String?
    public var verificationTokenRef: String?
    public var createdAt: String
    public var updatedAt: String

    enum CodingKeys: String, CodingKey {
        case id
        case workspaceID = "workspace_id"
        case appGroup = "app_group"
        case generation, stage
        case slackAppID = "slack_app_id"
        case clientID = "client_id"
        case clientSecretRef = "client_secret_ref"
        case signingSecretRef = "signing_secret_ref"
        case verificationTokenRef = "verification_token_ref"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

/// Reads and writes the stored apps.
public enum AppRepository {
    /// The app the instances of a group run on (stage `current`), if any.
    public static func current(workspaceID: String, appGroup: String, in store: FleetStore) throws -> App? {
        try store.read("reading the app of \(appGroup)") { db in
            try App.filter(Column("workspace_id") == workspaceID && Column("app_group") == appGroup && Column("stage") == AppStage.current.rawValue)
                .order(Column("generation").desc).fetchOne(db)
        }
    }

    /// Stores a just-created app: its credentials sealed, and its row as the group's current app,
    /// in one transaction. Slack shows the credentials only once, so this comes before anything else.
    @discardableResult
    public static func storeCreated(_ created: SlackClient.CreatedApp, workspaceID: String, appGroup: String, vault: SecretVault) throws -> App {
        try vault.store.write("storing the credentials of Slack app \(created.appID)") { db in
            let generation = (try Int.fetchOne(db, sql: "SELECT MAX(generation) FROM app WHERE workspace_id = ? AND app_group = ?",
                                               arguments: [workspaceID, appGroup]) ?? 0) + 1
            let prefix = "slack-app/\(workspaceID)/\(appGroup)/g\(generation)"
            _ = try vault.set(prefix + "/client-secret", to: created.clientSecret, in: db)
            if !created.signingSecret.revealed.isEmpty { _ = try vault.set(prefix + "/signing-secret", to: created.signingSecret, in: db) }
            if !created.verificationToken.revealed.isEmpty { _ = try vault.set(prefix + "/verification-token", to: created.verificationToken, in: db) }
            let now = Timestamp.now()
            var app = App(id: nil, workspaceID: workspaceID, appGroup: appGroup, generation: generation, stage: .current,
                          slackAppID: created.appID, clientID: created.clientID,
                          clientSecretRef: "secret:" + prefix + "/client-secret",
                          signingSecretRef: created.signingSecret.revealed.isEmpty ? nil : "secret:" + prefix + "/signing-secret",
                          verificationTokenRef: created.verificationToken.revealed.isEmpty ? nil : "secret:" + prefix + "/verification-token",
                          createdAt: now, updatedAt: now)
            try app.insert(db)
            return app
        }
    }

    /// Keeps the exported manifest of an app before an update, so it can be restored.
    @discardableResult
    public static func snapshot(_ app: App, manifest: JSON, reason: String, in store: FleetStore) throws -> Int64 {
        try store.write("keeping a snapshot of app \(app.slackAppID ?? "")") { db in
            try db.execute(sql: "INSERT INTO app_snapshot (app_id, taken_at, reason, manifest) VALUES (?, ?, ?, ?)",
                           arguments: [app.id, Timestamp.now(), reason, manifest.canonicalJSON])
            return db.lastInsertedRowID
        }
    }

    /// A stored snapshot: the app it belongs to and the manifest.
    public static func snapshot(id: Int64, in store: FleetStore) throws -> (app: App, manifest: JSON, takenAt: String)? {
        try store.read("reading snapshot \(id)") { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM app_snapshot WHERE id = ?", arguments: [id]),
                  let app = try App.fetchOne(db, key: row["app_id"] as Int64),
                  let manifest = try? JSON.parse(Data((row["manifest"] as String).utf8)) else { return nil }
            return (app, manifest, row["taken_at"])
        }
    }

    /// Snapshots of an app group's apps, newest first.
    public static func snapshots(workspaceID: String, appGroup: String, in store: FleetStore) throws -> [(id: Int64, appID: String, takenAt: String, reason: String)] {
        try store.read("listing snapshots") { db in
            try Row.fetchAll(db, sql: """
                SELECT s.id, a.slack_app_id, s.taken_at, s.reason FROM app_snapshot s JOIN app a ON a.id = s.app_id
                WHERE a.workspace_id = ? AND a.app_group = ? ORDER BY s.id DESC
                """, arguments: [workspaceID, appGroup]).map { ($0[0], $0[1] ?? "", $0[2], $0[3]) }
        }
    }

    /// The apps of one app group, newest generation first.
    public static func apps(workspaceID: String, appGroup: String, in store: FleetStore) throws -> [App] {
        try store.read("reading the apps of \(appGroup)") { db in
            try App.filter(Column("workspace_id") == workspaceID && Column("app_group") == appGroup)
                .order(Column("generation").desc).fetchAll(db)
        }
    }
}
