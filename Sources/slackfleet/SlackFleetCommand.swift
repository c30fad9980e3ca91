import ArgumentParser
import Foundation
import SlackFleetCore

@main
struct SlackFleetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slackfleet",
        abstract: "Create, configure and register the Slack apps of a fleet of W&B Server deployments.",
        discussion: """
            The fleet lives in a SQLite database (--database, $SLACKFLEET_DB, default ./slackfleet.db). Secrets in it are sealed under a master key ($SLACKFLEET_MASTER_KEY, or the key file: --key-file, $SLACKFLEET_KEY_FILE, default <database>.key). Every change is written to an audit log.

            Exit codes: 0 done; 1 something failed or waits for a person; 2 a dry run found changes; 64 usage; 65 bad inventory data; 75 locked, busy or out of time (run again later); 78 configuration; 130 and 143 stopped by SIGINT or SIGTERM.
            """,
        version: SlackFleetVersion.current,
        subcommands: [InitCommand.self, InventoryCommand.self, SecretsCommand.self, ProvisionAppCommand.self, SyncRedirectsCommand.self, VerifyDeliveryCommand.self, RotateSecretCommand.self, RetireCommand.self, ConnectCommand.self, StatusCommand.self, ReportCommand.self, DoctorCommand.self, AppsCommand.self, AuditCommand.self]
    )
}

extension SlackFleetCommand {
    /// How to settle every job's unfinished changes: each job command's job declares its own.
    static var recoveries: [any ChangeRecovery] {
        var seen = Set<String>()
        return configuration.subcommands.compactMap { ($0 as? any JobCommandType.Type)?.job }
            .flatMap { $0.recoveries }
            .filter { seen.insert(String(describing: type(of: $0))).inserted }
    }
}

/// The version `slackfleet --version` prints.
enum SlackFleetVersion {
    static let current = "0.1.0"
}
