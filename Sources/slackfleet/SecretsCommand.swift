import ArgumentParser
import Foundation
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

struct SecretsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secrets",
        abstract: "Store secrets sealed in the database, list them (never their values), rekey.",
        subcommands: [SetSecret.self, List.self, Rekey.self])
}
