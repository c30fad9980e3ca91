import ArgumentParser
import Foundation
import SlackFleetCore

extension InventoryCommand {
    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove one instance from the inventory (audited).",
            usage: "slackfleet inventory remove <name> [<global options>]",
            discussion: "Its Slack app, if any, is left alone: other instances of its app group may use it.")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "The instance's name.")
        var name: String

        func run() throws {
            try Console.run {
                let (store, _, audit) = try options.openForChanges(command: "inventory remove")
                try InventoryImporter.remove(instance: name, store: store, audit: audit)
                Console.line("removed instance \(name)")
                return .ok
            }
        }
    }
}
