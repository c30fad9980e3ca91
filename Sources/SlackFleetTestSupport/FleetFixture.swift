import Foundation
import SlackFleetCore

/// A fresh fleet database with its key, an audit log and a vault, in a temporary directory.
public final class FleetFixture: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let store: FleetStore
    public let masterKey: MasterKey
    public let keyring: Keyring
    public let audit: AuditLog
    public let vault: SecretVault

    public init(command: String = "test", environment: [String: String] = [:]) throws {
        directory = TemporaryDirectory("fleet")
        store = try FleetStore.create(atPath: directory.file("fleet.db"))
        masterKey = MasterKey.generate()
        keyring = try Keyring.open(store, masterKey: masterKey)
        audit = AuditLog(store: store, keyring: keyring, context: AuditContext(command: command))
        vault = SecretVault(store: store, keyring: keyring, environment: environment)
    }

    /// Reads an inventory text as `inventory import` would.
    public func read(_ text: String, file: String = "fleet.yaml") throws -> Inventory {
        try InventoryReader(file: file).read(Data(text.utf8)).inventory
    }

    /// Imports an inventory text.
    @discardableResult
    public func importInventory(_ text: String, prune: Bool = false) throws -> InventoryImporter.Plan {
        try InventoryImporter.apply(try read(text), store: store, audit: audit, prune: prune)
    }

    /// The number of audit entries.
    public func auditCount() throws -> Int {
        try AuditLog.entries(store).count
    }
}
