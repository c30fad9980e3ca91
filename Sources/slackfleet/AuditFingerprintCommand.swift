import ArgumentParser
import Foundation
import SlackFleetCore

extension AuditCommand {
    struct Fingerprint: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fingerprint",
            abstract: "Print the fingerprint of a value read from stdin, to find it in the audit log.",
            usage: "slackfleet audit fingerprint [<global options>] < value")

        @OptionGroup var options: GlobalOptions

        func run() throws {
            try Console.run {
                let store = try options.openStore()
                let keyring = try options.openKeyring(store)
                let value = try SecretInput.read(prompt: "value to fingerprint")
                Console.line(keyring.fingerprint(of: value))
                return .ok
            }
        }
    }
}
