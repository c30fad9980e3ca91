import Foundation
import GRDB

/// Makes the stored inventory equal an inventory file: plans the changes, then writes them
/// and their audit entries in one transaction, so an import is all or nothing.
public enum InventoryImporter {
    /// One change to the stored inventory.
    public struct Change: Sendable {
        public enum Action: String, Sendable {
            case create, update, remove
        }

        public let action: Action
        /// `workspace` or `instance`.
        public let kind: String
        public let key: String
        /// For updates: the fields that change.
        public let changedFields: [String]
        /// For an instance's removal: it was given an app's credentials, so it is kept as a
        /// tombstone until `slackfleet retire` retires it.
        public var tombstone = false
        fileprivate let before: [(String, InventoryDocument.Value)]?
        fileprivate let after: [(String, InventoryDocument.Value)]?

        /// The audit target, such as `inventory:instance/prod-us-east`.
        public var target: String { "inventory:\(kind)/\(key)" }
    }

    /// What an import did or, in a dry run, would do.
    public struct Plan: Sendable {
        public var changes: [Change] = []
        public var unchanged = 0
        /// Stored instances or workspaces absent from the file and kept (no `--prune`).
        public var keptAbsent: [String] = []
        /// `secret:` references whose secret is not stored yet.
        public var missingSecrets: [String] = []

        public var isEmpty: Bool { changes.isEmpty }
    }

    /// Computes the changes that make the store equal `inventory`.
    public static func plan(_ inventory: Inventory, store: FleetStore, prune: Bool) throws -> Plan {
        try store.read("planning the import") { db in try plan(inventory, db: db, prune: prune) }
    }

