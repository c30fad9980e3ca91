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
        let instances = try InstanceRecord.order(Column("name")).fetchAll(db).map { try $0.instance() }
        return Inventory(workspaces: workspaces, instances: instances)
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
