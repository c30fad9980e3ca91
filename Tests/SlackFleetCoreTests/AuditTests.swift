import Foundation
import GRDB
import SlackFleetCore
import SlackFleetTestSupport
import Testing

/// A small deterministic generator, so a failing tampering can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

@Suite("Audit log")
struct AuditTests {
    /// Writes `count` entries in batches, as several commands would.
    static func fill(_ fixture: FleetFixture, count: Int) throws {
        var written = 0
        while written < count {
            let batch = min(500, count - written)
            try fixture.store.write("fill") { db in
                _ = try fixture.audit.append((0..<batch).map { index in
                    let n = written + index
                    return AuditDraft(instance: n % 3 == 0 ? nil : "instance-\(n % 40)", target: "slack:app/A\(n)", action: ["create", "update", "delete"][n % 3],
                                      phase: AuditPhase.allCases[n % AuditPhase.allCases.count], detail: ["n": .int(n), "note": .string("entry \(n)")])
                }, in: db)
            }
            written += batch
        }
    }

    /// Runs `body(writer, index)` `perWriter` times on each of `writers` threads of their own
    /// (concurrentPerform would run only about one per core), and waits for all of them.
    static func onThreads(_ writers: Int, _ perWriter: Int, _ body: @escaping @Sendable (Int, Int) -> Void) {
        let finished = DispatchGroup()
        for writer in 0..<writers {
            finished.enter()
            Thread {
                for index in 0..<perWriter { body(writer, index) }
                finished.leave()
            }.start()
        }
        #expect(finished.wait(timeout: .now() + 60) == .success)
    }

    static func signedHead(_ store: FleetStore) throws -> (seq: Int64, hash: String) {
        let verification = try AuditLog.verify(store, keyring: nil)
        return (verification.count, verification.headHash)
    }

    @Test("an untouched log of 5,000 entries verifies, with its signed head")
    func untouchedLogVerifies() throws {
        let fixture = try FleetFixture()
        try Self.fill(fixture, count: 5000)
        let result = try AuditLog.verify(fixture.store, keyring: fixture.keyring)
        #expect(result.count == 5000)
        #expect(result.headChecked)
    }

