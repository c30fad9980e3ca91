import Foundation
import GRDB

/// The one door to the outside world for anything that mutates.
///
/// For each change it writes the audit intent (durable before the call), performs the call,
/// and writes the outcome (`applied` or `failed`). In a dry run it records the change as
/// `planned` and performs nothing. Jobs never write audit entries themselves, so none can forget.
public final class ChangeExecutor: @unchecked Sendable {
    /// A change to make: what, to which target, with a redacted before/after.
    public struct Change: Sendable {
        public let target: String
        public let action: String
        public let detail: [String: JSON]
        /// A line for people, such as `create Slack app "W&B alerts prod" with 3 redirect URLs`.
        public let summary: String

        public init(target: String, action: String, summary: String, detail: [String: JSON] = [:]) {
            self.target = target
            self.action = action
            self.summary = summary
            self.detail = detail
        }
    }

    public let audit: AuditLog
    public let dryRun: Bool
    public let control: RunControl
    private let lock = NSLock()
    private var plannedChanges: [String: [Change]] = [:]
    /// Intents written whose outcome is not queued yet.
    private var openIntents = 0

    public init(audit: AuditLog, dryRun: Bool, control: RunControl) {
        self.audit = audit
        self.dryRun = dryRun
        self.control = control
    }

    /// One change of a sequence, and the call that makes it.
    public struct Step {
        public let change: Change
        public let body: () throws -> Void

        public init(_ change: Change, _ body: @escaping () throws -> Void) {
            self.change = change
            self.body = body
        }
    }

    /// Performs `change` for `instance` (nil for a change to an app as a whole): intent, call,
    /// outcome. Returns the call's result, or nil in a dry run. No change starts once the run
    /// has been asked to stop.
    @discardableResult
    public func perform<T>(_ change: Change, instance: String?, _ body: () throws -> T) throws -> T? {
        guard let ids = try recordIntents([change], instance: instance) else { return nil }
        defer { lock.withLock { openIntents -= 1 } }
        return try call(change, id: ids[0], instance: instance, body)
    }

    /// Performs `steps` in order for `instance`, each depending on the ones before it (write a
    /// Secret, then restart what reads it): the intents of all are durable, in one commit, before
    /// the first call, and each step's outcome follows its call. When a step fails, the ones after
    /// it are recorded as failed without being attempted, and its error is thrown. A dry run
    /// plans every step and performs none.
    public func perform(_ steps: [Step], instance: String?) throws {
        guard let ids = try recordIntents(steps.map(\.change), instance: instance) else { return }
        for (index, step) in steps.enumerated() {
            do {
                defer { lock.withLock { openIntents -= 1 } }
                try call(step.change, id: ids[index], instance: instance, step.body)
            } catch {
                for (later, id) in zip(steps[(index + 1)...], ids[(index + 1)...]) {
                    audit.recordDeferred(AuditDraft(instance: instance, target: later.change.target, action: later.change.action, phase: .failed,
                                                    detail: ["change_id": .string(id), "error": .string("not attempted: \(step.change.summary) failed before it")]))
                    lock.withLock { openIntents -= 1 }
                }
                throw error
            }
        }
    }

    /// Makes the intents of `changes` durable, in one commit, and returns their change IDs; in a
    /// dry run records them as planned and returns nil.
    private func recordIntents(_ changes: [Change], instance: String?) throws -> [String]? {
        func draft(_ change: Change, _ phase: AuditPhase, _ id: String?) -> AuditDraft {
            var detail = change.detail
            detail["summary"] = .string(change.summary)
            if let id { detail["change_id"] = .string(id) }
            return AuditDraft(instance: instance, target: change.target, action: change.action, phase: phase, detail: detail)
        }
        if dryRun {
            lock.withLock { plannedChanges[instance ?? "", default: []].append(contentsOf: changes) }
            try audit.record(changes.map { draft($0, .planned, nil) })
            return nil
        }
        if let stop = control.stop { throw RunControl.Interrupted(reason: stop) }
        let ids = changes.map { _ in RandomID.uuid() }
        try audit.record(zip(changes, ids).map { draft($0, .intent, $1) })
        lock.withLock { openIntents += changes.count }
        return ids
    }

