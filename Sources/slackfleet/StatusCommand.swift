import ArgumentParser
import Foundation
import SlackFleetCore

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "The fleet at a glance, from the database alone: who delivers, who must act, what is stale.",
        usage: "slackfleet status [--instance <name>] [--label <k=v>] [--stale <duration>] [--json]",
        discussion: """
            Reads only the database (no network call): each workspace's configuration token expiry, apps, pending Tier 1 writes and their ETA at Slack's quota, and 429s in the last run; each instance's app, the client ID it was last seen running, its last verify-delivery (age and latency), its connection state, its rotation stage, its secret's age and each job's last result; what a person must do, with the link; and what has not been verified within --stale.

            Exit 0 when every instance in service delivers, was verified within --stale and nobody must act; 1 otherwise. Cron and monitoring can use it as a check.

            Examples:
              slackfleet status
              slackfleet status --label env=prod --stale 1d --json
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var chosen: StatusSelection
    @Flag(help: "One JSON object: workspaces, instances, needs_person, healthy.") var json = false

    func run() throws {
        try Console.run {
            let store = try global.openStore()
            let status = try chosen.read(store)
            if json {
                Console.line(status.jsonText)
            } else {
                Console.out(Self.text(status))
            }
            return status.healthy ? .ok : .failure
        }
    }

    static func text(_ status: FleetStatus) -> String {
        var out = "WORKSPACES\n"
        var workspaces = TextTable(headers: ["WORKSPACE", "NAME", "TOKEN EXPIRES", "APPS", "PENDING TIER 1", "ETA", "429s LAST RUN"])
        workspaces.rows = status.workspaces.map { workspace in
            [workspace.id, workspace.name,
             (workspace.tokenExpiresAt ?? "unknown") + (workspace.tokenExpiresInSeconds.map { $0 < 0 ? " (EXPIRED)" : " (in \(Runner.duration($0)))" } ?? ""),
             String(workspace.apps), String(workspace.pendingTier1Writes), workspace.pendingTier1Writes == 0 ? "" : Runner.duration(workspace.pendingETASeconds),
             workspace.rateLimitedLastRun.map(String.init) ?? ""]
        }
        out += workspaces.render() + "\nINSTANCES\n"
        var instances = TextTable(headers: ["INSTANCE", "STATE", "APP", "CLIENT ID", "VERIFIED", "LATENCY", "CONNECTION", "ROTATION", "SECRET AGE", "LAST RESULTS"])
        instances.rows = status.instances.map { instance in
            [instance.name, instance.health.rawValue, instance.appID ?? "", instance.clientID ?? "",
             instance.verifiedAgeSeconds.map { Runner.duration($0) + " ago" } ?? "never",
             instance.deliverySeconds.map { String(format: "%.1f s", $0) } ?? "", instance.connection ?? "", instance.rotationStage ?? "",
             instance.secretAgeSeconds.map { Runner.duration($0) } ?? "",
             instance.lastResults.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.result)" }.joined(separator: ", ")]
        }
        out += instances.render()
        if !status.needsPerson.isEmpty {
            out += "\nNEEDS A PERSON\n" + status.needsPerson.map { "- \($0.instance): \($0.text)" }.joined(separator: "\n") + "\n"
        }
        let stale = status.instances.filter { $0.health == .stale || $0.health == .unverified }
        if !stale.isEmpty {
            out += "\nNOT VERIFIED WITHIN \(Runner.duration(status.staleAfterSeconds)): " + stale.map(\.name).prefix(20).joined(separator: ", ")
                + (stale.count > 20 ? " and \(stale.count - 20) more" : "") + "\n"
        }
        let counts = status.counts.filter { $0.value > 0 }.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue)=\($0.value)" }
        out += "\n" + (status.healthy ? "healthy: " : "not healthy: ") + counts.joined(separator: " ") + "\n"
        return out
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write the fleet's status as one self-contained HTML page.",
        usage: "slackfleet report --output <file.html> [--instance <name>] [--label <k=v>] [--stale <duration>]",
        discussion: """
            The same tables as `slackfleet status`, and pictures: the fleet as a grid of instances coloured by state, delivery latency, secret ages against the rotation policy, each workspace's Tier 1 writes in its last run against the quota, and audit activity per day. One file with inline CSS and SVG and no network fetch: it opens from disk or an artifact store. Every job takes --report FILE to write it at the end of a run.

            Example:
              slackfleet report --output fleet.html
            """)

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("The HTML file to write (atomically).", valueName: "file.html")) var output: String
    @OptionGroup var chosen: StatusSelection

    func run() throws {
        try Console.run {
            let store = try global.openStore()
            let status = try chosen.read(store)
            try Self.write(status, to: output)
            Console.note("wrote \(output): \(status.instances.count) instance(s)")
            return .ok
        }
    }

    /// Writes the page atomically (a temporary file renamed over the path).
    static func write(_ status: FleetStatus, to path: String) throws {
        do {
            try Data(StatusPage.render(status).utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw FleetError.config("cannot write the report to \(path): \(error.localizedDescription)")
        }
    }
}

/// What `status` and `report` show: a selection, and when an instance counts as stale.
struct StatusSelection: ParsableArguments {
    @Option(name: .customLong("instance"), help: ArgumentHelp("Only this instance (repeatable).", valueName: "name"))
    var instances: [String] = []
    @Option(name: .customLong("label"), help: ArgumentHelp("Only instances with this label (repeatable; all must match).", valueName: "key=value"))
    var labels: [String] = []
    @Option(help: ArgumentHelp("An instance not verified for longer than this is stale.", valueName: "duration"))
    var stale = "7d"

    func validate() throws {
        _ = try parseLabels(labels)
        if JobOptions.seconds(stale) == nil { throw ValidationError("--stale \(stale): write it like 12h, 7d or 30d") }
    }

    /// The status of the selection, read once.
    func read(_ store: FleetStore) throws -> FleetStatus {
        let wanted = try parseLabels(labels)
        let names = Set(instances)
        if !names.isEmpty {
            let known = Set(try InventoryRepository.load(store).instances.map(\.name))
            if let unknown = names.subtracting(known).sorted().first {
                throw FleetError.data("no instance named \(unknown): see `slackfleet inventory list`")
            }
        }
        return try FleetStatus.read(store, staleAfter: JobOptions.seconds(stale) ?? 7 * 86400) { instance in
            (names.isEmpty || names.contains(instance.name)) && wanted.allSatisfy { instance.labels[$0.key] == $0.value }
        }
    }
}
