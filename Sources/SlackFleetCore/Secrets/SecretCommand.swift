import Foundation

/// Runs the command of an `exec:` reference and reads the secret from its standard output.
enum SecretCommand {
    static func run(_ command: String, timeout: TimeInterval, environment: [String: String]) throws -> SecretValue {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw FleetError.config("cannot start the secret command (exec:\(command)): \(error.localizedDescription)")
        }
        let finished = DispatchSemaphore(value: 0)
        let collected = OutputBuffer()
        DispatchQueue.global().async {
            collected.data = output.fileHandleForReading.readDataToEndOfFile()
            finished.signal()
        }
        if finished.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            _ = finished.wait(timeout: .now() + 2)
            throw FleetError.temporary("the secret command (exec:\(command)) did not finish within \(Int(timeout)) s and was stopped")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FleetError.config("the secret command (exec:\(command)) exited with status \(process.terminationStatus); its output was discarded")
        }
        guard let text = String(data: collected.data, encoding: .utf8) else {
            throw FleetError.config("the secret command (exec:\(command)) printed something that is not UTF-8 text")
        }
        let value = text.trimmingCharacters(in: .newlines)
        guard !value.isEmpty else {
            throw FleetError.config("the secret command (exec:\(command)) printed nothing")
        }
        return SecretValue(value)
    }

    private final class OutputBuffer: @unchecked Sendable {
        var data = Data()
    }
}
