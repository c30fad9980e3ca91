import Foundation
import GRDB

/// Reads the stored inventory.
public enum InventoryRepository {
    /// Every workspace and instance, ordered by id and name.
    public static func load(_ store: FleetStore) throws -> Inventory {
        try store.read("reading the inventory") { db in try load(db) }
    }

    static func load(_ db: Database) throws -> Inventory {
        let workspaces = try WorkspaceRecord.order(Column("id")).fetchAll(db).map { try $0.workspace() }
        let instances = try InventoryRepository.instances(InstanceRecord.order(Column("name")).fetchAll(db))
        return Inventory(workspaces: workspaces, instances: instances)
    }

    /// The records' instances, in order; the first record in error throws. A large inventory is
    /// converted in two halves at once: every run reads it before its first request.
    static func instances(_ records: [InstanceRecord]) throws -> [Instance] {
        guard records.count >= 256 else { return try records.map { try $0.instance() } }
        let halves = [records[..<(records.count / 2)], records[(records.count / 2)...]]
        let converted = OrderedResults<Result<[Instance], any Error>>(count: 2)
        DispatchQueue.concurrentPerform(iterations: 2) { half in
            converted.set(half, Result { try halves[half].map { try $0.instance() } })
        }
        return try converted.all().flatMap { try $0.get() }
    }

    /// One instance by name, or nil.
    public static func instance(named name: String, in store: FleetStore) throws -> Instance? {
        try store.read("reading instance \(name)") { db in try InstanceRecord.fetchOne(db, key: name)?.instance() }
    }

    /// Instances whose labels include every pair of `labels`.
    public static func instances(matching labels: [String: String], in store: FleetStore) throws -> [Instance] {
        try load(store).instances.filter { instance in labels.allSatisfy { instance.labels[$0.key] == $0.value } }
    }
}

/// The stored inventory, read on another thread from its creation: every run reads all of it
/// before its first request, so a run starts the read as soon as its database is open.
public final class InventoryRead: Sendable {
    /// The database read.
    let store: FleetStore
    private let pending: Pending<Inventory>

    public init(_ store: FleetStore) {
        self.store = store
        pending = Pending { try InventoryRepository.load(store) }
    }

    /// The inventory, once read (or the read's error).
    public func inventory() throws -> Inventory {
        try pending.value()
    }
}
