import ArgumentParser
import Foundation
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

extension SecretsCommand {
    struct Rekey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rekey",
            abstract: "Re-seal every secret under a new master key, in one transaction.",
            usage: "slackfleet secrets rekey [--new-key-file <path>] [<global options>]",
            discussion: """
                With a key file, the new key replaces it (the old one is gone afterwards). With $SLACKFLEET_MASTER_KEY, pass --new-key-file: the new key is written there, and you then put it in the variable's source. Fingerprints in the audit log stay valid.
                """)

        @OptionGroup var options: GlobalOptions
        @Option(name: .customLong("new-key-file"), help: ArgumentHelp("Where to write the new key (required when the key comes from the environment).", valueName: "path"))
        var newKeyFile: String?

        func run() throws {
            try Console.run {
                let (store, keyring, audit) = try options.openForChanges(command: "secrets rekey")
                let newKey = MasterKey.generate()
                let fromEnvironment = options.keyFromEnvironment
                guard !fromEnvironment || newKeyFile != nil else {
                    throw FleetError.usage("the master key comes from $\(MasterKey.environmentVariable): pass --new-key-file PATH to receive the new key")
                }
                let pendingPath = newKeyFile ?? options.keyFilePath + ".new"
                if newKeyFile == nil { unlink(pendingPath) }  // A leftover of a rekey that never committed.
                try newKey.write(toNewFile: pendingPath)
                let count: Int
                do {
                    count = try SecretVault(store: store, keyring: keyring).rekey(to: newKey, audit: audit)
                } catch {
                    unlink(pendingPath)
                    throw error
                }
                if newKeyFile == nil {
                    guard rename(pendingPath, options.keyFilePath) == 0 else {
                        throw FleetError.config("re-sealed under the new key, but could not move \(pendingPath) to \(options.keyFilePath): move it yourself (the next command also does)")
                    }
                    Console.line("re-sealed \(count) secret\(count == 1 ? "" : "s"); \(options.keyFilePath) now holds the new key (id \(newKey.identifier))")
                } else {
                    Console.line("re-sealed \(count) secret\(count == 1 ? "" : "s") under the key in \(pendingPath) (id \(newKey.identifier))")
                    if fromEnvironment {
                        Console.line("now set $\(MasterKey.environmentVariable) to the contents of \(pendingPath): the old key no longer opens this database")
                    }
                }
                return .ok
            }
        }
    }
}
