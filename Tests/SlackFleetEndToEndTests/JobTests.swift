import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SlackFleetTestSupport
import Testing

/// A simulated fleet, a SlackFleet database holding its inventory, and fast job files.
final class JobFixture: @unchecked Sendable {
    let directory = TemporaryDirectory("jobs")
    let sim: FleetSimProcess
    let cli: SlackFleetCLI
    let provisionFile: String
    let syncFile: String

    /// `connected`: the share of instances whose people connect the canary's Slack integration as
    /// soon as Slack works there; `userIntegrations`: integrations of their own per instance.
    init(instances: Int = 12, workspaces: Int = 3, groups: Int = 1, groupSize: Int = 4, timeScale: Double = 600,
         maxRetryAfter: Double = 300, maxAttempts: Int = 5, simConfig: String = #"{"rollout_delay_ms": 200}"#,
         connected: Double = 1, userIntegrations: Int = 0, extra: [String] = []) throws {
        sim = try FleetSimProcess(["--instances", "\(instances)", "--workspaces", "\(workspaces)", "--app-groups", "\(groups)",
                                   "--group-size", "\(groupSize)", "--time-scale", "\(timeScale)", "--connected", "\(connected)",
                                   "--user-integrations", "\(userIntegrations)"] + extra, directory: directory)
        try sim.control("POST", "config", simConfig)
        cli = SlackFleetCLI(workingDirectory: directory.path)
        provisionFile = try FastJobFile.write("provision-app", scale: timeScale, in: directory, maxRetryAfter: maxRetryAfter, maxAttempts: maxAttempts)
        syncFile = try FastJobFile.write("sync-redirects", scale: timeScale, in: directory, maxRetryAfter: maxRetryAfter, maxAttempts: maxAttempts)
        try #require(try cli.run(["init"]).status == 0)
        let imported = try cli.run(["inventory", "import", sim.inventory])
        try #require(imported.status == 0, "\(imported.output)")
    }

    func provision(_ extra: [String] = []) throws -> SlackFleetCLI.Result {
        try cli.run(["provision-app", "--job-file", provisionFile] + (extra.contains("--instance") || extra.contains("--label") ? [] : ["--all"]) + extra, timeout: 120)
    }

    func sync(_ extra: [String] = []) throws -> SlackFleetCLI.Result {
        try cli.run(["sync-redirects", "--all", "--job-file", syncFile] + extra, timeout: 120)
    }

