import Foundation
import GRDB
import SlackFleetCore
import SlackFleetTestSupport

// make soak: every job against 1,000 simulated instances under faults, with the invariants
// checked after every phase from fleet-sim's own state and the database, not from SlackFleet's
// report. Loopback only; fleet-sim on an ephemeral port; every process stopped at the end.
//
//   slackfleet-soak --cli PATH --fleet-sim PATH [--instances 1000] [--runs 3]

func argument(_ name: String) -> String? {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else { return nil }
    return CommandLine.arguments[index + 1]
}

let cliBinary = argument("--cli") ?? PackagePaths.root + "/.build/release/slackfleet"
let simBinary = argument("--fleet-sim") ?? PackagePaths.root + "/.build/release/fleet-sim"
let instanceCount = Int(argument("--instances") ?? "") ?? 1000
/// Runs of a job while the faults last, as cron would make them, before it must have converged.
let runsUnderFaults = Int(argument("--runs") ?? "") ?? 3
let started = Date()
let work = TemporaryDirectory("soak")
// Every instance's people connect the canary and one team's alerts of their own as soon as Slack
// works there: the integrations no job may break.
let sim = try FleetSimProcess(["--instances", "\(instanceCount)", "--workspaces", "10", "--app-groups", "20", "--group-size", "20",
                               "--time-scale", "1", "--connected", "1", "--user-integrations", "1"], directory: work, binary: simBinary)

