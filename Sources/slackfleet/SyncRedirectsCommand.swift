import ArgumentParser
import Foundation
import Logging
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

struct SyncRedirectsCommand: JobCommandType {
    static let job: any FleetJob.Type = SyncRedirects.self
    static let configuration = CommandConfiguration(
        commandName: "sync-redirects",
        abstract: "Make each app's redirect URLs and IP allow-list equal the inventory, touching nothing else.",
        discussion: """
            Only the redirect URLs and the IP allow-list are compared and changed; everything else in the app's manifest, edits made in Slack's settings page included, is kept. The manifest exported before each update is kept: `slackfleet apps snapshots` lists them and `slackfleet apps restore ID` puts one back.

            Examples:
              slackfleet sync-redirects --all --dry-run    # the diff; exit 2 if any
              slackfleet sync-redirects --all
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: JobOptions

    func run() throws { try JobCommand.run(SyncRedirects(), global: global, options: options) }
}
