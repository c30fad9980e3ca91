import ArgumentParser
import Foundation
import SlackFleetCore

struct RetireCommand: JobCommandType {
    static let job: any FleetJob.Type = Retire.self
    static let configuration = CommandConfiguration(
        commandName: "retire",
        abstract: "Take retired instances out of their app, remove their credentials, and delete an app nobody uses.",
        discussion: """
            Works on the instances marked `retire: true` in the inventory and those removed from it (inventory import --prune, inventory remove) after they were given an app's credentials: `slackfleet inventory list` shows them as retiring or removed (until retired).

            While other instances stay in the app group, the app stays: the retired instances' host URLs and IP ranges are taken out of it. Each retired instance's Slack credentials are emptied through its registrar and its api restarted (an exec registrar cannot: the result says so). A removed instance is then forgotten.

            When no instance stays, the group's app is deleted at Slack's Tier 1 pace. First the Slack integrations the deletion would end are counted (each entity the instances watch, in the app's workspace): with any, the app is kept until --delete-app-breaking names that count, so select one app group at a time. The audit log names every integration that ended.

            Examples:
              slackfleet retire --all --dry-run      # what would go; exit 2 if anything
              slackfleet retire --all
              slackfleet retire --instance old-eu --delete-app-breaking 3
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: JobOptions
    @Option(name: .customLong("delete-app-breaking"), help: ArgumentHelp("Delete a group's app even though exactly N Slack integrations end with it (the count a run without it reports).", valueName: "N"))
    var deleteAppBreaking: Int?

    func validate() throws {
        if let deleteAppBreaking, deleteAppBreaking < 0 {
            throw ValidationError("--delete-app-breaking takes the number of integrations the deletion may end (0 or more)")
        }
    }

    func run() throws { try JobCommand.run(Retire(deleteAppBreaking: deleteAppBreaking), global: global, options: options) }
}
