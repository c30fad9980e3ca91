import ArgumentParser
import Foundation
import SlackFleetCore

extension AuditCommand {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Show audit entries, oldest first.",
                                                                             usage: "slackfleet audit list [--instance <name>] [--since <time>] [<options>]")

        @OptionGroup var options: GlobalOptions
        @Option(help: "Only entries about this instance.")
        var instance: String?
        @Option(help: ArgumentHelp("Only entries from this time on (RFC 3339, such as 2026-11-29T00:00:00Z).", valueName: "time"))
        var since: String?
        @Option(help: "Only the newest N entries.")
        var limit: Int?
        @Flag(help: "One JSON object per entry and line.")
        var json = false

        func validate() throws {
            if let since, Timestamp.parse(since) == nil {
                throw ValidationError("--since \(since) is not a time: write it like 2026-11-29T00:00:00Z")
            }
            if let limit, limit <= 0 { throw ValidationError("--limit must be at least 1") }
        }

        func run() throws {
            try Console.run {
                let since = since.flatMap(Timestamp.parse).map(Timestamp.format)
                let entries = try AuditLog.entries(try options.openStore(), instance: instance, since: since, limit: limit)
                if json {
                    try Console.jsonLines(entries)
                    return .ok
                }
                var table = TextTable(headers: ["SEQ", "TIME", "ACTOR", "COMMAND", "TARGET", "ACTION", "PHASE", "DETAIL"])
                table.rows = entries.map {
                    [String($0.seq), $0.time, $0.actor, $0.command, $0.target, $0.action, $0.phase,
                     $0.detail.count > 120 ? String($0.detail.prefix(119)) + "…" : $0.detail]
                }
                Console.out(table.render())
                return .ok
            }
        }
    }
}
