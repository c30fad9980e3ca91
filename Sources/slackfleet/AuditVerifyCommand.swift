import ArgumentParser
import Foundation
import SlackFleetCore

extension AuditCommand {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Prove that no audit entry was changed, removed or reordered.",
            usage: "slackfleet audit verify [--expect-head <seq:hash>] [<global options>]",
            discussion: """
                Checks every entry's hash and its link to the one before, and the head signed with the master key. Exits 0 when the log is intact; 1 naming the first entry that is not. Keep the printed head elsewhere and pass it back with --expect-head to also catch a rewrite by someone who holds the key.
                """)

        @OptionGroup var options: GlobalOptions
        @Option(name: .customLong("expect-head"), help: ArgumentHelp("An earlier head that must still be in the log.", valueName: "seq:hash"))
        var expectHead: String?

        func run() throws {
            var expected: (seq: Int64, hash: String)?
            if let expectHead {
                let parts = expectHead.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, let seq = Int64(parts[0]), seq > 0, parts[1].count == 64 else {
                    throw ValidationError("--expect-head \(expectHead): write it as SEQ:HASH, as `audit verify` prints it")
                }
                expected = (seq, String(parts[1]))
            }
            try Console.run {
                let store = try options.openStore()
                var keyring: Keyring?
                do {
                    keyring = try options.openKeyring(store)
                } catch let error as FleetError {
                    Console.note("warning: the signed head is not checked: \(error.message)")
                }
                let result = try AuditLog.verify(store, keyring: keyring, expectedHead: expected)
                Console.line("audit log verified: \(result.count) entr\(result.count == 1 ? "y" : "ies"), head \(result.count):\(result.headHash)\(result.headChecked ? ", signature ok" : " (signature not checked)")")
                return .ok
            }
        }
    }
}
