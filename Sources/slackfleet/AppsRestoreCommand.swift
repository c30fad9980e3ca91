import ArgumentParser
import Foundation
import SlackFleetCore

extension AppsCommand {
    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "restore", abstract: "Put a kept manifest back (the current one is kept first; audited).",
                                                                                usage: "slackfleet apps restore <snapshot> [<global options>]")
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
