import ArgumentParser
import Foundation
import SlackFleetCore

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Read, verify and export the audit log of every change.",
        subcommands: [List.self, Verify.self, Export.self, Fingerprint.self])
}
