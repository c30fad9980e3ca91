import Foundation

/// Settles an app create (`slack:app/WORKSPACE/GROUP`, provision-app and blue/green rotation)
/// that a crash left unfinished: the intent names the generation the new app was to be stored
/// as, so a stored app of that generation means it was created and kept; none means Slack may
/// hold an app whose credentials SlackFleet never saw.
public struct AppCreateRecovery: ChangeRecovery {
    public init() {}

    public func settles(_ entry: AuditEntry) -> Bool {
        entry.action == "create" && entry.target.hasPrefix("slack:app/")
    }

    public func found(_ entry: AuditEntry, detail: JSON?, store: FleetStore) throws -> String {
        let group = entry.target.dropFirst("slack:app/".count).split(separator: "/").map(String.init)
        let name = detail?["name"]?.stringValue ?? "?"
        let generation = detail?["generation"]?.intValue
        let stored = group.count == 2 ? try AppRepository.apps(workspaceID: group[0], appGroup: group[1], in: store)
            .first { generation == nil ? $0.stage == .current : $0.generation == generation } : nil
        if let app = stored, let slackID = app.slackAppID {
            return "the app was created and its credentials stored: \(slackID)"
        }
        return "possible orphan: Slack may hold an app named \"\(name)\" in workspace \(group.first ?? "?") whose credentials were never stored; if Slack's app list shows it, delete it there"
    }
}
