import Foundation
import GRDB

/// Where an audit entry stands in the life of one change.
public enum AuditPhase: String, Codable, Sendable, CaseIterable {
    /// About to be attempted; written durably before the change.
    case intent
    /// Done, as far as the far side said.
    case applied
    /// Attempted and refused or failed.
    case failed
    /// An intent left without an outcome by a crash, resolved on a later run.
    case recovered
    /// What a dry run would do; nothing was attempted.
    case planned
    /// Something a person did that SlackFleet saw (a Slack integration connected); SlackFleet
    /// changed nothing.
    case observed
}

/// A change to record, before the log gives it a place in the chain.
public struct AuditDraft: Sendable {
    public var instance: String?
    /// What was changed, as `kind:path`: `slack:app/A123`, `k8s:secret/ns/name`, `inventory:instance/x`.
    public var target: String
    /// The verb: `create`, `update`, `remove`, `set`, `rekey`...
    public var action: String
    public var phase: AuditPhase
    /// Before and after, redacted: secrets only as fingerprints.
    public var detail: [String: JSON]

    public init(instance: String? = nil, target: String, action: String, phase: AuditPhase, detail: [String: JSON] = [:]) {
        self.instance = instance
        self.target = target
        self.action = action
        self.phase = phase
        self.detail = detail
    }
}

/// Who is making changes: one command invocation.
public struct AuditContext: Sendable {
    /// A fresh identifier per invocation, shared by every entry it writes.
    public let runID: String
    /// `user@host` of the process.
    public let actor: String
    /// The command or job, such as `inventory import` or `provision-app`.
    public let command: String

    public init(runID: String = UUID().uuidString.lowercased(), actor: String = AuditContext.currentActor(), command: String) {
        self.runID = runID
        self.actor = actor
        self.command = command
    }

    /// The operating-system user and host running this process.
    public static func currentActor() -> String {
        let user = ProcessInfo.processInfo.environment["USER"] ?? ProcessInfo.processInfo.userName
        return "\(user.isEmpty ? "uid\(getuid())" : user)@\(ProcessInfo.processInfo.hostName)"
    }
}

/// One entry of the append-only, hash-chained audit log.
public struct AuditEntry: Sendable, Equatable, Codable, FetchableRecord, TableRecord {
    public static let databaseTableName = "audit_entry"

    public var seq: Int64
    public var time: String
    public var runID: String
    public var actor: String
    public var command: String
    public var instance: String?
    public var target: String
    public var action: String
    public var phase: String
    /// The detail as canonical JSON (sorted keys), exactly as hashed.
    public var detail: String
    public var prevHash: String
    public var hash: String

    enum CodingKeys: String, CodingKey {
        case seq, time
        case runID = "run_id"
        case actor, command, instance, target, action, phase, detail
        case prevHash = "prev_hash"
        case hash
    }

    /// The hash this entry must carry, given its fields and its predecessor's hash.
    ///
    /// SHA-256 over every field, each prefixed with its UTF-8 length so no two different
    /// entries share an encoding, then the previous hash.
    public var computedHash: String {
        AuditChain.hash(of: self)
    }
}

extension AuditEntry {
    /// Read column by column: GRDB's Decodable path costs several times more, and `audit verify`
    /// reads every entry.
    public init(row: Row) throws {
        seq = try row.decode(forColumn: "seq")
        time = try row.decode(forColumn: "time")
        runID = try row.decode(forColumn: "run_id")
        actor = try row.decode(forColumn: "actor")
        command = try row.decode(forColumn: "command")
        instance = try row.decode(forColumn: "instance")
        target = try row.decode(forColumn: "target")
        action = try row.decode(forColumn: "action")
        phase = try row.decode(forColumn: "phase")
        detail = try row.decode(forColumn: "detail")
        prevHash = try row.decode(forColumn: "prev_hash")
        hash = try row.decode(forColumn: "hash")
    }

    /// Inserts the entry with one cached statement: GRDB's Encodable insert cost several times
    /// more, for every entry of every run.
    func append(to db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT INTO audit_entry (seq, time, run_id, actor, command, instance, target, action, phase, detail, prev_hash, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [seq, time, runID, actor, command, instance, target, action, phase, detail, prevHash, hash])
    }
}
