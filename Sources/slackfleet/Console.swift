import ArgumentParser
import Foundation
import SlackFleetCore

/// The one place the command line writes to the terminal.
enum Console {
    /// Writes `text` to standard output as is.
    static func out(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// Writes a line to standard output.
    static func line(_ text: String = "") {
        out(text + "\n")
    }

    /// Writes a note to standard error, keeping standard output for results.
    static func note(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// One JSON object per line.
    static func jsonLine<T: Encodable>(_ value: T) throws {
        try jsonLines([value])
    }

    /// One JSON object per line for each of `values`, written in blocks of about 1 MB: a line per
    /// write made a thousand-instance run wake whatever reads its output a thousand times.
    static func jsonLines<T: Encodable>(_ values: [T]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var output = Data()
        for value in values {
            output.append(try encoder.encode(value))
            output.append(UInt8(ascii: "\n"))
            if output.count >= blockSize { FileHandle.standardOutput.write(output); output.removeAll(keepingCapacity: true) }
        }
        FileHandle.standardOutput.write(output)
    }

    /// A job's results, one JSON line each, in blocks as `jsonLines` writes them.
    static func resultLines(_ results: [InstanceResult]) {
        var output = ""
        for result in results {
            result.appendJSONLine(to: &output)
            output += "\n"
            if output.utf8.count >= blockSize { out(output); output = "" }
        }
        out(output)
    }

    private static let blockSize = 1 << 20

    /// Runs a command body, turning the library's failures into a message and an exit code.
    static func run(_ body: () throws -> ExitStatus) throws {
        let status: ExitStatus
        do {
            status = try body()
        } catch let error as FleetError {
            note("error: \(error.message)")
            status = error.exitStatus
        } catch let rejected as InventoryRejected {
            for warning in rejected.problems where warning.severity == .warning { note(warning.description) }
            note(rejected.description)
            status = .dataError
        } catch let error as StoreError {
            note("error: \(error)")
            status = error.isBusy ? .temporaryFailure : .failure
        } catch let error as AuditChain.Break {
            note("audit log does NOT verify: \(error)")
            status = .failure
        } catch {
            note("error: \(error)")
            status = .failure
        }
        if status != .ok { throw ExitCode(status.rawValue) }
    }
}
