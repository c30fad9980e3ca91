import ArgumentParser
import Foundation
import SlackFleetCore

extension AppsCommand {
    struct Snapshots: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "snapshots", abstract: "List the kept manifests of an instance's app, newest first.",
                                                                                  usage: "slackfleet apps snapshots <instance> [<global options>]")
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
}
