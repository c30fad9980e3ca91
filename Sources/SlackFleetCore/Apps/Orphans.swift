import Foundation
import GRDB

/// Apps Slack may hold whose credentials SlackFleet never saw: creates whose answer was lost
/// (`apps.manifest.create` answered with an error Slack says may follow a partial success, or
/// the answer never came) or that a crash cut between the create and storing its credentials.
/// The audit log names each; a person checks Slack's app list, and a confirmed one is deleted
/// through the API.
public enum Orphans {
    /// Where a person sees a workspace's apps: Slack's app list (an orphan's ID is not known
    /// until a person finds it there).
    public static let settingsLink = "https://api.slack.com/apps"

    /// One possible orphan, from the audit log.
    public struct Orphan: Sendable, Encodable, Equatable {
        /// The create's change ID (its intent and outcome share it).
        public let changeID: String
        public let workspaceID: String
        public let appGroup: String
        /// The name the app was created with: what to look for in Slack's app list.
        public let name: String
        /// When the create was attempted, and by which run.
        public let time: String
        public let runID: String
        /// What the log says became of it.
        public let why: String

        enum CodingKeys: String, CodingKey {
            case changeID = "change_id"
            case workspaceID = "workspace"
            case appGroup = "app_group"
            case name, time
            case runID = "run_id"
            case why
        }
    }

    /// The possible orphans no deletion has settled yet, oldest first.
    public static func list(_ store: FleetStore) throws -> [Orphan] {
        let entries = try store.read("reading the audit log") { db in
            try AuditEntry.filter(["create", "delete"].contains(Column("action")) && Column("target").like("slack:app/%"))
                .order(Column("seq")).fetchAll(db)
        }
        var intents: [String: (entry: AuditEntry, detail: JSON)] = [:]
        var lost: [(changeID: String, why: String)] = []
        var settled = Set<String>()
        var deletes: [String: String] = [:]
        var applied = Set<String>()
        for entry in entries {
            guard let detail = try? JSON.parse(Data(entry.detail.utf8)), let changeID = detail["change_id"]?.stringValue else { continue }
            switch (entry.action, entry.phase) {
            case ("create", AuditPhase.intent.rawValue):
                intents[changeID] = (entry, detail)
            case ("create", AuditPhase.failed.rawValue):
                if let error = detail["error"]?.stringValue, error.contains("possible orphan") { lost.append((changeID, error)) }
            case ("create", AuditPhase.recovered.rawValue):
                if let found = detail["found"]?.stringValue, found.hasPrefix("possible orphan") { lost.append((changeID, found)) }
            case ("delete", AuditPhase.intent.rawValue):
                if let orphan = detail["orphan_change_id"]?.stringValue { deletes[changeID] = orphan }
            case ("delete", AuditPhase.applied.rawValue):
                applied.insert(changeID)
            default:
                break
            }
        }
        for (deleteID, orphan) in deletes where applied.contains(deleteID) { settled.insert(orphan) }
        return lost.compactMap { item -> Orphan? in
            guard !settled.contains(item.changeID), let intent = intents[item.changeID] else { return nil }
            let parts = intent.entry.target.dropFirst("slack:app/".count).split(separator: "/").map(String.init)
            return Orphan(changeID: item.changeID, workspaceID: parts.first ?? "", appGroup: parts.count > 1 ? parts[1] : "",
                          name: intent.detail["name"]?.stringValue ?? "", time: intent.entry.time, runID: intent.entry.runID, why: item.why)
        }
    }

    /// Deletes the app `appID` that a person found in Slack's app list, once it is shown to be a
    /// possible orphan: Slack's export of it names it as an unsettled orphan of its workspace was
    /// named, and no stored app has that ID. Audited (naming the orphan it settles), at Slack's
    /// Tier 1 pace (the client's pacer), under the run lock. Returns the orphan it settled.
    public static func delete(appID: String, workspaceID: String?, store: FleetStore, vault: SecretVault, audit: AuditLog,
                              transport configuration: HTTPTransport.Configuration = HTTPTransport.Configuration()) throws -> Orphan {
        let (lock, _) = try RunLock.acquire(store, runID: audit.context.runID, job: "apps orphans --delete")
        defer { lock.release() }
        if let stored = try store.read("reading app \(appID)", { db in try App.filter(Column("slack_app_id") == appID).fetchOne(db) }) {
            throw FleetError.data("app \(appID) is on record as app group \(stored.appGroup)'s (\(stored.stage.rawValue)): it is not an orphan; SlackFleet deletes it only through rotate-secret or retire")
        }
        let orphans = try list(store).filter { workspaceID == nil || $0.workspaceID == workspaceID }
        guard !orphans.isEmpty else {
            throw FleetError.data("the audit log names no possible orphan\(workspaceID.map { " in workspace \($0)" } ?? ""): nothing to delete")
        }
        let inventory = try InventoryRepository.load(store)
        let transport = HTTPTransport(configuration: configuration)
        defer { transport.shutdown() }
        let context = JobContext.standalone(store: store, vault: vault, audit: audit, settings: JobSettings.base, transport: transport, control: RunControl())
        var asked: [String] = []
        for workspaceID in Array(Set(orphans.map(\.workspaceID))).sorted() {
            guard let workspace = inventory.workspaces.first(where: { $0.id == workspaceID }) else {
                asked.append("\(workspaceID): not in the inventory")
                continue
            }
            let token = try vault.resolve(workspace.configToken)
            let slack = context.slack(workspace)
            let exported: JSON
            do {
                exported = try slack.export(appID: appID, token: token)
            } catch let error as SlackAPIError {
                asked.append("\(workspaceID): \(error.code)")
                continue
            }
            let name = exported["display_information"]?["name"]?.stringValue ?? ""
            guard let orphan = orphans.first(where: { $0.workspaceID == workspaceID && $0.name == name }) else {
                throw FleetError.data("app \(appID) in workspace \(workspaceID) is named \"\(name)\", and no possible orphan there has that name (\(orphans.filter { $0.workspaceID == workspaceID }.map { "\"\($0.name)\"" }.joined(separator: ", "))): SlackFleet deletes only an app its audit log names as a possible orphan")
            }
            // The client takes the call from the workspace's Tier 1 quota (its pacer) before it goes.
            try context.executor.perform(ChangeExecutor.Change(
                target: "slack:app/\(workspaceID)/\(orphan.appGroup)", action: "delete",
                summary: "delete app \(appID) \"\(name)\": a possible orphan (the lost create of run \(orphan.runID) at \(orphan.time)) a person confirmed",
                detail: ["app_id": .string(appID), "stage": .string("orphan"), "orphan_change_id": .string(orphan.changeID)]), instance: nil) {
                try slack.delete(appID: appID, token: token)
            }
            try audit.flush()
            return orphan
        }
        throw FleetError.data("no workspace of a possible orphan has app \(appID) (\(asked.joined(separator: "; "))): check the ID in Slack's app list (\(settingsLink))")
    }
}
