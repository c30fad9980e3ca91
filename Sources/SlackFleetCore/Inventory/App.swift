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
public struct App: Encodable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
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
    /// When the stage last changed (a `previous` app is deleted once the grace has passed since).
    public var stageChangedAt: String?
    /// `created` (by apps.manifest.create) or `propagated` (a secret a person regenerated in
    /// Slack's UI for an app already stored: same Slack app, new secret).
    public var origin: String = "created"

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
        case stageChangedAt = "stage_changed_at"
        case origin
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

extension App {
    /// Read column by column: GRDB's Decodable path costs several times more, and every run
    /// reads every app group's current app.
    public init(row: Row) throws {
        id = try row.decode(forColumn: "id")
        workspaceID = try row.decode(forColumn: "workspace_id")
        appGroup = try row.decode(forColumn: "app_group")
        generation = try row.decode(forColumn: "generation")
        let stageText: String = try row.decode(forColumn: "stage")
        guard let stage = AppStage(rawValue: stageText) else {
            throw FleetError.config("app row \(id.map(String.init) ?? "?") has the unknown stage \(stageText)")
        }
        self.stage = stage
        slackAppID = try row.decode(forColumn: "slack_app_id")
        clientID = try row.decode(forColumn: "client_id")
        clientSecretRef = try row.decode(forColumn: "client_secret_ref")
        signingSecretRef = try row.decode(forColumn: "signing_secret_ref")
        verificationTokenRef = try row.decode(forColumn: "verification_token_ref")
        createdAt = try row.decode(forColumn: "created_at")
        updatedAt = try row.decode(forColumn: "updated_at")
        stageChangedAt = try row.decode(forColumn: "stage_changed_at")
        origin = try row.decode(forColumn: "origin")
    }
}

/// The current app of every group, read once in one query (after the run's recovery), for a job
/// that never changes which app is current (sync-redirects) or that only adds one where there
/// was none, each group by its own worker (provision-app). A read per group was a tenth of a
/// converged run's CPU time.
public final class CurrentApps: @unchecked Sendable {
    private let lock = NSLock()
    private var apps: [String: App]?
    private var run = ""

    public init() {}

    /// The group's current app as it was when `context`'s run first asked (a job value used for
    /// a second run reads again).
    public func app(workspaceID: String, appGroup: String, context: JobContext) throws -> App? {
        lock.lock()
        defer { lock.unlock() }
        return try loaded(context)[workspaceID + "\u{0}" + appGroup]
    }

    /// Reads every group's app now, if `context`'s run has not yet (FleetJob.prepare).
    public func load(_ context: JobContext) throws {
        lock.lock()
        defer { lock.unlock() }
        _ = try loaded(context)
    }

    private func loaded(_ context: JobContext) throws -> [String: App] {
        let runID = context.executor.audit.context.runID
        if let apps, run == runID { return apps }
        let byGroup = try context.store.read("reading the apps") { db in
            var byGroup: [String: App] = [:]
            for app in try App.fetchAll(db, sql: "SELECT * FROM app WHERE stage = ? ORDER BY generation", arguments: [AppStage.current.rawValue]) {
                byGroup[app.workspaceID + "\u{0}" + app.appGroup] = app  // the highest generation wins
            }
            return byGroup
        }
        (apps, run) = (byGroup, runID)
        return byGroup
    }
}

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
