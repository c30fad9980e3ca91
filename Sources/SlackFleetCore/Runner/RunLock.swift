import Foundation
import GRDB

/// One run at a time per database: a row that names its holder, refreshed by a heartbeat.
///
/// A second run exits 75 at once, naming the holder. A lock whose holder is gone (same host and
/// its pid is dead, or no heartbeat for two minutes) is taken over.
public final class RunLock: @unchecked Sendable {
    public static let staleAfter: TimeInterval = 120
    private let store: FleetStore
    private let runID: String
    private var heartbeat: DispatchSourceTimer?
    private var released = false

    private init(store: FleetStore, runID: String) {
        self.store = store
        self.runID = runID
    }

    /// Takes the lock or throws a temporary failure naming who holds it. Also returns a note
    /// when a dead holder's lock was taken over.
    public static func acquire(_ store: FleetStore, runID: String, job: String) throws -> (lock: RunLock, tookOver: String?) {
        let host = ProcessInfo.processInfo.hostName
        let pid = Int(getpid())
        let tookOver: String? = try store.write("taking the run lock") { db in
            var note: String?
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM run_lock WHERE id = 1") {
                let holderHost: String = row["host"], holderPID: Int = row["pid"], started: String = row["started_at"]
                let heartbeat = Timestamp.parse(row["heartbeat_at"]) ?? .distantPast
                let dead = (holderHost == host && kill(pid_t(holderPID), 0) != 0 && errno == ESRCH)
                    || Date().timeIntervalSince(heartbeat) > staleAfter
                guard dead else {
                    throw FleetError.temporary("another run holds this database: \(row["job"] as String) (run \(row["run_id"] as String)), pid \(holderPID) on \(holderHost), since \(started); try again when it ends")
                }
                note = "took over the lock of \(row["job"] as String) run \(row["run_id"] as String) (pid \(holderPID) on \(holderHost), since \(started)), which is no longer running"
                try db.execute(sql: "DELETE FROM run_lock WHERE id = 1")
            }
            let now = Timestamp.now()
            try db.execute(sql: "INSERT INTO run_lock (id, run_id, job, pid, host, started_at, heartbeat_at) VALUES (1, ?, ?, ?, ?, ?, ?)",
                           arguments: [runID, job, pid, host, now, now])
            return note
        }
        let lock = RunLock(store: store, runID: runID)
        lock.startHeartbeat()
        return (lock, tookOver)
    }

    private func startHeartbeat() {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "slackfleet.run-lock"))
        timer.schedule(deadline: .now() + 15, repeating: 15)
        let store = store, runID = runID
        timer.setEventHandler {
            _ = try? store.write("refreshing the run lock") { db in
                try db.execute(sql: "UPDATE run_lock SET heartbeat_at = ? WHERE id = 1 AND run_id = ?", arguments: [Timestamp.now(), runID])
            }
        }
        timer.resume()
        heartbeat = timer
    }

    /// Gives the lock up (nothing to do once `release(with:_:)` has).
    public func release() {
        heartbeat?.cancel()
        heartbeat = nil
        guard !released else { return }
        _ = try? store.write("releasing the run lock") { db in
            try db.execute(sql: "DELETE FROM run_lock WHERE id = 1 AND run_id = ?", arguments: [runID])
        }
        released = true
    }

    /// Gives the lock up in the transaction that makes `body`'s writes (a run's last record), so
    /// both cost one commit. If that transaction fails, the lock is still held and `release()`
    /// gives it up.
    public func release<T>(with what: @autoclosure () -> String, _ body: (Database) throws -> T) throws -> T {
        heartbeat?.cancel()
        heartbeat = nil
        let value = try store.write(what()) { db in
            let value = try body(db)
            try db.execute(sql: "DELETE FROM run_lock WHERE id = 1 AND run_id = ?", arguments: [runID])
            return value
        }
        released = true
        return value
    }
}
