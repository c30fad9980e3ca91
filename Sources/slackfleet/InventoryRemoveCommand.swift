import ArgumentParser
import Foundation
import SlackFleetCore

extension InventoryCommand {
    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove one instance from the inventory (audited).",
            usage: "slackfleet inventory remove <name> [<global options>]",
            discussion: "An instance that was given an app's credentials is kept as a tombstone until `slackfleet retire` has taken its host URLs out of the app, removed its credentials and, if it was the last of its app group, deleted the app. Any other is removed at once.")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "The instance's name.")
        var name: String

        func run() throws {
            try Console.run {
                let (store, _, audit) = try options.openForChanges(command: "inventory remove")
                let kept = try InventoryImporter.remove(instance: name, store: store, audit: audit)
                Console.line("removed instance \(name)" + (kept ? "; kept as a tombstone until `slackfleet retire --instance \(name)` retires it" : ""))
                return .ok
            }
        }
    }
}
