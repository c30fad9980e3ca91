import Foundation
import GRDB

/// Reads and writes the stored apps.
public enum AppRepository {
    /// The app the instances of a group run on (stage `current`), if any.
    public static func current(workspaceID: String, appGroup: String, in store: FleetStore) throws -> App? {
        try store.read("reading the app of \(appGroup)") { db in
            // A cached statement: this runs for every app group of every run.
            try App.fetchOne(db.cachedStatement(sql: "SELECT * FROM app WHERE workspace_id = ? AND app_group = ? AND stage = ? ORDER BY generation DESC LIMIT 1"),
                             arguments: [workspaceID, appGroup, AppStage.current.rawValue])
        }
    }

    /// Stores a just-created app, inside the caller's transaction: its credentials sealed, and
    /// its row as the group's app at `stage`. Slack shows the credentials only once, so this
    /// comes before anything else, committed through `AuditLog.commit` (durable at once, in a
    /// commit shared with the run's audit entries).
    @discardableResult
    public static func storeCreated(_ created: SlackClient.CreatedApp, workspaceID: String, appGroup: String, stage: AppStage = .current,
                                    vault: SecretVault, in db: Database) throws -> App {
        let generation = try nextGeneration(workspaceID: workspaceID, appGroup: appGroup, in: db)
        let prefix = "slack-app/\(workspaceID)/\(appGroup)/g\(generation)"
        _ = try vault.set(prefix + "/client-secret", to: created.clientSecret, in: db)
        if !created.signingSecret.revealed.isEmpty { _ = try vault.set(prefix + "/signing-secret", to: created.signingSecret, in: db) }
        if !created.verificationToken.revealed.isEmpty { _ = try vault.set(prefix + "/verification-token", to: created.verificationToken, in: db) }
        let now = Timestamp.now()
        var app = App(id: nil, workspaceID: workspaceID, appGroup: appGroup, generation: generation, stage: stage,
                      slackAppID: created.appID, clientID: created.clientID,
                      clientSecretRef: "secret:" + prefix + "/client-secret",
                      signingSecretRef: created.signingSecret.revealed.isEmpty ? nil : "secret:" + prefix + "/signing-secret",
                      verificationTokenRef: created.verificationToken.revealed.isEmpty ? nil : "secret:" + prefix + "/verification-token",
                      createdAt: now, updatedAt: now, stageChangedAt: now)
        try app.insert(db)
        return app
    }

    /// The credentials of a stored app, its secret decrypted.
    public static func credentials(_ app: App, vault: SecretVault) throws -> SlackCredentials {
        guard let appID = app.slackAppID, let clientID = app.clientID, let text = app.clientSecretRef,
              case .success(let reference) = SecretReference.parse(text) else {
            throw FleetError.config("the stored credentials of app \(app.slackAppID ?? "generation \(app.generation)") are incomplete")
        }
        return SlackCredentials(appID: appID, clientID: clientID, clientSecret: try vault.resolve(reference))
    }

    /// The generation number the group's next app will get.
    public static func nextGeneration(workspaceID: String, appGroup: String, in store: FleetStore) throws -> Int {
        try store.read("reading the apps of \(appGroup)") { db in try nextGeneration(workspaceID: workspaceID, appGroup: appGroup, in: db) }
    }

    static func nextGeneration(workspaceID: String, appGroup: String, in db: Database) throws -> Int {
        (try Int.fetchOne(db.cachedStatement(sql: "SELECT MAX(generation) FROM app WHERE workspace_id = ? AND app_group = ?"),
                          arguments: [workspaceID, appGroup]) ?? 0) + 1
    }