    /// The JSON lines of a `--json` run: results, then the summary.
    static func lines(_ result: SlackFleetCLI.Result) -> [[String: Any]] {
        result.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

/// The job suites start simulators and many-lane runs of their own: one at a time, so they do
/// not starve each other (or the rest of the suite) on a 2-core machine.
@Suite("Jobs against fleet-sim", .serialized)
struct JobSuites {}

extension JobSuites {
    @Suite("provision-app and sync-redirects")
    struct JobTests {
        @Test("provision 50 instances in 3 workspaces with 2 shared app groups; a rerun makes no write call")
        func provisionFleet() throws {
            let fixture = try JobFixture(instances: 50, workspaces: 3, groups: 2, groupSize: 5)
            let dry = try fixture.provision(["--dry-run"])
            #expect(dry.status == 2, "\(dry.output)")
            #expect(try fixture.sim.calls().keys.allSatisfy { !$0.contains("create") && !$0.contains("PATCH") }, "a dry run writes nothing")
            let first = try fixture.provision(["--json"])
            #expect(first.status == 0, "\(first.stderr)")
            let lines = JobFixture.lines(first)
            #expect(lines.count == 51, "one line per instance and a summary, nothing else on stdout")
            #expect((lines.last?["counts"] as? [String: Int])?["changed"] == 50)
            #expect(try fixture.sim.calls()["slack:apps.manifest.create"] == 42, "40 solo apps and 2 shared ones")
            let state = try fixture.sim.instances()
            #expect(state.count == 50)
            #expect(state.values.allSatisfy { $0.canDeliver }, "the simulator confirms every instance can deliver")
            try fixture.sim.control("POST", "calls/reset")
            let second = try fixture.provision()
            #expect(second.status == 0)
            #expect(second.stdout.contains("ok=50 changed=0 failed=0"))
            let calls = try fixture.sim.calls()
            #expect(calls.keys.filter { $0.contains("manifest.create") || $0.contains("manifest.update") || $0.hasPrefix("k8s:PATCH") }.isEmpty, "\(calls)")
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
        }

        @Test("new DNS names: the dry run shows exactly those and exits 2; applying keeps a field a person changed in Slack")
        func syncRedirects() throws {
            let fixture = try JobFixture()
            #expect(try fixture.provision().status == 0)
            let apps = try fixture.sim.control("GET", "apps") as? [[String: Any]] ?? []
            let shared = try #require(apps.first { (($0["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String == "W&B alerts shared-1" })
            let appID = try #require(shared["app_id"] as? String)
            try fixture.sim.control("POST", "apps/\(appID)/edit", #"{"pointer": "/display_information/description", "value": "set by a person"}"#)

            var inventory = try String(contentsOfFile: fixture.sim.inventory, encoding: .utf8)
            inventory = inventory.replacingOccurrences(of: #"host_urls: ["https://wandb-0002.wandb.fleet-sim.test"]"#,
                                                       with: #"host_urls: ["https://wandb-0002.wandb.fleet-sim.test", "https://ml.fleet-sim.test"]"#)
            let changed = fixture.directory.write("changed.yaml", inventory)
            #expect(try fixture.cli.run(["inventory", "import", changed]).status == 0)
            try fixture.sim.control("POST", "calls/reset")
            let dry = try fixture.sync(["--dry-run"])
            #expect(dry.status == 2, "\(dry.output)")
            #expect(dry.stdout.contains("plan: app \(appID): redirect URLs +1 -0"))
            #expect(dry.stdout.contains("+ https://ml.fleet-sim.test"))
            #expect(dry.stdout.components(separatedBy: "+ https://").count - 1 == 4, "only the shared group's four instances change")
            #expect(try fixture.sim.calls()["slack:apps.manifest.update"] == nil)
            let apply = try fixture.sync()
            #expect(apply.status == 0, "\(apply.output)")
            let manifest = (try fixture.sim.control("GET", "apps") as? [[String: Any]] ?? []).first { $0["app_id"] as? String == appID }?["manifest"] as? [String: Any]
            #expect(((manifest?["oauth_config"] as? [String: Any])?["redirect_urls"] as? [String])?.contains("https://ml.fleet-sim.test") == true)
            #expect((manifest?["display_information"] as? [String: Any])?["description"] as? String == "set by a person")
            try fixture.sim.control("POST", "calls/reset")
            let converged = try fixture.sync(["--dry-run"])
            #expect(converged.status == 0)
            #expect(try fixture.sim.calls().keys.sorted() == ["slack:apps.manifest.export"], "a converged fleet costs only exports")

            let snapshots = try fixture.cli.run(["apps", "snapshots", "wandb-0002"])
            #expect(snapshots.stdout.contains(appID))
            let restore = try fixture.cli.run(["apps", "restore", "1"])
            #expect(restore.status == 0, "\(restore.output)")
            #expect(try fixture.sync(["--dry-run"]).status == 2, "the restored manifest lacks the new URL again")
        }

        @Test("a 429 storm on one workspace: only that workspace is rate-limited, and everything converges")
        func storm() throws {
            let fixture = try JobFixture(simConfig: #"{"rollout_delay_ms": 100, "storm_retry_after": 1}"#)
            try fixture.sim.control("POST", "faults", #"{"target": "workspace:TSIM0002", "ratelimit_storm": true}"#)
            let sim = fixture.sim
            DispatchQueue.global().asyncAfter(deadline: .now() + 2.5) {
                _ = try? sim.control("POST", "faults", #"{"target": "workspace:TSIM0002", "ratelimit_storm": false}"#)
            }
            let run = try fixture.provision(["--json"])
            #expect(run.status == 0, "\(run.output)")
            let summary = try #require(JobFixture.lines(run).last)
            #expect((summary["rate_limited"] as? [String: Int]).map { Array($0.keys) } == ["TSIM0002"])
            #expect(try fixture.sim.instances().values.allSatisfy { $0.canDeliver })
        }

        @Test("an instance that is down fails alone (exit 1); a refused API key is not retried")
        func failuresStayLocal() throws {
            let fixture = try JobFixture()
            try fixture.sim.control("POST", "faults", #"{"target": "instance:wandb-0007", "down": true}"#)
            var inventory = try String(contentsOfFile: fixture.sim.inventory, encoding: .utf8)
            inventory = inventory.replacingOccurrences(of: "wandb-0011-api-key", with: "wandb-0011-wrong-key")
            _ = FileManager.default.createFile(atPath: fixture.sim.inventory + ".secrets/wandb-0011-wrong-key", contents: Data("not-the-key".utf8))
            let edited = fixture.directory.write("edited.yaml", inventory)
            #expect(try fixture.cli.run(["inventory", "import", edited]).status == 0)
            let run = try fixture.provision(["--json", "--max-failures", "5"])
            #expect(run.status == 1)
            let results = JobFixture.lines(run).filter { $0["instance"] != nil }
            let failed = Set(results.filter { $0["result"] as? String == "failed" }.compactMap { $0["instance"] as? String })
            #expect(failed == ["wandb-0007", "wandb-0011"])
            #expect(results.first { $0["instance"] as? String == "wandb-0011" }?["detail"] as? String ?? "" == "wandb answered HTTP 401 unauthorized (the API key was refused: check the instance's api_key (it must be an admin's)) on wandb-0011")
            #expect(results.filter { $0["result"] as? String == "changed" }.count == 10)
        }

        @Test("--max-failures stops new work once the budget is spent")
        func failureBudget() throws {
            let fixture = try JobFixture(maxAttempts: 1)
            for name in ["wandb-0005", "wandb-0006", "wandb-0007", "wandb-0008"] {
                try fixture.sim.control("POST", "faults", #"{"target": "instance:\#(name)", "down": true}"#)
            }
            let run = try fixture.provision(["--json", "--concurrency", "1", "--max-failures", "1"])
            #expect(run.status == 1)
            let counts = JobFixture.lines(run).last?["counts"] as? [String: Int] ?? [:]
            // Groups already under way when the budget ran out finish (at --concurrency 1, one call
            // is in flight, but several groups may be between calls): 2 to 4 of the 4 down ones.
            #expect((2...4).contains(counts["failed"] ?? 0), "\(counts)")
            #expect((counts["deferred"] ?? 0) > 0, "work after the budget ran out was not started")
            #expect(JobFixture.lines(run).last?["stopped_by"] as? String == "failure budget")
        }

        @Test("SIGTERM mid-run leaves a database and audit log that verify; the next run finishes the job")
        func sigterm() throws {
            let fixture = try JobFixture(simConfig: #"{"rollout_delay_ms": 1500}"#)
            let process = try fixture.cli.start(["provision-app", "--all", "--concurrency", "2", "--job-file", fixture.provisionFile])
            Thread.sleep(forTimeInterval: 2)
            process.terminate()
            process.waitUntilExit()
            #expect(process.terminationStatus == 143)
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
            let rerun = try fixture.provision()
            #expect(rerun.status == 0, "\(rerun.output)")
            #expect(try fixture.sim.instances().values.allSatisfy { $0.canDeliver })
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
        }

        @Test("a second run while one holds the database exits 75 at once, naming the holder")
        func lock() throws {
            let fixture = try JobFixture(simConfig: #"{"rollout_delay_ms": 3000}"#)
            let process = try fixture.cli.start(["provision-app", "--all", "--job-file", fixture.provisionFile])
            Thread.sleep(forTimeInterval: 1)
            let started = Date()
            let second = try fixture.cli.run(["sync-redirects", "--all"])
            #expect(second.status == 75)
            #expect(second.stderr.contains("another run holds this database: provision-app"))
            #expect(second.stderr.contains("pid \(process.processIdentifier)"))
            #expect(Date().timeIntervalSince(started) < 10)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
        }

        @Test("registrars: a failing exec hook and a CR whose selectors name a missing Secret fail with what to fix")
        func registrarFailures() throws {
            let fixture = try JobFixture()
            var inventory = try String(contentsOfFile: fixture.sim.inventory, encoding: .utf8)
            let hook = fixture.directory.write("failing-hook.sh", "#!/bin/sh\ncat > /dev/null\necho 'vault is sealed' >&2\nexit 3\n")
            chmod(hook, 0o755)
            let execLine = try #require(inventory.split(separator: "\n").first { $0.contains("command:") && $0.contains("wandb-0010") })
            inventory = inventory.replacingOccurrences(of: String(execLine), with: "      command: [\"\(hook)\"]")
            let edited = fixture.directory.write("edited.yaml", inventory)
            #expect(try fixture.cli.run(["inventory", "import", edited]).status == 0)
            let kube = try String(contentsOfFile: fixture.sim.inventory + ".secrets/wandb-0001-kube-token", encoding: .utf8)
            var request = URLRequest(url: try #require(URL(string: fixture.sim.baseURL + "/k8s/wandb-0001/apis/apps.wandb.com/v2/namespaces/wandb/weightsandbiases/wandb")))
            request.httpMethod = "PATCH"
            request.setValue("Bearer \(kube)", forHTTPHeaderField: "Authorization")
            request.setValue("application/merge-patch+json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(#"{"spec":{"wandb":{"notifications":{"slack":{"clientSecret":{"name":"gone","key":"SECRET"}}}}}}"#.utf8)
            let patched = DispatchSemaphore(value: 0)
            URLSession.shared.dataTask(with: request) { _, _, _ in patched.signal() }.resume()
            _ = patched.wait(timeout: .now() + 10)

            let run = try fixture.provision(["--json"])
            #expect(run.status == 1)
            let results = JobFixture.lines(run).filter { $0["instance"] != nil }
            let detail = { (name: String) in results.first { $0["instance"] as? String == name }?["detail"] as? String ?? "" }
            #expect(detail("wandb-0010").contains("the exec registrar exited with status 3: vault is sealed"))
            #expect(detail("wandb-0001").contains("the Secret wandb/gone that the WeightsAndBiases resource's slack selectors name does not exist"))
            let configToken = try String(contentsOfFile: fixture.sim.inventory + ".secrets/TSIM0001-config-token", encoding: .utf8)
            #expect(!run.output.contains(configToken))
        }
    }
}

extension JobSuites {
    @Suite("Jobs: time budget")
    struct TimeBudgetTests {
        @Test("--max-duration: no new change starts after it, the run exits 75, and the next run carries on")
        func maxDuration() throws {
            // Slack's real Tier 1 pace (one write a minute per workspace), on a simulator whose own quota is not binding.
            let fixture = try JobFixture(instances: 4, workspaces: 1, groups: 0, timeScale: 1,
                                         simConfig: #"{"rollout_delay_ms": 100, "tier_quota": {"tier1": 1000}, "tier_burst": {"tier1": 1000}}"#)
            let slow = try FastJobFile.write("provision-app", scale: 1, in: fixture.directory, settle: 30)
            let started = Date()
            let first = try fixture.cli.run(["provision-app", "--all", "--job-file", slow, "--max-duration", "3s", "--json"], timeout: 60)
            #expect(first.status == 75, "\(first.output)")
            #expect(Date().timeIntervalSince(started) < 30, "the pace wait ended at the time budget")
            let counts = JobFixture.lines(first).last?["counts"] as? [String: Int] ?? [:]
            #expect(counts["changed"] == 1, "one app per minute: one instance done")
            #expect(counts["deferred"] == 3)
            #expect(first.stderr.contains("ETA 3 min"))
            let deferred = JobFixture.lines(first).filter { $0["result"] as? String == "deferred" }
            #expect(deferred.count == 3 && deferred.allSatisfy { ($0["detail"] as? String ?? "").contains("Tier 1 call to Slack could not go before --max-duration ends") },
                    "the quota said so before any of them started: \(deferred)")
            #expect(try fixture.sim.calls()["slack:apps.manifest.create"] == 1, "no group was started that could not write in time")
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
            let fast = try FastJobFile.write("provision-app", scale: 1000, in: fixture.directory, settle: 30)
            let rest = try fixture.cli.run(["provision-app", "--all", "--job-file", fast, "--json"], timeout: 120)
            #expect(rest.status == 0, "\(rest.output)")
            #expect((JobFixture.lines(rest).last?["counts"] as? [String: Int])?["ok"] == 1, "the first instance is left as it is")
        }
    }
}

extension JobSuites {
    @Suite("Jobs: quotas")
    struct QuotaTests {
        @Test("--concurrency 1 on 5 workspaces: one call in flight, yet every workspace's Tier 1 quota is spent at once; no 429; the share used is reported")
        func everyWorkspaceAtOnce() throws {
            // Slack's Tier 1 (one write a minute, fleet-sim's burst) on a clock 60 times fast; each
            // instance has an app of its own, so each workspace has 4 creates to make.
            let fixture = try JobFixture(instances: 20, workspaces: 5, groups: 0, timeScale: 60, simConfig: #"{"rollout_delay_ms": 50}"#)
            _ = try fixture.sim.control("POST", "calls/reset")
            let metrics = fixture.directory.file("metrics.prom")
            let run = try fixture.provision(["--concurrency", "1", "--json", "--metrics-file", metrics])
            #expect(run.status == 0, "\(run.output)")
            #expect((JobFixture.lines(run).last?["counts"] as? [String: Int])?["changed"] == 20)
            let calls = try #require(try fixture.sim.control("GET", "calls") as? [String: Any])
            #expect((calls["ratelimited"] as? [String: Int] ?? [:]).values.reduce(0, +) == 0, "no 429: \(calls)")
            #expect(calls["most_in_flight"] as? Int == 1, "--concurrency bounds the calls in flight")

            // The order Slack saw the creates in (an app ID ends in its sequence number): at every
            // point, no workspace is more than one create ahead of another, so none waited behind
            // another's quota. One lane per workspace in turn would make TSIM0001's 4 first.
            let apps = try #require(try fixture.sim.control("GET", "apps") as? [[String: Any]])
                .filter { (($0["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String != "canary reader" }
            let created = apps.compactMap { app -> (Int, String)? in
                guard let id = app["app_id"] as? String, let team = app["team_id"] as? String, let number = Int(id.suffix(4)) else { return nil }
                return (number, team)
            }.sorted { $0.0 < $1.0 }.map(\.1)
            #expect(created.count == 20)
            var made: [String: Int] = [:]
            for team in created {
                made[team, default: 0] += 1
                let counts = Set(["TSIM0001", "TSIM0002", "TSIM0003", "TSIM0004", "TSIM0005"]).map { made[$0] ?? 0 }
                #expect(counts.max()! - counts.min()! <= 1, "the creates went in this order: \(Array(created))")
                if counts.max()! - counts.min()! > 1 { break }
            }

            let summary = try #require(JobFixture.lines(run).last)
            let shares = try #require((summary["quota_utilization"] as? [String: Any])?["tier1"] as? [String: Double], "\(summary)")
            #expect(shares.keys.sorted() == ["TSIM0001", "TSIM0002", "TSIM0003", "TSIM0004", "TSIM0005"])
            #expect(shares.values.allSatisfy { $0 > 0 && $0 <= 1 })
            #expect((summary["eta_seconds"] as? Double).map { $0 > 0 } == true)
            let text = try String(contentsOfFile: metrics, encoding: .utf8)
            #expect(text.contains(#"slackfleet_quota_utilization{job="provision-app",workspace="TSIM0003",tier="tier1"}"#), "\(text)")
        }
    }
}

extension JobSuites {
    @Suite("Jobs: group timeout")
    struct GroupTimeoutTests {
        @Test("a group whose work outlasts group_timeout_seconds fails with that reason; the others are not held up")
        func groupTimeout() throws {
            let fixture = try JobFixture(instances: 4, workspaces: 1, groups: 0, simConfig: #"{"rollout_delay_ms": 100}"#)
            try fixture.sim.control("POST", "faults", #"{"target": "instance:wandb-0001", "slow_rollout_ms": 20000}"#)
            let short = try FastJobFile.write("provision-app", scale: 600, in: fixture.directory, settle: 60, groupTimeout: 2)
            let started = Date()
            let run = try fixture.cli.run(["provision-app", "--all", "--job-file", short, "--max-failures", "3", "--json"], timeout: 60)
            #expect(run.status == 1)
            #expect(Date().timeIntervalSince(started) < 15, "the slow group gave up at its timeout, not at the 60 s settle timeout")
            let results = JobFixture.lines(run).filter { $0["instance"] != nil }
            let slow = results.first { $0["instance"] as? String == "wandb-0001" }
            #expect(slow?["result"] as? String == "failed")
            let detail = (slow?["detail"] as? String) ?? ""
            #expect(detail.contains("group_timeout_seconds"))
            #expect(results.filter { $0["result"] as? String == "changed" }.count == 3)
        }
    }
}

extension JobSuites {
    @Suite("Jobs: lost answers")
    struct LostAnswerTests {
        @Test("a create whose answer is lost is sent once more in the run, never more; each lost one is named as a possible orphan; the next run converges")
        func possibleOrphan() throws {
            let fixture = try JobFixture(instances: 3, workspaces: 1, groups: 0)
            try fixture.sim.control("POST", "faults", #"{"target": "workspace:TSIM0001", "endpoint": "slack:apps.manifest.create", "drop_response_rate": 1}"#)
            let lost = try fixture.provision(["--instance", "wandb-0001", "--json"])
            #expect(lost.status == 1)
            let detail = (JobFixture.lines(lost).first?["detail"] as? String) ?? ""
            #expect(detail.contains("possible orphan"))
            #expect(detail.contains(#""W&B alerts wandb-0001""#))
            #expect(detail.contains("the next run creates a new one"))
            #expect(try fixture.sim.calls()["slack:apps.manifest.create"] == 2, "one more create after a lost answer, and no third")
            let audit = try fixture.cli.run(["audit", "list", "--json"]).stdout
            #expect(audit.components(separatedBy: #""phase":"failed""#).count - 1 == 2)
            #expect(audit.contains("SlackFleet creates another at once") && audit.contains("the next run creates a new one"))

            try fixture.sim.control("DELETE", "faults")
            let rerun = try fixture.provision(["--instance", "wandb-0001"])
            #expect(rerun.status == 0, "\(rerun.output)")
            #expect(try fixture.sim.apps(named: "W&B alerts wandb-0001").count == 3, "two possible orphans and the app now in use: reported, not hidden")
            #expect(try fixture.sim.instances()["wandb-0001"]?.canDeliver == true)
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
        }

        @Test("when only the first create's answer is lost, the second create converges in the same run")
        func lostThenCreated() throws {
            let fixture = try JobFixture(instances: 3, workspaces: 1, groups: 0)
            try fixture.sim.control("POST", "faults", #"{"target": "workspace:TSIM0001", "endpoint": "slack:apps.manifest.create", "drop_responses": 1}"#)
            let run = try fixture.provision(["--instance", "wandb-0001", "--json"])
            #expect(run.status == 0, "\(run.output)")
            #expect(JobFixture.lines(run).first?["result"] as? String == "changed")
            #expect(try fixture.sim.calls()["slack:apps.manifest.create"] == 2)
            #expect(try fixture.sim.apps(named: "W&B alerts wandb-0001").count == 2, "the possible orphan and the app in use")
            let audit = try fixture.cli.run(["audit", "list", "--json"]).stdout
            #expect(audit.contains("possible orphan") && audit.contains("SlackFleet creates another at once"))
            #expect(try fixture.sim.instances()["wandb-0001"]?.canDeliver == true)
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
        }
    }
}

extension JobSuites {
    @Suite("Jobs: verify-delivery")
    struct VerifyDeliveryTests {
        @Test("every instance proves delivery; one poll of a channel serves every instance waiting on it")
        func allDelivered() throws {
            let fixture = try JobFixture(instances: 20, workspaces: 2, groups: 1, groupSize: 4, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 300}"#)
            #expect(try fixture.provision().status == 0)
            try fixture.sim.control("POST", "calls/reset")
            let run = try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "20s", "--json",
                                           "--metrics-file", fixture.directory.file("delivery.prom")], timeout: 120)
            #expect(run.status == 0, "\(run.output)")
            let results = JobFixture.lines(run).filter { $0["instance"] != nil }
            #expect(results.count == 20)
            #expect(results.allSatisfy { ($0["checks"] as? [String: String])?.values.allSatisfy { $0 == "ok" } == true })
            #expect(results.allSatisfy { ($0["delivery_seconds"] as? Double) != nil })
            let calls = try fixture.sim.calls()
            #expect((calls["slack:conversations.history"] ?? 0) < 20, "polls grow with channels and rounds, not instances: \(calls)")
            #expect(calls.keys.allSatisfy { !$0.contains("create") && !$0.contains("update") && !$0.hasPrefix("k8s:PATCH") }, "it changes nothing")
            let metrics = try String(contentsOfFile: fixture.directory.file("delivery.prom"), encoding: .utf8)
            #expect(metrics.contains(#"slackfleet_delivery_ok{instance="wandb-0001"} 1"#))
            #expect(metrics.contains("slackfleet_delivery_latency_seconds{instance=\"wandb-0001\"}"))
            let audit = try fixture.cli.run(["audit", "list", "--json"]).stdout
            #expect(!audit.contains("verify-delivery"), "no audit entry beyond the run record")
        }

        @Test("each failure names its check: wrong client ID, missing redirect URL, missing scope, instance down, alert never arrives")
        func failuresNamed() throws {
            let fixture = try JobFixture(instances: 20, workspaces: 2, groups: 0, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 200}"#)
            #expect(try fixture.provision().status == 0)
            let apps = try fixture.sim.control("GET", "apps") as? [[String: Any]] ?? []
            func app(of instance: String) -> [String: Any]? {
                apps.first { (($0["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String == "W&B alerts \(instance)" }
            }
            // wandb-0010 (exec) now runs on a client ID of no app.
            try fixture.sim.control("POST", "instances/wandb-0010/credentials", #"{"client_id": "1111111111.2222222222", "client_secret": "x"}"#)
            // wandb-0020's app had its secret regenerated in Slack's settings page: the stored one is stale.
            let regenerated = try #require(app(of: "wandb-0020")?["app_id"] as? String)
            try fixture.sim.control("POST", "apps/\(regenerated)/regenerate-secret")
            // wandb-0019's app was uninstalled: its canary integration is still listed, and posts nothing.
            let uninstalled = try #require(app(of: "wandb-0019"))
            let installation = try #require((try fixture.sim.control("GET", "tokens") as? [[String: Any]] ?? []).last {
                $0["kind"] as? String == "bot" && $0["app_id"] as? String == uninstalled["app_id"] as? String
            }?["token"] as? String)
            let apiURL = fixture.sim.baseURL + "/api/apps.uninstall"
            var request = URLRequest(url: try #require(URL(string: apiURL)))
            request.httpMethod = "POST"
            request.setValue("Bearer \(installation)", forHTTPHeaderField: "Authorization")
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data("client_id=\(uninstalled["client_id"] as? String ?? "")&client_secret=\(uninstalled["client_secret"] as? String ?? "")".utf8)
            let done = DispatchSemaphore(value: 0)
            URLSession.shared.dataTask(with: request) { _, _, _ in done.signal() }.resume()
            #expect(done.wait(timeout: .now() + 10) == .success)
            // wandb-0018's canary integration was deleted in W&B: a person must connect it again.
            let integrations = (try fixture.sim.control("GET", "instances/wandb-0018") as? [String: Any])?["integrations"] as? [[String: Any]] ?? []
            let canaryIntegration = try #require(integrations.first { $0["entity"] as? String == "ops" }?["id"] as? String)
            let apiKey = try String(contentsOfFile: fixture.sim.inventory + ".secrets/wandb-0018-api-key", encoding: .utf8)
            var delete = URLRequest(url: try #require(URL(string: fixture.sim.baseURL + "/wandb/wandb-0018/graphql")))
            delete.httpMethod = "POST"
            delete.setValue("Basic " + Data("api:\(apiKey)".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
            delete.setValue("application/json", forHTTPHeaderField: "Content-Type")
            delete.httpBody = try JSONSerialization.data(withJSONObject: ["query": "mutation D($id: ID!) { deleteIntegration(input: {id: $id}) { success } }", "variables": ["id": canaryIntegration]])
            URLSession.shared.dataTask(with: delete) { _, _, _ in done.signal() }.resume()
            #expect(done.wait(timeout: .now() + 10) == .success)
            let redirectApp = try #require(app(of: "wandb-0003")?["app_id"] as? String)
            try fixture.sim.control("POST", "apps/\(redirectApp)/edit", #"{"pointer": "/oauth_config/redirect_urls", "value": ["https://elsewhere.example.com"]}"#)
            let scopeApp = try #require(app(of: "wandb-0004")?["app_id"] as? String)
            try fixture.sim.control("POST", "apps/\(scopeApp)/edit", #"{"pointer": "/oauth_config/scopes/bot", "value": ["chat:write"]}"#)
            try fixture.sim.control("POST", "faults", #"{"target": "instance:wandb-0005", "down": true}"#)
            Thread.sleep(forTimeInterval: 0.5)

            let run = try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "4s", "--max-failures", "100%", "--json"], timeout: 120)
            #expect(run.status == 1)
            let results = Dictionary(uniqueKeysWithValues: JobFixture.lines(run).compactMap { line -> (String, [String: Any])? in
                (line["instance"] as? String).map { ($0, line) }
            })
            func failing(_ name: String) -> [String] {
                let checks = results[name]?["checks"] as? [String: String] ?? [:]
                return checks.filter { $0.value != "ok" && $0.value != "skipped" }.keys.sorted()
            }
            #expect(failing("wandb-0010").contains("client_id"))
            #expect(failing("wandb-0020") == ["credentials"], "Slack refuses the stored secret; its integration still delivers")
            #expect(results["wandb-0020"]?["connection"] as? String == "delivering")
            #expect(failing("wandb-0019") == ["delivered"], "connected, but the uninstalled app's webhook posts nothing")
            #expect(failing("wandb-0018") == ["integration"])
            #expect(results["wandb-0018"]?["result"] as? String == "needs-connect", "a distinct result, not a generic failure")
            let action = results["wandb-0018"]?["action"] as? [String: Any]
            #expect(action?["link"] as? String == "https://wandb-0018.wandb.fleet-sim.test/ops/settings")
            #expect(action?["channel"] as? String == "#wandb-canary")
            #expect(failing("wandb-0003").contains("redirect"))
            #expect(failing("wandb-0004").contains("scope"))
            #expect(!failing("wandb-0005").isEmpty, "a down instance fails")
            let downDetail = (results["wandb-0005"]?["detail"] as? String) ?? ""
            #expect(downDetail.contains("ready"))
            #expect(failing("wandb-0001").isEmpty)
            #expect(results.values.filter { $0["result"] as? String == "ok" }.count == 13)
        }
    }
}

extension JobSuites {
    @Suite("Jobs: no secret leaks")
    struct SecretLeakTests {
        @Test("no secret value appears in stdout, stderr, debug logs, metrics, the audit export, the status page or the database files")
        func noLeaks() throws {
            let fixture = try JobFixture(instances: 10, workspaces: 2, groups: 1, groupSize: 3, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100}"#)
            // The exec hook (wandb-0010) goes through a wrapper that records the argv and environment it was given.
            let dump = fixture.directory.file("hook-argv-env.txt")
            let wrapper = fixture.directory.write("hook-wrapper.sh", "#!/bin/sh\n{ echo ARGV; printf '%s\\n' \"$@\"; echo ENV; env; } >> '\(dump)'\nexec \"$@\"\n")
            #expect(chmod(wrapper, 0o700) == 0)
            let wrapped = try String(contentsOfFile: fixture.sim.inventory, encoding: .utf8).replacingOccurrences(of: "command: [", with: "command: [\"\(wrapper)\", ")
            #expect(try fixture.cli.run(["inventory", "import", fixture.directory.write("wrapped.yaml", wrapped)]).status == 0)
            var outputs: [String] = []
            func run(_ job: [String], status expected: Int32 = 0, metrics: Bool = true) throws {
                for extra in [["--log-level", "debug"], ["--json"] + (metrics ? ["--metrics-file", fixture.directory.file("\(job[0]).prom")] : [])] {
                    let run = try fixture.cli.run(job + extra, timeout: 120)
                    #expect(run.status == expected, "\(job[0]): \(run.output.suffix(800))")
                    outputs.append(run.output)
                }
                outputs.append((try? String(contentsOfFile: fixture.directory.file("\(job[0]).prom"), encoding: .utf8)) ?? "")
            }
            try run(["provision-app", "--job-file", fixture.provisionFile, "--all"])
            try run(["sync-redirects", "--job-file", fixture.syncFile, "--all"])
            try run(["verify-delivery", "--pace-scale", "600", "--timeout", "20s", "--all"])
            // In place: a secret a person regenerated, handed over by reference and pushed to the exec instance.
            let execApp = try #require(try fixture.liveApp("wandb-0010"))
            let fresh = try #require((try fixture.sim.control("POST", "apps/\(execApp["app_id"] as? String ?? "")/regenerate-secret") as? [String: Any])?["client_secret"] as? String)
            let secretFile = fixture.directory.write("regenerated", fresh + "\n")
            try run(["rotate-secret", "--client-secret", "--secret-from", "file:\(secretFile)", "--instance", "wandb-0010", "--pace-scale", "600", "--timeout", "20s"])
            // Blue/green with the configuration tokens: it waits for people to connect through the new apps.
            try run(["rotate-secret", "--config-tokens", "--client-secret", "--blue-green", "--min-remaining", "13h", "--pace-scale", "600", "--timeout", "20s", "--all"],
                    status: 1)
            let hookSaw = (try? String(contentsOfFile: dump, encoding: .utf8)) ?? ""
            #expect(hookSaw.contains("--instance") && hookSaw.contains("PATH="), "the exec hook ran through the wrapper")
            #expect(hookSaw.components(separatedBy: "ARGV").count - 1 >= 3, "the hook ran for provision-app and both rotations")
            outputs.append(hookSaw)
            outputs.append(try fixture.cli.run(["audit", "export"]).output)
            outputs.append(try fixture.cli.run(["inventory", "export"]).output)
            outputs.append(try fixture.cli.run(["inventory", "show", "wandb-0001", "--json"]).output)
            // The status, as text, JSON and the HTML page a job run writes.
            outputs.append(try fixture.cli.run(["status"]).output + (try fixture.cli.run(["status", "--json"]).output))
            let page = fixture.directory.file("fleet.html")
            _ = try fixture.cli.run(["sync-redirects", "--job-file", fixture.syncFile, "--all", "--report", page], timeout: 120)
            let html = (try? String(contentsOfFile: page, encoding: .utf8)) ?? ""
            #expect(html.contains("SlackFleet fleet status"), "the job wrote its report")
            outputs.append(html)
            // Every secret the fleet holds: the simulator's issued tokens and keys, and the apps' client secrets.
            let secretFiles = try FileManager.default.contentsOfDirectory(atPath: fixture.sim.inventory + ".secrets")
            var secrets = try secretFiles.map { try String(contentsOfFile: fixture.sim.inventory + ".secrets/" + $0, encoding: .utf8) }
            let apps = try fixture.sim.control("GET", "apps") as? [[String: Any]] ?? []
            secrets += apps.compactMap { $0["client_secret"] as? String }
            // And every token Slack issued, the rotated configuration and refresh tokens included.
            secrets += (try fixture.sim.control("GET", "tokens") as? [[String: Any]] ?? []).compactMap { $0["token"] as? String }
            #expect(secrets.count > 40)
            var database = Data()
            for suffix in ["", "-wal"] { database.append(FileManager.default.contents(atPath: fixture.directory.file("slackfleet.db" + suffix)) ?? Data()) }
            for secret in secrets {
                #expect(!outputs.contains { $0.contains(secret) }, "a secret of \(secret.count) characters leaked into output")
                #expect(database.range(of: Data(secret.utf8)) == nil, "a secret is stored in the clear")
            }
        }
    }
}

/// A hostile or broken answer from one side, and what the failure must say.
struct HostileCase: Sendable, CustomTestStringConvertible {
    let kind: String
    /// `instance:wandb-0001` (its W&B API) or `workspace:TSIM0001` (Slack).
    let target: String
    let says: String

    var testDescription: String { "\(kind) from \(target.hasPrefix("instance") ? "W&B" : "Slack")" }

    static let all: [HostileCase] = [
        ("truncated_json", "unreadable_answer", "not Slack's JSON envelope"),
        ("wrong_types", "serverInfo is not an object", "not Slack's JSON envelope"),
        ("huge_body", "response too large", "response too large"),
        ("html", "HTTP 502", "HTTP 502"),
        ("redirect", "redirects are not followed", "redirects are not followed"),
        ("retry_after_year", "Retry-After 31536000 s", "Retry-After 31536000 s"),
        ("retry_after_negative", "Retry-After -30 s", "Retry-After -30 s"),
        ("graphql_errors", "graphql_error (internal resolver failure)", "not Slack's JSON envelope"),
    ].flatMap { kind, wandb, slack in
        [HostileCase(kind: kind, target: "instance:wandb-0001", says: wandb), HostileCase(kind: kind, target: "workspace:TSIM0001", says: slack)]
    }
}

extension JobSuites {
    @Suite("Hostile answers from the far side")
    struct HostileAnswerTests {
        @Test("each yields a clear per-instance failure in bounded time, and no crash", arguments: HostileCase.all)
        func hostile(_ hostile: HostileCase) throws {
            let fixture = try JobFixture(instances: 3, workspaces: 1, groups: 0, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100}"#)
            #expect(try fixture.provision().status == 0)
            try fixture.sim.control("POST", "faults", #"{"target": "\#(hostile.target)", "hostile": "\#(hostile.kind)"}"#)
            let started = Date()
            let run = try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "3s", "--max-failures", "100%", "--json"], timeout: 90)
            #expect(Date().timeIntervalSince(started) < 45, "bounded by the retry budget and --timeout")
            #expect(run.status == 1, "a failure, not a crash: \(run.stderr.suffix(600))")
            let results = Dictionary(uniqueKeysWithValues: JobFixture.lines(run).compactMap { line in (line["instance"] as? String).map { ($0, line) } })
            #expect(results.count == 3)
            let detail = results["wandb-0001"]?["detail"] as? String ?? ""
            #expect(results["wandb-0001"]?["result"] as? String == "failed")
            #expect(detail.contains(hostile.says), "\(detail)")
            if hostile.target.hasPrefix("instance:") {
                #expect(results.values.filter { $0["result"] as? String == "ok" }.count == 2, "the other instances are not held up")
            }
        }
    }
}

extension JobSuites {
    @Suite("TLS")
    struct TLSTests {
        @Test("https with a certificate from a private CA is refused unless --ca-file names that CA; verification is never off")
        func privateCA() throws {
            let directory = TemporaryDirectory("tls")
            let tls = PackagePaths.fixtures + "/tls"
            let sim = try FleetSimProcess(["--instances", "2", "--workspaces", "1", "--registrars", "operator-v2", "--time-scale", "600", "--connected", "1",
                                           "--tls-cert", tls + "/server.pem", "--tls-key", tls + "/server-key.pem"], directory: directory)
            #expect(sim.baseURL.hasPrefix("https://127.0.0.1:"))
            let cli = SlackFleetCLI(workingDirectory: directory.path)
            let jobFile = try FastJobFile.write("provision-app", scale: 600, in: directory)
            #expect(try cli.run(["init"]).status == 0)
            #expect(try cli.run(["inventory", "import", sim.inventory]).status == 0)

            // doctor names the chain that does not verify, and passes once the CA is given.
            let untrusted = try cli.run(["doctor", "--json"], timeout: 120)
            #expect(untrusted.status == 1)
            let checks = Set(JobFixture.lines(untrusted).compactMap { $0["check"] as? String })
            #expect(checks == ["tls"], "\(untrusted.output.suffix(800))")
            #expect(untrusted.stdout.contains("--ca-file"))
            let ready = try cli.run(["doctor", "--ca-file", tls + "/ca.pem"], timeout: 120)
            #expect(ready.status == 0, "\(ready.output.suffix(800))")

            for caFile in [nil, tls + "/other-ca.pem"] {
                let refused = try cli.run(["provision-app", "--all", "--job-file", jobFile, "--json"] + (caFile.map { ["--ca-file", $0] } ?? []), timeout: 120)
                #expect(refused.status == 1, "\(refused.output.suffix(800))")
                let details = JobFixture.lines(refused).compactMap { $0["detail"] as? String }
                #expect(details.count == 2 && details.allSatisfy { $0.contains("TLS failure") }, "\(details)")
            }
            let missing = try cli.run(["provision-app", "--all", "--ca-file", "no-such-ca.pem"])
            #expect(missing.status == 78)
            #expect(missing.stderr.contains("--ca-file no-such-ca.pem cannot be read as PEM certificates"))

            let trusted = try cli.run(["provision-app", "--all", "--job-file", jobFile, "--ca-file", tls + "/ca.pem"], timeout: 120)
            #expect(trusted.status == 0, "\(trusted.output.suffix(800))")
            #expect(trusted.stdout.contains("ok=0 changed=2 failed=0"))
            var fromEnvironment = cli
            fromEnvironment.environment["SLACKFLEET_CA_FILE"] = tls + "/ca.pem"
            let verified = try fromEnvironment.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "20s"], timeout: 120)
            #expect(verified.status == 0, "$SLACKFLEET_CA_FILE works too: \(verified.output.suffix(800))")
        }
    }
}
