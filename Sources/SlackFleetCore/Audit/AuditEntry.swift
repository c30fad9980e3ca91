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
public enum AuditValue: Sendable, Equatable, Codable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case list([AuditValue])
    case object([String: AuditValue])
    case null

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int.self) { self = .int(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([AuditValue].self) { self = .list(value) }
        else { self = .object(try container.decode([String: AuditValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .list(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }
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
        case .string(let text): AuditValue.writeString(text, to: &out)
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
                AuditValue.writeString(key, to: &out)
                out += ":"
                fields[key]?.write(to: &out)
            }
            out += "}"
        }
    }

    private static func writeString(_ text: String, to out: inout String) {
        out += "\""
        // Almost every value needs no escaping: append it whole.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5c }) {
            out += text
            out += "\""
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
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
