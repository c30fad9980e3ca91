import Foundation
import GRDB

/// One runner's slice of a fleet: a set of workspaces, each owned by exactly one shard.
///
/// A workspace is the unit because Slack's quotas and configuration tokens are per workspace:
/// two runners writing to one workspace would share (and together exceed) its Tier 1 quota, and
/// the first to rotate its single-use refresh token would leave the other's dead. A workspace's
/// shard is its inventory `runner:` when given (pinning it), else a stable hash of its team ID.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    /// 1-based.
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    public var description: String { "\(index)/\(count)" }

    /// `--shard K/N`, or JOB_COMPLETION_INDEX (0-based, from a Kubernetes Indexed Job) with `--shards N`.
    public static func parse(_ text: String?, shards: Int?, environment: [String: String]) throws -> Shard? {
        if let text {
            let parts = text.split(separator: "/").map { Int($0) }
            guard parts.count == 2, let index = parts[0], let count = parts[1], count >= 1, (1...count).contains(index) else {
                throw FleetError.usage("--shard \(text): write it as K/N with 1 <= K <= N, such as --shard 2/4")
            }
            return Shard(index: index, count: count)
        }
        if let shards {
            guard shards >= 1, let raw = environment["JOB_COMPLETION_INDEX"], let index = Int(raw), (0..<shards).contains(index) else {
                throw FleetError.usage("--shards \(shards) needs JOB_COMPLETION_INDEX between 0 and \(shards - 1) (set by a Kubernetes Indexed Job), or use --shard K/N")
            }
            return Shard(index: index + 1, count: shards)
        }
        return nil
    }

    /// The shard that owns `workspace` when the fleet is split `count` ways.
    public static func owner(of workspace: Workspace, count: Int) -> Int {
        if let runner = workspace.runner { return runner }
        return Int(Selection.stableHash(workspace.id) % UInt64(max(count, 1))) + 1
    }

    public func owns(_ workspace: Workspace) -> Bool {
        Shard.owner(of: workspace, count: count) == index
    }

    /// The workspaces of `inventory` this shard owns, checking every pin: a `runner:` beyond the
    /// shard count would belong to no shard.
    public func owned(_ workspaces: [Workspace]) throws -> Set<String> {
        if let stray = workspaces.first(where: { ($0.runner ?? 1) > count }) {
            throw FleetError.config("workspace \(stray.id) has runner: \(stray.runner ?? 0), but the fleet is split into \(count) shard(s): pin it to 1-\(count), or split it into more")
        }
        return Set(workspaces.filter(owns).map(\.id))
    }

    /// This shard's part of `inventory`: its workspaces and their instances.
    public func slice(_ inventory: Inventory) throws -> Inventory {
        let owned = try self.owned(inventory.workspaces)
        var slice = inventory
        slice.workspaces = inventory.workspaces.filter { owned.contains($0.id) }
        slice.instances = inventory.instances.filter { owned.contains($0.workspaceID) }
        return slice
    }

    /// The shard a database was made for (`inventory import --shard`), if any.
    public static func recorded(in store: FleetStore) throws -> Shard? {
        try store.read("reading the database's shard") { db in
            try Row.fetchOne(db, sql: "SELECT shard_index, shard_count FROM runner_shard WHERE id = 1").map { Shard(index: $0[0], count: $0[1]) }
        }
    }

    /// The shard a command acts as: `given` (the command line) or the one the database records.
    /// A database made for one shard refuses to act as another.
    public static func effective(_ given: Shard?, store: FleetStore) throws -> Shard? {
        let recorded = try recorded(in: store)
        if let given, let recorded, given != recorded {
            throw FleetError.config("this database holds shard \(recorded) of the fleet, not \(given): each shard has a database of its own (--database)")
        }
        return given ?? recorded
    }

    /// Records that the database holds this shard (in the transaction of `db`).
    func record(in db: Database) throws {
        try db.execute(sql: "INSERT INTO runner_shard (id, shard_index, shard_count) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET shard_index = excluded.shard_index, shard_count = excluded.shard_count",
                       arguments: [index, count])
    }
}
