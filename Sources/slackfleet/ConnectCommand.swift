import ArgumentParser
import Foundation
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

/// `slackfleet connect`: the step only a person can take, made small and visible.
struct ConnectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "List the Slack connections a person must make in W&B, and watch for them.",
        usage: "slackfleet connect [<selection>] [--wait] [--timeout <duration>] [--json]",
        discussion: """
            Alerts reach Slack only through Slack integrations a person connects in W&B (Connect Slack, then a channel picked in Slack). No API can do it for them. This command lists, per instance, who must open which W&B page and pick which channel: canaries with no integration in the canary channel, canaries whose integration came through an app a blue/green rotation is retiring, and every integration from before such a rotation that has not been connected again.

            With --wait it watches until each appears (progress on stderr; Ctrl-C stops it, and running it again resumes), and records each connection it sees in the audit log. It changes nothing.

            Exit status: 0 when nothing waits for a person, 1 otherwise (or when an instance could not be read).

            Example:
              slackfleet connect --all --wait --timeout 2h
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var select: SelectionOptions
    @Flag(help: "Watch until every connection listed is made, or --timeout.")
    var wait = false
    @Option(help: ArgumentHelp("With --wait: stop watching after this long (exit 75; running it again resumes).", valueName: "duration"))
    var timeout = "24h"
    @Flag(help: "JSON lines on stdout: one per connection wanted (and, with --wait, one per connection seen), then a summary.")
    var json = false

    func validate() throws {
        guard JobOptions.seconds(timeout) != nil else { throw ValidationError("--timeout \(timeout): write it like 30m or 2h") }
    }

    func run() throws {
        HTTPTransport.startEventLoops()
        try Console.run {
            let (store, keyring, audit) = try global.openForChanges(command: "connect")
            let inventory = try InventoryRepository.load(store)
            let workspaces = Dictionary(inventory.workspaces.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            var groups = try select.selection(store: store).groups(of: inventory).sorted { $0.key < $1.key }.compactMap { key, instances in
                workspaces[key.workspaceID].map { GroupWork(key: key, workspace: $0, instances: instances.sorted { $0.name < $1.name }) }
            }
            let control = RunControl(maxDuration: wait ? JobOptions.seconds(timeout) : nil)
            let signals = SignalTrap(control: control)
            defer { signals.cancel() }
            let transport = HTTPTransport(configuration: try global.transport())
            defer { transport.shutdown() }
            let context = JobContext.standalone(store: store, vault: SecretVault(store: store, keyring: keyring), audit: audit,
                                                settings: VerifyDelivery.defaultSettings, transport: transport, control: control)
            let members = inventory.instancesByApp.mapValues { $0.filter(\.isActive) }
            var pass = ConnectionWatch.pass(groups, members: members, context: context)
            report(pass)
            guard wait else { return pass.wanted.isEmpty && pass.problems.isEmpty ? .ok : .failure }

            // Watch: look again at the groups that still wait, less often as time goes by.
            let started = Date()
            var seen = 0
            var interval: TimeInterval = 5
            while !pass.wanted.isEmpty || !pass.problems.isEmpty, control.stop == nil {
                let waiting = pass.wanted.map(\.action.instance) + pass.problems.map(\.instance)
                let names = Set(waiting)
                Console.note("[\(seen) connected, \(pass.wanted.count) waiting] " + pass.wanted.prefix(3).map { "\($0.action.instance)/\($0.action.entity ?? "") \($0.action.channel ?? "")" }.joined(separator: ", ")
                             + (pass.wanted.count > 3 ? ", ..." : "") + (pass.problems.isEmpty ? "" : "; \(pass.problems.count) unreadable"))
                do { try control.sleep(interval) } catch { break }
                interval = min(interval * 1.5, 30)
                groups = groups.compactMap { group in
                    let left = group.instances.filter { names.contains($0.name) }
                    return left.isEmpty ? nil : GroupWork(key: group.key, workspace: group.workspace, instances: left)
                }
                let next = ConnectionWatch.pass(groups, members: members, context: context)
                guard control.stop == nil else { break }
                let still = Set(next.wanted.map(\.key))
                let unreadable = Set(next.problems.map(\.instance))
                for made in pass.wanted where !still.contains(made.key) && !unreadable.contains(made.action.instance) {
                    try ConnectionWatch.recordSeen(made, audit: audit)
                    seen += 1
                    let after = Runner.duration(Date().timeIntervalSince(started))
                    if json {
                        try Console.jsonLine(SeenLine(instance: made.action.instance, entity: made.action.entity ?? "", channel: made.action.channel ?? "",
                                                      workspace: made.action.workspace, afterSeconds: Date().timeIntervalSince(started)))
                    } else {
                        Console.line("connected: \(made.action.instance) \(made.action.entity ?? "") -> \(made.action.channel ?? "") (after \(after))")
                    }
                }
                pass = next
            }
            if json { try Console.jsonLine(Summary(waiting: pass.wanted.count, seen: seen, unreadable: pass.problems.count, stoppedBy: control.stop?.rawValue)) }
            switch control.stop {
            case .interrupted?: return .interrupted
            case .terminated?: return .terminated
            case .timeBudget?: return pass.wanted.isEmpty ? .ok : .temporaryFailure
            default: return pass.wanted.isEmpty && pass.problems.isEmpty ? .ok : .failure
            }
        }
    }

    /// The first pass: a table of what each person must do, or JSON lines.
    private func report(_ pass: ConnectionWatch.Pass) {
        if json {
            var out = ""
            for wanted in pass.wanted { out += wanted.action.json.canonicalJSON + "\n" }
            for problem in pass.problems { out += JSON.object(["instance": .string(problem.instance), "problem": .string(problem.problem)]).canonicalJSON + "\n" }
            Console.out(out)
            if !wait { try? Console.jsonLine(Summary(waiting: pass.wanted.count, seen: 0, unreadable: pass.problems.count, stoppedBy: nil)) }
            return
        }
        if pass.wanted.isEmpty {
            Console.line("No connection waits for a person (\(pass.instances) instance\(pass.instances == 1 ? "" : "s") checked).")
        } else {
            var table = TextTable(headers: ["INSTANCE", "ENTITY", "CHANNEL", "WORKSPACE", "OPEN", "WHY"])
            table.rows = pass.wanted.map { [$0.action.instance, $0.action.entity ?? "", $0.action.channel ?? "", $0.action.workspace, $0.action.link, $0.action.why] }
            Console.out(table.render())
            Console.line("\(pass.wanted.count) connection\(pass.wanted.count == 1 ? "" : "s") wait for a person: on each OPEN page (Team Settings > Slack channel integrations, or User Settings > Alerts for a user), click Connect Slack and pick the CHANNEL.")
        }
        for problem in pass.problems { Console.note("\(problem.instance): \(problem.problem)") }
    }

    private struct SeenLine: Encodable {
        let seen = true
        let instance: String
        let entity: String
        let channel: String
        let workspace: String
        let afterSeconds: Double

        enum CodingKeys: String, CodingKey {
            case seen, instance, entity, channel, workspace, afterSeconds = "after_seconds"
        }
    }

    private struct Summary: Encodable {
        let summary = true
        let waiting: Int
        let seen: Int
        let unreadable: Int
        let stoppedBy: String?

        enum CodingKeys: String, CodingKey {
            case summary, waiting, seen, unreadable, stoppedBy = "stopped_by"
        }
    }
}
