import ArgumentParser
import Foundation
import Logging
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

struct VerifyDeliveryCommand: JobCommandType {
    static let job: any FleetJob.Type = VerifyDelivery.self
    static let configuration = CommandConfiguration(
        commandName: "verify-delivery",
        abstract: "Prove, per instance, that an alert really reaches Slack. Changes nothing.",
        discussion: """
            Checks, per instance: it is ready; it runs on its app's client ID; Slack accepts the stored client secret; its host is among the app's redirect URLs; the app has the incoming-webhook scope; the canary entity has a Slack integration in the canary channel; a test alert with a unique nonce is accepted, and shows in the canary channel within --timeout. One poll of a canary channel serves every instance waiting on it. An instance whose canary has no integration is needs-connect, with what a person must do.

            Example:
              slackfleet verify-delivery --all --timeout 90s
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: JobOptions
    @Option(help: ArgumentHelp("How long to wait for each test alert in the canary channel.", valueName: "duration"))
    var timeout = "60s"

    func validate() throws {
        guard JobOptions.seconds(timeout) != nil else { throw ValidationError("--timeout \(timeout): write it like 60s or 2m") }
    }

    func run() throws { try JobCommand.run(VerifyDelivery(timeout: JobOptions.seconds(timeout) ?? 60), global: global, options: options) }
}
