import ArgumentParser
import Foundation
import SlackFleetCore

extension AppsCommand {
    struct Orphans: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "orphans",
            abstract: "List the apps Slack may hold whose credentials were never stored; delete one a person found.",
            usage: "slackfleet apps orphans [--json] [--delete <app-id> [--workspace <id>]]",
            discussion: """
                A create whose answer was lost (Slack's internal_error, a timeout) or that a crash cut short may have made an app SlackFleet never saw. The audit log names each such possible orphan: look for its name in Slack's app list (https://api.slack.com/apps, signed in to the workspace). If it is there, pass its app ID to --delete; if not, there is nothing to do.

                --delete exports the app first and deletes it only if its name is a possible orphan's in that workspace and no stored app has its ID. The deletion is audited and settles the orphan.

                Examples:
                  slackfleet apps orphans
                  slackfleet apps orphans --delete A0123456789
                """)
        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("delete"), help: ArgumentHelp("Delete the app with this ID, found in Slack's app list.", valueName: "app-id"))
        var delete: String?
        @Option(help: ArgumentHelp("With --delete: the workspace the app is in (else every workspace with a possible orphan is asked).", valueName: "id"))
        var workspace: String?
        @Flag(help: "One JSON object per possible orphan.") var json = false

        func validate() throws {
            if workspace != nil && delete == nil { throw ValidationError("--workspace goes with --delete") }
            if let delete, !(delete.hasPrefix("A") && delete.count >= 5 && delete.allSatisfy { $0.isLetter || $0.isNumber }) {
                throw ValidationError("--delete \(delete): a Slack app ID looks like A0123456789 (Slack's app list shows it)")
            }
        }

        func run() throws {
            try Console.run {
                if let delete {
                    let (store, keyring, audit) = try global.openForChanges(command: "apps orphans --delete")
                    let orphan = try SlackFleetCore.Orphans.delete(appID: delete, workspaceID: workspace, store: store, vault: SecretVault(store: store, keyring: keyring),
                                                                   audit: audit, transport: try global.transport())
                    Console.line("deleted app \(delete) \"\(orphan.name)\" in workspace \(orphan.workspaceID): the possible orphan of run \(orphan.runID) is settled")
                    return .ok
                }
                let store = try global.openStore()
                let orphans = try SlackFleetCore.Orphans.list(store)
                if json {
                    try Console.jsonLines(orphans)
                    return .ok
                }
                if orphans.isEmpty {
                    Console.line("no possible orphan: every app SlackFleet created is on record")
                    return .ok
                }
                var table = TextTable(headers: ["WORKSPACE", "APP GROUP", "NAME", "CREATED", "RUN"])
                table.rows = orphans.map { [$0.workspaceID, $0.appGroup, $0.name, $0.time, $0.runID] }
                Console.out(table.render())
                Console.line("Look for each name in Slack's app list (\(SlackFleetCore.Orphans.settingsLink)); delete one that is there with `slackfleet apps orphans --delete APP_ID`.")
                return .ok
            }
        }
    }
}
