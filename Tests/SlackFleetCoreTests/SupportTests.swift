import Foundation
@testable import SlackFleetCore
import SlackFleetTestSupport
import Testing

@Suite("Text rules")
struct TextRulesTests {
    @Test("plain YAML scalars that parsers read as numbers are recognised", arguments: [
        ("1", true), ("1.10", true), ("1234567890.1234567890", true), ("-3", true), ("+4.5e10", true), ("1_000", true),
        ("0x1F", true), ("0o17", true), (".inf", true), ("-.inf", true), (".nan", true), ("1e5", true), (".5", true),
        ("v1", false), ("1.2.3", false), ("203.0.113.0/24", false), ("1e", false), ("abc", false), ("-", false), ("0x", false), ("12ab", false),
    ])
    func yamlNumbers(_ text: String, _ isNumber: Bool) {
        #expect(TextRules.looksLikeYAMLNumber(text) == isNumber)
    }

    @Test("control characters are found, C0 and C1", arguments: [
        ("plain text", false), ("tab\there", true), ("line\nbreak", true), ("nul\u{0}", true), ("del\u{7f}", true), ("c1\u{85}", true), ("é ü 日本", false),
    ])
    func controlCharacters(_ text: String, _ contains: Bool) {
        #expect(TextRules.containsControlCharacter(text) == contains)
    }

    @Test("JSON quoting reads back to the same string, whatever it holds", arguments: [
        "plain", "quote \" and backslash \\", "new\nline\r\ttab", "nul \u{0} bell \u{7} del \u{7f}", "unicode é 日本 🚀", "",
    ])
    func jsonQuoting(_ text: String) throws {
        let quoted = JSONText.quoted(text)
        let decoded = try JSONSerialization.jsonObject(with: Data("[\(quoted)]".utf8)) as? [String]
        #expect(decoded == [text])
    }
}

@Suite("Random identifiers")
struct RandomIDTests {
    @Test("change IDs are version 7 UUIDs, lowercased, unique, and sort by the time they were made")
    func uuids() {
        let ids = (0..<2000).map { _ in RandomID.uuid() }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(50) {
            #expect(id.count == 36)
            #expect(UUID(uuidString: id)?.uuidString.lowercased() == id)
            let characters = Array(id)
            #expect(characters[14] == "7")
            #expect("89ab".contains(characters[19]))
        }
        let start = Date(timeIntervalSince1970: 1_796_000_000)
        let earlier = RandomID.uuid(now: start), later = RandomID.uuid(now: start.addingTimeInterval(0.002))
        #expect(earlier < later)
        // The first 48 bits are the time in milliseconds.
        #expect(UInt64(earlier.prefix(8) + earlier.dropFirst(9).prefix(4), radix: 16) == 1_796_000_000_000)
    }
}

@Suite("URL parsing")
struct URLParsingTests {
    @Test("URLs split into the parts the rules check", arguments: [
        ("https://Example.COM:8443/a/b?x=1", "https://example.com:8443/a/b?x=1"),
        ("https://[::1]:8443/api/", "https://[::1]:8443/api/"),
        ("https://example.com", "https://example.com"),
        ("https://example.com:443/", "https://example.com/"),
    ])
    func endpoints(_ text: String, _ normalised: String) {
        let checked = try? EndpointRules.checkURL(text, role: .endpoint, allowInsecureHTTP: false).get()
        #expect(checked == normalised)
    }

    @Test("malformed or smuggling URLs are refused", arguments: [
        "https://", "https//example.com", "://example.com", "https://exa mple.com", "https://example.com:0", "https://example.com:65536",
        "https://example.com:80a", "https://user@example.com", "https://a:b@example.com", "https://example.com\\@evil.com",
        "https://évil.com", "https://[::1", "https://example.com/#x", "ftp://example.com", "javascript://example.com",
    ])
    func refused(_ text: String) {
        #expect((try? EndpointRules.checkURL(text, role: .hostURL, allowInsecureHTTP: false).get()) == nil)
    }
}

@Suite("Job settings")
struct JobSettingsTests {
    static let jobs: [(name: String, defaults: JobSettings)] = [
        ("provision-app", ProvisionApp.defaultSettings), ("sync-redirects", SyncRedirects.defaultSettings),
        ("verify-delivery", VerifyDelivery.defaultSettings), ("rotate-secret", RotateSecret.defaultSettings),
        ("retire", Retire.defaultSettings),
    ]

    @Test("the shipped job files are the defaults the binary uses", arguments: jobs.map(\.name))
    func shippedFilesMatchDefaults(_ job: String) throws {
        let defaults = try #require(Self.jobs.first { $0.name == job }?.defaults)
        let shipped = try JobSettings.load(job: job, defaults: defaults, file: PackagePaths.root + "/jobs/\(job).json")
        #expect(shipped == defaults)
    }

