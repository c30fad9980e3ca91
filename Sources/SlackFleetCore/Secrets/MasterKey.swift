import Crypto
import Foundation

/// The 256-bit key that everything secret in a fleet database is sealed under.
///
/// It comes from `SLACKFLEET_MASTER_KEY` (base64) or from a key file that `slackfleet init`
/// creates with mode 0600. It is never written to the database.
public struct MasterKey: Sendable {
    /// The environment variable that, when set, holds the key and wins over the key file.
    public static let environmentVariable = "SLACKFLEET_MASTER_KEY"

    private let bytes: Data

    /// The key in CryptoKit form.
    var key: SymmetricKey { SymmetricKey(data: bytes) }

    /// A fresh random key.
    public static func generate() -> MasterKey {
        MasterKey(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
    }

    private init(bytes: Data) {
        self.bytes = bytes
    }

    /// Decodes the base64 text form of a key; `source` names where it came from, for errors.
    public init(encoded: String, source: String) throws {
        let text = encoded.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let data = Data(base64Encoded: text), data.count == 32 else {
            throw FleetError.config("\(source) does not hold a master key (expected 32 bytes in base64, as `slackfleet init` writes): check that it was not truncated or edited")
        }
        bytes = data
    }

    /// The base64 text form, as stored in a key file or the environment variable.
    public var encoded: String {
        bytes.base64EncodedString()
    }

    /// A short, non-secret identifier of this key, to tell keys apart in messages and the audit log.
    public var identifier: String {
        let derived = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: key, info: Data("slackfleet/key-id/v1".utf8), outputByteCount: 8)
        return derived.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
    }

    /// Loads the key: the environment variable if set, else the key file, which must not be
    /// readable by group or others.
    public static func load(environment: [String: String], keyFilePath: String) throws -> MasterKey {
        if let value = environment[environmentVariable], !value.isEmpty {
            return try MasterKey(encoded: value, source: "$\(environmentVariable)")
        }
        guard let mode = FileSystem.permissions(ofPath: keyFilePath) else {
            throw FleetError.config("no master key: \(keyFilePath) does not exist and $\(environmentVariable) is not set; run `slackfleet init`, or point --key-file (or SLACKFLEET_KEY_FILE) at the key")
        }
        if mode & 0o077 != 0 {
            throw FleetError.config("the key file \(keyFilePath) is readable by others (mode \(String(mode, radix: 8))); refusing to use it: run `chmod 600 \(keyFilePath)`")
        }
        let text: String
        do {
            text = try String(contentsOfFile: keyFilePath, encoding: .utf8)
        } catch {
            throw FleetError.config("cannot read the key file \(keyFilePath): \(error.localizedDescription)")
        }
        return try MasterKey(encoded: text, source: "the key file \(keyFilePath)")
    }

    /// Writes the key to a new file with mode 0600, refusing to overwrite one.
    public func write(toNewFile path: String) throws {
        try FileSystem.createPrivateFile(atPath: path, contents: Data((encoded + "\n").utf8))
    }
}
