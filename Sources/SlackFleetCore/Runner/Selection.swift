import Foundation

/// Which instances a run works on.
public struct Selection: Sendable {
    public var instances: [String] = []
    public var labels: [String: String] = [:]
    public var all = false
    /// This runner's slice of the fleet: the workspaces it owns.
    public var shard: Shard?

    public init() {}

    /// The instances selected from `inventory` that `selecting` accepts (in service, unless a
    /// job says otherwise), grouped by the app they share.
    /// Shards split by workspace (Shard): one workspace's quota and tokens stay on one runner.
    public func groups(of inventory: Inventory, selecting: (Instance) -> Bool = { $0.isActive }) throws -> [Inventory.AppKey: [Instance]] {
        guard all || !instances.isEmpty || !labels.isEmpty else {
            throw FleetError.usage("choose instances: --instance NAME (repeatable), --label key=value, or --all")
        }
        if !instances.isEmpty {
            let known = Set(inventory.instances.map(\.name))
            if let unknown = instances.first(where: { !known.contains($0) }) {
                throw FleetError.usage("no instance named \(unknown) in the inventory: see `slackfleet inventory list`")
            }
        }
        let chosen = inventory.instances.filter { instance in
            selecting(instance)
                && (instances.isEmpty || instances.contains(instance.name))
                && labels.allSatisfy { instance.labels[$0.key] == $0.value }
        }
        let owned = try shard?.owned(inventory.workspaces)
        return Dictionary(grouping: chosen.filter { owned?.contains($0.workspaceID) ?? true }) {
            Inventory.AppKey(workspaceID: $0.workspaceID, appGroup: $0.appGroup)
        }
    }

    /// FNV-1a: the same on every machine and every run, unlike Swift's seeded `hashValue`.
    static func stableHash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }
}

/// `--max-failures N` or `P%`.
public struct FailureBudget: Sendable, Equatable {
    public let count: Int?
    public let percent: Double?

    public init(parsing text: String) throws {
        if text.hasSuffix("%"), let value = Double(text.dropLast()), (0...100).contains(value) {
            count = nil
            percent = value
        } else if let value = Int(text), value >= 0 {
            count = value
            percent = nil
        } else {
            throw FleetError.usage("--max-failures \(text): write a count such as 5 or a share such as 10%")
        }
    }

    /// Whether `failures` out of `total` instances is beyond the budget.
    public func exceeded(failures: Int, total: Int) -> Bool {
        if let count { return failures > count }
        if let percent { return Double(failures) > Double(total) * percent / 100 }
        return false
    }
}
