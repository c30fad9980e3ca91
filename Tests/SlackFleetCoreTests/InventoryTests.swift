import Foundation
import SlackFleetCore
import SlackFleetTestSupport
import Testing

/// A valid inventory with two workspaces and three instances, one app group shared.
let sampleInventory = """
    version: 1
    workspaces:
      - id: T0123ABCD
        name: acme
        config_token: secret:slack/acme/config
        refresh_token: secret:slack/acme/refresh
        bot_token: env:ACME_BOT
        canary_channel: C0CANARY01
      - id: T0456EFGH
        name: beta
        api_url: http://127.0.0.1:8080/api/
        allow_insecure_http: true
        config_token: env:BETA_CONFIG
        refresh_token: env:BETA_REFRESH
    instances:
      - name: prod-us-east
        base_url: https://wandb.us-east.acme.com
        host_urls: [https://wandb.us-east.acme.com, "HTTPS://ML.acme.com:443/"]
        ip_allowlist: [203.0.113.0/24, 198.51.100.7]
        workspace: T0123ABCD
        app_group: prod
        api_key: secret:wandb/prod-us-east
        canary: {entity: ops, project: slack-canary}
        labels: {region: us-east, env: prod, client: "1234567890.1234567890"}
        registrar:
          kind: operator-v2
          api_url: https://k8s.us-east.acme.com:6443
          token: file:/var/run/secrets/token
          namespace: wandb
          resource: wandb
          deployment: wandb-api
      - name: prod-eu-west
        base_url: https://wandb.eu-west.acme.com
        host_urls: [https://wandb.eu-west.acme.com]
        workspace: acme
        app_group: prod
        api_key: secret:wandb/prod-eu-west
        labels: {region: eu-west, env: prod}
        registrar:
          kind: operator-v1
          api_url: https://k8s.eu-west.acme.com
          token: secret:k8s/eu
          namespace: wandb
          resource: wandb
      - name: lab
        base_url: http://127.0.0.1:9000
        host_urls: [http://localhost:9000]
        workspace: T0456EFGH
        api_key: exec:vault kv get -field=key secret/lab
        allow_insecure_http: true
        enabled: false
        registrar:
          kind: exec
          command: [./register.sh, --lab]
          timeout: 5m
    """

@Suite("Inventory")
struct InventoryTests {
    @Test("a valid file reads into the model, normalised, with IDs kept as text")
    func readsValidFile() throws {
        let (inventory, warnings) = try InventoryReader(file: "fleet.yaml").read(Data(sampleInventory.utf8))
        #expect(warnings.isEmpty)
        #expect(inventory.workspaces.map(\.id) == ["T0123ABCD", "T0456EFGH"])
        #expect(inventory.workspaces[1].apiURL == "http://127.0.0.1:8080/api/")
        let prod = try #require(inventory.instances.first)
        #expect(prod.hostURLs == ["https://wandb.us-east.acme.com", "https://ml.acme.com"])
        #expect(prod.labels["client"] == "1234567890.1234567890")
        #expect(prod.registrar == .operatorV2(KubernetesTarget(apiURL: "https://k8s.us-east.acme.com:6443", token: .file(path: "/var/run/secrets/token"), namespace: "wandb", resource: "wandb", deployment: "wandb-api")))
        #expect(inventory.instances[1].workspaceID == "T0123ABCD", "a workspace named by its name resolves to its id")
        #expect(inventory.instances[2].appGroup == "lab", "the app group defaults to the instance's name")
        #expect(inventory.instances[2].apiKey == .command("vault kv get -field=key secret/lab"))
        #expect(inventory.instances[2].registrar == .exec(ExecHook(command: ["./register.sh", "--lab"], timeoutSeconds: 300)))
        #expect(inventory.instances[2].enabled == false)
    }

    @Test("the shipped example inventory is valid")
    func exampleIsValid() throws {
        let data = try #require(FileManager.default.contents(atPath: PackagePaths.exampleInventory))
        let (inventory, _) = try InventoryReader(file: "fleet.yaml").read(data)
        #expect(inventory.instances.count == 3)
        #expect(Set(inventory.instances.map(\.registrar.kind)) == ["operator-v2", "operator-v1", "exec"])
    }

