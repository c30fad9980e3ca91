import ArgumentParser
import Foundation
import SlackFleetCore

extension InventoryCommand {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List instances, optionally only those with given labels.",
                                                                             usage: "slackfleet inventory list [--label <key=value> ...] [--json]")

        @OptionGroup var options: GlobalOptions
        @Option(name: .customLong("label"), help: ArgumentHelp("Only instances with this label (repeatable; all must match).", valueName: "key=value"))
        var labels: [String] = []
        @Flag(help: "One JSON object per instance and line.")
        var json = false

        func run() throws {
            let wanted = try parseLabels(labels)
            try Console.run {
                let instances = try InventoryRepository.instances(matching: wanted, in: try options.openStore())
                if json {
                    try Console.jsonLines(instances.map(InstanceSummary.init))
                    return .ok
                }
                var table = TextTable(headers: ["NAME", "WORKSPACE", "APP GROUP", "REGISTRAR", "STATE", "BASE URL", "LABELS"])
                table.rows = instances.map { instance in
                    [instance.name, instance.workspaceID, instance.appGroup, instance.registrar.kind, InstanceSummary.state(instance),
                     instance.baseURL, instance.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")]
                }
                Console.out(table.render())
                Console.note("\(instances.count) instance\(instances.count == 1 ? "" : "s")")
                return .ok
            }
        }
    }
}

/// The JSON form of an instance in `inventory list --json`.
struct InstanceSummary: Encodable {
    let name: String
    let workspace: String
    let appGroup: String
    let registrar: String
    let enabled: Bool
    /// `in-service`, `disabled`, `retiring` (marked `retire: true`) or `removed` (a tombstone until retired).
    let state: String
    let baseURL: String
    let hostURLs: [String]
    let labels: [String: String]

    init(_ instance: Instance) {
        name = instance.name
        state = InstanceSummary.state(instance)
        workspace = instance.workspaceID
        appGroup = instance.appGroup
        registrar = instance.registrar.kind
        enabled = instance.enabled
        baseURL = instance.baseURL
        hostURLs = instance.hostURLs
        labels = instance.labels
    }

    enum CodingKeys: String, CodingKey {
        case name, workspace
        case appGroup = "app_group"
        case registrar, enabled, state
        case baseURL = "base_url"
        case hostURLs = "host_urls"
        case labels
    }

    static func state(_ instance: Instance) -> String {
        switch instance.retirement {
        case .marked?: "retiring"
        case .removed?: "removed (until retired)"
        case nil: instance.enabled ? "in-service" : "disabled"
        }
    }
}
