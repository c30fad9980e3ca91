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

/// Reads the stored apps.
public enum AppRepository {
    /// The apps of one app group, newest generation first.
    public static func apps(workspaceID: String, appGroup: String, in store: FleetStore) throws -> [App] {
        try store.read("reading the apps of \(appGroup)") { db in
            try App.filter(Column("workspace_id") == workspaceID && Column("app_group") == appGroup)
                .order(Column("generation").desc).fetchAll(db)
        }
    }
}
