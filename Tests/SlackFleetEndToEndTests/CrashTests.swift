import Foundation
import SlackFleetTestSupport
import Testing

/// A point where a job is killed (SIGKILL, through SLACKFLEET_CRASH_AT), and the job.
struct CrashCase: Sendable, CustomTestStringConvertible {
    let job: String
    let point: String
    /// What the rerun is expected to end with (a lost refresh token cannot be recovered).
    var rerunStatus: Int32 = 0
    /// The rerun as another job (a propagation killed mid-way, resumed by a --client-secret run).
    var rerunAs: String?

    var testDescription: String { "\(job) killed at \(point)" + (rerunAs.map { ", rerun as \($0)" } ?? "") }

    /// A blue/green point the killed run reaches only once the canaries are connected.
    var promotes: Bool {
        job == "client-secret" && ["before:promote:db", "rotate:promoted", "before:delete:slack", "after:delete:slack"].contains(point)
    }

    static let all: [CrashCase] = [
        // provision-app: one app shared by ten instances of all three registrar kinds.
        CrashCase(job: "provision-app", point: "before:create:slack"),
        CrashCase(job: "provision-app", point: "create:answered"),
        CrashCase(job: "provision-app", point: "create:stored"),
        CrashCase(job: "provision-app", point: "before:update:k8s"),
        CrashCase(job: "provision-app", point: "after:update:k8s#4"),
        CrashCase(job: "provision-app", point: "after:restart:k8s#2"),
        CrashCase(job: "provision-app", point: "before:register:exec"),
        // sync-redirects
        CrashCase(job: "sync-redirects", point: "before:update-redirects:slack"),
        CrashCase(job: "sync-redirects", point: "after:update-redirects:slack"),
        // rotate-secret --client-secret --blue-green --grace 0: create, register, wait for the
        // canaries to be connected through the new app, verify, promote, delete.
        CrashCase(job: "client-secret", point: "before:create:slack"),
        CrashCase(job: "client-secret", point: "create:answered"),
        CrashCase(job: "client-secret", point: "rotate:pending-stored"),
        CrashCase(job: "client-secret", point: "before:update:k8s#3"),
        CrashCase(job: "client-secret", point: "after:restart:k8s"),
        CrashCase(job: "client-secret", point: "after:update:k8s#6"),
        CrashCase(job: "client-secret", point: "before:register:exec"),
        CrashCase(job: "client-secret", point: "rotate:instance-registered#5"),
        CrashCase(job: "client-secret", point: "before:promote:db"),
        CrashCase(job: "client-secret", point: "rotate:promoted"),
        CrashCase(job: "client-secret", point: "before:delete:slack"),
        CrashCase(job: "client-secret", point: "after:delete:slack"),
        // rotate-secret --client-secret in place: a secret regenerated in Slack's settings page.
        CrashCase(job: "propagate", point: "before:store-secret:db"),
        CrashCase(job: "propagate", point: "before:update:k8s#2"),
        CrashCase(job: "propagate", point: "rotate:instance-registered#4"),
        CrashCase(job: "propagate", point: "before:promote:db"),
        // A pending change resumes as the kind it was, whichever kind the rerun asks for.
        CrashCase(job: "propagate", point: "rotate:instance-registered#2", rerunAs: "client-secret"),
        // rotate-secret --config-tokens
        CrashCase(job: "config-tokens", point: "before:rotate:slack"),
        CrashCase(job: "config-tokens", point: "rotate:config-token-stored"),
        // Killed after Slack answered and before the pair was stored: with a single-use refresh
        // token the pair is gone, and the rerun must say so and how to re-seed.
        CrashCase(job: "config-tokens", point: "config-token:answered", rerunStatus: 1),
    ]
}

extension JobFixture {
    /// The people of every instance connect the canary (through whatever app it runs now).
    func connectAll() throws {
        for name in try simInstances().keys.sorted() {
            let connected = try connect(name)
            #expect(connected["ok"] as? Bool == true, "\(name): \(connected)")
        }
    }
}