    static func plan(_ inventory: Inventory, db: Database, prune: Bool) throws -> Plan {
        let current = try InventoryRepository.load(db)
        var plan = Plan()
        diff(current.workspaces, inventory.workspaces, kind: "workspace", key: \.id, fields: InventoryDocument.fields(of:), into: &plan)
        // A tombstone is not in the inventory: an instance of its name in the file is created
        // over it (and is in service again).
        diff(current.instances.filter { $0.retirement != .removed }, inventory.instances, kind: "instance", key: \.name,
             fields: InventoryDocument.fields(of:), into: &plan)
        let provisioned = Set(try Row.fetchAll(db, sql: "SELECT DISTINCT workspace_id, app_group FROM app WHERE stage != 'retired'")
            .map { "\($0["workspace_id"] as String)/\($0["app_group"] as String)" })
        let byName = Dictionary(current.instances.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for index in plan.changes.indices where plan.changes[index].kind == "instance" && plan.changes[index].action == .remove {
            if let instance = byName[plan.changes[index].key], provisioned.contains("\(instance.workspaceID)/\(instance.appGroup)") {
                plan.changes[index].tombstone = true
            }
        }
        if !prune {
            let absent = plan.changes.filter { $0.action == .remove }
            plan.keptAbsent = absent.map { "\($0.kind) \($0.key)" }
            plan.changes.removeAll { $0.action == .remove }
        } else {
            // A workspace that still has apps cannot go: its apps would lose their workspace.
            let withApps = Set(try String.fetchAll(db, sql: "SELECT DISTINCT workspace_id FROM app"))
            let blocked = plan.changes.filter { $0.action == .remove && $0.kind == "workspace" && withApps.contains($0.key) }
            plan.keptAbsent = blocked.map { "workspace \($0.key) (it still has Slack apps)" }
            plan.changes.removeAll { change in blocked.contains { $0.key == change.key && $0.kind == change.kind } }
        }
        let stored = Set(try String.fetchAll(db, sql: "SELECT name FROM secret"))
        var references: [SecretReference] = inventory.workspaces.flatMap { [$0.configToken, $0.refreshToken] + ($0.botToken.map { [$0] } ?? []) }
        for instance in inventory.instances {
            references.append(instance.apiKey)
            if case .operatorV2(let target) = instance.registrar { references.append(target.token) }
            if case .operatorV1(let target) = instance.registrar { references.append(target.token) }
        }
        var missing: Set<String> = []
        for case .stored(let name) in references where !stored.contains(name) { missing.insert(name) }
        plan.missingSecrets = missing.sorted()
        return plan
    }

    private static func diff<T: Equatable>(_ old: [T], _ new: [T], kind: String, key: (T) -> String,
                                fields: (T) -> [(String, InventoryDocument.Value)], into plan: inout Plan) {
        let oldByKey = Dictionary(old.map { (key($0), $0) }, uniquingKeysWith: { first, _ in first })
        var seen: Set<String> = []
        for item in new {
            let name = key(item)
            seen.insert(name)
            guard let existing = oldByKey[name] else {
                plan.changes.append(Change(action: .create, kind: kind, key: name, changedFields: [], before: nil, after: fields(item)))
                continue
            }
            if existing == item {
                plan.unchanged += 1
                continue
            }
            let after = fields(item)
            let before = fields(existing)
            let beforeMap = Dictionary(before, uniquingKeysWith: { first, _ in first })
            let afterMap = Dictionary(after, uniquingKeysWith: { first, _ in first })
            let changed = Set(beforeMap.keys).union(afterMap.keys).filter { beforeMap[$0] != afterMap[$0] }.sorted()
            if changed.isEmpty {
                plan.unchanged += 1
            } else {
                plan.changes.append(Change(action: .update, kind: kind, key: name, changedFields: changed, before: before, after: after))
            }
        }
        for item in old where !seen.contains(key(item)) {
            plan.changes.append(Change(action: .remove, kind: kind, key: key(item), changedFields: [], before: fields(item), after: nil))
        }
    }

    /// Imports `inventory`: every change and its audit entry in one transaction.
    @discardableResult
    /// `shard`: the database is made for that shard (recorded with the import); the caller
    /// passes that shard's slice of the file (Shard.slice).
    public static func apply(_ inventory: Inventory, store: FleetStore, audit: AuditLog, prune: Bool, shard: Shard? = nil) throws -> Plan {
        try store.write("importing the inventory") { db in
            try shard?.record(in: db)
            let plan = try plan(inventory, db: db, prune: prune)
            let workspaces = Dictionary(inventory.workspaces.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            let instances = Dictionary(inventory.instances.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            // Order matters for the foreign keys: workspaces in, instances in and out, workspaces out.
            let ordered = plan.changes.filter { $0.kind == "workspace" && $0.action != .remove }
                + plan.changes.filter { $0.kind == "instance" }
                + plan.changes.filter { $0.kind == "workspace" && $0.action == .remove }
            let tombstones = Set(try String.fetchAll(db, sql: "SELECT name FROM instance WHERE retirement = ?", arguments: [Retirement.removed.rawValue]))
            for change in ordered {
                switch (change.kind, change.action) {
                case ("workspace", .remove):
                    _ = try WorkspaceRecord.deleteOne(db, key: change.key)
                case ("workspace", .create):
                    if let workspace = workspaces[change.key] { try WorkspaceRecord(workspace).insert(db) }
                case ("workspace", _):
                    if let workspace = workspaces[change.key] { try WorkspaceRecord(workspace).update(db) }
                case ("instance", .remove):
                    if change.tombstone {
                        try db.execute(sql: "UPDATE instance SET retirement = 'removed' WHERE name = ?", arguments: [change.key])
                    } else {
                        _ = try InstanceRecord.deleteOne(db, key: change.key)
                    }
                case ("instance", .create):
                    // Over a tombstone, the row is there already: update it (back in service).
                    // Otherwise insert, one statement (save's update-then-insert made a first
                    // import of 10,000 instances 0.8 s slower).
                    if let instance = instances[change.key] {
                        if tombstones.contains(change.key) { try InstanceRecord(instance).update(db) } else { try InstanceRecord(instance).insert(db) }
                    }
                default:
                    if let instance = instances[change.key] { try InstanceRecord(instance).update(db) }
                }
            }
            try audit.append(ordered.map { auditDraft($0, audit: audit) }, in: db)
            return plan
        }
    }

    /// Removes one instance, audited: an instance whose app group has an app is kept as a
    /// tombstone until `retire` retires it. Returns whether it was.
    @discardableResult
    public static func remove(instance name: String, store: FleetStore, audit: AuditLog) throws -> Bool {
        try store.write("removing instance \(name)") { db in
            guard let record = try InstanceRecord.fetchOne(db, key: name), record.retirement != Retirement.removed.rawValue else {
                throw FleetError.data("no instance named \(name): see `slackfleet inventory list`")
            }
            let instance = try record.instance()
            let fields = InventoryDocument.fields(of: instance)
            var change = Change(action: .remove, kind: "instance", key: name, changedFields: [], before: fields, after: nil)
            change.tombstone = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM app WHERE workspace_id = ? AND app_group = ? AND stage != 'retired')",
                                                 arguments: [instance.workspaceID, instance.appGroup]) ?? false
            if change.tombstone {
                try db.execute(sql: "UPDATE instance SET retirement = 'removed' WHERE name = ?", arguments: [name])
            } else {
                _ = try InstanceRecord.deleteOne(db, key: name)
            }
            try audit.append([auditDraft(change, audit: audit)], in: db)
            return change.tombstone
        }
    }

    private static func auditDraft(_ change: Change, audit: AuditLog) -> AuditDraft {
        var detail: [String: JSON] = [:]
        switch change.action {
        case .create:
            detail["after"] = auditValue(.fields(change.after ?? []), audit: audit)
        case .remove:
            detail["before"] = auditValue(.fields(change.before ?? []), audit: audit)
            if change.tombstone { detail["kept_until_retired"] = .bool(true) }
        case .update:
            let before = Dictionary(change.before ?? [], uniquingKeysWith: { first, _ in first })
            let after = Dictionary(change.after ?? [], uniquingKeysWith: { first, _ in first })
            var changed: [String: JSON] = [:]
            for field in change.changedFields {
                changed[field] = .object([
                    "before": before[field].map { auditValue($0, audit: audit) } ?? .null,
                    "after": after[field].map { auditValue($0, audit: audit) } ?? .null,
                ])
            }
            detail["changed"] = .object(changed)
        }
        return AuditDraft(instance: change.kind == "instance" ? change.key : nil, target: change.target,
                          action: change.action.rawValue, phase: .applied, detail: detail)
    }

    /// The audit form of a field. An `exec:` reference's command may embed a credential, so
    /// only its fingerprint is logged.
    private static func auditValue(_ value: InventoryDocument.Value, audit: AuditLog) -> JSON {
        switch value {
        case .text(let text):
            if text.hasPrefix("exec:") { return .string("exec:(command not logged, \(audit.fingerprint(of: SecretValue(text))))") }
            return .string(text)
        case .bool(let flag):
            return .bool(flag)
        case .list(let items):
            return .list(items.map { auditValue($0, audit: audit) })
        case .fields(let fields):
            return .object(Dictionary(fields.map { ($0.0, auditValue($0.1, audit: audit)) }, uniquingKeysWith: { first, _ in first }))
        }
    }
}
