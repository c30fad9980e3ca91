import ArgumentParser
import Foundation
import SlackFleetCore

extension InventoryCommand {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "export", abstract: "Print the stored inventory as a file `inventory import` reads back.",
                                                                               usage: "slackfleet inventory export [--format <format>] [<global options>]")

        @OptionGroup var options: GlobalOptions
        @Option(help: "yaml or json.")
        var format: Format = .yaml

        func run() throws {
            try Console.run {
                var inventory = try InventoryRepository.load(try options.openStore())
                // Tombstones are not in the inventory any more: only `retire` still sees them.
                inventory.instances.removeAll { $0.retirement == .removed }
                Console.out(format == .yaml ? InventoryDocument.yaml(inventory) : InventoryDocument.json(inventory))
                return .ok
            }
        }
    }
}
