// The foundation's speed targets, measured on the release build (`make bench`).
//
// The command-line figures time the real `slackfleet` binary as a user runs it, process
// start included; the concurrent-append figure drives the library from 64 Dispatch workers.
import Foundation
import SlackFleetCore

struct Measurement {
    let name: String
    let seconds: Double
    let target: Double
    var ok: Bool { seconds <= target }
}

func argument(_ name: String) -> String? {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else { return nil }
    return CommandLine.arguments[index + 1]
}

let cli = argument("--cli") ?? ".build/release/slackfleet"
let instanceCount = Int(argument("--instances") ?? "") ?? 10_000
let auditCount = Int(argument("--audit-entries") ?? "") ?? 100_000
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slackfleet-bench-\(getpid())").path
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }

/// Runs the CLI and returns its wall time; stops the benchmark if it fails.
func timeCLI(_ arguments: [String], environment: [String: String] = [:]) throws -> Double {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: cli)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    process.environment = ["PATH": "/usr/bin:/bin", "HOME": directory].merging(environment) { _, new in new }
    process.standardOutput = FileHandle.nullDevice
    let errors = Pipe()
    process.standardError = errors
    let start = DispatchTime.now()
    try process.run()
    let stderr = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    guard process.terminationStatus == 0 else {
        FileHandle.standardError.write(Data("slackfleet \(arguments.joined(separator: " ")) failed: \(String(decoding: stderr, as: UTF8.self))\n".utf8))
        exit(1)
    }
    return elapsed
}

func best(of runs: Int, _ body: () throws -> Double) rethrows -> Double {
    var times: [Double] = []
    for _ in 0..<runs { times.append(try body()) }
    return times.min() ?? 0
}

/// A fleet of `count` instances in 10 workspaces, groups of 10 sharing an app.
func fleetYAML(count: Int) -> String {
    var text = "version: 1\nworkspaces:\n"
    for workspace in 0..<10 {
        text += """
              - id: T0BENCH\(workspace)
                name: bench-\(workspace)
                config_token: env:CONFIG_\(workspace)
                refresh_token: env:REFRESH_\(workspace)
                bot_token: env:BOT_\(workspace)
                canary_channel: C0CANARY\(workspace)

            """
    }
    text += "instances:\n"
    for index in 0..<count {
        text += """
              - name: wandb-\(index)
                base_url: https://wandb-\(index).fleet.example.com
                host_urls: [https://wandb-\(index).fleet.example.com, https://ml-\(index).example.com]
                ip_allowlist: [203.0.113.0/24]
                workspace: T0BENCH\(index % 10)
                app_group: group-\(index / 10)
                api_key: env:WANDB_KEY
                canary: {entity: ops, project: slack-canary}
                labels: {env: \(index % 3 == 0 ? "prod" : "staging"), region: r\(index % 7)}
                registrar:
                  kind: operator-v2
                  api_url: https://k8s-\(index % 20).example.com:6443
                  token: file:/var/run/secrets/token
                  namespace: wandb
                  resource: wandb
                  deployment: wandb-api

            """
    }
    return text
}

var results: [Measurement] = []

// 1. Import and list through the binary.
let inventoryPath = directory + "/fleet.yaml"
try fleetYAML(count: instanceCount).write(toFile: inventoryPath, atomically: true, encoding: .utf8)
_ = try timeCLI(["init"])
let firstImport = try timeCLI(["inventory", "import", inventoryPath])
results.append(Measurement(name: "inventory import, \(instanceCount) new instances", seconds: firstImport, target: 2))
let reimport = try best(of: 3) { try timeCLI(["inventory", "import", inventoryPath]) }
results.append(Measurement(name: "inventory import, \(instanceCount) unchanged (best of 3)", seconds: reimport, target: 2))
let list = try best(of: 5) { try timeCLI(["inventory", "list"]) }
results.append(Measurement(name: "inventory list, \(instanceCount) instances (best of 5)", seconds: list, target: 0.3))
let listLabel = try best(of: 5) { try timeCLI(["inventory", "list", "--label", "env=prod"]) }
results.append(Measurement(name: "inventory list --label env=prod (best of 5)", seconds: listLabel, target: 0.3))

