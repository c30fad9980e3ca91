import Foundation
import SlackFleetTestSupport
import Testing

/// What ships under jobs/ for running SlackFleet: systemd units, Kubernetes manifests, and
/// `make install` with completions and man pages. Each is checked by the tool its platform uses.
@Suite("The runner kit: systemd, Kubernetes, make install")
struct RunnerKitTests {
    static let jobs = PackagePaths.root + "/jobs"

    static func files(_ folder: String, suffix: String) throws -> [String] {
        let path = jobs + "/" + folder
        return try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(suffix) }.sorted().map { path + "/" + $0 }
    }

    @Test("the systemd units pass systemd-analyze verify with no warning, are hardened, take the key as a credential, and treat 75 as success")
    func systemdUnits() throws {
        let analyze = try #require(["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) },
                                   "install systemd (apt-get install -y systemd): .ci/run does")
        let services = try Self.files("systemd", suffix: ".service")
        let timers = try Self.files("systemd", suffix: ".timer")
        #expect(services.count == 4 && timers.count == 4)
        // verify checks that ExecStart's program exists: point it at the built binary.
        let directory = TemporaryDirectory("units")
        var copies: [String] = []
        for unit in services + timers {
            let text = try String(contentsOfFile: unit, encoding: .utf8).replacingOccurrences(of: "/usr/local/bin/slackfleet", with: SlackFleetCLI.defaultBinary)
            copies.append(directory.write((unit as NSString).lastPathComponent, text))
        }
        let verified = try SlackFleetCLI(workingDirectory: directory.path, binary: analyze).run(["verify"] + copies, timeout: 120)
        #expect(verified.status == 0 && verified.output.isEmpty, "systemd-analyze verify: \(verified.output)")
        for service in services {
            let text = try String(contentsOfFile: service, encoding: .utf8)
            for line in ["Type=oneshot", "SuccessExitStatus=75", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/slackfleet",
                         "PrivateTmp=yes", "LoadCredential=master-key:", "Environment=SLACKFLEET_KEY_FILE=%d/master-key", "ExecStart=/usr/local/bin/slackfleet "] {
                #expect(text.contains("\n" + line), "\((service as NSString).lastPathComponent): \(line)")
            }
            #expect(FileManager.default.fileExists(atPath: service.replacingOccurrences(of: ".service", with: ".timer")), "a timer per service")
        }
    }

    @Test("the key as systemd hands it over (a 0400 file named by SLACKFLEET_KEY_FILE) is accepted")
    func credentialFile() throws {
        let directory = TemporaryDirectory("credential")
        let cli = SlackFleetCLI(workingDirectory: directory.path)
        #expect(try cli.run(["init"]).status == 0)
        let credential = directory.file("credentials-master-key")
        try FileManager.default.copyItem(atPath: directory.file("slackfleet.db.key"), toPath: credential)
        #expect(chmod(credential, 0o400) == 0)
        try FileManager.default.removeItem(atPath: directory.file("slackfleet.db.key"))
        var service = cli
        service.environment["SLACKFLEET_KEY_FILE"] = credential
        let verified = try service.run(["audit", "verify"])
        #expect(verified.status == 0, "\(verified.output)")
    }

    @Test("every Kubernetes manifest passes kubernetes-validate --strict; the CronJobs forbid overlap, outlast --max-duration and do not retry exit 75; the Role has exactly the registrars' verbs")
    func kubernetesManifests() throws {
        // The Python that runs the other Python checks (make test's), where .ci/run installs kubernetes-validate.
        let environment = ProcessInfo.processInfo.environment
        let python = try #require((environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { "\($0)/python3" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }, "python3 on PATH")
        let manifests = try ["single", "shards", "rbac"].flatMap { folder in try Self.files("kubernetes/" + folder, suffix: ".yaml") }.filter { !$0.hasSuffix("kustomization.yaml") }
        #expect(manifests.count == 5)
        let run = try SlackFleetCLI(workingDirectory: Self.jobs, binary: python, environment: environment)
            .run(["-m", "kubernetes_validate", "--strict"] + manifests, timeout: 120)
        #expect(run.status == 0, "pip install kubernetes-validate (.ci/run does): \(run.output)")
        #expect(run.output.components(separatedBy: " passed for resource ").count - 1 == 8, "\(run.output)")
        for cronjob in ["single", "shards"].map({ Self.jobs + "/kubernetes/\($0)/cronjob.yaml" }) {
            let text = try String(contentsOfFile: cronjob, encoding: .utf8)
            #expect(text.contains("concurrencyPolicy: Forbid") && text.contains("activeDeadlineSeconds: 3600") && text.contains("--max-duration 50m"))
            #expect(text.contains("values: [64, 65, 75, 78]") && text.contains("restartPolicy: Never"))
            #expect(text.contains("secretKeyRef: {name: slackfleet-master-key, key: master-key}"))
        }
        let shards = try String(contentsOfFile: Self.jobs + "/kubernetes/shards/cronjob.yaml", encoding: .utf8)
        #expect(shards.contains("completionMode: Indexed") && shards.contains("--shards 3") && shards.contains("subPathExpr: \"shard-$(SHARD)\""))
        let role = try String(contentsOfFile: Self.jobs + "/kubernetes/rbac/role.yaml", encoding: .utf8)
        let rules = role.components(separatedBy: "rules:")[1].components(separatedBy: "---")[0]
        #expect(rules.components(separatedBy: "verbs:").count - 1 == 4)
        #expect(rules.contains("resources: [weightsandbiases]\n    verbs: [get, patch]") && rules.contains("resources: [secrets]\n    verbs: [patch]")
                && rules.contains("resources: [deployments]\n    verbs: [patch]") && rules.contains("resources: [rollouts]\n    verbs: [patch]"))
    }

    @Test("make install into a temporary prefix installs the binary, bash, zsh and fish completions and a man page per command")
    func makeInstall() throws {
        let prefix = TemporaryDirectory("prefix")
        // Nothing is built while swift test runs (it holds the build directory): the debug binary,
        // and the man page generator `make test` built first.
        let generator = PackagePaths.root + "/.build/debug/generate-manual"
        try #require(FileManager.default.isExecutableFile(atPath: generator), "make test builds it: swift build --product generate-manual")
        let make = SlackFleetCLI(workingDirectory: PackagePaths.root, binary: "/usr/bin/make")
        let run = try make.run(["--no-print-directory", "install", "PREFIX=\(prefix.path)", "INSTALL_BIN=\(SlackFleetCLI.defaultBinary)",
                                "GENERATE_MANUAL=\(generator)"], timeout: 120)
        #expect(run.status == 0, "\(run.output.suffix(1500))")
        let installed = SlackFleetCLI(workingDirectory: prefix.path, binary: prefix.file("bin/slackfleet"))
        #expect(try installed.run(["--version"]).stdout.contains("0.1.0"))
        let bash = try String(contentsOfFile: prefix.file("share/bash-completion/completions/slackfleet"), encoding: .utf8)
        #expect(bash.contains("complete -o filenames -F _slackfleet slackfleet") || bash.contains("-F _slackfleet"), "bash completion")
        #expect(try SlackFleetCLI(workingDirectory: prefix.path, binary: "/bin/bash").run(["-n", prefix.file("share/bash-completion/completions/slackfleet")]).status == 0)
        #expect(try String(contentsOfFile: prefix.file("share/zsh/site-functions/_slackfleet"), encoding: .utf8).hasPrefix("#compdef slackfleet"))
        #expect(try String(contentsOfFile: prefix.file("share/fish/vendor_completions.d/slackfleet.fish"), encoding: .utf8).contains("complete -c 'slackfleet'"))
        let pages = try FileManager.default.contentsOfDirectory(atPath: prefix.file("share/man/man1"))
        for page in ["slackfleet.1", "slackfleet.retire.1", "slackfleet.status.1", "slackfleet.inventory.import.1", "slackfleet.apps.orphans.1"] {
            #expect(pages.contains(page), "\(page) in \(pages.sorted())")
        }
        let manual = try String(contentsOfFile: prefix.file("share/man/man1/slackfleet.1"), encoding: .utf8)
        #expect(manual.contains(".Dt SLACKFLEET 1") && manual.contains("Create, configure and register"), "an mdoc page")
    }
}
