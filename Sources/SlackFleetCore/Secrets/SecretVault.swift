import Foundation
import GRDB

/// The secrets sealed in the database, and the resolution of every kind of reference.
public struct SecretVault: Sendable {
    /// The database the sealed secrets live in.
    public let store: FleetStore
    /// The keys the secrets are sealed and fingerprinted with.
    public let keyring: Keyring
    /// The environment `env:` references read (the process environment by default).
    public let environment: [String: String]
    /// How long an `exec:` reference's command may run.
    public var commandTimeout: TimeInterval = 30

    public init(store: FleetStore, keyring: Keyring, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.store = store
        self.keyring = keyring
        self.environment = environment
    }

    /// What `secrets list` shows of a stored secret: never its value.
    public struct Summary: Sendable, Equatable, Codable {
        public let name: String
        public let fingerprint: String
        public let createdAt: String
        public let updatedAt: String

        enum CodingKeys: String, CodingKey {
            case name, fingerprint
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }
    }

    /// The outcome of storing a value: the fingerprints before and after.
    public struct Change: Sendable {
        public let name: String
        public let previousFingerprint: String?
        public let fingerprint: String
        public var changed: Bool { previousFingerprint != fingerprint }
    }

    /// Seals and stores `value` under `name` inside the caller's transaction.
    public func set(_ name: String, to value: SecretValue, in db: Database) throws -> Change {
        guard SecretReference.isValidStoredName(name) else {
            throw FleetError.usage("\"\(name)\" is not a valid secret name: use letters, digits, '.', '_', '-' and '/', starting with a letter or digit, at most 128 characters")
        }
        guard !value.revealed.isEmpty else {
            throw FleetError.data("the value for secret \(name) is empty: nothing was stored")
        }
        // Cached statements: a provisioning run stores a few secrets for every app.
        let previous = try String.fetchOne(db.cachedStatement(sql: "SELECT fingerprint FROM secret WHERE name = ?"), arguments: [name])
        let fingerprint = keyring.fingerprint(of: value)
        let sealed = try keyring.seal(Data(value.revealed.utf8), context: "secret:\(name)")
        let now = Timestamp.now()
        try db.cachedStatement(sql: """
            INSERT INTO secret (name, sealed, fingerprint, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT(name) DO UPDATE SET sealed = excluded.sealed, fingerprint = excluded.fingerprint,
                updated_at = excluded.updated_at
            """).execute(arguments: [name, sealed, fingerprint, now, now])
        return Change(name: name, previousFingerprint: previous, fingerprint: fingerprint)
    }

    /// The stored secret `name`, decrypted.
    public func storedValue(_ name: String) throws -> SecretValue {
        try store.read("reading secret \(name)") { db in try storedValue(name, in: db) }
    }

    func storedValue(_ name: String, in db: Database) throws -> SecretValue {
        guard let sealed = try Data.fetchOne(db.cachedStatement(sql: "SELECT sealed FROM secret WHERE name = ?"), arguments: [name]) else {
            throw FleetError.config("secret \(name) is not stored in this database: run `slackfleet secrets set \(name)` with the value on stdin")
        }
        let plaintext: Data
        do {
            plaintext = try keyring.open(sealed, context: "secret:\(name)")
        } catch {
            throw FleetError.config("secret \(name) cannot be decrypted with this master key (the row was altered or sealed under another key): set it again with `slackfleet secrets set \(name)`")
        }
        guard let text = String(data: plaintext, encoding: .utf8) else {
            throw FleetError.config("secret \(name) is not valid UTF-8 text: set it again with `slackfleet secrets set \(name)`")
        }
        return SecretValue(text)
    }

    /// Names, fingerprints and ages of every stored secret.
    public func list() throws -> [Summary] {
        try store.read("listing secrets") { db in
            try Row.fetchAll(db, sql: "SELECT name, fingerprint, created_at, updated_at FROM secret ORDER BY name").map {
                Summary(name: $0["name"], fingerprint: $0["fingerprint"], createdAt: $0["created_at"], updatedAt: $0["updated_at"])
            }
        }
    }

    /// Re-seals every stored secret (and the fingerprint key) under `newKey`, inside the
    /// caller's transaction; returns the number of secrets re-sealed and the new keyring.
    ///
    /// Every value is decrypted before anything is written, so a value that cannot be
    /// decrypted aborts the whole rekey with nothing changed.
    func rekey(to newKey: MasterKey, in db: Database) throws -> (count: Int, keyring: Keyring) {
        let names = try String.fetchAll(db, sql: "SELECT name FROM secret ORDER BY name")
        let values = try names.map { ($0, try storedValue($0, in: db)) }
        let newKeyring = keyring.rekeyed(to: newKey)
        for (name, value) in values {
            let sealed = try newKeyring.seal(Data(value.revealed.utf8), context: "secret:\(name)")
            try db.execute(sql: "UPDATE secret SET sealed = ? WHERE name = ?", arguments: [sealed, name])
        }
        try newKeyring.storeMeta(db)
        return (values.count, newKeyring)
    }

    /// Re-seals every secret under `newKey` in one transaction, records it in the audit log and
    /// re-signs the log's head with the new key; returns how many secrets were re-sealed.
    public func rekey(to newKey: MasterKey, audit: AuditLog) throws -> Int {
        try store.write("re-sealing secrets under the new key") { db in
            let (count, newKeyring) = try rekey(to: newKey, in: db)
            try audit.append([AuditDraft(target: "secret:*", action: "rekey", phase: .applied,
                                         detail: ["secrets": .int(count),
                                                  "master_key_id_before": .string(keyring.masterKey.identifier),
                                                  "master_key_id_after": .string(newKey.identifier)])], in: db)
            try audit.resignHead(with: newKeyring, in: db)
            return count
        }
    }

    /// Resolves a reference of any kind to its value, at the moment of use.
    public func resolve(_ reference: SecretReference) throws -> SecretValue {
        switch reference {
        case .stored(let name):
            return try storedValue(name)
        case .environment(let variable):
            guard let value = environment[variable], !value.isEmpty else {
                throw FleetError.config("environment variable \(variable) (referenced as env:\(variable)) is not set or empty: export it in the job's environment")
            }
            return SecretValue(value)
        case .file(let path):
            // Read on every use, never cached: a file such as a projected service-account token
            // is replaced while a long run goes on.
            let expanded = path.hasPrefix("~") ? (path as NSString).expandingTildeInPath : path
            guard let bytes = FileSystem.readSmallFile(atPath: expanded) else {
                throw FleetError.config("cannot read the secret file \(path) (referenced as file:\(path)): check that it exists, is readable by this user and holds at most 1 MB")
            }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw FleetError.config("the secret file \(path) is not UTF-8 text")
            }
            var value = Substring(text)
            while let last = value.last, last.isNewline { value.removeLast() }
            while let first = value.first, first.isNewline { value.removeFirst() }
            guard !value.isEmpty else {
                throw FleetError.config("the secret file \(path) is empty")
            }
            return SecretValue(String(value))
        case .command(let command):
            return try SecretCommand.run(command, timeout: commandTimeout, environment: environment)
        }
    }
}
