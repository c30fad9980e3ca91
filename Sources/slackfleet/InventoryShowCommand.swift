import ArgumentParser
import Foundation
import SlackFleetCore

extension InventoryCommand {
    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one instance: its settings, references and Slack app.",
                                                                             usage: "slackfleet inventory show <name> [--json] [<global options>]")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "The instance's name.")
        var name: String
        @Flag(help: "As one JSON object.")
        var json = false

        func run() throws {
            try Console.run {
                let store = try options.openStore()
                guard let instance = try InventoryRepository.instance(named: name, in: store) else {
                    throw FleetError.data("no instance named \(name): see `slackfleet inventory list`")
                }
                let apps = try AppRepository.apps(workspaceID: instance.workspaceID, appGroup: instance.appGroup, in: store)
                if json {
                    try Console.jsonLine(InstanceDetail(instance: instance, apps: apps))
                    return .ok
                }
                Console.out(InventoryDocument.yaml(fields: InventoryDocument.fields(of: instance)))
                if apps.isEmpty {
                    Console.line("slack app: none yet (provision-app creates it)")
                } else {
                    for app in apps {
                        Console.line("slack app: \(app.slackAppID ?? "-") client \(app.clientID ?? "-") generation \(app.generation) stage \(app.stage)")
                    }
                }
                return .ok
            }
        }
    }
}

/// The JSON form of `inventory show --json`.
struct InstanceDetail: Encodable {
    let instance: InstanceSummary
    let apiKey: String
    let ipAllowlist: [String]
    let apps: [App]

    init(instance: Instance, apps: [App]) {
        self.instance = InstanceSummary(instance)
        apiKey = instance.apiKey.description
        ipAllowlist = instance.ipAllowlist
        self.apps = apps
    }

    enum CodingKeys: String, CodingKey {
        case instance
        case apiKey = "api_key"
        case ipAllowlist = "ip_allowlist"
        case apps
    }
}