    /// Stores a client secret a person regenerated in Slack's UI for `current`: a new generation
    /// of the same Slack app, stage `pending`, in one transaction.
    public static func storePropagated(secret: SecretValue, for current: App, vault: SecretVault) throws -> App {
        try vault.store.write("storing the regenerated client secret of Slack app \(current.slackAppID ?? "")") { db in
            let generation = try nextGeneration(workspaceID: current.workspaceID, appGroup: current.appGroup, in: db)
            let name = "slack-app/\(current.workspaceID)/\(current.appGroup)/g\(generation)/client-secret"
            _ = try vault.set(name, to: secret, in: db)
            let now = Timestamp.now()
            var app = current
            app.id = nil
            app.generation = generation
            app.stage = .pending
            app.clientSecretRef = "secret:" + name
            app.createdAt = now
            app.updatedAt = now
            app.stageChangedAt = now
            app.origin = "propagated"
            try app.insert(db)
            return app
        }
    }

    /// The group's app in `stage`, newest first.
    public static func apps(workspaceID: String, appGroup: String, stage: AppStage, in store: FleetStore) throws -> [App] {
        try apps(workspaceID: workspaceID, appGroup: appGroup, in: store).filter { $0.stage == stage }
    }

    /// Makes `pending` the group's current app and the current one `previous`, in one transaction.
    public static func promote(_ pending: App, over current: App?, in store: FleetStore) throws {
        try store.write("promoting app \(pending.slackAppID ?? "")") { db in
            let now = Timestamp.now()
            if let id = current?.id {
                try db.execute(sql: "UPDATE app SET stage = 'previous', stage_changed_at = ?, updated_at = ? WHERE id = ? AND stage = 'current'",
                               arguments: [now, now, id])
            }
            try db.execute(sql: "UPDATE app SET stage = 'current', stage_changed_at = ?, updated_at = ? WHERE id = ?", arguments: [now, now, pending.id])
        }
    }

    /// Makes a pending app `previous`: a rolled-back blue/green app that people connected
    /// integrations through, kept until they connect them again.
    public static func demote(_ app: App, in store: FleetStore) throws {
        try store.write("keeping app \(app.slackAppID ?? "") as previous") { db in
            let now = Timestamp.now()
            try db.execute(sql: "UPDATE app SET stage = 'previous', stage_changed_at = ?, updated_at = ? WHERE id = ?", arguments: [now, now, app.id])
        }
    }

    /// Marks an app `retired`: deleted from Slack (or, for a superseded secret of a live app, no
    /// longer used); its row stays for the record.
    public static func retire(_ app: App, in store: FleetStore) throws {
        try store.write("retiring app \(app.slackAppID ?? "")") { db in
            let now = Timestamp.now()
            try db.execute(sql: "UPDATE app SET stage = 'retired', stage_changed_at = ?, updated_at = ? WHERE id = ?", arguments: [now, now, app.id])
        }
    }

    /// Whether another row not yet retired stands for the same Slack app (a propagated secret):
    /// then retiring this row must not delete the Slack app.
    public static func slackAppInUse(_ app: App, in store: FleetStore) throws -> Bool {
        try store.read("reading apps") { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM app WHERE slack_app_id = ? AND id != ? AND stage != 'retired'",
                             arguments: [app.slackAppID, app.id]) ?? 0 > 0
        }
    }

    /// Records which app an instance was given and how far that got (`registering`, `running`).
    public static func recordInstance(_ instance: String, app: App, state: String, in store: FleetStore) throws {
        try store.write("recording the credentials of \(instance)") { db in
            try db.execute(sql: """
                INSERT INTO instance_credential (instance, app_id, state, updated_at) VALUES (?, ?, ?, ?)
                ON CONFLICT(instance) DO UPDATE SET app_id = excluded.app_id, state = excluded.state, updated_at = excluded.updated_at
                """, arguments: [instance, app.id, state, Timestamp.now()])
        }
    }

    /// The app an instance was last given, and its state, if recorded.
    public static func instanceCredential(_ instance: String, in store: FleetStore) throws -> (appID: Int64, state: String)? {
        try store.read("reading the credentials of \(instance)") { db in
            try Row.fetchOne(db, sql: "SELECT app_id, state FROM instance_credential WHERE instance = ?", arguments: [instance]).map { ($0[0], $0[1]) }
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
