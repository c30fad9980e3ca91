import ArgumentParser
import Foundation
import SlackFleetCore

/// Where the database and master key are: the options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The fleet database.", discussion: "Default: $SLACKFLEET_DB, else ./slackfleet.db.", valueName: "path"))
    var database: String?

    @Option(name: .customLong("key-file"), help: ArgumentHelp("The master key file (ignored when $SLACKFLEET_MASTER_KEY is set).", discussion: "Default: $SLACKFLEET_KEY_FILE, else <database>.key.", valueName: "path"))
    var keyFile: String?

    @Option(name: .customLong("ca-file"), help: ArgumentHelp("CA certificates (PEM) to trust besides the system's, for https endpoints behind a private CA.", discussion: "Default: $SLACKFLEET_CA_FILE. TLS verification is never turned off.", valueName: "path"))
    var caFile: String?

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// The HTTP transport's settings, the CA file checked.
    func transport() throws -> HTTPTransport.Configuration {
        var configuration = HTTPTransport.Configuration()
        configuration.caFile = caFile ?? environment["SLACKFLEET_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        if let path = configuration.caFile { try HTTPTransport.checkCAFile(path) }
        return configuration
    }

    var databasePath: String {
        database ?? environment["SLACKFLEET_DB"].flatMap { $0.isEmpty ? nil : $0 } ?? "slackfleet.db"
    }

    var keyFilePath: String {
        keyFile ?? environment["SLACKFLEET_KEY_FILE"].flatMap { $0.isEmpty ? nil : $0 } ?? databasePath + ".key"
    }

    /// Whether the master key comes from the environment rather than a file.
    var keyFromEnvironment: Bool {
        !(environment[MasterKey.environmentVariable] ?? "").isEmpty
    }

    func openStore() throws -> FleetStore {
        try FleetStore.open(atPath: databasePath)
    }

    /// Loads the master key and opens the database's keyring with it (finishing an interrupted rekey).
    func openKeyring(_ store: FleetStore) throws -> Keyring {
        try Keyring.open(store, environment: environment, keyFilePath: keyFilePath) { Console.note($0) }
    }

    /// The store, keyring and an audit log for a command that changes something.
    func openForChanges(command: String) throws -> (store: FleetStore, keyring: Keyring, audit: AuditLog) {
        let store = try openStore()
        let (keyring, audit) = try openForChanges(store, command: command)
        return (store, keyring, audit)
    }

    /// The keyring and an audit log for a command that changes something in `store`, opened
    /// already (a job starts reading its inventory in between).
    func openForChanges(_ store: FleetStore, command: String) throws -> (keyring: Keyring, audit: AuditLog) {
        let keyring = try openKeyring(store)
        return (keyring, AuditLog(store: store, keyring: keyring, context: AuditContext(command: command)))
    }
}

/// Parses repeated `--label key=value` options.
func parseLabels(_ pairs: [String]) throws -> [String: String] {
    var labels: [String: String] = [:]
    for pair in pairs {
        let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw ValidationError("--label \(pair): write it as key=value, such as --label env=prod")
        }
        labels[parts[0]] = parts[1]
    }
    return labels
}
