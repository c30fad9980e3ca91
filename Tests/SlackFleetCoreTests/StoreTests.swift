import Foundation
import GRDB
import SlackFleetCore
import SlackFleetTestSupport
import Testing

@Suite("Store")
struct StoreTests {
    @Test("a new database is mode 0600 whatever the umask, and is never overwritten")
    func createsPrivateFileAndRefusesOverwrite() throws {
        let directory = TemporaryDirectory("store")
        let path = directory.file("fleet.db")
        let previous = umask(0)
        defer { umask(previous) }
        _ = try FleetStore.create(atPath: path)
        #expect(FileSystem.permissions(ofPath: path) == 0o600)
        #expect(throws: FleetError.self) { try FleetStore.create(atPath: path) }
    }

    @Test("opening a missing database says to run init")
    func missingDatabase() {
        let directory = TemporaryDirectory("store")
        #expect {
            try FleetStore.open(atPath: directory.file("nope.db"))
        } throws: { error in
            (error as? FleetError)?.message.contains("slackfleet init") == true && (error as? FleetError)?.exitStatus == .configError
        }
    }

    @Test("a new database has every migration applied, in WAL mode with foreign keys on")
    func migratesFromEmpty() throws {
        let fixture = try FleetFixture()
        let applied = try fixture.store.pool.read { db in try Schema.migrator.appliedIdentifiers(db) }
        #expect(applied == Set(Schema.migrationIdentifiers))
        let (mode, foreignKeys) = try fixture.store.pool.read { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA foreign_keys"))
        }
        #expect(mode == "wal")
        #expect(foreignKeys == 1)
    }

    @Test("the writer syncs every commit to disk (synchronous = FULL), on a new database and when one is opened again")
    func durableCommits() throws {
        let fixture = try FleetFixture()
        // GRDB's pool sets NORMAL when it turns WAL on; FULL must be what the writer keeps.
        #expect(try fixture.store.pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 2)
        let reopened = try FleetStore.open(atPath: fixture.store.path)
        #expect(try reopened.pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 2)
    }

    @Test("a database from each earlier schema version migrates with its data intact")
    func migratesFromEachEarlierVersion() throws {
        for (index, identifier) in Schema.migrationIdentifiers.enumerated().dropLast() {
            let directory = TemporaryDirectory("migrate")
            let path = directory.file("old.db")
            let queue = try DatabaseQueue(path: path)
            try Schema.migrator.migrate(queue, upTo: identifier)
            try queue.write { db in
                try db.execute(sql: """
                    INSERT INTO workspace (id, name, api_url, config_token_ref, refresh_token_ref)
                    VALUES ('T0OLD', 'old', 'https://slack.com/api/', 'secret:a', 'secret:b')
                    """)
            }
            try queue.close()
            let store = try FleetStore.open(atPath: path)
            let applied = try store.pool.read { db in try Schema.migrator.appliedIdentifiers(db) }
            #expect(applied == Set(Schema.migrationIdentifiers), "from version \(index + 1) (\(identifier))")
            let inventory = try InventoryRepository.load(store)
            #expect(inventory.workspaces.map(\.id) == ["T0OLD"])
        }
    }

    @Test("the checkpoint while a run's results print empties the log, and never waits for another process's reader")
    func checkpointEmptiesLogWithoutWaiting() throws {
        let fixture = try FleetFixture()
        let walPath = fixture.store.path + "-wal"
        func walSize() -> Int { (try? FileManager.default.attributesOfItem(atPath: walPath)[.size] as? Int) ?? -1 }
        try fixture.store.write("writing a page") { db in try db.execute(sql: "INSERT INTO run_lock (id, run_id, job, pid, host, started_at, heartbeat_at) VALUES (1, 'r', 'j', 1, 'h', 't', 't')") }
        #expect(walSize() > 0)
        fixture.store.checkpointing {}
        #expect(walSize() == 0)
        #expect(try fixture.store.read("reading") { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM run_lock") } == 1, "nothing lost")

        // Another connection (as another process would) reads the snapshot before the next write.
        var configuration = Configuration()
        configuration.allowsUnsafeTransactions = true
        let other = try DatabaseQueue(path: fixture.store.path, configuration: configuration)
        try other.inDatabase { db in
            try db.execute(sql: "BEGIN")
            _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM run_lock")
        }
        try fixture.store.write("writing again") { db in try db.execute(sql: "DELETE FROM run_lock") }
        let started = Date()
        fixture.store.checkpointing {}
        // The busy timeout is 10 s: waiting for the reader would take all of it.
        #expect(Date().timeIntervalSince(started) < FleetStore.busyTimeout / 2)
        try other.inDatabase { db in try db.execute(sql: "COMMIT") }
        #expect(try fixture.store.read("reading") { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM run_lock") } == 0)
        let busyTimeout = try fixture.store.write("reading the writer's busy timeout") { db in try Int.fetchOne(db, sql: "PRAGMA busy_timeout") }
        #expect(busyTimeout == Int(FleetStore.busyTimeout * 1000), "a later write still waits for others")
    }

    @Test("a failed transaction leaves nothing behind")
    func rollsBack() throws {
        let fixture = try FleetFixture()
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try fixture.store.write("test") { db in
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('a', x'01')")
                throw Boom()
            }
        }
        let count = try fixture.store.read("count") { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM meta WHERE key = 'a'") }
        #expect(count == 0)
    }

    @Test("errors carry the SQLite code, what was being done and the SQL, never the arguments")
    func errorsAreDiagnosableAndRedacted() throws {
        let fixture = try FleetFixture()
        let secret = "xoxe-1-DO-NOT-LEAK-\(UUID().uuidString)"
        try fixture.store.write("seed") { db in try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('k', 'v')") }
        do {
            try fixture.store.write("storing a value") { db in
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, ?)", arguments: ["k", secret])
            }
            Issue.record("expected a constraint failure")
        } catch let error as StoreError {
            let text = error.description
            #expect(text.contains("storing a value"))
            #expect(text.contains("SQLite code 1555"))
            #expect(text.contains("INSERT INTO meta"))
            #expect(!text.contains(secret))
        }
    }

    @Test("many Dispatch workers write and read at once without losing a row")
    func concurrentWriters() throws {
        let fixture = try FleetFixture()
        let workers = 16, perWorker = 50
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for index in 0..<perWorker {
                try? fixture.store.write("insert") { db in
                    try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, x'00')", arguments: ["w\(worker)-\(index)"])
                }
                _ = try? fixture.store.read("read") { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM meta") }
            }
        }
        let count = try fixture.store.read("count") { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM meta WHERE key LIKE 'w%'") }
        #expect(count == workers * perWorker)
    }

    @Test("a second process's writer waits for the first instead of failing")
    func busyTimeoutWaits() throws {
        let fixture = try FleetFixture()
        let other = try FleetStore.open(atPath: fixture.store.path)
        let started = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            try? fixture.store.write("hold the lock") { db in
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('held', x'00')")
                started.signal()
                Thread.sleep(forTimeInterval: 0.3)
            }
            done.signal()
        }
        started.wait()
        try other.write("second writer") { db in try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('second', x'00')") }
        done.wait()
        let keys = try other.read("keys") { db in try String.fetchAll(db, sql: "SELECT key FROM meta WHERE key IN ('held', 'second') ORDER BY key") }
        #expect(keys == ["held", "second"])
    }
}
