import Crypto
import Foundation
import GRDB

/// The keys derived from a master key for one database.
///
/// - secrets are sealed with AES-GCM under a key derived from the master key;
/// - the audit log's head is signed with an HMAC key derived from the master key, so only a
///   holder of the key can rewrite the log without `audit verify` noticing;
/// - fingerprints use a random key created once per database and stored sealed, so a
///   fingerprint stays the same across `secrets rekey` and old audit entries remain searchable.
public struct Keyring: Sendable {
    /// The master key these keys come from.
    public let masterKey: MasterKey
    private let sealingKeyBytes: Data
    private let auditKeyBytes: Data
    private let fingerprintKeyBytes: Data
    var sealingKey: SymmetricKey { SymmetricKey(data: sealingKeyBytes) }
    var auditKey: SymmetricKey { SymmetricKey(data: auditKeyBytes) }
    var fingerprintKey: SymmetricKey { SymmetricKey(data: fingerprintKeyBytes) }

    private init(masterKey: MasterKey, sealingKey: SymmetricKey, auditKey: SymmetricKey, fingerprintKey: SymmetricKey) {
        self.masterKey = masterKey
        sealingKeyBytes = sealingKey.withUnsafeBytes { Data($0) }
        auditKeyBytes = auditKey.withUnsafeBytes { Data($0) }
        fingerprintKeyBytes = fingerprintKey.withUnsafeBytes { Data($0) }
    }

    static let fingerprintKeyMetaKey = "fingerprint_key"
    static let masterKeyIDMetaKey = "master_key_id"

    /// Opens the keyring of `store`, creating the database's fingerprint key on first use.
    ///
    /// A master key that is not the database's is refused before anything is decrypted or written.
    public static func open(_ store: FleetStore, masterKey: MasterKey) throws -> Keyring {
        try store.write("opening the keyring") { db in try open(db, masterKey: masterKey) }
    }

    static func open(_ db: Database, masterKey: MasterKey) throws -> Keyring {
        let sealingKey = derive(masterKey, "slackfleet/secrets/v1")
        if let sealed = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [fingerprintKeyMetaKey]) {
            let raw: Data
            do {
                raw = try AES.GCM.open(AES.GCM.SealedBox(combined: sealed), using: sealingKey,
                                       authenticating: Data("meta:\(fingerprintKeyMetaKey)".utf8))
            } catch {
                let expected = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [masterKeyIDMetaKey])
                throw FleetError.config("the master key (id \(masterKey.identifier)) is not this database's key\(expected.map { " (id \($0))" } ?? ""); check $\(MasterKey.environmentVariable) or --key-file. Nothing was decrypted or changed")
            }
            return Keyring(masterKey: masterKey, sealingKey: sealingKey,
                           auditKey: derive(masterKey, "slackfleet/audit-head/v1"),
                           fingerprintKey: SymmetricKey(data: raw))
        }
        let fingerprintKey = SymmetricKey(size: .bits256)
        let keyring = Keyring(masterKey: masterKey, sealingKey: sealingKey,
                              auditKey: derive(masterKey, "slackfleet/audit-head/v1"),
                              fingerprintKey: fingerprintKey)
        try keyring.storeMeta(db)
        return keyring
    }

    /// Writes this keyring's sealed fingerprint key and key id into `meta`.
    func storeMeta(_ db: Database) throws {
        let raw = fingerprintKey.withUnsafeBytes { Data($0) }
        let sealed = try seal(raw, context: "meta:\(Keyring.fingerprintKeyMetaKey)")
        try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?), (?, ?)",
                       arguments: [Keyring.fingerprintKeyMetaKey, sealed,
                                   Keyring.masterKeyIDMetaKey, masterKey.identifier])
    }

    /// The same database keys under another master key (for `secrets rekey`).
    func rekeyed(to newMasterKey: MasterKey) -> Keyring {
        Keyring(masterKey: newMasterKey, sealingKey: Keyring.derive(newMasterKey, "slackfleet/secrets/v1"),
                auditKey: Keyring.derive(newMasterKey, "slackfleet/audit-head/v1"),
                fingerprintKey: fingerprintKey)
    }

    /// Seals `plaintext`, bound to `context` (such as the secret's name) so sealed values
    /// cannot be swapped between rows.
    func seal(_ plaintext: Data, context: String) throws -> Data {
        let box = try AES.GCM.seal(plaintext, using: sealingKey, authenticating: Data(context.utf8))
        guard let combined = box.combined else {
            throw FleetError.failed("AES-GCM produced no combined box (unexpected nonce size)")
        }
        return combined
    }

    /// Opens a value sealed by `seal(_:context:)`; throws when the key or context is wrong.
    func open(_ sealed: Data, context: String) throws -> Data {
        try AES.GCM.open(AES.GCM.SealedBox(combined: sealed), using: sealingKey, authenticating: Data(context.utf8))
    }

    /// The HMAC-SHA256 fingerprint of a secret value: lookup-able, not reversible.
    public func fingerprint(of value: SecretValue) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(value.revealed.utf8), using: fingerprintKey)
        return "hmac-sha256:" + Data(mac).hexString
    }

    /// The MAC that signs the audit log's head (its last sequence number and hash).
    func auditHeadMAC(seq: Int64, hash: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(seq):\(hash)".utf8), using: auditKey)
        return Data(mac).hexString
    }

    private static func derive(_ masterKey: MasterKey, _ info: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: masterKey.key, info: Data(info.utf8), outputByteCount: 32)
    }
}

extension Sequence where Element == UInt8 {
    /// Lowercase hexadecimal text.
    var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes = [UInt8]()
        bytes.reserveCapacity(64)
        for byte in self {
            bytes.append(digits[Int(byte >> 4)])
            bytes.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
