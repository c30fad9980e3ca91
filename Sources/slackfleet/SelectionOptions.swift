import ArgumentParser
import Foundation
import Logging
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

/// Which instances a command works on.
struct SelectionOptions: ParsableArguments {
    @Option(name: .customLong("instance"), help: ArgumentHelp("An instance to work on (repeatable).", valueName: "name"))
    var instances: [String] = []
    @Option(name: .customLong("label"), help: ArgumentHelp("Only instances with this label (repeatable; all must match).", valueName: "key=value"))
    var labels: [String] = []
    @Flag(help: "Every enabled instance.")
    var all = false
    @Option(help: ArgumentHelp("This runner's slice of the fleet, by workspace: K of N (default: the one the database holds).", valueName: "K/N"))
    var shard: String?
    @Option(help: ArgumentHelp("The number of slices; the slice is JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).", valueName: "N"))
    var shards: Int?

    func validate() throws {
        _ = try parseLabels(labels)
    }

    /// The selection, acting as the shard the command line names or the database holds.
    func selection(store: FleetStore) throws -> Selection {
        var selection = Selection()
        selection.instances = instances
        selection.labels = try parseLabels(labels)
        selection.all = all
        selection.shard = try Shard.effective(try Shard.parse(shard, shards: shards, environment: ProcessInfo.processInfo.environment), store: store)
        return selection
    }
}