    @Test("1,000 random tamperings of a 5,000-entry log are every one detected")
    func randomTamperingsAreDetected() throws {
        let fixture = try FleetFixture()
        try Self.fill(fixture, count: 5000)
        let original = try AuditLog.entries(fixture.store)
        let head = try Self.signedHead(fixture.store)
        #expect(try AuditChain.verify(original, signedHead: head) == 5000)
        // The verifier is a value: its state after each original entry is a checkpoint, and a
        // tampered copy is verified from the checkpoint just before its first changed entry
        // (the prefix before it is the original's, already verified above).
        var checkpoints: [AuditChain.Verifier] = [AuditChain.Verifier()]
        var verifier = AuditChain.Verifier()
        for entry in original {
            try verifier.check(entry)
            checkpoints.append(verifier)
        }
        var random = SeededGenerator(state: 20261129)
        var kinds: [String: Int] = [:]
        for round in 0..<1000 {
            var entries = original
            let kind: String
            let firstChanged: Int
            switch round % 4 {
            case 0:
                kind = "edit"
                firstChanged = Int.random(in: 0..<entries.count, using: &random)
                Self.edit(&entries[firstChanged], field: Int.random(in: 0..<12, using: &random), using: &random)
            case 1:
                kind = "delete"
                firstChanged = Int.random(in: 0..<entries.count, using: &random)
                entries.remove(at: firstChanged)
            case 2:
                kind = "swap"
                let first = Int.random(in: 0..<entries.count, using: &random)
                var second = Int.random(in: 0..<entries.count, using: &random)
                if second == first { second = (first + 1) % entries.count }
                entries.swapAt(first, second)
                firstChanged = min(first, second)
            default:
                kind = "truncate"
                let start = Int.random(in: 0..<(entries.count - 1), using: &random)
                let end = Int.random(in: (start + 1)...entries.count, using: &random)
                entries.removeSubrange(start..<end)
                firstChanged = start
            }
            kinds[kind, default: 0] += 1
            var resumed = checkpoints[firstChanged]
            #expect(throws: AuditChain.Break.self, "round \(round): \(kind) at \(firstChanged) went undetected") {
                for entry in entries[firstChanged...] { try resumed.check(entry) }
                try resumed.checkEnd(signedHead: head.seq, hash: head.hash)
            }
        }
        #expect(kinds == ["edit": 250, "delete": 250, "swap": 250, "truncate": 250])
        // A few whole-log runs through the public entry point, from the first entry on.
        var whole = original
        whole.remove(at: 4321)
        #expect(throws: AuditChain.Break.self) { try AuditChain.verify(whole, signedHead: head) }
        #expect(throws: AuditChain.Break.self) { try AuditChain.verify(original.dropLast(), signedHead: head) }
    }

    static func edit(_ entry: inout AuditEntry, field: Int, using random: inout SeededGenerator) {
        let noise = "x\(UInt32.random(in: 0...UInt32.max, using: &random))"
        switch field {
        case 0: entry.seq += 1
        case 1: entry.time = entry.time == "2000-01-01T00:00:00.000Z" ? "2000-01-02T00:00:00.000Z" : "2000-01-01T00:00:00.000Z"
        case 2: entry.runID += noise
        case 3: entry.actor = "mallory@" + noise
        case 4: entry.command += noise
        case 5: entry.instance = entry.instance == nil ? noise : nil
        case 6: entry.target += noise
        case 7: entry.action = entry.action == "noop" ? "create" : "noop"
        case 8: entry.phase = entry.phase == "applied" ? "failed" : "applied"
        case 9: entry.detail = entry.detail.replacingOccurrences(of: "entry", with: "ENTRY")
        case 10: entry.prevHash = String(entry.prevHash.reversed())
        default: entry.hash = AuditChain.genesisHash
        }
    }

    @Test("UPDATE and DELETE on the log are refused by the database")
    func triggersRefuseChanges() throws {
        let fixture = try FleetFixture()
        try Self.fill(fixture, count: 3)
        #expect(throws: StoreError.self) {
            try fixture.store.write("edit") { db in try db.execute(sql: "UPDATE audit_entry SET action = 'x' WHERE seq = 1") }
        }
        #expect(throws: StoreError.self) {
            try fixture.store.write("delete") { db in try db.execute(sql: "DELETE FROM audit_entry WHERE seq = 1") }
        }
        #expect(try AuditLog.verify(fixture.store, keyring: fixture.keyring).count == 3)
    }

    /// Edits the database file directly, as an attacker with file access but no key would.
    static func tamper(_ path: String, _ sql: String) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(sql: "DROP TRIGGER audit_entry_no_update; DROP TRIGGER audit_entry_no_delete;")
            try db.execute(sql: sql)
        }
        try queue.close()
    }

    @Test("edits made to the file directly are caught", arguments: [
        ("edit a detail", "UPDATE audit_entry SET detail = '{}' WHERE seq = 10"),
        ("delete from the middle", "DELETE FROM audit_entry WHERE seq BETWEEN 10 AND 12"),
        ("delete from the end", "DELETE FROM audit_entry WHERE seq > 45"),
        ("delete everything", "DELETE FROM audit_entry"),
    ])
    func directFileEditsAreCaught(_ label: String, _ sql: String) throws {
        let fixture = try FleetFixture()
        try Self.fill(fixture, count: 50)
        try Self.tamper(fixture.store.path, sql)
        let reopened = try FleetStore.open(atPath: fixture.store.path)
        #expect(throws: AuditChain.Break.self, "\(label)") { try AuditLog.verify(reopened, keyring: fixture.keyring) }
    }

    @Test("a whole chain recomputed without the key is caught by the signed head")
    func consistentRewriteWithoutKeyIsCaught() throws {
        let fixture = try FleetFixture()
        try Self.fill(fixture, count: 20)
        var entries = try AuditLog.entries(fixture.store)
        entries[4].detail = #"{"forged":true}"#
        var previous = AuditChain.genesisHash
        for index in entries.indices {
            entries[index].prevHash = previous
            entries[index].hash = entries[index].computedHash
            previous = entries[index].hash
        }
        #expect(try AuditChain.verify(entries) == 20, "the forged chain is self-consistent")
        let queue = try DatabaseQueue(path: fixture.store.path)
        try queue.write { db in
            try db.execute(sql: "DROP TRIGGER audit_entry_no_update; DROP TRIGGER audit_entry_no_delete; DELETE FROM audit_entry")
            for entry in entries {
                try db.execute(sql: "INSERT INTO audit_entry (seq, time, run_id, actor, command, instance, target, action, phase, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               arguments: [entry.seq, entry.time, entry.runID, entry.actor, entry.command, entry.instance, entry.target,
                                           entry.action, entry.phase, entry.detail, entry.prevHash, entry.hash])
            }
        }
        try queue.close()
        let reopened = try FleetStore.open(atPath: fixture.store.path)
        #expect(throws: AuditChain.Break.self) { try AuditLog.verify(reopened, keyring: fixture.keyring) }
        #expect(try AuditLog.verify(reopened, keyring: nil).count == 20, "without the key only the chain can be checked")
    }

    @Test("an expected head from elsewhere catches a rewrite even by a key holder")
    func expectedHead() throws {
        let fixture = try FleetFixture()
        try Self.fill(fixture, count: 10)
        let head = try Self.signedHead(fixture.store)
        try Self.fill(fixture, count: 5)
        #expect(try AuditLog.verify(fixture.store, keyring: fixture.keyring, expectedHead: head).count == 15)
        #expect(throws: AuditChain.Break.self) {
            try AuditLog.verify(fixture.store, keyring: fixture.keyring, expectedHead: (head.seq, AuditChain.genesisHash))
        }
        #expect(throws: AuditChain.Break.self) {
            try AuditLog.verify(fixture.store, keyring: fixture.keyring, expectedHead: (99, head.hash))
        }
    }

    @Test("64 concurrent writers share commits and every entry lands in one unbroken chain")
    func groupCommit() throws {
        let fixture = try FleetFixture()
        let writers = 64, perWriter = 40
        let failures = Counter()
        AuditTests.onThreads(writers, perWriter) { writer, index in
            do {
                try fixture.audit.record(AuditDraft(instance: "w\(writer)", target: "test:\(writer)/\(index)", action: "intent", phase: .intent))
            } catch {
                failures.increment()
            }
        }
        #expect(failures.value == 0)
        let entries = try AuditLog.entries(fixture.store)
        #expect(entries.count == writers * perWriter)
        #expect(Set(entries.map(\.target)).count == writers * perWriter)
        #expect(try AuditLog.verify(fixture.store, keyring: fixture.keyring).count == Int64(writers * perWriter))
        let transactions = Set(entries.map(\.time)).count
        #expect(transactions < entries.count, "entries were committed in shared transactions (\(transactions) commits for \(entries.count) entries)")
    }

    @Test("writes through commit share the log's commits; one that fails is rolled back alone and its caller told")
    func sharedWrites() throws {
        let fixture = try FleetFixture()
        let writers = 32, perWriter = 10
        let failures = Counter(), refusals = Counter()
        AuditTests.onThreads(writers, perWriter) { writer, index in
            do {
                try fixture.audit.record(AuditDraft(instance: "w\(writer)", target: "test:\(writer)/\(index)", action: "store", phase: .intent))
                let name = "test/w\(writer)/\(index)"
                let stored = try fixture.audit.commit("storing \(name)") { db in
                    _ = try fixture.vault.set(name, to: SecretValue("value \(writer) \(index)"), in: db)
                    // Every fifth write fails after writing: nothing of it may remain.
                    if index % 5 == 4 { try db.execute(sql: "INSERT INTO no_such_table VALUES (1)") }
                    return name
                }
                #expect(stored == name)
            } catch let error as StoreError {
                if error.operation == "storing test/w\(writer)/\(index)", index % 5 == 4 { refusals.increment() } else { failures.increment() }
            } catch {
                failures.increment()
            }
        }
        #expect(failures.value == 0)
        #expect(refusals.value == writers * perWriter / 5)
        let names = Set(try fixture.vault.list().map(\.name))
        #expect(names.count == writers * perWriter * 4 / 5)
        #expect(!names.contains { $0.hasSuffix("/4") || $0.hasSuffix("/9") })
        #expect(try fixture.vault.storedValue("test/w7/3") == SecretValue("value 7 3"))
        // The entries all landed, in one chain, and fewer commits than writes were made.
        let entries = try AuditLog.entries(fixture.store)
        #expect(entries.count == writers * perWriter)
        #expect(try AuditLog.verify(fixture.store, keyring: fixture.keyring).count == Int64(writers * perWriter))
        #expect(Set(entries.map(\.time)).count < entries.count)
        // A queued outcome rides along with a write's commit.
        fixture.audit.recordDeferred(AuditDraft(target: "t:a", action: "applied-a", phase: .applied))
        _ = try fixture.audit.commit("storing one more") { db in try fixture.vault.set("test/last", to: SecretValue("x"), in: db) }
        #expect(try AuditLog.entries(fixture.store).last?.action == "applied-a")
    }

    @Test("a queued entry is committed in order by the next durable one, and flush commits the rest")
    func deferredEntries() throws {
        let fixture = try FleetFixture()
        fixture.audit.recordDeferred(AuditDraft(target: "t:a", action: "applied-a", phase: .applied))
        #expect(try fixture.auditCount() == 0, "not written yet")
        try fixture.audit.record(AuditDraft(target: "t:b", action: "intent-b", phase: .intent))
        #expect(try AuditLog.entries(fixture.store).map(\.action) == ["applied-a", "intent-b"])
        fixture.audit.recordDeferred(AuditDraft(target: "t:c", action: "applied-c", phase: .applied))
        try fixture.audit.flush()
        try fixture.audit.flush()
        #expect(try AuditLog.entries(fixture.store).map(\.action) == ["applied-a", "intent-b", "applied-c"])
        #expect(try AuditLog.verify(fixture.store, keyring: fixture.keyring).count == 3)
    }

    @Test("details are canonical JSON and a secret appears only as its fingerprint")
    func fingerprints() throws {
        let fixture = try FleetFixture()
        let value = SecretValue("xoxe-1-\(UUID().uuidString)")
        let entry = try fixture.audit.record(AuditDraft(target: "secret:x", action: "set", phase: .applied,
                                                        detail: ["b": .int(1), "a": .string(fixture.audit.fingerprint(of: value))]))
        #expect(entry.detail.hasPrefix(#"{"a":"hmac-sha256:"#))
        #expect(!entry.detail.contains(value.revealed))
        #expect(fixture.audit.fingerprint(of: value) == fixture.keyring.fingerprint(of: value))
    }

    @Test("export writes one JSON object per entry, oldest first")
    func export() throws {
        let fixture = try FleetFixture()
        try Self.fill(fixture, count: 30)
        let path = fixture.directory.file("audit.jsonl")
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try AuditLog.export(fixture.store, to: handle)
        try handle.close()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 30)
        let decoded = try lines.map { try JSONDecoder().decode(AuditEntry.self, from: Data($0.utf8)) }
        #expect(try AuditChain.verify(decoded) == 30)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
