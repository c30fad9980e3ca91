import ArgumentParser
import Foundation
import SlackFleetCore

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a fleet database and its master key file (both mode 0600).",
        usage: "slackfleet init [<global options>]",
        discussion: "Refuses to overwrite an existing database or key file. With $SLACKFLEET_MASTER_KEY set, that key is used and no key file is written.")

    @OptionGroup var options: GlobalOptions

    func run() throws {
        try Console.run {
            let databasePath = options.databasePath
            let keyPath = options.keyFilePath
            if FileSystem.exists(databasePath) {
                throw FleetError.config("\(databasePath) already exists; refusing to overwrite it (choose another --database)")
            }
            let key: MasterKey
            var wroteKeyFile = false
            if options.keyFromEnvironment {
                key = try MasterKey.load(environment: options.environment, keyFilePath: keyPath)
            } else {
                if FileSystem.exists(keyPath) {
                    throw FleetError.config("the key file \(keyPath) already exists; refusing to overwrite it (choose another --key-file, or set $\(MasterKey.environmentVariable) to reuse a key)")
                }
                key = MasterKey.generate()
                try key.write(toNewFile: keyPath)
                wroteKeyFile = true
            }
            do {
                let store = try FleetStore.create(atPath: databasePath)
                let keyring = try Keyring.open(store, masterKey: key)
                let audit = AuditLog(store: store, keyring: keyring, context: AuditContext(command: "init"))
                try audit.record(AuditDraft(target: "store:database", action: "create", phase: .applied,
                                            detail: ["master_key_id": .string(key.identifier)]))
            } catch {
                // Leave nothing half-made: a key file without its database would block the next init.
                if wroteKeyFile { unlink(keyPath) }
                unlink(databasePath)
                throw error
            }
            Console.line("created \(databasePath) (mode 0600)")
            if wroteKeyFile {
                Console.line("created \(keyPath) (mode 0600): the master key; keep it apart from database backups")
            } else {
                Console.line("using the master key from $\(MasterKey.environmentVariable) (id \(key.identifier)); no key file written")
            }
            Console.line("next: slackfleet inventory import FILE (example: jobs/examples/fleet.yaml)")
            return .ok
        }
    }
}
