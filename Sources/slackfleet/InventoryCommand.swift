import ArgumentParser
import Foundation
import SlackFleetCore

struct InventoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inventory",
        abstract: "Import, export, list, show and remove the fleet's workspaces and instances.",
        subcommands: [Import.self, Export.self, List.self, Show.self, Remove.self])

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case yaml, json
    }
}
