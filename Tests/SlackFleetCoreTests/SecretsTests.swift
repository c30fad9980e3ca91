import Foundation
import GRDB
import SlackFleetCore
import SlackFleetTestSupport
import Testing

@Suite("Secrets")
struct SecretsTests {
    @Test("a stored secret reads back; its row holds only ciphertext")
    func roundTrip() throws {
        let fixture = try FleetFixture()
        let value = SecretValue("xoxe.xoxp-1-\(UUID().uuidString)")
        let change = try fixture.store.write("set") { db in try fixture.vault.set("slack/acme/config", to: value, in: db) }
        #expect(change.previousFingerprint == nil)
        #expect(try fixture.vault.storedValue("slack/acme/config") == value)
        #expect(try fixture.vault.resolve(.stored(name: "slack/acme/config")) == value)
        #expect(try fixture.vault.list().map(\.name) == ["slack/acme/config"])
        #expect(try fixture.vault.list().first?.fingerprint == fixture.keyring.fingerprint(of: value))
    }

    @Test("a secret's value is nowhere in the database files, nor in any table but the secrets table")
    func valueIsOnlyCiphertext() throws {
        let fixture = try FleetFixture()
        let value = "super-secret-\(UUID().uuidString)"
        try fixture.store.write("set") { db in
            _ = try fixture.vault.set("wandb/key", to: SecretValue(value), in: db)
            try fixture.audit.append([AuditDraft(target: "secret:wandb/key", action: "create", phase: .applied,
                                                 detail: ["fingerprint_after": .string(fixture.audit.fingerprint(of: SecretValue(value)))])], in: db)
        }
        for suffix in ["", "-wal", "-shm"] {
            let bytes = FileManager.default.contents(atPath: fixture.store.path + suffix) ?? Data()
            #expect(bytes.range(of: Data(value.utf8)) == nil, "found in \(suffix.isEmpty ? "the database" : suffix)")
        }
        let dump = try fixture.store.read("dump") { db -> String in
            var text = ""
            for table in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'secret'") {
                for row in try Row.fetchAll(db, sql: "SELECT * FROM \"\(table)\"") { text += row.description }
            }
            return text
        }
        #expect(!dump.contains(value))
    }

    @Test("a wrong master key is refused before anything is decrypted or written")
    func wrongKey() throws {
        let fixture = try FleetFixture()
        try fixture.store.write("set") { db in _ = try fixture.vault.set("a", to: SecretValue("one"), in: db) }
        let metaBefore = try fixture.store.read("meta") { db in try Row.fetchAll(db, sql: "SELECT * FROM meta ORDER BY key") }
        #expect {
            try Keyring.open(fixture.store, masterKey: MasterKey.generate())
        } throws: { error in
            (error as? FleetError)?.message.contains("is not this database's key") == true
        }
        let metaAfter = try fixture.store.read("meta") { db in try Row.fetchAll(db, sql: "SELECT * FROM meta ORDER BY key") }
        #expect(metaBefore == metaAfter)
        #expect(try fixture.vault.storedValue("a") == SecretValue("one"))
    }

    @Test("sealed values are bound to their names: swapping rows is detected")
    func swappedCiphertextIsRefused() throws {
        let fixture = try FleetFixture()
        try fixture.store.write("set") { db in
            _ = try fixture.vault.set("a", to: SecretValue("value-a"), in: db)
            _ = try fixture.vault.set("b", to: SecretValue("value-b"), in: db)
            try db.execute(sql: "UPDATE secret SET sealed = (SELECT sealed FROM secret WHERE name = 'b') WHERE name = 'a'")
        }
        #expect(throws: FleetError.self) { try fixture.vault.storedValue("a") }
    }

    @Test("rekey re-seals everything under the new key; the old one stops working; fingerprints stay")
    func rekey() throws {
        let fixture = try FleetFixture()
        let values = (0..<20).map { (name: "s/\($0)", value: SecretValue("value-\($0)-\(UUID().uuidString)")) }
        try fixture.store.write("set") { db in for item in values { _ = try fixture.vault.set(item.name, to: item.value, in: db) } }
        let fingerprints = try fixture.vault.list().map(\.fingerprint)
        let newKey = MasterKey.generate()
        #expect(try fixture.vault.rekey(to: newKey, audit: fixture.audit) == 20)
        #expect(throws: FleetError.self) { try Keyring.open(fixture.store, masterKey: fixture.masterKey) }
        let newKeyring = try Keyring.open(fixture.store, masterKey: newKey)
        let newVault = SecretVault(store: fixture.store, keyring: newKeyring)
        for item in values { #expect(try newVault.storedValue(item.name) == item.value) }
        #expect(try newVault.list().map(\.fingerprint) == fingerprints)
        #expect(try AuditLog.verify(fixture.store, keyring: newKeyring).headChecked)
    }

    @Test("a rekey that fails part-way changes nothing")
    func rekeyIsAllOrNothing() throws {
        let fixture = try FleetFixture()
        try fixture.store.write("set") { db in
            _ = try fixture.vault.set("good", to: SecretValue("fine"), in: db)
            _ = try fixture.vault.set("bad", to: SecretValue("broken"), in: db)
            try db.execute(sql: "UPDATE secret SET sealed = x'00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff' WHERE name = 'bad'")
        }
        let before = try fixture.store.read("rows") { db in try Row.fetchAll(db, sql: "SELECT * FROM secret ORDER BY name") }
        #expect(throws: FleetError.self) { try fixture.vault.rekey(to: MasterKey.generate(), audit: fixture.audit) }
        let after = try fixture.store.read("rows") { db in try Row.fetchAll(db, sql: "SELECT * FROM secret ORDER BY name") }
        #expect(before == after)
        #expect(try fixture.vault.storedValue("good") == SecretValue("fine"))
    }

    @Test("env, file and exec references resolve at use time")
    func references() throws {
        let fixture = try FleetFixture(environment: ["TOKEN": "from-env", "PATH": "/usr/bin:/bin"])
        let file = fixture.directory.write("token", "from-file\n")
        #expect(try fixture.vault.resolve(.environment(variable: "TOKEN")).revealed == "from-env")
        #expect(try fixture.vault.resolve(.file(path: file)).revealed == "from-file")
        #expect(try fixture.vault.resolve(.command("printf from-exec")).revealed == "from-exec")
        #expect(throws: FleetError.self) { try fixture.vault.resolve(.environment(variable: "MISSING")) }
        #expect(throws: FleetError.self) { try fixture.vault.resolve(.file(path: fixture.directory.file("missing"))) }
        #expect(throws: FleetError.self) { try fixture.vault.resolve(.command("echo leaked >&2; exit 3")) }
        #expect(throws: FleetError.self) { try fixture.vault.resolve(.stored(name: "never-set")) }
    }

    @Test("a secret file is read again at every use, trimmed of newlines only, and refused when empty, not text or too large")
    func secretFiles() throws {
        let fixture = try FleetFixture()
        let file = fixture.directory.write("token", "\n first value \r\n")
        #expect(try fixture.vault.resolve(.file(path: file)).revealed == " first value ")
        _ = fixture.directory.write("token", "second")
        #expect(try fixture.vault.resolve(.file(path: file)).revealed == "second")
        // Longer than one read: nothing is lost between chunks.
        let long = String(repeating: "0123456789abcdef", count: 1000) + "é"
        _ = fixture.directory.write("token", long + "\n")
        #expect(try fixture.vault.resolve(.file(path: file)).revealed == long)
        func message(_ contents: [UInt8]) -> String? {
            _ = FileManager.default.createFile(atPath: file, contents: Data(contents))
            do {
                _ = try fixture.vault.resolve(.file(path: file))
                return nil
            } catch let error as FleetError {
                return error.message
            } catch {
                return "\(error)"
            }
        }
        #expect(message(Array("\n\n".utf8))?.contains("is empty") == true)
        #expect(message([0x66, 0xff, 0xfe])?.contains("is not UTF-8 text") == true)
        #expect(message([UInt8](repeating: 0x61, count: (1 << 20) + 1))?.contains("at most 1 MB") == true)
        #expect(message([UInt8](repeating: 0x61, count: 1 << 20)) == nil)
    }

    @Test("a secret's description never shows its value")
    func redactedDescriptions() {
        let value = SecretValue("hunter2")
        #expect("\(value)" == "<redacted>")
        #expect(String(reflecting: value) == "<redacted>")
        var dumped = ""
        dump(value, to: &dumped)
        #expect(!dumped.contains("hunter2"))
    }

    @Test("the master key comes from the environment, or from a key file nobody else can read")
    func masterKeySources() throws {
        let directory = TemporaryDirectory("key")
        let key = MasterKey.generate()
        let path = directory.file("master.key")
        try key.write(toNewFile: path)
        #expect(FileSystem.permissions(ofPath: path) == 0o600)
        #expect(try MasterKey.load(environment: [:], keyFilePath: path).encoded == key.encoded)
        let other = MasterKey.generate()
        #expect(try MasterKey.load(environment: [MasterKey.environmentVariable: other.encoded], keyFilePath: path).encoded == other.encoded)
        chmod(path, 0o644)
        #expect {
            try MasterKey.load(environment: [:], keyFilePath: path)
        } throws: { error in
            (error as? FleetError)?.message.contains("chmod 600") == true
        }
        #expect(throws: FleetError.self) { try MasterKey.load(environment: [MasterKey.environmentVariable: "not-a-key"], keyFilePath: path) }
        #expect(throws: FleetError.self) { try MasterKey.load(environment: [:], keyFilePath: directory.file("absent")) }
        #expect(throws: FleetError.self) { try key.write(toNewFile: path) }
    }
}
