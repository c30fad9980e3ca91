import ArgumentParser
import Foundation
import SlackFleetCore

/// `slackfleet doctor`: is the fleet ready for a run? Reads everything a run will need; changes nothing.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check, before any change, that everything a run needs is in place.",
        usage: "slackfleet doctor [<selection>] [--expiry-margin <duration>] [--json]",
        discussion: """
            Read-only: every secret reference resolves; each configuration token is valid and not about to expire, and its refresh token is stored; the reader bot is in the canary channel; each W&B key is an admin's and serverInfo answers; the Kubernetes service account may do each verb its registrar needs (asked with SelfSubjectAccessReviews, not by trying); the WeightsAndBiases resource and the api workload exist; TLS verifies. Prints one table of what is wrong and how to fix it.

            Exit status: 0 when the fleet is ready, 1 otherwise.

            Example:
              slackfleet doctor --label env=prod
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var select: SelectionOptions
    @Option(name: .customLong("expiry-margin"), help: ArgumentHelp("Report a configuration token that expires within this long.", valueName: "duration"))
    var expiryMargin = "1h"
    @Flag(help: "JSON lines on stdout: one per problem, then a summary.")
    var json = false

    func validate() throws {
        guard JobOptions.seconds(expiryMargin) != nil else { throw ValidationError("--expiry-margin \(expiryMargin): write it like 30m or 2h") }
    }

    func run() throws {
        HTTPTransport.startEventLoops()
        try Console.run {
            let store = try global.openStore()
            let keyring = try global.openKeyring(store)
            let inventory = try InventoryRepository.load(store)
            var selection = try select.selection(store: store)
            // With nothing chosen, the whole fleet.
            if selection.instances.isEmpty && selection.labels.isEmpty { selection.all = true }
            let instances = try selection.groups(of: inventory).values.flatMap { $0 }.sorted { $0.name < $1.name }
            let vault = SecretVault(store: store, keyring: keyring)
            let workspaces = try ConfigTokens.effective(inventory.workspaces, vault: vault)
            let control = RunControl()
            let signals = SignalTrap(control: control)
            defer { signals.cancel() }
            let transport = HTTPTransport(configuration: try global.transport())
            defer { transport.shutdown() }
            // Nothing is audited: nothing changes.
            let audit = AuditLog(store: store, keyring: keyring, context: AuditContext(command: "doctor"))
            let context = JobContext.standalone(store: store, vault: vault, audit: audit, settings: VerifyDelivery.defaultSettings,
                                                transport: transport, control: control)
            let report = Doctor.run(instances, workspaces: workspaces, context: context, expiryMargin: JobOptions.seconds(expiryMargin) ?? 3600)
            if let stop = control.stop { return stop == .terminated ? .terminated : .interrupted }
            let checked = "\(report.instances) instance\(report.instances == 1 ? "" : "s") in \(report.workspaces) workspace\(report.workspaces == 1 ? "" : "s"), \(report.checks) checks"
            if json {
                var out = ""
                for finding in report.findings { out += finding.json.canonicalJSON + "\n" }
                out += JSON.object(["summary": true, "ready": .bool(report.ready), "problems": .int(report.findings.count), "instances": .int(report.instances),
                                    "workspaces": .int(report.workspaces), "checks": .int(report.checks)]).canonicalJSON + "\n"
                Console.out(out)
            } else if report.ready {
                Console.line("ready: \(checked), nothing wrong")
            } else {
                var table = TextTable(headers: ["WHERE", "CHECK", "PROBLEM", "FIX"])
                table.rows = report.findings.map { [$0.instance ?? "workspace \($0.workspace)", $0.check, $0.problem, $0.fix] }
                Console.out(table.render())
                Console.line("not ready: \(report.findings.count) problem\(report.findings.count == 1 ? "" : "s") (\(checked))")
            }
            return report.ready ? .ok : .failure
        }
    }
}
