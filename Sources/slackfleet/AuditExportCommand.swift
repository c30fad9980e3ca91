import ArgumentParser
import Foundation
import SlackFleetCore

extension AuditCommand {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Write every entry as JSON lines, to ship the log off this machine.",
            usage: "slackfleet audit export [--output <path>] [<global options>]")

        @OptionGroup var options: GlobalOptions
        @Option(help: ArgumentHelp("Write to this file (mode 0600) instead of standard output.", valueName: "path"))
        var output: String?

        func run() throws {
            try Console.run {
                let store = try options.openStore()
                guard let output else {
                    try AuditLog.export(store, to: FileHandle.standardOutput)
                    return .ok
                }
                try FileSystem.createPrivateFile(atPath: output, contents: Data())
                guard let handle = FileHandle(forWritingAtPath: output) else {
                    throw FleetError.config("cannot open \(output) for writing")
                }
                defer { try? handle.close() }
                try AuditLog.export(store, to: handle)
                try handle.synchronize()
                return .ok
            }
        }
    }
}
