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
            Examples:
              slackfleet sync-redirects --all --dry-run     # the diff per app; exit 2 if anything would change
              slackfleet sync-redirects --all
            The manifest exported before each update is kept: `slackfleet apps snapshots` lists them and
            `slackfleet apps restore ID` puts one back.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: JobOptions

    func run() throws { try JobCommand.run(SyncRedirects(), global: global, options: options) }
}
