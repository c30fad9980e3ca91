import Foundation
import GRDB

/// Settles what a crash left of retire's changes (and of any app deletion, rotate-secret's
/// included): an app deletion (`slack:app/…` delete) by whether the app's row is retired, a
/// removed instance's forgetting (`inventory:instance/…` forget) by whether its row is gone.
/// Neither needs more than the next run: a deletion Slack already made answers app_not_found,
/// which counts as deleted, and a tombstone still stored is forgotten again.
public struct RetireRecovery: ChangeRecovery {
    public init() {}

    public func settles(_ entry: AuditEntry) -> Bool {
        (entry.action == "delete" && entry.target.hasPrefix("slack:app/"))
            || (entry.action == "forget" && entry.target.hasPrefix("inventory:instance/"))
    }

    public func found(_ entry: AuditEntry, detail: JSON?, store: FleetStore) throws -> String {
        if entry.action == "forget" {
            let name = String(entry.target.dropFirst("inventory:instance/".count))
            let kept = try store.read("reading instance \(name)") { db in
                try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM instance WHERE name = ?)", arguments: [name]) ?? false
            }
            return kept ? "instance \(name) is still kept until retired; the next retire run forgets it"
                        : "instance \(name) was forgotten"
        }
        let appID = detail?["app_id"]?.stringValue ?? "?"
        let rows = try store.read("reading app \(appID)") { db in
            try App.filter(Column("slack_app_id") == appID).fetchAll(db)
        }
        if !rows.isEmpty, rows.allSatisfy({ $0.stage == .retired }) {
            return "app \(appID) was deleted and is recorded as retired"
        }
        return "Slack may or may not have deleted app \(appID) before the run ended; it is still on record, so the next run that deletes it tries again (an app Slack no longer has counts as deleted)"
    }
}
