import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The built `fleet-sim` binary, started on an ephemeral loopback port for one test and
/// stopped (SIGTERM, then SIGKILL) when released.
public final class FleetSimProcess: @unchecked Sendable {
    public let process = Process()
    public let baseURL: String
    public let inventory: String

    public static var binary: String {
        ProcessInfo.processInfo.environment["FLEET_SIM_BIN"] ?? PackagePaths.root + "/.build/debug/fleet-sim"
    }

    /// Starts `fleet-sim serve ARGS --inventory-out <directory>/sim.yaml` and waits for its URL.
    public init(_ arguments: [String], directory: TemporaryDirectory, binary: String = FleetSimProcess.binary) throws {
        inventory = directory.file("sim.yaml")
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve"] + arguments + ["--inventory-out", inventory]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        baseURL = String(decoding: line, as: UTF8.self)
        guard baseURL.hasPrefix("http://127.0.0.1:") || baseURL.hasPrefix("https://127.0.0.1:") else {
            process.terminate()
            throw CLITimeout(arguments: ["fleet-sim"] + arguments)
        }
    }

    deinit {
        stop()
    }

    public func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// A control API call; returns the parsed JSON answer.
    @discardableResult
    public func control(_ method: String, _ path: String, _ body: String? = nil) throws -> Any {
        guard let url = URL(string: "\(baseURL)/_sim/\(path)") else { throw CLITimeout(arguments: [path]) }
        var request = URLRequest(url: url, timeoutInterval: 10)
        request.httpMethod = method
        request.httpBody = body.map { Data($0.utf8) }
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let done = DispatchSemaphore(value: 0)
        let box = Box()
        URLSession.shared.dataTask(with: request) { data, _, _ in
            box.data = data ?? Data()
            done.signal()
        }.resume()
        guard done.wait(timeout: .now() + 15) == .success else { throw CLITimeout(arguments: [path]) }
        return try JSONSerialization.jsonObject(with: box.data, options: [.fragmentsAllowed])
    }

    /// Instances as the simulator sees them: name -> (effective client ID, can deliver).
    public func instances() throws -> [String: (clientID: String?, canDeliver: Bool)] {
        var result: [String: (String?, Bool)] = [:]
        for item in (try control("GET", "instances") as? [[String: Any]]) ?? [] {
            guard let name = item["name"] as? String else { continue }
            result[name] = (item["effective_client_id"] as? String, item["can_deliver"] as? Bool ?? false)
        }
        return result
    }

    /// The apps (live or deleted) whose manifest has this display name.
    public func apps(named name: String) throws -> [[String: Any]] {
        (try control("GET", "apps") as? [[String: Any]] ?? []).filter {
            (($0["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String == name
        }
    }

    /// Calls per endpoint since the last reset.
    public func calls() throws -> [String: Int] {
        ((try control("GET", "calls") as? [String: Any])?["calls"] as? [String: Int]) ?? [:]
    }

    private final class Box: @unchecked Sendable {
        var data = Data()
    }
}

/// A job file with Slack's pace scaled up, for a simulator running at `--time-scale`.
public enum FastJobFile {
    public static func write(_ job: String, scale: Double, in directory: TemporaryDirectory, settle: Double = 30,
                             maxRetryAfter: Double = 300, maxAttempts: Int = 5, groupTimeout: Double = 900) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: PackagePaths.root + "/jobs/\(job).json"))
        guard var settings = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              var quotas = settings["slack_quotas"] as? [String: Any], let perMinute = quotas["per_minute"] as? [String: Double] else {
            throw CLITimeout(arguments: ["job file"])
        }
        quotas["per_minute"] = perMinute.mapValues { $0 * scale }
        settings["slack_quotas"] = quotas
        settings["settle_timeout_seconds"] = settle
        settings["group_timeout_seconds"] = groupTimeout
        settings["retry"] = ["max_attempts": maxAttempts, "base_delay_seconds": 0.05, "max_delay_seconds": 0.5, "max_retry_after_seconds": maxRetryAfter]
        let path = directory.file("\(job)-\(Int(scale))-\(Int(groupTimeout)).json")
        try JSONSerialization.data(withJSONObject: settings).write(to: URL(fileURLWithPath: path))
        return path
    }
}
