import Foundation
import SlackFleetTestSupport
import Testing

extension JobSuites {
    @Suite("The ops-repo kit: make fragment and shards")
    struct OpsKitTests {
        /// A scratch ops repository whose Makefile includes jobs/slackfleet.mk, aimed at `fixture`'s fleet-sim.
        static func opsRepo(_ fixture: JobFixture) throws -> (make: SlackFleetCLI, path: String) {
            let path = fixture.directory.file("ops")
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let makefile = """
                SLACKFLEET = \(SlackFleetCLI.defaultBinary)
                SLACKFLEET_DB = fleet.db
                SLACKFLEET_INVENTORY = \(fixture.sim.inventory)
                SLACKFLEET_JOB_FLAGS = --pace-scale 600
                SLACKFLEET_TIMEOUT = 30s
                include \(PackagePaths.root)/jobs/slackfleet.mk
                """
            try makefile.write(toFile: path + "/Makefile", atomically: true, encoding: .utf8)
            return (SlackFleetCLI(workingDirectory: path, binary: "/usr/bin/make"), path)
        }

        @Test("included from a scratch ops repo: fleet-plan says pending then converged, make -n changes nothing, fleet-apply, -k, verify, status, report and token rotation run against fleet-sim")
        func makeFragment() throws {
            let fixture = try JobFixture(instances: 6, workspaces: 2, groups: 1, groupSize: 2, simConfig: #"{"rollout_delay_ms": 50, "alert_delay_ms": 100}"#)
            let (make, path) = try Self.opsRepo(fixture)
            let cli = SlackFleetCLI(workingDirectory: path, environment: ["SLACKFLEET_DB": path + "/fleet.db"])

            let pending = try make.run(["--no-print-directory", "fleet-plan"], timeout: 120)
            #expect(pending.status == 2 && pending.stdout.contains("fleet-plan: changes pending") && pending.stderr.contains("Error 2"), "\(pending.output.suffix(800))")

            let dry = try make.run(["-n", "fleet-apply"], timeout: 60)
            #expect(dry.status == 0 && dry.stdout.contains("provision-app --all --pace-scale 600"), "\(dry.output)")
            #expect(JobFixture.lines(try cli.run(["inventory", "list", "--json"])).isEmpty, "make -n ran nothing")

            let apply = try make.run(["fleet-apply"], timeout: 240)
            #expect(apply.status == 0, "\(apply.output.suffix(1500))")
            let apps = try fixture.simApps().filter { ((($0["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String ?? "").hasPrefix("W&B alerts") }
            #expect(apps.count == 5, "an app per group")
            let converged = try make.run(["--no-print-directory", "fleet-plan"], timeout: 120)
            #expect(converged.status == 0 && converged.stdout.contains("fleet-plan: converged"), "\(converged.output.suffix(1500))")

            // Not verified yet: status fails; with -k the report is still written.
            let keepGoing = try make.run(["-k", "fleet-status", "fleet-report"], timeout: 60)
            #expect(keepGoing.status == 2 && keepGoing.stdout.contains("unverified"), "\(keepGoing.output.suffix(800))")
            #expect(FileManager.default.fileExists(atPath: path + "/fleet.html"), "-k went on to fleet-report")

            #expect(try make.run(["fleet-verify"], timeout: 240).status == 0)
            let healthy = try make.run(["fleet-status"], timeout: 60)
            #expect(healthy.status == 0 && healthy.stdout.contains("healthy: delivering=6"), "\(healthy.output.suffix(800))")
            let tokens = try make.run(["fleet-rotate-tokens"], timeout: 120)
            #expect(tokens.status == 0, "\(tokens.output.suffix(800))")
        }

        @Test("--jobs-dir and $SLACKFLEET_JOBS_DIR: an edited job file takes effect and the run says which file it read; a missing one says the built-in settings apply")
        func jobsDirectory() throws {
            let fixture = try JobFixture(instances: 2, workspaces: 1, groups: 0, simConfig: #"{"rollout_delay_ms": 50}"#)
            let directory = fixture.directory.file("ops-jobs")
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            // The fast job file, with the app's name template edited.
            let edited = try String(contentsOfFile: fixture.provisionFile, encoding: .utf8).replacingOccurrences(of: "W&B alerts {app_group}", with: "Ops alerts {app_group}")
            try edited.write(toFile: directory + "/provision-app.json", atomically: true, encoding: .utf8)
            let run = try fixture.cli.run(["provision-app", "--all", "--jobs-dir", directory], timeout: 120)
            #expect(run.status == 0 && run.stderr.contains("provision-app: settings from \(directory)/provision-app.json"), "\(run.output.suffix(800))")
            let names = try fixture.simApps().compactMap { (($0["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String }
            #expect(names.contains("Ops alerts wandb-0001"), "\(names)")
            var environment = fixture.cli
            environment.environment["SLACKFLEET_JOBS_DIR"] = directory
            let sync = try environment.run(["sync-redirects", "--all", "--pace-scale", "600"], timeout: 120)
            #expect(sync.status == 0 && sync.stderr.contains("sync-redirects: no \(directory)/sync-redirects.json; the built-in settings apply"), "\(sync.output.suffix(800))")
        }

        @Test("two shard databases from one inventory split its workspaces with no overlap, each runs its jobs, and one refuses to act as the other")
        func twoShards() throws {
            let fixture = try JobFixture(instances: 12, workspaces: 4, groups: 0, simConfig: #"{"rollout_delay_ms": 50}"#)
            var workspaces: [Set<String>] = []
            var changed = 0
            for index in 1...2 {
                let cli = SlackFleetCLI(workingDirectory: fixture.directory.path, environment: ["SLACKFLEET_DB": fixture.directory.file("shard\(index).db")])
                #expect(try cli.run(["init"]).status == 0)
                let imported = try cli.run(["inventory", "import", fixture.sim.inventory, "--shard", "\(index)/2"])
                #expect(imported.status == 0 && imported.stderr.contains("shard \(index)/2:"), "\(imported.output)")
                let listed = JobFixture.lines(try cli.run(["inventory", "list", "--json"]))
                workspaces.append(Set(listed.compactMap { $0["workspace"] as? String }))
                let run = try cli.run(["provision-app", "--all", "--job-file", fixture.provisionFile, "--json"], timeout: 120)
                #expect(run.status == 0, "\(run.output.suffix(800))")
                changed += (JobFixture.lines(run).last?["counts"] as? [String: Int])?["changed"] ?? 0
                let other = try cli.run(["provision-app", "--all", "--shard", "\(3 - index)/2", "--job-file", fixture.provisionFile])
                #expect(other.status == 78 && other.stderr.contains("holds shard \(index)/2"), "\(other.output)")
            }
            #expect(workspaces[0].isDisjoint(with: workspaces[1]), "\(workspaces)")
            #expect(workspaces[0].union(workspaces[1]).count == 4, "\(workspaces)")
            #expect(changed == 12, "every instance provisioned by exactly one shard")
            let alertApps = try fixture.simApps().filter {
                ((($0["manifest"] as? [String: Any])?["display_information"] as? [String: Any])?["name"] as? String ?? "").hasPrefix("W&B alerts")
            }
            #expect(alertApps.count == 12, "one app per group, none made twice")
        }
    }
}
