import ArgumentParser
import Foundation
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

extension SecretsCommand {
    struct SetSecret: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Store a secret; the value is read from standard input, never from the command line.",
            usage: "slackfleet secrets set <name> [<global options>]",
            discussion: """
                One trailing newline is removed. On a terminal the value is asked for without echo. Inventory fields refer to it as secret:NAME.

                Example:
                  slackfleet secrets set slack/acme/config-token < token.txt
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