    /// Makes one change's call, its intent written; queues its outcome. The outcome rides along
    /// with the next commit (see AuditLog.recordDeferred); the run flushes the log before it ends.
    private func call<T>(_ change: Change, id: String, instance: String?, _ body: () throws -> T) throws -> T {
        let kind = change.target.split(separator: ":").first.map(String.init) ?? ""
        CrashPoint.reach("before:\(change.action):\(kind)")
        do {
            let result = try body()
            CrashPoint.reach("after:\(change.action):\(kind)")
            audit.recordDeferred(AuditDraft(instance: instance, target: change.target, action: change.action, phase: .applied,
                                            detail: ["change_id": .string(id)]))
            return result
        } catch {
            audit.recordDeferred(AuditDraft(instance: instance, target: change.target, action: change.action, phase: .failed,
                                            detail: ["change_id": .string(id), "error": .string(ChangeExecutor.describe(error))]))
            throw error
        }
    }

    /// Records an outcome found later for an intent (a create whose answer was lost, a crash).
    public func recordRecovered(target: String, action: String, instance: String?, changeID: String, found: String) throws {
        try audit.record(AuditDraft(instance: instance, target: target, action: action, phase: .recovered,
                                    detail: ["change_id": .string(changeID), "found": .string(found)]))
    }

    /// Whether every intent this executor wrote has its outcome queued (`AuditLog.flush` then
    /// makes them durable): true unless a change is still in progress.
    public var everyIntentHasOutcome: Bool {
        lock.withLock { openIntents == 0 }
    }

    /// The changes a dry run planned, by instance ("" for app-wide changes).
    public var planned: [String: [Change]] {
        lock.lock()
        defer { lock.unlock() }
        return plannedChanges
    }

    /// A failure as the audit log and reports show it: never a secret.
    public static func describe(_ error: any Error) -> String {
        switch error {
        case let error as SlackAPIError: return error.description
        case let error as ServiceError: return error.description
        case let error as TransportError: return error.description
        case let error as any DescribedError: return error.message
        case let error as RunControl.Interrupted where error.reason == .groupTimeout:
            return "gave up: the app group's work took longer than the job's group_timeout_seconds"
        case let error as RunControl.Interrupted: return error.description
        default: return String("\(error)".prefix(300))
        }
    }
}

/// An intent a crash left without an outcome.
public struct UnfinishedChange: Sendable {
    public let entry: AuditEntry
    public let changeID: String
}

extension AuditLog {
    static let resolvedThroughMetaKey = "audit_resolved_through"

    /// Intents that have no outcome: the run that wrote them died before knowing what happened.
    /// Only intents after the last run's mark are read (see `resolvedThrough`), so a run's start
    /// does not grow with the log's whole history.
    public static func unfinishedChanges(_ store: FleetStore) throws -> [UnfinishedChange] {
        try store.read("finding unfinished changes") { db in
            let sql = """
                SELECT intent.* FROM audit_entry AS intent
                WHERE intent.phase = 'intent' AND intent.seq > ?
                  AND NOT EXISTS (
                    SELECT 1 FROM audit_entry AS outcome
                    WHERE outcome.seq > intent.seq AND outcome.phase IN ('applied', 'failed', 'recovered')
                      AND json_extract(outcome.detail, '$.change_id') = json_extract(intent.detail, '$.change_id'))
                ORDER BY intent.seq
                """
            return try AuditEntry.fetchAll(db, sql: sql, arguments: [try resolvedThrough(db)]).compactMap { entry in
                guard let data = entry.detail.data(using: .utf8), let id = (try? JSON.parse(data))?["change_id"]?.stringValue else { return nil }
                return UnfinishedChange(entry: entry, changeID: id)
            }
        }
    }

    /// The sequence number through which every intent has its outcome: written when a run ends,
    /// as the log's head right after that run's recovery. Only runs write intents, and only while
    /// they hold the run lock, so nothing at or before it can be unfinished. 0 when never written.
    static func resolvedThrough(_ db: Database) throws -> Int64 {
        try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [resolvedThroughMetaKey]).flatMap { Int64($0) } ?? 0
    }

    /// Records that every intent through `seq` has its outcome, inside the caller's transaction.
    static func markResolved(through seq: Int64, in db: Database) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", arguments: [resolvedThroughMetaKey, String(seq)])
    }

    /// The sequence number of the log's last entry (0 when empty).
    static func headSeq(_ store: FleetStore) throws -> Int64 {
        try store.read("reading the audit log's head") { db in try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM audit_entry") ?? 0 }
    }
}
