import Foundation
import SlackFleetCore
import SlackFleetTestSupport
import Testing

@Suite("Shards own workspaces")
struct ShardTests {
    /// A random fleet: workspaces with random team IDs, some pinned to a shard, and app groups
    /// of random sizes in them.
    static func fleet(seed: UInt64, shards: Int) -> Inventory {
        // SeededGenerator (AuditTests.swift): a failing fleet is made again from its seed.
        var random = SeededGenerator(state: seed)
        func below(_ bound: Int) -> Int { Int.random(in: 0..<bound, using: &random) }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var workspaces: [Workspace] = []
        for index in 0..<(1 + below(30)) {
            let id = "T" + String((0..<9).map { _ in alphabet[below(alphabet.count)] }) + String(index)
            let pinned = below(4) == 0 ? 1 + below(shards) : nil
            workspaces.append(Workspace(id: id, name: "w\(index)", configToken: .environment(variable: "C"), refreshToken: .environment(variable: "R"), runner: pinned))
        }
        var instances: [Instance] = []
        for index in 0..<(1 + below(200)) {
            let workspace = workspaces[below(workspaces.count)]
            instances.append(Instance(name: "i\(index)", baseURL: "https://i\(index).example.com", hostURLs: ["https://i\(index).example.com"],
                                      workspaceID: workspace.id, appGroup: "g\(below(12))", apiKey: .environment(variable: "K"),
                                      registrar: .exec(ExecHook(command: ["x"]))))
        }
        return Inventory(workspaces: workspaces, instances: instances)
    }

    @Test("over 300 random fleets split 1 to 8 ways, no two shards ever act on one workspace, and together they act on every instance; a pin is kept")
    func noWorkspaceInTwoShards() throws {
        for seed in 1...300 {
            let count = 1 + Int(UInt64(seed) % 8)
            let inventory = Self.fleet(seed: UInt64(seed), shards: count)
            var owner: [String: Int] = [:]
            var acted = 0
            for index in 1...count {
                var selection = Selection()
                selection.all = true
                selection.shard = Shard(index: index, count: count)
                let groups = try selection.groups(of: inventory)
                for key in groups.keys {
                    if let other = owner[key.workspaceID], other != index {
                        Issue.record("seed \(seed): workspace \(key.workspaceID) acted on by shards \(other) and \(index) of \(count)")
                    }
                    owner[key.workspaceID] = index
                }
                acted += groups.values.reduce(0) { $0 + $1.count }
                // The import slice agrees with the selection.
                let slice = try Shard(index: index, count: count).slice(inventory)
                #expect(Set(slice.instances.map(\.workspaceID)).isSubset(of: Set(slice.workspaces.map(\.id))))
                #expect(Set(groups.keys.map(\.workspaceID)).isSubset(of: Set(slice.workspaces.map(\.id))))
            }
            #expect(acted == inventory.instances.count, "seed \(seed): every instance in exactly one shard")
            for workspace in inventory.workspaces {
                if let pinned = workspace.runner, let found = owner[workspace.id] { #expect(found == pinned, "seed \(seed): pin kept") }
            }
        }
    }

    @Test("a pin beyond the number of shards is refused, naming the workspace")
    func pinBeyondCount() throws {
        let inventory = Inventory(workspaces: [Workspace(id: "T0PINNED", name: "p", configToken: .environment(variable: "C"), refreshToken: .environment(variable: "R"), runner: 3)])
        #expect(throws: FleetError.self) { try Shard(index: 1, count: 2).slice(inventory) }
        do {
            _ = try Shard(index: 1, count: 2).slice(inventory)
        } catch {
            #expect("\(error)".contains("T0PINNED") && "\(error)".contains("runner: 3"))
        }
    }

    @Test("a database made for one shard refuses to act as another, and is that shard by default")
    func recordedShard() throws {
        let fixture = try FleetFixture()
        let inventory = Self.fleet(seed: 7, shards: 2)
        let shard = Shard(index: 2, count: 2)
        try InventoryImporter.apply(try shard.slice(inventory), store: fixture.store, audit: fixture.audit, prune: false, shard: shard)
        #expect(try Shard.effective(nil, store: fixture.store) == shard)
        #expect(throws: FleetError.self) { try Shard.effective(Shard(index: 1, count: 2), store: fixture.store) }
        #expect(Set(try InventoryRepository.load(fixture.store).workspaces.map(\.id)) == Set(try shard.owned(inventory.workspaces)))
    }
}
