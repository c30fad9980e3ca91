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
}

/// A detail value: what an audit entry may hold. There is deliberately no case for a secret:
/// a secret enters the log only as its fingerprint.
public enum AuditValue: Sendable, Equatable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case list([AuditValue])
    case object([String: AuditValue])
    case null
}

extension AuditValue {
    /// Compact JSON with keys sorted, as stored and hashed: one value has one encoding.
    public var canonicalJSON: String {
        var out = ""
        write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .string(let text): JSONText.appendQuoted(text, to: &out)
        case .int(let number): out += String(number)
        case .bool(let flag): out += flag ? "true" : "false"
        case .null: out += "null"
        case .list(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (index, key) in fields.keys.sorted().enumerated() {
                if index > 0 { out += "," }
                JSONText.appendQuoted(key, to: &out)
                out += ":"
                fields[key]?.write(to: &out)
            }
            out += "}"
        }
    }
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
    public var detail: [String: AuditValue]

    public init(instance: String? = nil, target: String, action: String, phase: AuditPhase, detail: [String: AuditValue] = [:]) {
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
public struct AuditEntry: Sendable, Equatable, Codable, FetchableRecord, PersistableRecord {
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
