import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension Keyring {
    /// Loads the master key (`SLACKFLEET_MASTER_KEY` in `environment`, else the key file) and
    /// opens the database's keyring with it, finishing a `secrets rekey` that was interrupted
    /// between its commit and the key file's replacement: the new key waits in
    /// `<key file>.new`, and opens the keyring the old one no longer does.
    public static func open(_ store: FleetStore, environment: [String: String], keyFilePath: String, notes: (String) -> Void) throws -> Keyring {
        let key = try MasterKey.load(environment: environment, keyFilePath: keyFilePath)
        let keyFromEnvironment = !(environment[MasterKey.environmentVariable] ?? "").isEmpty
        do {
            return try Keyring.open(store, masterKey: key)
        } catch let error as FleetError where !keyFromEnvironment && FileSystem.exists(keyFilePath + ".new") {
            let pendingPath = keyFilePath + ".new"
            guard let pending = try? MasterKey.load(environment: [:], keyFilePath: pendingPath),
                  let keyring = try? Keyring.open(store, masterKey: pending) else { throw error }
            guard rename(pendingPath, keyFilePath) == 0 else {
                throw FleetError.config("an interrupted rekey left the database's key in \(pendingPath); move it to \(keyFilePath) yourself")
            }
            notes("finished an interrupted `secrets rekey`: \(keyFilePath) now holds the new key (id \(pending.identifier))")
            return keyring
        }
    }
}
