import ArgumentParser
import Foundation
import Logging
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

struct ProvisionAppCommand: JobCommandType {
    static let job: any FleetJob.Type = ProvisionApp.self
    static let configuration = CommandConfiguration(
        commandName: "provision-app",
        abstract: "Create each app group's Slack app and register its credentials with every instance.",
        discussion: """
            Slack allows about one app write a minute per workspace (Tier 1). Every workspace writes at its own quota at once, whatever --concurrency is, and the job prints the ETA the busiest workspace implies. With --max-duration it starts no write the quota would allow only later, and stops cleanly (exit 75) for the next run to resume.

            Examples:
              slackfleet provision-app --all --dry-run
              slackfleet provision-app --label env=prod --max-duration 50m
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: JobOptions

    func run() throws { try JobCommand.run(ProvisionApp(), global: global, options: options) }
}
