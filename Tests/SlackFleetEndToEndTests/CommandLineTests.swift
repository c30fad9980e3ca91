import Foundation
import GRDB
import SlackFleetTestSupport
import Testing

/// The `slackfleet` binary driven as an operator would: files, stdin, exit codes, output.
@Suite("Command line")
struct CommandLineTests {
    let directory = TemporaryDirectory("cli")
    var cli: SlackFleetCLI { SlackFleetCLI(workingDirectory: directory.path) }

    /// A database initialised in the test's directory.
    func initialised() throws -> SlackFleetCLI {
        let cli = cli
        let result = try cli.run(["init"])
        #expect(result.status == 0, "\(result.output)")
        return cli
    }

    /// Every command, as `slackfleet help` reaches it.
    static let commands: [[String]] = [[], ["init"], ["inventory"], ["inventory", "import"], ["inventory", "export"], ["inventory", "list"],
        ["inventory", "show"], ["inventory", "remove"], ["secrets"], ["secrets", "set"], ["secrets", "list"], ["secrets", "rekey"],
        ["provision-app"], ["sync-redirects"], ["verify-delivery"], ["rotate-secret"], ["connect"], ["doctor"], ["apps"],
        ["apps", "snapshots"], ["apps", "restore"], ["audit"], ["audit", "list"], ["audit", "verify"], ["audit", "export"], ["audit", "fingerprint"]]

