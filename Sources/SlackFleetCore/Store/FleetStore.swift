import Foundation
import GRDB

/// The SQLite database that holds a fleet's inventory, encrypted secrets, apps and audit log.
///
/// One `FleetStore` is shared by every worker of a run: GRDB's `DatabasePool` (WAL mode)
/// lets them read concurrently while writes are serialized, and the `busy_timeout` makes a
/// second process wait for the writer rather than fail.
public final class FleetStore: Sendable {
    /// The path of the database file.
    public let path: String
    /// The underlying connection pool; exposed for the modules of this library.
    public let pool: DatabasePool

    /// How long a writer waits for another process's write transaction before giving up.
    public static let busyTimeout: TimeInterval = 10

    private init(path: String, pool: DatabasePool) {
        self.path = path
        self.pool = pool
    }

    /// Creates a new database at `path` with mode 0600, refusing to overwrite an existing one.
    public static func create(atPath path: String) throws -> FleetStore {
        if FileSystem.exists(path) {
            throw FleetError.config("\(path) already exists; refusing to overwrite it (use another --database, or remove it yourself)")
        }
        // Create the file ourselves so it is 0600 whatever the umask; SQLite gives its
        // -wal and -shm files the same mode as the database file.
        try FileSystem.createPrivateFile(atPath: path, contents: Data())
        return try open(path: path)
    }

    /// Opens an existing database at `path` and migrates it to the current schema.
    public static func open(atPath path: String) throws -> FleetStore {
        guard FileSystem.exists(path) else {
            throw FleetError.config("no database at \(path): run `slackfleet init` first, or pass --database (or set SLACKFLEET_DB)")
        }
        return try open(path: path)
    }

    private static func open(path: String) throws -> FleetStore {
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.foreignKeysEnabled = true
        configuration.label = "slackfleet"
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // Durable commits: an audit intent, or the credentials Slack shows only once, must be
            // on disk before anything depends on them. Set here, on the writer, after the pool is
            // open: GRDB's pool sets `synchronous = NORMAL` when it turns WAL on, after
            // `prepareDatabase` has run, so a setting made there does not last.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        } catch {
            throw StoreError(error, while: "opening the database \(path)")
        }
        let store = FleetStore(path: path, pool: pool)
        do {
            try Schema.migrator.migrate(pool)
        } catch {
            throw StoreError(error, while: "migrating the database \(path) to the current schema")
        }
        return store
    }

    /// Runs `body` in one write transaction; every change in it commits or none does.
    public func write<T>(_ what: @autoclosure () -> String, _ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.write(body)
        } catch let error as DatabaseError {
            throw StoreError(error, while: what())
        }
    }

    /// Runs `work` (such as printing a run's results) while another thread copies the pages
    /// committed to the write-ahead log into the database file and empties the log. Closing the
    /// database at exit otherwise does the same after the work: two syncs and the removal of a
    /// log of a few hundred kilobytes.
    ///
    /// The checkpoint never waits for another process: one reading an older snapshot (or
    /// writing) would hold it for the busy timeout. It then copies what it can, and the close
    /// does the rest, as it always did.
    public func checkpointing<T>(while work: () throws -> T) rethrows -> T {
        let done = DispatchGroup()
        DispatchQueue.global().async(group: done) { [pool] in
            _ = try? pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA busy_timeout = 0")
                defer { try? db.execute(sql: "PRAGMA busy_timeout = \(Int(FleetStore.busyTimeout * 1000))") }
                try db.checkpoint(.truncate)
            }
        }
        defer { done.wait() }
        return try work()
    }

    /// Runs `body` on a read-only snapshot of the database.
    public func read<T>(_ what: @autoclosure () -> String, _ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.read(body)
        } catch let error as DatabaseError {
            throw StoreError(error, while: what())
        }
    }
}
