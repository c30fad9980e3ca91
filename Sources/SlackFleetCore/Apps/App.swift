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
