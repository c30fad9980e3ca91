@testable import FleetSimulator
import Testing

@Suite("fleet-sim: the world's identifiers")
struct WorldTests {
    @Test("identifiers, secrets and client IDs replay from the seed, in Slack's shapes")
    func replayFromSeed() {
        // What the seed 7 gave before these were written byte by byte: a fleet replays the same.
        var world = World(seed: 7)
        #expect(world.identifier("A") == "AZ6CM4T0001")
        #expect(world.hex(16) == "f6fe6169eb2c4e30e6f8afc735f82fcd")
        #expect(world.clientID() == "1505695520.2811897135802")
        #expect(world.identifier("", length: 24) == "YR8YJLCUGMVQHLCG4L230002")
        #expect(world.hex(3) == "6b1143")
    }
}
