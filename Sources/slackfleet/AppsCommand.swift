import ArgumentParser
import Foundation
import SlackFleetCore

struct AppsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apps",
        abstract: "The Slack apps' manifest snapshots, restoring one, and apps Slack may hold that were never stored.",
        subcommands: [Snapshots.self, Restore.self, Orphans.self])
}