// Where an import's time goes, through the library (parse, plan against the stored fleet, write).
if CommandLine.arguments.contains("--import-phases") {
    func seconds(_ start: DispatchTime) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9 }
    let data = try Data(contentsOf: URL(fileURLWithPath: inventoryPath))
    var start = DispatchTime.now()
    let (parsed, _) = try InventoryReader(file: "fleet.yaml").read(data)
    print(String(format: "import phases: read+validate %.3f s", seconds(start)))
    let phaseStore = try FleetStore.open(atPath: directory + "/slackfleet.db")
    start = DispatchTime.now()
    _ = try InventoryRepository.load(phaseStore)
    print(String(format: "import phases: load stored fleet %.3f s", seconds(start)))
    start = DispatchTime.now()
    _ = try InventoryImporter.plan(parsed, store: phaseStore, prune: false)
    print(String(format: "import phases: plan (load + diff) %.3f s", seconds(start)))
}

// 2. audit verify of a long log through the binary.
let auditPath = directory + "/audit.db"
let store = try FleetStore.create(atPath: auditPath)
let key = MasterKey.generate()
let keyring = try Keyring.open(store, masterKey: key)
let log = AuditLog(store: store, keyring: keyring, context: AuditContext(command: "bench"))
var written = 0
while written < auditCount {
    let batch = min(5000, auditCount - written)
    let first = written
    try store.write("filling the log") { db in
        _ = try log.append((0..<batch).map { index in
            AuditDraft(instance: "wandb-\((first + index) % instanceCount)", target: "slack:app/A\(first + index)", action: "update",
                       phase: .applied, detail: ["redirect_urls": .object(["added": .list([.string("https://wandb-\(first + index).fleet.example.com")]), "removed": .list([])])])
        }, in: db)
    }
    written += batch
}
let verify = try best(of: 3) { try timeCLI(["audit", "verify", "--database", auditPath], environment: [MasterKey.environmentVariable: key.encoded]) }
results.append(Measurement(name: "audit verify, \(auditCount) entries (best of 3)", seconds: verify, target: 2))

// 3. 10,000 durable appends from 64 concurrent writers, through group commit.
let appendStore = try FleetStore.create(atPath: directory + "/appends.db")
let appendLog = AuditLog(store: appendStore, keyring: try Keyring.open(appendStore, masterKey: key), context: AuditContext(command: "bench"))
let writers = 64, perWriter = 10_000 / 64 + 1
let failures = ManagedAtomicCounter()
// 64 real threads: concurrentPerform would run only about one per core.
let finished = DispatchGroup()
let appendStart = DispatchTime.now()
for writer in 0..<writers {
    finished.enter()
    Thread {
        for index in 0..<perWriter where writer * perWriter + index < 10_000 {
            do {
                try appendLog.record(AuditDraft(instance: "wandb-\(writer)", target: "slack:app/A\(writer)", action: "update", phase: .intent, detail: ["n": .int(index)]))
            } catch {
                failures.increment()
            }
        }
        finished.leave()
    }.start()
}
finished.wait()
let appendSeconds = Double(DispatchTime.now().uptimeNanoseconds - appendStart.uptimeNanoseconds) / 1e9
let appended = try AuditLog.verify(appendStore, keyring: try Keyring.open(appendStore, masterKey: key)).count
let commits = Set(try AuditLog.entries(appendStore).map(\.time)).count
results.append(Measurement(name: "10,000 audit appends, 64 writers (\(appended) verified, ~\(commits) commits)", seconds: appendSeconds, target: 1))
if failures.value > 0 || appended != 10_000 {
    print("error: \(failures.value) appends failed, \(appended) verified")
    exit(1)
}

let width = results.map(\.name.count).max() ?? 0
print("benchmark".padding(toLength: width, withPad: " ", startingAt: 0) + "    seconds   target  result")
for result in results {
    print(result.name.padding(toLength: width, withPad: " ", startingAt: 0)
          + String(format: "  %9.3f  %7.2f  %@", result.seconds, result.target, result.ok ? "ok" : "SLOW"))
}
exit(results.allSatisfy(\.ok) ? 0 : 1)

final class ManagedAtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