extension JobSuites {
    @Suite("Crash points: SIGKILL, then a rerun")
    struct CrashTests {
        @Test("a rerun converges, the audit log verifies and records the recovery, no instance ever lacks working credentials", arguments: CrashCase.all)
        func crash(_ crash: CrashCase) throws {
            let fixture = try JobFixture(instances: 10, workspaces: 1, groups: 1, groupSize: 10, simConfig: #"{"rollout_delay_ms": 100, "alert_delay_ms": 100}"#)
            let command: [String]
            var original: [String]?
            switch crash.job {
            case "provision-app":
                command = ["provision-app", "--all", "--job-file", fixture.provisionFile]
            case "sync-redirects":
                #expect(try fixture.provision().status == 0)
                let app = try #require(try fixture.simApps().first?["app_id"] as? String)
                try fixture.sim.control("POST", "apps/\(app)/edit", #"{"pointer": "/oauth_config/redirect_urls", "value": ["https://wandb-0001.wandb.fleet-sim.test"]}"#)
                command = ["sync-redirects", "--all", "--job-file", fixture.syncFile]
            case "client-secret":
                #expect(try fixture.provision().status == 0)
                command = ["rotate-secret", "--client-secret", "--blue-green", "--grace", "0", "--all", "--pace-scale", "600", "--timeout", "20s"]
                original = try fixture.simApps().compactMap { $0["client_id"] as? String }
                if crash.promotes {
                    // Promotion needs the canaries connected through the new app: a first run gets
                    // there and waits, the people connect, and the run that is killed promotes.
                    let waiting = try fixture.cli.run(command, timeout: 120)
                    #expect(waiting.status == 1, "\(waiting.output.suffix(600))")
                    try fixture.connectAll()
                }
            case "propagate":
                #expect(try fixture.provision().status == 0)
                let app = try #require(try fixture.liveApp("shared-1"))
                let regenerated = try fixture.sim.control("POST", "apps/\(app["app_id"] as? String ?? "")/regenerate-secret") as? [String: Any]
                let secret = fixture.directory.write("new-secret", (regenerated?["client_secret"] as? String ?? "") + "\n")
                command = ["rotate-secret", "--client-secret", "--secret-from", "file:\(secret)", "--instance", "wandb-0001", "--pace-scale", "600", "--timeout", "20s"]
            default:
                command = ["rotate-secret", "--config-tokens", "--min-remaining", "13h", "--all", "--pace-scale", "600"]
            }
            let before = try original ?? fixture.simApps().compactMap { $0["client_id"] as? String }
            // Integrations lost before the run (a person's doing) are not the job's.
            let lossesBefore = try fixture.simInstances().mapValues { $0["delivery_losses"] as? Int ?? 0 }
            var killed = fixture.cli
            killed.environment["SLACKFLEET_CRASH_AT"] = crash.point
            let first = try killed.run(command, timeout: 120)
            #expect(first.status == 9, "the process was killed at \(crash.point): \(first.output.suffix(600))")

            // The rerun keeps the default grace, so a finished rotation does not start another one;
            // then a run with --grace 0 and --min-age deletes the replaced app.
            let rerunCommand = crash.rerunAs == "client-secret"
                ? ["rotate-secret", "--client-secret", "--blue-green", "--all", "--pace-scale", "600", "--timeout", "20s"]
                : command.filter { $0 != "--grace" && $0 != "0" }
            var rerun = try fixture.cli.run(rerunCommand, timeout: 120)
            if crash.job == "client-secret", !crash.promotes {
                // It resumed up to the stage that waits for the people; they connect; it promotes.
                #expect(rerun.status == 1 && rerun.stdout.contains("waiting=10"), "\(rerun.output.suffix(1500))")
                try fixture.connectAll()
                rerun = try fixture.cli.run(rerunCommand, timeout: 120)
            }
            #expect(rerun.status == crash.rerunStatus, "\(rerun.output.suffix(1500))")
            if crash.rerunAs != nil {
                #expect(rerun.stdout.contains("runs on the new secret of app"), "the propagation was finished, not replaced: \(rerun.stdout.suffix(800))")
            }
            if crash.job == "client-secret" {
                let cleanup = try fixture.cli.run(command + ["--min-age", "1h"], timeout: 120)
                #expect(cleanup.status == 0, "\(cleanup.output.suffix(1500))")
            }
            #expect(try fixture.cli.run(["audit", "verify"]).status == 0)
            let audit = try fixture.cli.run(["audit", "list", "--json"]).stdout
            #expect(audit.contains(#""phase":"recovered""#), "the rerun recorded what it found of the unfinished change")
            if crash.job == "config-tokens" {
                if crash.rerunStatus != 0 { #expect(rerun.stdout.contains("Re-seed it")) }
                return
            }
            for (name, item) in try fixture.simInstances() {
                #expect(item["delivery_losses"] as? Int == lossesBefore[name], "\(name) lost an integration: \(item["last_delivery_loss"] ?? "")")
                #expect(item["can_deliver"] as? Bool == true, "\(name)'s canary does not deliver")
                #expect(item["can_connect"] as? Bool == true, "\(name) cannot make a new connection")
            }
            // The simulator also holds each workspace's reader app; SlackFleet's are named "W&B alerts ...".
            let live = try fixture.simApps().filter {
                $0["deleted"] as? Bool == false && ((($0["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String)?.hasPrefix("W&B alerts") == true
            }
            let orphans = live.count - 1
            if crash.point == "create:answered" {
                #expect(orphans == 1, "the app created before the kill is a possible orphan")
                #expect(audit.contains("possible orphan"), "and the audit log names it")
            } else {
                #expect(orphans == 0, "no app without stored credentials: \(live.count) live apps")
            }
            if crash.job == "client-secret" {
                let now = try fixture.simInstances().values.compactMap { $0["effective_client_id"] as? String }
                #expect(Set(now).count == 1 && !before.contains(now[0]), "every instance runs on the one new app")
            }
            let check = crash.job == "sync-redirects" ? try fixture.sync(["--dry-run"]) : try fixture.provision(["--dry-run"])
            #expect(check.status == 0, "converged: \(check.output.suffix(800))")
        }
    }
}

extension JobSuites {
    @Suite("Power-loss-like copy of the database")
    struct DatabaseCopyTests {
        @Test("a copy of the database and its WAL taken mid-run opens, verifies, and a run resumes from it")
        func copyMidRun() throws {
            let fixture = try JobFixture(instances: 8, workspaces: 2, groups: 0, simConfig: #"{"rollout_delay_ms": 1000, "alert_delay_ms": 100}"#)
            let running = try fixture.cli.start(["provision-app", "--all", "--concurrency", "2", "--job-file", fixture.provisionFile])
            defer { if running.isRunning { running.terminate() }; running.waitUntilExit() }
            // Wait until the run has created some apps and not all, then copy the files as they are.
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline, (try fixture.sim.calls()["slack:apps.manifest.create"] ?? 0) < 2 { Thread.sleep(forTimeInterval: 0.05) }
            let copy = TemporaryDirectory("copy")
            var walBytes = 0
            for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: fixture.directory.file("slackfleet.db" + suffix)) {
                let data = try Data(contentsOf: URL(fileURLWithPath: fixture.directory.file("slackfleet.db" + suffix)))
                try data.write(to: URL(fileURLWithPath: copy.file("slackfleet.db" + suffix)))
                if suffix == "-wal" { walBytes = data.count }
            }
            #expect(walBytes > 0, "the copy includes the write-ahead log, as a power cut would leave it")
            try FileManager.default.copyItem(atPath: fixture.directory.file("slackfleet.db.key"), toPath: copy.file("slackfleet.db.key"))
            #expect(running.isRunning, "the copy was taken while the run was still going")
            running.waitUntilExit()
            #expect(running.terminationStatus == 0)

            let restored = SlackFleetCLI(workingDirectory: copy.path)
            let verify = try restored.run(["audit", "verify"])
            #expect(verify.status == 0, "\(verify.output)")
            // The copy's run lock names a process that has ended: the next run takes it over and resumes.
            let resumed = try restored.run(["provision-app", "--all", "--job-file", fixture.provisionFile], timeout: 120)
            #expect(resumed.status == 0, "\(resumed.output.suffix(1500))")
            #expect(resumed.stderr.contains("took over the lock of provision-app run"), "\(resumed.stderr.suffix(500))")
            #expect(try restored.run(["audit", "verify"]).status == 0)
            #expect(try fixture.simInstances().values.allSatisfy { $0["can_deliver"] as? Bool == true })
            let again = try restored.run(["provision-app", "--all", "--dry-run", "--job-file", fixture.provisionFile])
            #expect(again.status == 0, "converged from the copy: \(again.output.suffix(800))")
        }
    }
}
