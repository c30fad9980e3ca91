import Foundation
import GRDB

/// The current app of every group, read once in one query (after the run's recovery), for a job
/// that never changes which app is current (sync-redirects) or that only adds one where there
/// was none, each group by its own worker (provision-app). A read per group was a tenth of a
/// converged run's CPU time.
public final class CurrentApps: @unchecked Sendable {
    private let lock = NSLock()
    private var apps: [String: App]?
    private var run = ""

    public init() {}

    /// The group's current app as it was when run `run` first asked (a job value used for a
    /// second run reads again).
    public func app(workspaceID: String, appGroup: String, store: FleetStore, run: String) throws -> App? {
        lock.lock()
        defer { lock.unlock() }
        return try loaded(store, run: run)[workspaceID + "\u{0}" + appGroup]
    }

    /// Reads every group's app now, if run `run` has not yet (FleetJob.prepare).
    public func load(store: FleetStore, run: String) throws {
        lock.lock()
        defer { lock.unlock() }
        _ = try loaded(store, run: run)
    }

    private func loaded(_ store: FleetStore, run runID: String) throws -> [String: App] {
        if let apps, run == runID { return apps }
        let byGroup = try store.read("reading the apps") { db in
            var byGroup: [String: App] = [:]
            for app in try App.fetchAll(db, sql: "SELECT * FROM app WHERE stage = ? ORDER BY generation", arguments: [AppStage.current.rawValue]) {
                byGroup[app.workspaceID + "\u{0}" + app.appGroup] = app  // the highest generation wins
            }
            return byGroup
        }
        (apps, run) = (byGroup, runID)
        return byGroup
    }
}