    @Test("every command's --help fits 80 columns, its paragraphs wrapped where the terminal is, not where the source breaks")
    func helpAt80Columns() throws {
        for command in Self.commands {
            let help = try cli.run(command + ["--help"])
            #expect(help.status == 0, "\(command)")
            let lines = help.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.allSatisfy { $0.count <= 80 }, "\(command): \(lines.filter { $0.count > 80 })")
            // A hard break inside a paragraph shows as a short line followed by one that would
            // have fitted on it: the words wrap twice.
            for (line, next) in zip(lines, lines.dropFirst()) where !line.isEmpty && !next.isEmpty && !line.hasPrefix(" ") && !next.hasPrefix(" ") {
                let firstWord = next.split(separator: " ").first.map(String.init) ?? ""
                #expect(line.count + 1 + firstWord.count > 79 || line.hasSuffix(":") || line.hasSuffix("."),
                        "\(command): a paragraph breaks early before \"\(firstWord)\": \(line)")
            }
        }
    }

    @Test("a misspelt flag is named with a suggestion (exit 64), and rotate-secret says what it needs")
    func flagTypos() throws {
        let cli = try initialised()
        for (arguments, message) in [(["provision-app", "--all", "--dry-rn"], "Did you mean '--dry-run'?"),
                                     (["rotate-secret", "--client-secert", "--all"], "Did you mean '--client-secret'?"),
                                     (["rotate-secret", "--all"], "say what to rotate"),
                                     (["rotate-secret", "--client-secret", "--grace", "1x", "--all"], "write it like 30m, 24h or 7d"),
                                     (["rotate-secret", "--propagate", "--all"], "--propagate needs --secret-from REF")] {
            let run = try cli.run(arguments)
            #expect(run.status == 64, "\(arguments)")
            #expect(run.stderr.contains(message), "\(arguments): \(run.stderr)")
        }
    }

    @Test("the fuzz corpus and every input that once crashed a fuzz target replay without a crash", arguments: ["inventory", "manifest-diff", "responses"])
    func fuzzRegressions(_ target: String) throws {
        var files: [String] = []
        for folder in ["Fuzz/corpus/", "Fuzz/regressions/"] {
            let path = PackagePaths.root + "/" + folder + target
            files += ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).map { path + "/" + $0 }
        }
        #expect(!files.isEmpty)
        let replay = SlackFleetCLI(workingDirectory: directory.path, binary: PackagePaths.root + "/.build/debug/slackfleet-fuzz")
        let run = try replay.run([target] + files.sorted())
        #expect(run.status == 0, "\(run.output.suffix(600))")
        #expect(run.stdout.contains("replayed \(files.count) input(s) through \(target) without a crash"))
    }

    @Test("init creates the database and key with mode 0600 and refuses to overwrite either")
    func initCreatesPrivateFiles() throws {
        let cli = try initialised()
        for file in ["slackfleet.db", "slackfleet.db.key"] {
            let mode = try FileManager.default.attributesOfItem(atPath: directory.file(file))[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(file)")
        }
        let again = try cli.run(["init"])
        #expect(again.status == 78)
        #expect(again.stderr.contains("refusing to overwrite"))
        let otherDatabase = try cli.run(["init", "--database", "other.db", "--key-file", "slackfleet.db.key"])
        #expect(otherDatabase.status == 78)
        #expect(!FileManager.default.fileExists(atPath: directory.file("other.db")), "nothing half-made")
    }

    @Test("the example inventory imports, lists, shows and exports")
    func importListShowExport() throws {
        let cli = try initialised()
        let imported = try cli.run(["inventory", "import", PackagePaths.exampleInventory])
        #expect(imported.status == 0, "\(imported.output)")
        #expect(imported.stdout.contains("imported: created=4 updated=0 removed=0 unchanged=0"))
        #expect(imported.stderr.contains("secret wandb/prod-us-east/admin is referenced but not stored yet"))
        let dryRun = try cli.run(["inventory", "import", "--dry-run", PackagePaths.exampleInventory])
        #expect(dryRun.status == 0, "a converged inventory's dry run exits 0")

        let list = try cli.run(["inventory", "list", "--label", "env=prod"])
        #expect(list.status == 0)
        #expect(list.stdout.split(separator: "\n").count == 3)
        #expect(list.stdout.contains("prod-us-east") && list.stdout.contains("prod-eu-west") && !list.stdout.contains("lab-onprem"))
        let json = try cli.run(["inventory", "list", "--json"])
        let lines = json.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        for line in lines { #expect(try JSONSerialization.jsonObject(with: Data(line.utf8)) is [String: Any]) }

        let show = try cli.run(["inventory", "show", "prod-us-east"])
        #expect(show.status == 0)
        #expect(show.stdout.contains(#"deployment: "wandb-api""#))
        #expect(show.stdout.contains("slack app: none yet"))
        let missing = try cli.run(["inventory", "show", "nope"])
        #expect(missing.status == 65)
        #expect(missing.stderr.contains("no instance named nope"))

        let export = try cli.run(["inventory", "export"])
        let file = directory.write("exported.yaml", export.stdout)
        let reimport = try cli.run(["inventory", "import", file])
        #expect(reimport.stdout.contains("created=0 updated=0 removed=0 unchanged=4"))
    }

    @Test("a changed file shows as a dry-run diff with exit 2, then applies and is audited")
    func dryRunThenApply() throws {
        let cli = try initialised()
        try cli.run(["inventory", "import", PackagePaths.exampleInventory])
        let example = try String(contentsOfFile: PackagePaths.exampleInventory, encoding: .utf8)
        let changed = directory.write("changed.yaml", example.replacingOccurrences(of: "host_urls: [https://wandb.eu-west.acme.com]", with: "host_urls: [https://wandb.eu-west.acme.com, https://eu.acme.com]"))
        let dryRun = try cli.run(["inventory", "import", "--dry-run", changed])
        #expect(dryRun.status == 2)
        #expect(dryRun.stdout.contains("would update instance prod-eu-west (host_urls)"))
        let apply = try cli.run(["inventory", "import", changed])
        #expect(apply.status == 0)
        let audit = try cli.run(["audit", "list", "--instance", "prod-eu-west", "--json"])
        let last = try #require(audit.stdout.split(separator: "\n").last)
        #expect(last.contains(#""action":"update""#) && last.contains("https://eu.acme.com"))
    }

    @Test("every bad file is refused with exit 65, its messages, and nothing written")
    func badFilesWriteNothing() throws {
        let cli = try initialised()
        try cli.run(["inventory", "import", PackagePaths.exampleInventory])
        let before = try cli.run(["inventory", "export"]).stdout
        let auditBefore = try cli.run(["audit", "list", "--json"]).stdout
        let badDirectory = PackagePaths.fixtures + "/inventory/bad"
        let expected = try String(contentsOfFile: badDirectory + "/expected.tsv", encoding: .utf8)
        let files = try FileManager.default.contentsOfDirectory(atPath: badDirectory).filter { $0 != "expected.tsv" }.sorted()
        #expect(files.count >= 30)
        for file in files {
            let result = try cli.run(["inventory", "import", badDirectory + "/" + file])
            #expect(result.status == 65, "\(file): \(result.output)")
            #expect(result.stderr.contains("nothing was imported"), "\(file)")
            let firstExpected = expected.split(separator: "\n").first { $0.hasPrefix(file + "\t") }?.split(separator: "\t", maxSplits: 1).last
            #expect(firstExpected.map { result.stderr.contains(String($0)) } == true, "\(file): \(result.stderr)")
        }
        #expect(try cli.run(["inventory", "export"]).stdout.dropFirst(60) == before.dropFirst(60))
        #expect(try cli.run(["audit", "list", "--json"]).stdout == auditBefore)
    }

    @Test("secrets are read from stdin, listed by fingerprint, and never printed")
    func secretsNeverPrinted() throws {
        let cli = try initialised()
        let value = "xoxe.xoxp-1-TESTONLY-\(UUID().uuidString)"
        var outputs: [String] = []
        let set = try cli.run(["secrets", "set", "slack/acme/config-token"], stdin: value + "\n")
        #expect(set.status == 0, "\(set.output)")
        outputs.append(set.output)
        let same = try cli.run(["secrets", "set", "slack/acme/config-token"], stdin: value)
        #expect(same.stdout.contains("nothing changed"))
        outputs.append(same.output)
        let list = try cli.run(["secrets", "list"])
        #expect(list.stdout.contains("slack/acme/config-token") && list.stdout.contains("hmac-sha256:"))
        outputs.append(list.output)
        let fingerprint = try cli.run(["audit", "fingerprint"], stdin: value)
        #expect(fingerprint.stdout.hasPrefix("hmac-sha256:"))
        let audit = try cli.run(["audit", "list", "--json"])
        #expect(audit.stdout.contains(fingerprint.stdout.trimmingCharacters(in: .newlines)), "the audit entry names the value's fingerprint")
        outputs.append(audit.output)
        outputs.append(try cli.run(["audit", "export"]).output)
        outputs.append(try cli.run(["secrets", "rekey"]).output)
        for output in outputs { #expect(!output.contains(value)) }
        let empty = try cli.run(["secrets", "set", "x"], stdin: "")
        #expect(empty.status == 65)
        let badName = try cli.run(["secrets", "set", "../x"], stdin: "v")
        #expect(badName.status == 64)
    }

    @Test("rekey replaces the key file; the old key no longer opens the database")
    func rekeyThroughCLI() throws {
        let cli = try initialised()
        try cli.run(["secrets", "set", "a"], stdin: "value-a")
        let oldKey = try String(contentsOfFile: directory.file("slackfleet.db.key"), encoding: .utf8)
        let rekey = try cli.run(["secrets", "rekey"])
        #expect(rekey.status == 0, "\(rekey.output)")
        let newKey = try String(contentsOfFile: directory.file("slackfleet.db.key"), encoding: .utf8)
        #expect(newKey != oldKey)
        #expect(try FileManager.default.attributesOfItem(atPath: directory.file("slackfleet.db.key"))[.posixPermissions] as? Int == 0o600)
        #expect(try cli.run(["audit", "verify"]).status == 0)
        var withOldKey = cli
        withOldKey.environment["SLACKFLEET_MASTER_KEY"] = oldKey.trimmingCharacters(in: .newlines)
        let refused = try withOldKey.run(["secrets", "list"])
        #expect(refused.status == 78)
        #expect(refused.stderr.contains("is not this database's key"))
    }

    @Test("audit verify passes on an untouched log and names the first broken entry otherwise")
    func auditVerify() throws {
        let cli = try initialised()
        try cli.run(["inventory", "import", PackagePaths.exampleInventory])
        let ok = try cli.run(["audit", "verify"])
        #expect(ok.status == 0)
        #expect(ok.stdout.contains("audit log verified: 5 entries"))
        let head = try #require(ok.stdout.split(separator: " ").first { $0.hasPrefix("5:") }.map { String($0.dropLast()) })
        #expect(try cli.run(["audit", "verify", "--expect-head", head]).status == 0)
        // Someone with write access to the file drops the trigger and edits an entry.
        let queue = try DatabaseQueue(path: directory.file("slackfleet.db"))
        try queue.write { db in
            try db.execute(sql: "DROP TRIGGER audit_entry_no_update; UPDATE audit_entry SET actor = 'mallory@elsewhere' WHERE seq = 3")
        }
        try queue.close()
        let broken = try cli.run(["audit", "verify"])
        #expect(broken.status == 1)
        #expect(broken.stderr.contains("audit entry 3: was changed after it was written"))
    }

    @Test("usage errors exit 64, a missing database 78, a wrong key 78")
    func exitCodes() throws {
        let typo = try cli.run(["inventory", "lst"])
        #expect(typo.status == 64)
        let flag = try cli.run(["inventory", "list", "--lable", "env=prod"])
        #expect(flag.status == 64)
        #expect(flag.stderr.contains("--lable"))
        let badLabel = try cli.run(["inventory", "list", "--label", "env"])
        #expect(badLabel.status == 64)
        let noDatabase = try cli.run(["inventory", "list"])
        #expect(noDatabase.status == 78)
        #expect(noDatabase.stderr.contains("slackfleet init"))
        _ = try initialised()
        var wrongKey = cli
        wrongKey.environment["SLACKFLEET_MASTER_KEY"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        let refused = try wrongKey.run(["secrets", "set", "x"], stdin: "v")
        #expect(refused.status == 78)
        let help = try cli.run(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("Exit codes"))
    }
}
