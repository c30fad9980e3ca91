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

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Make the stored inventory equal FILE (YAML or JSON), all or nothing.",
            discussion: """
                Every problem in the file is reported as FILE:LINE: ROW/FIELD: problem: what to do, and
                then nothing is written (exit 65). Instances and workspaces stored but absent from the
                file are kept unless --prune is given. Every change is written to the audit log.
                """)

        @OptionGroup var options: GlobalOptions
        @Argument(help: ArgumentHelp("The inventory file (see jobs/examples/fleet.yaml).", valueName: "file"))
        var file: String
        @Option(help: "The file's format (default: from its extension; YAML unless .json).")
        var format: Format?
        @Flag(help: "Also remove stored instances and workspaces that the file does not list.")
        var prune = false
        @Flag(name: .customLong("dry-run"), help: "Show the changes and exit 2 if there are any; write nothing.")
        var dryRun = false

        func run() throws {
            try Console.run {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw FleetError.data("cannot read \(file): check the path and its permissions")
                }
                let (inventory, warnings) = try InventoryReader(file: file).read(data, format: format?.rawValue)
                for warning in warnings { Console.note(warning.description) }
                if dryRun {
                    let store = try options.openStore()
                    let plan = try InventoryImporter.plan(inventory, store: store, prune: prune)
                    report(plan, applied: false)
                    return plan.isEmpty ? .ok : .changesPending
                }
                let (store, _, audit) = try options.openForChanges(command: "inventory import")
                let plan = try InventoryImporter.apply(inventory, store: store, audit: audit, prune: prune)
                report(plan, applied: true)
                return .ok
            }
        }

        private func report(_ plan: InventoryImporter.Plan, applied: Bool) {
            let verb = applied ? "" : "would "
            for change in plan.changes {
                let fields = change.changedFields.isEmpty ? "" : " (" + change.changedFields.joined(separator: ", ") + ")"
                Console.line("\(verb)\(change.action.rawValue) \(change.kind) \(change.key)\(fields)")
            }
            for kept in plan.keptAbsent {
                Console.note("note: \(kept) is stored but not in \(file); kept (use --prune to remove it)")
            }
            for name in plan.missingSecrets {
                Console.note("note: secret \(name) is referenced but not stored yet: run `slackfleet secrets set \(name)` with the value on stdin")
            }
            let count = { (action: InventoryImporter.Change.Action) in plan.changes.filter { $0.action == action }.count }
            Console.line("\(applied ? "imported" : "dry run"): created=\(count(.create)) updated=\(count(.update)) removed=\(count(.remove)) unchanged=\(plan.unchanged)")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "export", abstract: "Print the stored inventory as a file `inventory import` reads back.")

        @OptionGroup var options: GlobalOptions
        @Option(help: "yaml or json.")
        var format: Format = .yaml

        func run() throws {
            try Console.run {
                let inventory = try InventoryRepository.load(try options.openStore())
                Console.out(format == .yaml ? InventoryDocument.yaml(inventory) : InventoryDocument.json(inventory))
                return .ok
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List instances, optionally only those with given labels.")

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
                var table = TextTable(headers: ["NAME", "WORKSPACE", "APP GROUP", "REGISTRAR", "ENABLED", "BASE URL", "LABELS"])
                table.rows = instances.map { instance in
                    [instance.name, instance.workspaceID, instance.appGroup, instance.registrar.kind, instance.enabled ? "yes" : "no",
                     instance.baseURL, instance.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")]
                }
                Console.out(table.render())
                Console.note("\(instances.count) instance\(instances.count == 1 ? "" : "s")")
                return .ok
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one instance: its settings, references and Slack app.")

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

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove one instance from the inventory (audited).",
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

/// The JSON form of an instance in `inventory list --json`.
struct InstanceSummary: Encodable {
    let name: String
    let workspace: String
    let appGroup: String
    let registrar: String
    let enabled: Bool
    let baseURL: String
    let hostURLs: [String]
    let labels: [String: String]

    init(_ instance: Instance) {
        name = instance.name
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
        case registrar, enabled
        case baseURL = "base_url"
        case hostURLs = "host_urls"
        case labels
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
