import ArgumentParser
import Foundation
import SlackFleetCore

extension InventoryCommand {
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Make the stored inventory equal FILE (YAML or JSON), all or nothing.",
            usage: "slackfleet inventory import <file> [--prune] [--dry-run] [--shard <K/N>]",
            discussion: """
                Every problem in the file is reported as FILE:LINE: ROW/FIELD: problem: what to do, and then nothing is written (exit 65). Instances and workspaces stored but absent from the file are kept unless --prune is given. Every change is written to the audit log.

                With --shard K/N (or --shards N and JOB_COMPLETION_INDEX) the database is made for one runner's shard: only the workspaces that shard owns are imported (a workspace's `runner:` pins it, else a hash of its team ID decides), with their instances, and every later command on this database acts on them alone.
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
        @Option(help: ArgumentHelp("Import only this runner's shard of the fleet: K of N, by workspace.", valueName: "K/N"))
        var shard: String?
        @Option(help: ArgumentHelp("The number of shards; the shard is JOB_COMPLETION_INDEX + 1.", valueName: "N"))
        var shards: Int?

        func run() throws {
            try Console.run {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw FleetError.data("cannot read \(file): check the path and its permissions")
                }
                let (whole, warnings) = try InventoryReader(file: file).read(data, format: format?.rawValue)
                for warning in warnings { Console.note(warning.description) }
                let given = try Shard.parse(shard, shards: shards, environment: ProcessInfo.processInfo.environment)
                if dryRun {
                    let store = try options.openStore()
                    let inventory = try Shard.effective(given, store: store).map { try $0.slice(whole) } ?? whole
                    let plan = try InventoryImporter.plan(inventory, store: store, prune: prune)
                    report(plan, applied: false)
                    return plan.isEmpty ? .ok : .changesPending
                }
                let (store, _, audit) = try options.openForChanges(command: "inventory import")
                let acting = try Shard.effective(given, store: store)
                let inventory = try acting.map { try $0.slice(whole) } ?? whole
                if let acting { Console.note("shard \(acting): \(inventory.workspaces.count) of \(whole.workspaces.count) workspace(s), \(inventory.instances.count) of \(whole.instances.count) instance(s)") }
                let plan = try InventoryImporter.apply(inventory, store: store, audit: audit, prune: prune, shard: given)
                report(plan, applied: true)
                return .ok
            }
        }

        private func report(_ plan: InventoryImporter.Plan, applied: Bool) {
            let verb = applied ? "" : "would "
            for change in plan.changes {
                let fields = change.changedFields.isEmpty ? "" : " (" + change.changedFields.joined(separator: ", ") + ")"
                let kept = change.tombstone ? " (kept as a tombstone until `slackfleet retire` retires it)" : ""
                Console.line("\(verb)\(change.action.rawValue) \(change.kind) \(change.key)\(fields)\(kept)")
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
}
