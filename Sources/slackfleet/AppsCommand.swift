import ArgumentParser
import Foundation
import SlackFleetCore

struct AppsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apps",
        abstract: "List the Slack apps SlackFleet made, their manifest snapshots, and restore one.",
        subcommands: [Snapshots.self, Restore.self])

    struct Snapshots: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "snapshots", abstract: "List the kept manifests of an instance's app, newest first.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "An instance of the app group.") var instance: String

        func run() throws {
            try Console.run {
                let store = try global.openStore()
                guard let found = try InventoryRepository.instance(named: instance, in: store) else {
                    throw FleetError.data("no instance named \(instance): see `slackfleet inventory list`")
                }
                var table = TextTable(headers: ["SNAPSHOT", "APP", "TAKEN", "REASON"])
                table.rows = try AppRepository.snapshots(workspaceID: found.workspaceID, appGroup: found.appGroup, in: store).map {
                    [String($0.id), $0.appID, $0.takenAt, $0.reason]
                }
                Console.out(table.render())
                return .ok
            }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "restore", abstract: "Put a kept manifest back (the current one is kept first; audited).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The snapshot number, from `apps snapshots`.") var snapshot: Int64

        func run() throws {
            try Console.run {
                let (store, keyring, audit) = try global.openForChanges(command: "apps restore")
                let appID = try SnapshotRestore.restore(snapshot: snapshot, store: store, vault: SecretVault(store: store, keyring: keyring), audit: audit,
                                                        transport: try global.transport())
                Console.line("restored app \(appID) from snapshot \(snapshot)")
                return .ok
            }
        }
    }
}
