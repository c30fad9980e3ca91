import ArgumentParser
import Foundation
import SlackFleetCore

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Read, verify and export the audit log of every change.",
        subcommands: [List.self, Verify.self, Export.self, Fingerprint.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Show audit entries, oldest first.")

        @OptionGroup var options: GlobalOptions
        @Option(help: "Only entries about this instance.")
        var instance: String?
        @Option(help: ArgumentHelp("Only entries from this time on (RFC 3339, such as 2026-11-29T00:00:00Z).", valueName: "time"))
        var since: String?
        @Option(help: "Only the newest N entries.")
        var limit: Int?
        @Flag(help: "One JSON object per entry and line.")
        var json = false

        func validate() throws {
            if let since, Timestamp.parse(since) == nil {
                throw ValidationError("--since \(since) is not a time: write it like 2026-11-29T00:00:00Z")
            }
            if let limit, limit <= 0 { throw ValidationError("--limit must be at least 1") }
        }

        func run() throws {
            try Console.run {
                let since = since.flatMap(Timestamp.parse).map(Timestamp.format)
                let entries = try AuditLog.entries(try options.openStore(), instance: instance, since: since, limit: limit)
                if json {
                    try Console.jsonLines(entries)
                    return .ok
                }
                var table = TextTable(headers: ["SEQ", "TIME", "ACTOR", "COMMAND", "TARGET", "ACTION", "PHASE", "DETAIL"])
                table.rows = entries.map {
                    [String($0.seq), $0.time, $0.actor, $0.command, $0.target, $0.action, $0.phase,
                     $0.detail.count > 120 ? String($0.detail.prefix(119)) + "…" : $0.detail]
                }
                Console.out(table.render())
                return .ok
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Prove that no audit entry was changed, removed or reordered.",
            discussion: """
                Checks every entry's hash and its link to the one before, and the head signed with the
                master key. Exits 0 when the log is intact; 1 naming the first entry that is not.
                Keep the printed head elsewhere and pass it back with --expect-head to also catch a
                rewrite by someone who holds the key.
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

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Write every entry as JSON lines, to ship the log off this machine.")

        @OptionGroup var options: GlobalOptions
        @Option(help: ArgumentHelp("Write to this file (mode 0600) instead of standard output.", valueName: "path"))
        var output: String?

        func run() throws {
            try Console.run {
                let store = try options.openStore()
                guard let output else {
                    try AuditLog.export(store, to: FileHandle.standardOutput)
                    return .ok
                }
                try FileSystem.createPrivateFile(atPath: output, contents: Data())
                guard let handle = FileHandle(forWritingAtPath: output) else {
                    throw FleetError.config("cannot open \(output) for writing")
                }
                defer { try? handle.close() }
                try AuditLog.export(store, to: handle)
                try handle.synchronize()
                return .ok
            }
        }
    }

    struct Fingerprint: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fingerprint",
            abstract: "Print the fingerprint of a value read from stdin, to find it in the audit log.")

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
