import ArgumentParser
import Foundation
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

struct SecretsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secrets",
        abstract: "Store secrets sealed in the database, list them (never their values), rekey.",
        subcommands: [SetSecret.self, List.self, Rekey.self])

    struct SetSecret: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Store a secret; the value is read from standard input, never from the command line.",
            discussion: """
                Example: slackfleet secrets set slack/acme/config-token < token.txt
                One trailing newline is removed. On a terminal the value is asked for without echo.
                Inventory fields refer to it as secret:NAME.
                """)

        @OptionGroup var options: GlobalOptions
        @Argument(help: "The secret's name, such as slack/acme/config-token.")
        var name: String

        func validate() throws {
            guard SecretReference.isValidStoredName(name) else {
                throw ValidationError("\"\(name)\" is not a valid secret name: use letters, digits, '.', '_', '-' and '/', starting with a letter or digit, at most 128 characters")
            }
        }

        func run() throws {
            try Console.run {
                let (store, keyring, audit) = try options.openForChanges(command: "secrets set")
                let value = try SecretInput.read(prompt: "value for \(name)")
                let vault = SecretVault(store: store, keyring: keyring)
                let change = try store.write("storing secret \(name)") { db in
                    let change = try vault.set(name, to: value, in: db)
                    if change.changed {
                        try audit.append([AuditDraft(target: "secret:\(name)", action: change.previousFingerprint == nil ? "create" : "update",
                                                     phase: .applied,
                                                     detail: ["fingerprint_before": change.previousFingerprint.map(JSON.string) ?? .null,
                                                              "fingerprint_after": .string(change.fingerprint)])], in: db)
                    }
                    return change
                }
                Console.line(change.changed ? "stored secret \(name) (\(change.fingerprint.prefix(28))…)" : "secret \(name) already holds this value; nothing changed")
                return .ok
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List stored secrets: names, fingerprints and ages, never values.")

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

    struct Rekey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rekey",
            abstract: "Re-seal every secret under a new master key, in one transaction.",
            discussion: """
                With a key file, the new key replaces it (the old one is gone afterwards). With
                $SLACKFLEET_MASTER_KEY, pass --new-key-file: the new key is written there, and you
                then put it in the variable's source. Fingerprints in the audit log stay valid.
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

/// Reads a secret from standard input, without echo on a terminal.
enum SecretInput {
    static let maximumBytes = 64 * 1024

    static func read(prompt: String) throws -> SecretValue {
        let interactive = isatty(STDIN_FILENO) == 1
        var saved = termios()
        if interactive {
            Console.note("\(prompt) (input hidden, end with Enter):")
            tcgetattr(STDIN_FILENO, &saved)
            var silent = saved
            silent.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        }
        defer { if interactive { tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved); Console.note("") } }
        let data: Data
        if interactive {
            data = Data((readLine(strippingNewline: true) ?? "").utf8)
        } else {
            data = FileHandle.standardInput.readDataToEndOfFile()
        }
        guard data.count <= maximumBytes else {
            throw FleetError.data("the value on stdin is \(data.count) bytes; a secret may have at most \(maximumBytes)")
        }
        guard var text = String(data: data, encoding: .utf8) else {
            throw FleetError.data("the value on stdin is not UTF-8 text")
        }
        if text.hasSuffix("\r\n") { text.removeLast(2) } else if text.hasSuffix("\n") { text.removeLast() }
        guard !text.isEmpty else {
            throw FleetError.data("no value on stdin: pipe it in, such as `slackfleet secrets set NAME < file`")
        }
        return SecretValue(text)
    }
}
