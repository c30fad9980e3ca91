import ArgumentParser
import Foundation
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

extension SecretsCommand {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List stored secrets: names, fingerprints and ages, never values.",
                                                                             usage: "slackfleet secrets list [--json] [<global options>]")

        @OptionGroup var options: GlobalOptions
        @Flag(help: "One JSON object per secret and line.")
        var json = false

        func run() throws {
            try Console.run {
                let store = try options.openStore()
                let vault = SecretVault(store: store, keyring: try options.openKeyring(store))
                let secrets = try vault.list()
                if json {
                    try Console.jsonLines(secrets)
                    return .ok
                }
                var table = TextTable(headers: ["NAME", "KIND", "FINGERPRINT", "AGE", "UPDATED"])
                table.rows = secrets.map {
                    [$0.name, "sealed", String($0.fingerprint.prefix(28)) + "…", age(since: $0.updatedAt), $0.updatedAt]
                }
                Console.out(table.render())
                return .ok
            }
        }

        private func age(since text: String) -> String {
            guard let date = Timestamp.parse(text) else { return "?" }
            let seconds = Int(Date().timeIntervalSince(date))
            switch seconds {
            case ..<120: return "\(max(seconds, 0))s"
            case ..<7200: return "\(seconds / 60)m"
            case ..<172_800: return "\(seconds / 3600)h"
            default: return "\(seconds / 86400)d"
            }
        }
    }
}
