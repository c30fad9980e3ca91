import ArgumentParser
import Foundation
import SlackFleetCore

struct AppsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apps",
        abstract: "List the Slack apps SlackFleet made, their manifest snapshots, and restore one.",
        subcommands: [Snapshots.self, Restore.self])
}