/// Stops fleet-sim, removes the soak's files and exits; every way out goes through here. `exit`
/// runs no top-level `defer`, and a global is never deinitialised: every soak had left its
/// database and fleet in the temporary directory.
func finish(_ status: Int32) -> Never {
    sim.stop()
    try? FileManager.default.removeItem(atPath: work.path)
    exit(status)
}
try sim.control("POST", "config", #"{"rollout_delay_ms": 500, "alert_delay_ms": 300, "hang_seconds": 40, "storm_retry_after": 2, "tier_quota": {"tier1": 1e9, "tier2": 1e9, "tier3": 1e9, "tier4": 1e9, "special": 1e9}, "tier_burst": {"tier1": 1e9, "tier2": 1e9, "tier3": 1e9, "tier4": 1e9, "special": 1e9}}"#)
let cli = SlackFleetCLI(workingDirectory: work.path, binary: cliBinary)
let jobFile = work.file("soak-job.json")
try #"{"concurrency": 64, "group_timeout_seconds": 900, "settle_timeout_seconds": 120, "max_failures": "100%", "retry": {"max_attempts": 6, "base_delay_seconds": 0.2, "max_delay_seconds": 5, "max_retry_after_seconds": 60}, "slack_quotas": {"per_minute": {"tier1": 1e9, "tier2": 1e9, "tier3": 1e9, "tier4": 1e9, "special": 1e9}, "burst": {"tier1": 1e9, "tier2": 1e9, "tier3": 1e9, "tier4": 1e9, "special": 1e9}}, "manifest": {"display_information": {"name": "W&B alerts {app_group}"}, "oauth_config": {"scopes": {"bot": ["incoming-webhook"]}}}}"#
    .write(toFile: jobFile, atomically: true, encoding: .utf8)

let down = ["wandb-0100", "wandb-0200", "wandb-0300"].filter { Int($0.suffix(4))! <= instanceCount }
let slow = (11...20).map { String(format: "wandb-%04d", $0) }
let stormed = ["TSIM0001", "TSIM0002"]

func faultsOn(storm: Bool) throws {
    try sim.control("POST", "faults", #"{"target": "all", "error_rate": 0.05, "hang_rate": 0.02, "reset_rate": 0.01}"#)
    for name in down { try sim.control("POST", "faults", #"{"target": "instance:\#(name)", "down": true}"#) }
    for name in slow { try sim.control("POST", "faults", #"{"target": "instance:\#(name)", "slow_rollout_ms": 3000}"#) }
    // A 429 storm on two workspaces for the first 6 seconds of a phase: shorter than the retry
    // budget (6 attempts, Retry-After 2 s), so it must be ridden out, not failed on.
    guard storm else { return }
    for team in stormed { try sim.control("POST", "faults", #"{"target": "workspace:\#(team)", "ratelimit_storm": true}"#) }
    DispatchQueue.global().asyncAfter(deadline: .now() + 6) {
        for team in stormed { _ = try? sim.control("POST", "faults", #"{"target": "workspace:\#(team)", "ratelimit_storm": false}"#) }
    }
}

// MARK: Running the jobs

struct Totals {
    var runs = 0, calls = 0, retries = 0, limited = 0
}
var totals = Totals()
var problems: [String] = []

/// The largest resident set of any child so far (fleet-sim is not counted: it has not been waited
/// for), and the command that first reached it.
var peakMemory: (kilobytes: Int, command: String) = (0, "")
@MainActor func notePeakMemory(after arguments: [String]) {
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    if usage.ru_maxrss > peakMemory.kilobytes { peakMemory = (usage.ru_maxrss, arguments.prefix(3).joined(separator: " ")) }
}

/// Runs `arguments` with --json; returns the per-instance results by name and the exit status.
@MainActor func run(_ arguments: [String]) throws -> (status: Int32, results: [String: String], details: [String: String]) {
    let result = try cli.run(arguments + ["--json"], timeout: 3600)
    notePeakMemory(after: arguments)
    var results: [String: String] = [:], details: [String: String] = [:]
    for line in result.stdout.split(separator: "\n") {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
        if let name = object["instance"] as? String {
            results[name] = object["result"] as? String
            details[name] = object["detail"] as? String
        } else if object["summary"] as? Bool == true {
            totals.runs += 1
            totals.calls += (object["calls"] as? [String: Int])?.values.reduce(0, +) ?? 0
            totals.retries += object["retries"] as? Int ?? 0
            totals.limited += (object["rate_limited"] as? [String: Int])?.values.reduce(0, +) ?? 0
        }
    }
    if results.isEmpty { problems.append("\(arguments.prefix(3).joined(separator: " ")): no results (exit \(result.status)): \(result.stderr.suffix(300))") }
    return (result.status, results, details)
}

/// Runs a job up to `runsUnderFaults` times with the faults on, until every instance that is up
/// is ok or changed; the down ones must be reported failed, with exit 1.
/// `touchesInstances`: the job talks to the W&B instances, so the down ones must fail. A rotation
/// never promotes an app group with a member down: the group's other members are rolled back
/// to their working credentials and counted as held back, not as failures. `settled`: the results
/// that count as converged (a blue/green rotation waiting for people is, until they connect).
@MainActor func phase(_ name: String, _ arguments: [String], touchesInstances: Bool = true, rotation: Bool = false,
                      settled: Set<String> = ["ok", "changed"]) throws {
    let phaseStart = Date()
    var pending = Set<String>()
    var lastDetails: [String: String] = [:]
    var runs = 0
    for attempt in 1...runsUnderFaults {
        try faultsOn(storm: attempt == 1)
        // A rotation's later runs leave alone the groups already rotated in this phase.
        let again = rotation && attempt > 1 ? ["--min-age", "\(Int(Date().timeIntervalSince(phaseStart)) + 1)s"] : []
        let (status, results, details) = try run(arguments + again)
        runs = attempt
        lastDetails = details
        let heldBack = Set(results.keys.filter { name in
            !down.contains(name) && down.contains { details[name]?.contains("another instance failed: \($0)") == true || details[name]?.contains("did not reach \($0)") == true }
        })
        pending = Set(results.filter { !settled.contains($0.value) && !down.contains($0.key) && !heldBack.contains($0.key) }.keys)
        if touchesInstances {
            if !down.allSatisfy({ results[$0] == nil || results[$0] == "failed" }) { problems.append("\(name): a down instance was not reported failed") }
            if results.keys.contains(where: down.contains), status != 1 { problems.append("\(name): exit \(status) with down instances, not 1") }
        }
        if pending.isEmpty {
            if !heldBack.isEmpty { print("  \(heldBack.count) instance(s) share an app group with a down instance: held back, still on working credentials") }
            break
        }
        if attempt < runsUnderFaults { print("  run \(attempt): \(pending.count) not converged yet: \(reasons(pending, details))") }
    }
    let seconds = Date().timeIntervalSince(phaseStart)
    if pending.isEmpty {
        print(String(format: "%@: every instance that is up converged in %d run(s) under faults, %.0f s", name, runs, seconds))
    } else {
        print(String(format: "%@: %d instance(s) that are up still not converged after %d runs, %.0f s: %@", name, pending.count, runs, seconds, reasons(pending, lastDetails)))
        problems.append("\(name): \(pending.count) not converged under faults")
    }
    try checkInvariants(after: name)
}

/// One example per distinct reason (instance names taken out), at most six.
func reasons(_ names: Set<String>, _ details: [String: String]) -> String {
    var reasons: [String: String] = [:]
    for name in names.sorted() {
        let detail = details[name] ?? ""
        let key = detail.replacingOccurrences(of: #"wandb-\d{4}"#, with: "*", options: .regularExpression)
        if reasons[key] == nil { reasons[key] = "\(name): \(String(detail.prefix(300)))" }
    }
    return reasons.values.sorted().prefix(6).joined(separator: " | ")
}

// MARK: Invariants, from fleet-sim's state and the database

@MainActor func checkInvariants(after phase: String) throws {
    var broken: [String] = []
    if try cli.run(["audit", "verify"]).status != 0 { broken.append("audit verify failed") }
    notePeakMemory(after: ["audit", "verify"])
    let apps = try sim.control("GET", "apps") as? [[String: Any]] ?? []
    let live = apps.filter { $0["deleted"] as? Bool == false }
    let liveClientIDs = Set(live.compactMap { $0["client_id"] as? String })
    let instances = try sim.control("GET", "instances") as? [[String: Any]] ?? []
    for instance in instances {
        guard let clientID = instance["effective_client_id"] as? String else { continue }
        if !liveClientIDs.contains(clientID) { broken.append("\(instance["name"] ?? "?") runs on client ID \(clientID), which belongs to no live app") }
        // No Slack integration that delivered before stopped delivering because of a job.
        for lost in instance["integrations_lost"] as? [[String: Any]] ?? [] {
            broken.append("\(instance["name"] ?? "?") lost the integration \(lost["path"] ?? "?"): \(lost["cause"] ?? "?")")
        }
    }
    let mutations = (try sim.control("GET", "mutations") as? [String: [String]] ?? [:]).mapValues(Set.init)

    let store = try FleetStore.open(atPath: work.file("slackfleet.db"))
    let entries = try AuditLog.entries(store)
    let storedAppIDs = Set(try store.read("soak") { db in try String.fetchAll(db, sql: "SELECT slack_app_id FROM app WHERE slack_app_id IS NOT NULL") })
    func detail(_ entry: AuditEntry) -> JSON? { try? JSON.parse(Data(entry.detail.utf8)) }
    let intents = entries.filter { $0.phase == "intent" }
    let appliedIDs = Set(entries.filter { $0.phase == "applied" }.compactMap { detail($0)?["change_id"]?.stringValue })
    let applied = intents.filter { detail($0)?["change_id"]?.stringValue.map(appliedIDs.contains) == true }
    let orphanNotes = entries.filter { $0.detail.contains("possible orphan") }.map(\.detail).joined(separator: "\n")

    // No app SlackFleet created whose credentials the database lacks, unless the audit log names it.
    let nameOf = Dictionary(uniqueKeysWithValues: apps.compactMap { app -> (String, String)? in
        guard let id = app["app_id"] as? String, let name = ((app["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String else { return nil }
        return (id, name)
    })
    for id in mutations["slack:create"] ?? [] where !storedAppIDs.contains(id) && live.contains(where: { $0["app_id"] as? String == id }) {
        let name = nameOf[id] ?? "?"
        if !orphanNotes.contains("\"\(name)\"") && !orphanNotes.contains("\\\"\(name)\\\"") { broken.append("app \(id) (\(name)) exists in Slack, its credentials are not stored, and no audit entry names it") }
    }
    // Every change fleet-sim saw has an audit intent.
    let createdNames = Set(intents.filter { $0.action == "create" && $0.target.hasPrefix("slack:app/") }.compactMap { detail($0)?["name"]?.stringValue })
    for id in mutations["slack:create"] ?? [] where !createdNames.contains(nameOf[id] ?? "") { broken.append("Slack saw app \(id) created with no audit intent") }
    let updatedTargets = Set(intents.filter { ["update-redirects", "restore"].contains($0.action) }.map { String($0.target.dropFirst("slack:app/".count)) })
    for id in mutations["slack:update"] ?? [] where !updatedTargets.contains(id) { broken.append("Slack saw app \(id) updated with no audit intent") }
    let deletedIDs = Set(intents.filter { $0.action == "delete" }.compactMap { detail($0)?["app_id"]?.stringValue })
    for id in mutations["slack:delete"] ?? [] where !deletedIDs.contains(id) { broken.append("Slack saw app \(id) deleted with no audit intent") }
    for (kind, prefix) in [("k8s:secrets", "k8s:secret/"), ("k8s:deployments", "k8s:deployment/"), ("k8s:weightsandbiases", "k8s:weightsandbiases/"), ("exec", "exec:")] {
        let audited = Set(intents.filter { $0.target.hasPrefix(prefix) }.compactMap(\.instance))
        for name in mutations[kind] ?? [] where !audited.contains(name) { broken.append("\(kind) of \(name) changed with no audit intent") }
        // And no audit entry claims a change the far side did not see.
        for name in Set(applied.filter { $0.target.hasPrefix(prefix) }.compactMap(\.instance)) where !(mutations[kind] ?? []).contains(name) {
            broken.append("the audit log says \(kind) of \(name) changed; fleet-sim saw no such change")
        }
    }
    for id in Set(applied.filter { $0.action == "update-redirects" }.map { String($0.target.dropFirst("slack:app/".count)) }) where !(mutations["slack:update"] ?? []).contains(id) {
        broken.append("the audit log says app \(id) was updated; Slack saw no such update")
    }
    for id in Set(applied.filter { $0.action == "delete" }.compactMap { detail($0)?["app_id"]?.stringValue }) where !(mutations["slack:delete"] ?? []).contains(id) {
        broken.append("the audit log says app \(id) was deleted; Slack saw no such delete")
    }
    for id in storedAppIDs where !(mutations["slack:create"] ?? []).contains(id) { broken.append("the database holds app \(id), which Slack never created") }

    if broken.isEmpty {
        print("  invariants after \(phase): hold (\(entries.count) audit entries, \(live.count) live apps, \(storedAppIDs.count) stored)")
    } else {
        for line in broken.prefix(10) { print("  INVARIANT BROKEN after \(phase): \(line)") }
        problems.append("\(phase): \(broken.count) invariant(s) broken")
    }
}

// MARK: The phases

guard try cli.run(["init"]).status == 0, try cli.run(["inventory", "import", sim.inventory]).status == 0 else {
    print("error: cannot set up the database"); finish(1)
}
notePeakMemory(after: ["inventory", "import"])
print("soak: \(instanceCount) instances in 10 workspaces (20 app groups of 20), faults: 5% 5xx, 2% hangs past the client timeout, 1% resets, a 429 storm on \(stormed.joined(separator: " and ")) for the first 6 s of each phase, \(down.count) instances down, slow rollouts on \(slow.count)")
let common = ["--all", "--job-file", jobFile]
try phase("provision-app", ["provision-app"] + common)
// A DNS change on twenty instances, then sync-redirects.
var inventory = try String(contentsOfFile: sim.inventory, encoding: .utf8)
for index in stride(from: 1, through: min(instanceCount, 400), by: 20) {
    let name = String(format: "wandb-%04d", index)
    inventory = inventory.replacingOccurrences(of: "host_urls: [\"https://\(name).wandb.fleet-sim.test\"]",
                                               with: "host_urls: [\"https://\(name).wandb.fleet-sim.test\", \"https://\(name).ml.fleet-sim.test\"]")
}
try inventory.write(toFile: work.file("dns.yaml"), atomically: true, encoding: .utf8)
_ = try cli.run(["inventory", "import", work.file("dns.yaml")])
notePeakMemory(after: ["inventory", "import"])
try phase("sync-redirects", ["sync-redirects"] + common, touchesInstances: false)
try phase("rotate-secret --config-tokens", ["rotate-secret", "--config-tokens", "--min-remaining", "13h"] + common, touchesInstances: false)
// Blue/green: new apps registered with every group whose members all answer, each then waiting
// for its people to connect through it; they do (the canary and their team's alerts again);
// the next runs promote and, with --grace 0, delete each old app once nothing depends on it.
let rotationStarted = Date()
let blueGreen = ["rotate-secret", "--client-secret", "--blue-green", "--grace", "0", "--timeout", "30s"] + common
try phase("rotate-secret --client-secret --blue-green", blueGreen, rotation: true, settled: ["ok", "changed", "waiting"])
@MainActor func peopleReconnect() throws -> Int {
    var made = 0
    let apps = Dictionary(uniqueKeysWithValues: (try sim.control("GET", "apps") as? [[String: Any]] ?? []).compactMap { app in
        (app["client_id"] as? String).map { ($0, app) }
    })
    for instance in try sim.control("GET", "instances") as? [[String: Any]] ?? [] {
        guard let name = instance["name"] as? String, let running = instance["effective_client_id"] as? String,
              let appID = apps[running]?["app_id"] as? String else { continue }
        let integrations = instance["integrations"] as? [[String: Any]] ?? []
        for (entity, channel) in [("ops", nil as String?), ("team-1", "CALERTS\((instance["team_id"] as? String ?? "").suffix(3))1")] {
            guard !integrations.contains(where: { $0["entity"] as? String == entity && $0["app_id"] as? String == appID }) else { continue }
            let body = #"{"instance": "\#(name)", "entity": "\#(entity)""# + (channel.map { #", "channel": "\#($0)""# } ?? "") + "}"
            if (try sim.control("POST", "connect", body) as? [String: Any])?["ok"] as? Bool == true { made += 1 }
        }
    }
    return made
}
print("  the people connected \(try peopleReconnect()) integrations through the new apps")
try phase("rotate-secret --client-secret --blue-green (promote, delete)", blueGreen, rotation: true)
// In place: a person regenerates the secret of one shared app; --secret-from pushes it.
let apps = try sim.control("GET", "apps") as? [[String: Any]] ?? []
if let shared = apps.first(where: { $0["deleted"] as? Bool == false && ((($0["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String) == "W&B alerts shared-3" }),
   let id = shared["app_id"] as? String,
   let secret = (try sim.control("POST", "apps/\(id)/regenerate-secret") as? [String: Any])?["client_secret"] as? String {
    let file = work.write("regenerated-secret", secret + "\n")
    let member = String(format: "wandb-%04d", 41)
    try phase("rotate-secret --client-secret in place", ["rotate-secret", "--client-secret", "--secret-from", "file:\(file)", "--instance", member,
                                                         "--job-file", jobFile, "--timeout", "30s"])
}
try phase("verify-delivery", ["verify-delivery", "--timeout", "30s"] + common)

// The faults lifted: one more run of every job converges everything, the down instances included.
try sim.control("DELETE", "faults")
var lifted: [String] = []
// The rotation rotates the groups held back by a down member (their apps are older than the
// rotation phase) and leaves alone the ones rotated under the faults; their people connect, and
// the next run promotes them and deletes their old apps.
let rotateRest = blueGreen + ["--min-age", "\(Int(Date().timeIntervalSince(rotationStarted)))s"]
for arguments in [["provision-app"] + common, ["sync-redirects"] + common, rotateRest, ["reconnect"], rotateRest, ["verify-delivery", "--timeout", "30s"] + common] {
    if arguments == ["reconnect"] {
        lifted.append("the people connected \(try peopleReconnect()) more")
        continue
    }
    let (status, results, details) = try run(arguments)
    let waitsForPeople = arguments == rotateRest && lifted.count == 2
    let bad = results.filter { !["ok", "changed"].contains($0.value) && !(waitsForPeople && $0.value == "waiting") }
    if (status != 0 && !waitsForPeople) || !bad.isEmpty {
        problems.append("\(arguments[0]) after the faults were lifted: exit \(status), \(bad.count) not converged: \(bad.keys.sorted().prefix(3).map { "\($0): \(details[$0] ?? "")" })")
    }
    let changed = results.values.filter { $0 == "changed" }.count
    lifted.append("\(arguments[0]) exit \(status), \(changed) changed")
}
print("faults lifted: \(lifted.joined(separator: ", "))")
try checkInvariants(after: "the faults were lifted")
let stateAtEnd = try sim.control("GET", "instances") as? [[String: Any]] ?? []
let delivering = stateAtEnd.filter { $0["can_deliver"] as? Bool == true }.count
let integrationCount = stateAtEnd.reduce(0) { $0 + (($1["integrations"] as? [Any])?.count ?? 0) }
let lost = (try sim.control("GET", "losses") as? [String: Any])?["total"] as? Int ?? -1
print("integrations: \(integrationCount) in all, \(lost) lost")
if lost != 0 { problems.append("\(lost) integration(s) lost") }

print(String(format: "figures: %d instances, %d of them delivering at the end; %d runs, %d calls, %d retries, %d 429s; wall time %.0f s; peak resident memory of a slackfleet run %.1f MB (%@)",
             instanceCount, delivering, totals.runs, totals.calls, totals.retries, totals.limited, Date().timeIntervalSince(started),
             Double(peakMemory.kilobytes) / 1024, peakMemory.command))
if delivering != instanceCount { problems.append("\(instanceCount - delivering) instance(s) cannot deliver at the end") }
if problems.isEmpty {
    print("soak: passed")
} else {
    for problem in problems { print("soak problem: \(problem)") }
}
finish(problems.isEmpty ? 0 : 1)
