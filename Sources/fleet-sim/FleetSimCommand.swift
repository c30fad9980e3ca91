import ArgumentParser
import FleetSimulator
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@main
struct FleetSimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-sim",
        abstract: "A local Slack, W&B fleet and Kubernetes API, for SlackFleet's demo, tests and benchmarks.",
        subcommands: [Serve.self, Register.self])

    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve a simulated fleet on loopback until SIGTERM or SIGINT.",
            discussion: "Prints its base URL on the first line of standard output. Control API: BASE/_sim/...")

        @Option(help: "The port (0: any free port).") var port = 0
        @Option(help: "How many W&B instances.") var instances = 10
        @Option(help: "How many Slack workspaces.") var workspaces = 2
        @Option(name: .customLong("app-groups"), help: "Groups of instances that share one Slack app.") var appGroups = 0
        @Option(name: .customLong("group-size"), help: "Instances per shared group.") var groupSize = 5
        @Option(help: "Latency added to every answer, such as 20ms.") var latency = "0ms"
        @Option(help: "Random variation of the latency, such as 5ms.") var jitter = "0ms"
        @Option(help: "Seed of every random choice (identifiers, faults).") var seed: UInt64 = 1
        @Option(help: "How instances take credentials: mixed (80% operator-v2, 10% operator-v1, 10% exec), operator-v2, operator-v1 or exec.")
        var registrars = "mixed"
        @Option(name: .customLong("time-scale"), help: "Simulated seconds per real second (rate limits, token expiry).") var timeScale = 1.0
        @Option(name: .customLong("inventory-out"), help: "Write a SlackFleet inventory for this fleet here (secrets beside it).") var inventoryOut: String?
        @Option(name: .customLong("tls-cert"), help: "Serve https with this certificate chain (PEM); needs --tls-key.") var tlsCert: String?
        @Option(name: .customLong("tls-key"), help: "The private key (PEM) of --tls-cert.") var tlsKey: String?
        @Option(help: ArgumentHelp("The share of instances (0 to 1) whose people connect the canary entity's Slack integration as soon as Slack works there.", valueName: "fraction"))
        var connected = 0.0
        @Option(name: .customLong("workspace-sizes"), help: ArgumentHelp("Instances per workspace, comma-separated, for a skewed fleet (such as 100,2,2); they must add up to --instances and name each workspace.", valueName: "N,N,..."))
        var workspaceSizes: String?
        @Option(name: .customLong("user-integrations"), help: ArgumentHelp("Integrations each instance's people connect on entities of their own (team-1..K), the alerts the operator does not own.", valueName: "K"))
        var userIntegrations = 0
        @Option(help: ArgumentHelp("A JSON file of control API calls to make before serving: [{\"method\": \"POST\", \"path\": \"faults\", \"body\": {...}}, ...], the same as /_sim/PATH takes (faults and quirks per workspace or instance, channel settings, Argo Rollout workloads).", valueName: "path"))
        var setup: String?

        func validate() throws {
            guard instances >= 0, workspaces >= 1, appGroups >= 0, groupSize >= 1 else {
                throw ValidationError("--instances and --app-groups must be at least 0, --workspaces and --group-size at least 1")
            }
            guard ["mixed", "operator-v2", "operator-v1", "exec"].contains(registrars) else {
                throw ValidationError("--registrars takes mixed, operator-v2, operator-v1 or exec")
            }
            guard Self.milliseconds(latency) != nil, Self.milliseconds(jitter) != nil else {
                throw ValidationError("--latency and --jitter take a duration such as 20ms or 0.5s")
            }
            guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
            guard (0...1).contains(connected) else { throw ValidationError("--connected takes a fraction from 0 to 1") }
            guard (0...20).contains(userIntegrations) else { throw ValidationError("--user-integrations takes 0 to 20") }
            if let workspaceSizes {
                let sizes = workspaceSizes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard sizes.allSatisfy({ ($0 ?? -1) >= 0 }), sizes.count == workspaces, sizes.compactMap({ $0 }).reduce(0, +) == instances else {
                    throw ValidationError("--workspace-sizes takes one count per workspace (\(workspaces)) adding up to --instances (\(instances)), such as 100,2,2")
                }
            }
        }

        /// Makes each control call of the `--setup` file, in order; the first that fails stops the start.
        static func apply(setup path: String, to simulator: Simulator) throws {
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                throw ValidationError("--setup \(path): cannot read it: \(error.localizedDescription)")
            }
            guard let calls = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] else {
                throw ValidationError("--setup \(path): want a JSON array of {\"method\", \"path\", \"body\"} objects")
            }
            for (index, call) in calls.enumerated() {
                guard let method = call["method"] as? String, let route = call["path"] as? String else {
                    throw ValidationError("--setup \(path): entry \(index + 1) needs method and path")
                }
                let body = try call["body"].map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
                let response = simulator.answerAtOnce(SimRequest(method: method.uppercased(), path: "/_sim/" + route.drop(while: { $0 == "/" }), body: body))
                guard let response, (200...299).contains(response.status) else {
                    let said = response.map { String(decoding: $0.body, as: UTF8.self) } ?? "no answer"
                    throw ValidationError("--setup \(path): entry \(index + 1) (\(method) \(route)) failed: \(said)")
                }
            }
        }

        static func milliseconds(_ text: String) -> Double? {
            if text.hasSuffix("ms") { return Double(text.dropLast(2)) }
            if text.hasSuffix("s") { return Double(text.dropLast()).map { $0 * 1000 } }
            return Double(text)
        }

        func run() throws {
            let simulator = try Simulator(seed: seed)
            simulator.configure {
                $0.timeScale = timeScale
                $0.connectedFraction = connected
            }
            var spec = FleetSpec(instances: instances, workspaces: workspaces, sharedGroups: appGroups, groupSize: groupSize)
            spec.registrars = registrars
            spec.userIntegrations = userIntegrations
            spec.workspaceSizes = workspaceSizes.map { $0.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
            let fleet = simulator.buildFleet(spec)
            if let latencyMS = Self.milliseconds(latency), let jitterMS = Self.milliseconds(jitter), latencyMS > 0 || jitterMS > 0 {
                simulator.setFaults(target: "all") { $0.latency = latencyMS / 1000; $0.jitter = jitterMS / 1000 }
            }
            if let setup { try Self.apply(setup: setup, to: simulator) }
            let server = SimulatorServer(simulator: simulator)
            let bound = try server.start(port: port, tls: tlsCert.flatMap { cert in tlsKey.map { (cert, $0) } })
            let baseURL = "\(tlsCert == nil ? "http" : "https")://127.0.0.1:\(bound)"
            if let inventoryOut {
                let binary = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
                try InventoryWriter.write(fleet, baseURL: baseURL, to: inventoryOut,
                                          registerCommand: [binary, "register", "--control", baseURL])
            }
            FileHandle.standardOutput.write(Data((baseURL + "\n").utf8))
            FileHandle.standardError.write(Data("fleet-sim: \(instances) instances, \(workspaces) workspaces on \(baseURL) (control: \(baseURL)/_sim/)\n".utf8))
            let stop = DispatchSemaphore(value: 0)
            var sources: [DispatchSourceSignal] = []
            for signalNumber in [SIGTERM, SIGINT] {
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
                source.setEventHandler { stop.signal() }
                source.resume()
                sources.append(source)
            }
            stop.wait()
            try server.stop()
            FileHandle.standardError.write(Data("fleet-sim: stopped\n".utf8))
        }
    }

    struct Register: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "An exec hook: register the credentials on stdin (JSON with client_id and client_secret) with a simulated instance.")

        @Option(help: "The simulator's base URL.") var control: String
        @Option(help: "The instance's name.") var instance: String

        func run() throws {
            let input = FileHandle.standardInput.readDataToEndOfFile()
            guard let url = URL(string: "\(control)/_sim/instances/\(instance)/credentials") else {
                throw ValidationError("--control is not a URL")
            }
            var request = URLRequest(url: url)
            request.httpMethod = "POST"
            request.httpBody = input
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            let done = DispatchSemaphore(value: 0)
            let outcome = Outcome()
            URLSession.shared.dataTask(with: request) { data, response, error in
                outcome.status = (response as? HTTPURLResponse)?.statusCode ?? 0
                outcome.message = error.map { "\($0)" } ?? String(decoding: data ?? Data(), as: UTF8.self)
                done.signal()
            }.resume()
            guard done.wait(timeout: .now() + 20) == .success, outcome.status == 200 else {
                FileHandle.standardError.write(Data("fleet-sim register: \(outcome.status) \(outcome.message)\n".utf8))
                throw ExitCode(1)
            }
        }

        private final class Outcome: @unchecked Sendable {
            var status = 0
            var message = ""
        }
    }
}