    @Test("every job file in jobs/ belongs to a job")
    func everyFileHasAJob() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: PackagePaths.root + "/jobs").filter { $0.hasSuffix(".json") }
        #expect(Set(files) == Set(Self.jobs.map { $0.name + ".json" }))
    }

    @Test("a manifest renders the group's name within Slack's 35 characters, its redirect URLs and allow-list")
    func manifestRendering() throws {
        let instances = [
            Instance(name: "a", baseURL: "https://a.example.com", hostURLs: ["https://b.example.com", "https://a.example.com"], ipAllowlist: ["203.0.113.0/24"],
                     workspaceID: "T1", appGroup: "a-very-long-app-group-name-for-testing", apiKey: .environment(variable: "K"), registrar: .exec(ExecHook(command: ["x"]))),
        ]
        let workspace = Workspace(id: "T1", name: "acme", configToken: .environment(variable: "C"), refreshToken: .environment(variable: "R"))
        let group = GroupWork(key: Inventory.AppKey(workspaceID: "T1", appGroup: "a-very-long-app-group-name-for-testing"), workspace: workspace, instances: instances)
        let manifest = ProvisionApp.manifest(template: ProvisionApp.defaultSettings.manifest, group: group)
        let name = try #require(manifest["display_information"]?["name"]?.stringValue)
        #expect(name.count == 35)
        #expect(name.hasPrefix("W&B alerts a-very-long"))
        #expect(manifest["oauth_config"]?["redirect_urls"]?.strings == ["https://a.example.com", "https://b.example.com"])
        #expect(manifest["oauth_config"]?["scopes"]?["bot"]?.strings == ["incoming-webhook"])
        #expect(manifest["settings"]?["allowed_ip_address_ranges"]?.strings == ["203.0.113.0/24"])
    }

    @Test("drift compares only redirect URLs and the allow-list, normalised")
    func drift() {
        let instance = Instance(name: "a", baseURL: "https://a.example.com", hostURLs: ["https://a.example.com"], workspaceID: "T1",
                                apiKey: .environment(variable: "K"), registrar: .exec(ExecHook(command: ["x"])))
        let exported: JSON = ["_metadata": ["major_version": 1], "oauth_config": ["redirect_urls": ["HTTPS://A.example.com/"]],
                              "settings": ["token_rotation_enabled": false]]
        #expect(SyncRedirects.drift(exported: exported, instances: [instance]).isEmpty, "Slack's additions and URL case are not drift")
        let extra: JSON = ["oauth_config": ["redirect_urls": ["https://a.example.com", "https://old.example.com"]], "settings": ["allowed_ip_address_ranges": ["198.51.100.0/24"]]]
        let drift = SyncRedirects.drift(exported: extra, instances: [instance])
        #expect(drift.removedURLs == ["https://old.example.com"])
        #expect(drift.removedRanges == ["198.51.100.0/24"])
        let edited = SyncRedirects.edited(extra, instances: [instance])
        #expect(edited["settings"]?["allowed_ip_address_ranges"] == nil, "an empty allow-list is no list: Slack's schema wants at least one entry")
    }
}