    static let badFiles: [String] = {
        let directory = PackagePaths.fixtures + "/inventory/bad"
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0 != "expected.tsv" }.sorted()
    }()

    static let expectedMessages: [String: [String]] = {
        let text = (try? String(contentsOfFile: PackagePaths.fixtures + "/inventory/bad/expected.tsv", encoding: .utf8)) ?? ""
        var result: [String: [String]] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
            if parts.count == 2 { result[parts[0], default: []].append(parts[1]) }
        }
        return result
    }()

    @Test("the corpus of bad files has at least 50 files, each with its expected messages")
    func corpusIsComplete() {
        #expect(Self.badFiles.count >= 50)
        #expect(Set(Self.badFiles) == Set(Self.expectedMessages.keys))
    }

    @Test("each bad file is refused with exactly its messages", arguments: badFiles)
    func refusesBadFile(_ name: String) throws {
        let data = try #require(FileManager.default.contents(atPath: PackagePaths.fixtures + "/inventory/bad/" + name))
        do {
            _ = try InventoryReader(file: name).read(data)
            Issue.record("\(name) was accepted")
        } catch let rejected as InventoryRejected {
            #expect(rejected.errors.map(\.description) == Self.expectedMessages[name])
        }
    }

    @Test("more than 10 IP ranges in an app warns but imports")
    func warnsAboveTenRanges() throws {
        let ranges = (1...11).map { "198.51.\($0).0/24" }.joined(separator: ", ")
        let text = sampleInventory.replacingOccurrences(of: "[203.0.113.0/24, 198.51.100.7]", with: "[\(ranges)]")
        let (_, warnings) = try InventoryReader(file: "fleet.yaml").read(Data(text.utf8))
        #expect(warnings.map(\.description) == ["fleet.yaml: warning: app group prod in workspace T0123ABCD/ip_allowlist: its instances list 11 IP ranges: Slack's settings page allows 10; the API's limit is unconfirmed, so Slack may refuse more"])
    }

    @Test("an import is idempotent: the second one changes nothing and writes no audit entry")
    func importIsIdempotent() throws {
        let fixture = try FleetFixture()
        let first = try fixture.importInventory(sampleInventory)
        #expect(first.changes.count == 5)
        let entries = try fixture.auditCount()
        let second = try fixture.importInventory(sampleInventory)
        #expect(second.isEmpty)
        #expect(second.unchanged == 5)
        #expect(try fixture.auditCount() == entries)
    }

    @Test("an update is audited with the fields that changed, before and after")
    func updateIsAudited() throws {
        let fixture = try FleetFixture()
        try fixture.importInventory(sampleInventory)
        let changed = sampleInventory.replacingOccurrences(of: "host_urls: [https://wandb.eu-west.acme.com]", with: "host_urls: [https://wandb.eu-west.acme.com, https://eu.acme.com]")
        let plan = try fixture.importInventory(changed)
        #expect(plan.changes.map(\.target) == ["inventory:instance/prod-eu-west"])
        #expect(plan.changes.first?.changedFields == ["host_urls"])
        let entry = try #require(try AuditLog.entries(fixture.store).last)
        #expect(entry.action == "update")
        #expect(entry.instance == "prod-eu-west")
        #expect(entry.detail == #"{"changed":{"host_urls":{"after":["https://wandb.eu-west.acme.com","https://eu.acme.com"],"before":["https://wandb.eu-west.acme.com"]}}}"#)
    }

    @Test("an exec reference's command never enters the audit log, only its fingerprint")
    func execCommandIsFingerprinted() throws {
        let fixture = try FleetFixture()
        try fixture.importInventory(sampleInventory)
        let export = try AuditLog.entries(fixture.store).map(\.detail).joined()
        #expect(!export.contains("vault kv get"))
        #expect(export.contains("exec:(command not logged, hmac-sha256:"))
    }

    @Test("stored instances absent from the file are kept, unless --prune")
    func pruneRemovesAbsent() throws {
        let fixture = try FleetFixture()
        try fixture.importInventory(sampleInventory)
        let withoutLab = sampleInventory.components(separatedBy: "  - name: lab\n").first ?? ""
        let kept = try fixture.importInventory(withoutLab)
        #expect(kept.keptAbsent == ["instance lab"])
        #expect(try InventoryRepository.load(fixture.store).instances.count == 3)
        let pruned = try fixture.importInventory(withoutLab, prune: true)
        #expect(pruned.changes.map(\.target) == ["inventory:instance/lab"])
        #expect(try InventoryRepository.load(fixture.store).instances.map(\.name) == ["prod-eu-west", "prod-us-east"])
    }

    @Test("an import that fails part-way writes nothing, audit entries included")
    func importIsAllOrNothing() throws {
        let fixture = try FleetFixture()
        try fixture.importInventory(sampleInventory)
        let before = try InventoryRepository.load(fixture.store)
        let entries = try fixture.auditCount()
        var broken = try fixture.read(sampleInventory)
        broken.instances[0].hostURLs.append("https://new.acme.com")
        // An instance whose workspace is not stored violates a foreign key after other rows were written.
        broken.instances.append(Instance(name: "zz-orphan", baseURL: "https://z.example.com", hostURLs: ["https://z.example.com"],
                                         workspaceID: "T0NOWHERE", apiKey: .environment(variable: "K"), registrar: .exec(ExecHook(command: ["x"]))))
        #expect(throws: StoreError.self) {
            try InventoryImporter.apply(broken, store: fixture.store, audit: fixture.audit, prune: false)
        }
        #expect(try InventoryRepository.load(fixture.store) == before)
        #expect(try fixture.auditCount() == entries)
    }

    @Test("export reads back to the same inventory, as YAML and as JSON", arguments: ["yaml", "json"])
    func exportRoundTrips(_ format: String) throws {
        let fixture = try FleetFixture()
        try fixture.importInventory(sampleInventory)
        let stored = try InventoryRepository.load(fixture.store)
        let text = format == "yaml" ? InventoryDocument.yaml(stored) : InventoryDocument.json(stored)
        let (reread, _) = try InventoryReader(file: "export.\(format)").read(Data(text.utf8))
        #expect(reread == stored)
        #expect(text.contains("\"1234567890.1234567890\""), "a number-like value stays quoted")
    }

    @Test("the stored inventory reads back exactly as imported: every field, each registrar kind")
    func storedRowsReadBack() throws {
        let fixture = try FleetFixture()
        try fixture.importInventory(sampleInventory)
        let stored = try InventoryRepository.load(fixture.store), read = try fixture.read(sampleInventory)
        #expect(stored.workspaces == read.workspaces.sorted { $0.id < $1.id })
        #expect(stored.instances == read.instances.sorted { $0.name < $1.name })
    }

    @Test("a damaged stored column is refused with the instance, the field and what to do", arguments: [
        ("registrar", #"{"kind": "exec", "command": ["./register.sh"], "timeout_seconds": "300"}"#),
        ("registrar", #"{"kind": "exec", "command": "./register.sh"}"#),
        ("registrar", #"{"kind": 7}"#),
        ("registrar", #"{"api_url": "https://k8s"}"#),
        ("registrar", #"["exec"]"#),
        ("registrar", #"{"kind": "exec", "command": ["./register.sh"]"#),
        ("registrar", #"{"kind": "exec", "command": ["./register.sh", 5]}"#),
        ("registrar", #"{"kind": "exec", "command": ["./register.sh"]} {}"#),
        ("registrar", #"{"kind": "exec", "command": ["./register.sh"], "kind": null}"#),
        ("host_urls", #"["https://a.example.com", 1]"#), ("host_urls", #"{"a": "b"}"#), ("host_urls", #"["https://a.example.com""#),
        ("labels", #"{"env": 1}"#), ("labels", #"["env"]"#), ("labels", #"{"env": "prod"} x"#),
    ])
    func damagedColumnRefused(_ column: String, _ stored: String) throws {
        let fixture = try FleetFixture()
        try fixture.importInventory(sampleInventory)
        try fixture.store.write("damaging a row") { db in
            try db.execute(sql: "UPDATE instance SET \(column) = ? WHERE name = 'lab'", arguments: [stored])
        }
        let error = try #require(throws: FleetError.self) { try InventoryRepository.load(fixture.store) }
        #expect(error.message == "the stored \(column) of instance lab is not valid: import the inventory again")
    }

    @Test("labels select instances")
    func selectsByLabel() throws {
        let fixture = try FleetFixture()
        try fixture.importInventory(sampleInventory)
        #expect(try InventoryRepository.instances(matching: ["env": "prod"], in: fixture.store).map(\.name) == ["prod-eu-west", "prod-us-east"])
        #expect(try InventoryRepository.instances(matching: ["env": "prod", "region": "eu-west"], in: fixture.store).map(\.name) == ["prod-eu-west"])
        #expect(try InventoryRepository.instances(matching: ["env": "staging"], in: fixture.store).isEmpty)
    }
}

@Suite("Endpoint rules")
struct EndpointRulesTests {
    @Test("host URLs normalise case, default ports and trailing slashes, and a normalised URL stays as it is", arguments: [
        ("HTTPS://Wandb.Example.COM/", "https://wandb.example.com"),
        ("https://wandb.example.com:443/path/", "https://wandb.example.com/path"),
        ("https://wandb.example.com:8443", "https://wandb.example.com:8443"),
        ("https://[::1]:8443/a//", "https://[::1]:8443/a"),
    ])
    func normalises(_ input: String, _ expected: String) {
        #expect((try? EndpointRules.checkURL(input, role: .hostURL, allowInsecureHTTP: false).get()) == expected)
        // sync-redirects relies on this: an exported URL equal to a normalised one is not checked again.
        #expect((try? EndpointRules.checkURL(expected, role: .hostURL, allowInsecureHTTP: false).get()) == expected)
    }

    @Test("http is allowed only to loopback, and only when asked for", arguments: [
        ("http://127.0.0.1:8080", true, true),
        ("http://localhost:8080", true, true),
        ("http://[::1]:8080", true, true),
        ("http://127.0.0.1:8080", false, false),
        ("http://10.0.0.5:8080", true, false),
        ("http://wandb.example.com", true, false),
    ])
    func httpOnlyToLoopback(_ url: String, _ allow: Bool, _ accepted: Bool) {
        let result = EndpointRules.checkURL(url, role: .endpoint, allowInsecureHTTP: allow)
        #expect(((try? result.get()) != nil) == accepted)
    }

    @Test("metadata and link-local hosts are refused", arguments: [
        "https://169.254.169.254/latest", "https://[fd00:ec2::254]/", "https://metadata.google.internal/", "https://[fe80::1]/",
    ])
    func refusesMetadata(_ url: String) {
        #expect((try? EndpointRules.checkURL(url, role: .endpoint, allowInsecureHTTP: true).get()) == nil)
    }

    @Test("other spellings of an address are refused; ordinary names and addresses are not", arguments: [
        ("https://2852039166/", false), ("https://0x7f000001/", false), ("https://0177.0.0.1/", false), ("https://10.1/", false),
        ("https://[::ffff:169.254.169.254]/", false), ("https://[64:ff9b::a9fe:a9fe]/", false), ("https://169.254.169.254./", false),
        ("https://10.0.0.5/", true), ("https://cafe.be/", true), ("https://0x.example.com/", true), ("https://123.example.com/", true),
        ("https://[2001:db8::1]/", true), ("https://[::ffff:203.0.113.7]/", true),
    ])
    func addressSpellings(_ url: String, _ accepted: Bool) {
        #expect(((try? EndpointRules.checkURL(url, role: .endpoint, allowInsecureHTTP: false).get()) != nil) == accepted, "\(url)")
    }

    @Test("IP ranges follow Slack's schema", arguments: [
        ("203.0.113.0/24", true), ("203.0.113.7", true), ("203.0.113.7/32", true), ("8.8.8.8/0", false),
        ("203.0.113.0/33", false), ("203.0.113.256", false), ("203.0.113.07", false), ("203.0.113.0/024", false),
        ("2001:db8::1", false), ("172.16.0.0/12", false), ("192.168.1.1", false), ("127.0.0.1", false), ("+1.2.3.4", false),
    ])
    func ipRanges(_ range: String, _ accepted: Bool) {
        #expect(((try? EndpointRules.checkIPRange(range).get()) != nil) == accepted)
    }
}
