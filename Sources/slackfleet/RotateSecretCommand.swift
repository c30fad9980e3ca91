import ArgumentParser
import Foundation
import Logging
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

struct RotateSecretCommand: JobCommandType {
    static let job: any FleetJob.Type = RotateSecret.self
    static let configuration = CommandConfiguration(
        commandName: "rotate-secret",
        abstract: "Rotate configuration tokens, and client secrets without losing a Slack integration.",
        discussion: """
            --config-tokens is meant for cron every few hours: a configuration token lives 12 hours.

            --client-secret rotates in place (recommended): Slack has no API to regenerate a secret, so the run prints the app's settings link for a person to press Regenerate and waits (exit 1, stage stored). Give the new secret with --secret-from; it is probed at Slack, pushed to every instance of the app group, and kept. Every Slack integration keeps delivering: webhooks do not use the secret.

            --blue-green is for an app that must die (a leak): a new app, registered with every instance, promoted once a canary integration a person connects through it delivers a test alert. The old app is kept while any integration from before depends on it; slackfleet connect lists who must connect again. --delete-previous-breaking N deletes it anyway, breaking exactly N, recorded in the audit log.

            Examples:
              slackfleet rotate-secret --config-tokens --all
              slackfleet rotate-secret --client-secret --label env=prod --min-age 90d
              slackfleet rotate-secret --client-secret --secret-from env:NEW --instance prod
              slackfleet rotate-secret --client-secret --blue-green --instance prod
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: JobOptions
    @Flag(name: .customLong("config-tokens"), help: "Rotate each selected workspace's configuration token that expires within --min-remaining.")
    var configTokens = false
    @Flag(name: .customLong("client-secret"), help: "Rotate each app group's client secret: in place, or with --blue-green a new app.")
    var clientSecret = false
    @Flag(name: .customLong("blue-green"), help: "With --client-secret: move the group to a new app (for a leaked app) instead of rotating in place.")
    var blueGreen = false
    @Flag(help: "The same as --client-secret with --secret-from (kept from earlier versions).")
    var propagate = false
    @Option(name: .customLong("secret-from"), help: ArgumentHelp("Where the secret a person regenerated is: secret:NAME, env:VAR, file:PATH or exec:COMMAND (never the value itself).", valueName: "ref"))
    var secretFrom: String?
    @Option(name: .customLong("delete-previous-breaking"), help: ArgumentHelp("Blue/green: delete the previous app even though exactly N integrations from before still depend on it.", valueName: "N"))
    var deletePreviousBreaking: Int?
    @Option(name: .customLong("min-remaining"), help: ArgumentHelp("Rotate a configuration token with less than this left.", valueName: "duration"))
    var minRemaining = "6h"
    @Option(help: ArgumentHelp("Blue/green: keep a replaced app at least this long for rollback.", valueName: "duration"))
    var grace = "24h"
    @Option(name: .customLong("min-age"), help: ArgumentHelp("Only rotate secrets at least this old (for cron).", valueName: "duration"))
    var minAge: String?
    @Option(help: ArgumentHelp("How long to wait for each test alert in the canary channel.", valueName: "duration"))
    var timeout = "60s"

    func validate() throws {
        if blueGreen && !clientSecret { throw ValidationError("--blue-green goes with --client-secret") }
        if propagate && blueGreen { throw ValidationError("--propagate pushes a regenerated secret in place; --blue-green makes a new app: use one") }
        if propagate && secretFrom == nil {
            throw ValidationError("--propagate needs --secret-from REF: where the regenerated secret is (secret:NAME, env:VAR, file:PATH or exec:COMMAND)")
        }
        if let secretFrom {
            guard clientSecret || propagate else { throw ValidationError("--secret-from goes with --client-secret") }
            if blueGreen { throw ValidationError("--secret-from is for an in-place rotation; --blue-green makes a new app with a secret of its own") }
            if case .failure(let problem) = SecretReference.parse(secretFrom) {
                throw ValidationError("--secret-from: \(problem.problem); \(problem.fix) (the value itself never goes on the command line)")
            }
        }
        if let deletePreviousBreaking {
            guard blueGreen || clientSecret else { throw ValidationError("--delete-previous-breaking goes with --client-secret") }
            guard deletePreviousBreaking >= 0 else { throw ValidationError("--delete-previous-breaking takes the number of integrations it may break (0 or more)") }
        }
        for (flag, value) in [("--min-remaining", minRemaining), ("--timeout", timeout)] where JobOptions.seconds(value) == nil {
            throw ValidationError("\(flag) \(value): write it like 90s, 30m, 6h or 2d")
        }
        if grace != "0", JobOptions.seconds(grace) == nil { throw ValidationError("--grace \(grace): write it like 30m, 24h or 7d (0: no rollback period)") }
        if let minAge, JobOptions.seconds(minAge) == nil { throw ValidationError("--min-age \(minAge): write it like 30d or 2160h") }
    }

    func run() throws {
        // Checked here, after parsing, so that a misspelt flag is reported as such.
        guard configTokens || clientSecret || propagate else {
            throw ValidationError("say what to rotate: --config-tokens, or --client-secret (in place; --blue-green for a new app)")
        }
        var job = RotateSecret()
        job.configTokens = configTokens
        job.clientSecret = clientSecret || propagate
        job.mode = blueGreen ? .blueGreen : .inPlace
        if let secretFrom, case .success(let reference) = SecretReference.parse(secretFrom) { job.secretFrom = reference }
        job.deleteBreaking = deletePreviousBreaking
        job.minRemaining = JobOptions.seconds(minRemaining) ?? 6 * 3600
        job.grace = grace == "0" ? 0 : JobOptions.seconds(grace) ?? 24 * 3600
        job.minAge = minAge.flatMap(JobOptions.seconds) ?? 0
        job.deliveryTimeout = JobOptions.seconds(timeout) ?? 60
        try JobCommand.run(job, global: global, options: options)
    }
}