@Suite("JSON reader")
struct JSONParserTests {
    /// JSONSerialization's reading of a document, as a `JSON` value: the reference to agree with.
    static func reference(_ text: String) throws -> JSON {
        func convert(_ value: Any) -> JSON {
            switch value {
            case let text as String: return .string(text)
            case let number as NSNumber:
                switch String(cString: number.objCType) {
                case "c": return .bool(number.boolValue)
                case "d", "f": return .double(number.doubleValue)
                default: return .int(number.intValue)
                }
            case let items as [Any]: return .list(items.map(convert))
            case let fields as [String: Any]: return .object(fields.mapValues(convert))
            default: return .null
            }
        }
        return convert(try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]))
    }

    @Test("reads what JSONSerialization reads, to the same value", arguments: [
        #"{"ok": true, "app_id": "A0123", "credentials": {"client_id": "123.456", "client_secret": "s3cr\/et"}}"#,
        #"[1, -2, 3.5, -0.25, 1e3, 2E-2, 0, -0, 9223372036854775807, 18446744073709551616, 1.0]"#,
        #"{"a": [], "b": {}, "c": [[[]]], "d": null, "e": false, "f": "", "g": [true, null, "x"]}"#,
        #"  {"escapes": "\" \\ \/ \b \f \n \r \t \u0041 \u00e9 \u65e5 \ud83d\ude80 end"}  "#,
        #"{"unicode": "é 日本 🚀 \u0000 ok"}"#,
        #"{"dup": 1, "dup": 2}"#,
        #""just a string""#, "42", "null",
        "{\r\n\t\"spaced\" :\n [ 1 ,2 ] }",
        #"{"data": {"serverInfo": {"slackClientID": "123.456", "cliVersionInfo": {"max_cli_version": "0.19.0"}}}, "errors": [{"message": "x", "path": ["a", 0]}]}"#,
    ])
    func agreesWithFoundation(_ text: String) throws {
        #expect(try JSON.parse(Data(text.utf8)) == (try JSONParserTests.reference(text)))
    }

    @Test("refuses what is not JSON, with where", arguments: [
        "", "   ", "{", "[1,", "[1 2]", "{\"a\" 1}", "{\"a\":1,}", "[1,]", "{a: 1}", "'x'", "tru", "nul", "01", "1.", ".5", "-", "1e",
        "+1", "\"unterminated", "\"bad \\q escape\"", "\"\\u12\"", "\"\\ud800\"", "\"\\ud800\\u0041\"", "\"tab\tinside\"",
        "[1] x", "1e999", "NaN", "Infinity", "<html><body>502 Bad Gateway</body></html>", "{\"a\":1}}",
    ])
    func refuses(_ text: String) {
        #expect(throws: (any Error).self) { try JSON.parse(Data(text.utf8)) }
    }

    @Test("reads an object member by member and an array item by item, as parse reads them")
    func memberByMember() throws {
        var members: [String] = []
        try JSONParser.forEachMember(of: Array(#" {"b": [1, {"c": null}], "a": "x", "b": true} "#.utf8)) { key, value in
            members.append("\(key)=\(value.canonicalJSON)")
        }
        #expect(members == [#"b=[1,{"c":null}]"#, #"a="x""#, "b=true"])
        var items: [JSON] = []
        try JSONParser.forEachItem(of: Array(#"["a", 2, {"k": "v"}, []]"#.utf8)) { items.append($0) }
        #expect(JSON.list(items) == (try JSON.parse(Data(#"["a", 2, {"k": "v"}, []]"#.utf8))))
        for text in [#"["a"]"#, #"{"a": 1} {"#, #"{"a" 1}"#, #"{"a": 1"#, "", "7"] {
            #expect(throws: (any Error).self) { try JSONParser.forEachMember(of: Array(text.utf8)) { _, _ in } }
        }
        for text in [#"{"a": 1}"#, #"[1, 2"#, "[1] 2", "\"x\""] {
            #expect(throws: (any Error).self) { try JSONParser.forEachItem(of: Array(text.utf8)) { _ in } }
        }
    }

    @Test("refuses bytes that are not UTF-8 inside a string")
    func invalidUTF8() {
        let bytes: [UInt8] = Array("{\"a\": \"".utf8) + [0xC3, 0x28] + Array("\"}".utf8)
        #expect(throws: (any Error).self) { try JSON.parse(Data(bytes)) }
        let overlong: [UInt8] = Array("[\"".utf8) + [0xC0, 0xAF] + Array("\"]".utf8)
        #expect(throws: (any Error).self) { try JSON.parse(Data(overlong)) }
    }

    @Test("refuses nesting deeper than 512 levels instead of exhausting the stack; 512 is read")
    func depth() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: (any Error).self) { try JSON.parse(Data(deep.utf8)) }
        let allowed = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(try JSON.parse(Data(allowed.utf8)).listValue != nil)
    }

    @Test("a written value reads back to itself")
    func roundTrip() throws {
        let value: JSON = ["name": "W&B \"alerts\"\n", "n": 3, "x": .double(0.5), "flags": [true, false, .null], "nested": ["a": ["b": []]]]
        #expect(try JSON.parse(value.data) == value)
    }
}

@Suite("Slack form encoding")
struct FormEncodingTests {
    @Test("form fields are percent-encoded byte by byte, all but RFC 3986's unreserved characters")
    func formEncoding() {
        let text = "W&B alerts: é 日本 a+b=c/d?e%f~g_h.i-j\n{\"k\": [1]}"
        let encoded = SlackClient.formEncode(text)
        #expect(encoded.utf8.allSatisfy { $0 < 0x80 })
        #expect(encoded.hasPrefix("W%26B%20alerts%3A%20%C3%A9%20%E6%97%A5%E6%9C%AC%20a%2Bb%3Dc%2Fd%3Fe%25f~g_h.i-j%0A"))
        #expect(encoded.removingPercentEncoding == text)
        #expect(SlackClient.formEncode("") == "")
    }
}
