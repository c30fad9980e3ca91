import Foundation

/// Runs the built `slackfleet` binary as a user would, with its own environment.
public struct SlackFleetCLI: Sendable {
    /// What one invocation did.
    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
        public var output: String { stdout + stderr }
    }

    public let binary: String
    public let workingDirectory: String
    public var environment: [String: String]

    /// The debug build of `slackfleet`, or `$SLACKFLEET_BIN`.
    public static var defaultBinary: String {
        ProcessInfo.processInfo.environment["SLACKFLEET_BIN"] ?? PackagePaths.root + "/.build/debug/slackfleet"
    }

    public init(workingDirectory: String, binary: String = SlackFleetCLI.defaultBinary, environment: [String: String] = [:]) {
        self.binary = binary
        self.workingDirectory = workingDirectory
        var base = ["PATH": "/usr/bin:/bin", "HOME": workingDirectory, "USER": "tester"]
        base.merge(environment) { _, new in new }
        self.environment = base
    }

    /// Starts `slackfleet ARGS` in the background, output discarded; the caller waits for it.
    public func start(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory)
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Runs `slackfleet ARGS`, feeding `stdin`, and waits at most `timeout` seconds.
    @discardableResult
    public func run(_ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 60) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory)
        process.environment = environment
        let output = Pipe(), error = Pipe(), input = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = input
        // Not waitUntilExit: on Linux it polls every 50 ms, which every CLI call of the tests paid.
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let collected = Collected()
        let group = DispatchGroup()
        for (pipe, isOut) in [(output, true), (error, false)] {
            group.enter()
            DispatchQueue.global().async {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                collected.set(data, isOut: isOut)
                group.leave()
            }
        }
        let deadline = DispatchTime.now() + timeout
        if group.wait(timeout: deadline) == .timedOut || exited.wait(timeout: deadline) == .timedOut {
            process.terminate()
            throw CLITimeout(arguments: arguments)
        }
        return Result(status: process.terminationStatus, stdout: collected.stdout, stderr: collected.stderr)
    }

    private final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var out = Data(), err = Data()
        func set(_ data: Data, isOut: Bool) {
            lock.lock(); defer { lock.unlock() }
            if isOut { out = data } else { err = data }
        }
        var stdout: String { lock.lock(); defer { lock.unlock() }; return String(decoding: out, as: UTF8.self) }
        var stderr: String { lock.lock(); defer { lock.unlock() }; return String(decoding: err, as: UTF8.self) }
    }
}

public struct CLITimeout: Error, CustomStringConvertible {
    public let arguments: [String]
    public var description: String { "slackfleet \(arguments.joined(separator: " ")) did not finish in time" }
}
