import Foundation
import GRDB
import SlackFleetTestSupport
import Testing

/// Debian's headless Chromium, as a person's browser would render a page (installed by .ci/run).
struct Chromium {
    static let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    let directory: TemporaryDirectory

    struct Rendered {
        let dom: String
        let log: String
    }

    /// `--dump-dom` of a file, with the browser's console and network log.
    func dump(_ path: String) throws -> Rendered {
        let run = try launch(["--dump-dom", "file://" + path])
        return Rendered(dom: run.stdout, log: run.stderr)
    }

    /// A screenshot of a file, 1280 wide.
    func screenshot(_ path: String, to png: String) throws {
        _ = try launch(["--screenshot=\(png)", "--window-size=1280,1600", "file://" + path])
    }

    /// Chromium run the way the tests run the CLI (SlackFleetCLI: its own environment, bounded in
    /// time), with no network at all: any request would fail and be logged, and the page's
    /// policy forbids any.
    private func launch(_ arguments: [String]) throws -> SlackFleetCLI.Result {
        let binary = try #require(Chromium.binary, "install Debian's chromium (apt-get install -y chromium): .ci/run does")
        return try SlackFleetCLI(workingDirectory: directory.path, binary: binary).run(
            ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
             "--user-data-dir=\(directory.file("chromium-profile"))"] + arguments, timeout: 60)
    }

    /// Console messages and refused or failed loads in a log.
    static func problems(_ log: String) -> [String] {
        log.split(separator: "\n").map(String.init).filter {
            $0.contains("CONSOLE") || $0.contains("Refused to") || $0.contains("ERR_NAME_NOT_RESOLVED") || $0.contains("net::ERR")
        }
    }

    /// Distinct byte values in a PNG's decompressed pixels: a blank page has a handful.
    func distinctPixelBytes(_ png: String) throws -> Int {
        let script = """
            import sys, zlib
            data = open(sys.argv[1], 'rb').read()
            pos, idat = 8, b''
            while pos < len(data):
                n = int.from_bytes(data[pos:pos+4], 'big'); kind = data[pos+4:pos+8]
                if kind == b'IDAT': idat += data[pos+8:pos+8+n]
                pos += 12 + n
            print(len(set(zlib.decompress(idat))))
            """
        let run = try SlackFleetCLI(workingDirectory: directory.path, binary: "/usr/bin/python3").run(["-c", script, png])
        return Int(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }
}

extension JobSuites {
    @Suite("status and the HTML report")
    struct StatusTests {
        /// A fleet in mixed states: delivering, awaiting connect, a stale secret, a rotation waiting
        /// for a person, a workspace token near expiry.
        static func mixedFleet() throws -> JobFixture {
            let fixture = try JobFixture(instances: 6, workspaces: 2, groups: 0, simConfig: #"{"rollout_delay_ms": 50, "alert_delay_ms": 100}"#, connected: 0)
            #expect(try fixture.provision().status == 0, "registered, awaiting connect")
            for name in ["wandb-0001", "wandb-0002", "wandb-0003", "wandb-0004"] {
                let connected = try fixture.connect(name)
                #expect(connected["ok"] as? Bool == true, "\(connected)")
            }
            let verified = try fixture.cli.run(["verify-delivery", "--all", "--pace-scale", "600", "--timeout", "30s", "--max-failures", "100%"], timeout: 120)
            #expect(verified.status == 1, "two need a connection: \(verified.output.suffix(600))")
            // In place: the run prints the settings link and waits for a person.
            let rotation = try fixture.cli.run(["rotate-secret", "--client-secret", "--instance", "wandb-0002", "--pace-scale", "600", "--timeout", "20s"], timeout: 120)
            #expect(rotation.status == 1 && rotation.stdout.contains("waiting"), "\(rotation.output.suffix(600))")
            // What only time makes: a secret 200 days old, a token that expires within the hour.
            let database = try DatabaseQueue(path: fixture.directory.file("slackfleet.db"))
            try database.write { db in
                try db.execute(sql: "UPDATE app SET created_at = ? WHERE app_group = 'wandb-0003'", arguments: [Self.stamp(-200 * 86400)])
                try db.execute(sql: "UPDATE workspace SET config_token_expires_at = ? WHERE id = 'TSIM0002'", arguments: [Self.stamp(1800)])
                try db.execute(sql: "DELETE FROM config_token WHERE workspace_id = 'TSIM0002'")
            }
            try database.close()
            return fixture
        }

        static func stamp(_ offset: TimeInterval) -> String {
            let formatter = ISO8601DateFormatter()
            return formatter.string(from: Date().addingTimeInterval(offset))
        }

        @Test("a fleet in mixed states shows each state in status, status --json and the page Chromium renders; no console error, no request, not blank")
        func mixedStates() throws {
            let fixture = try Self.mixedFleet()
            let text = try fixture.cli.run(["status"])
            #expect(text.status == 1, "not everything delivers: \(text.output)")
            #expect(text.stdout.contains("NEEDS A PERSON") && text.stdout.contains("Connect Slack") && text.stdout.contains("Regenerate"), "\(text.stdout)")

            let json = try fixture.cli.run(["status", "--json"])
            let status = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "\(json.output)")
            let instances = Dictionary(uniqueKeysWithValues: (status["instances"] as? [[String: Any]] ?? []).compactMap { item in (item["name"] as? String).map { ($0, item) } })
            #expect(instances["wandb-0001"]?["health"] as? String == "delivering")
            #expect((instances["wandb-0001"]?["delivery_seconds"] as? Double ?? -1) >= 0)
            #expect(instances["wandb-0005"]?["health"] as? String == "awaiting-connect")
            #expect(instances["wandb-0006"]?["health"] as? String == "awaiting-connect")
            #expect(instances["wandb-0002"]?["rotation_stage"] as? String == "awaiting-regenerate")
            #expect((instances["wandb-0003"]?["secret_age_seconds"] as? Double ?? 0) > 199 * 86400)
            #expect(((instances["wandb-0001"]?["last_results"] as? [String: Any])?["verify-delivery"] as? [String: Any])?["result"] as? String == "ok")
            let workspaces = Dictionary(uniqueKeysWithValues: (status["workspaces"] as? [[String: Any]] ?? []).compactMap { item in (item["id"] as? String).map { ($0, item) } })
            #expect((workspaces["TSIM0002"]?["token_expires_in_seconds"] as? Double ?? .infinity) < 3600)
            let needs = status["needs_person"] as? [[String: Any]] ?? []
            #expect(Set(needs.compactMap { $0["kind"] as? String }) == ["connect", "regenerate"], "\(needs)")
            #expect(Set(needs.filter { $0["kind"] as? String == "connect" }.compactMap { $0["instance"] as? String }) == ["wandb-0005", "wandb-0006"])
            #expect(status["healthy"] as? Bool == false)

            let page = fixture.directory.file("fleet.html")
            let report = try fixture.cli.run(["report", "--output", page])
            #expect(report.status == 0, "\(report.output)")
            let chromium = Chromium(directory: fixture.directory)
            let rendered = try chromium.dump(page)
            #expect(Chromium.problems(rendered.log).isEmpty, "\(Chromium.problems(rendered.log))")
            for (name, state) in [("wandb-0001", "delivering"), ("wandb-0005", "awaiting-connect"), ("wandb-0006", "awaiting-connect")] {
                #expect(rendered.dom.contains("<div class=\"r\" data-state=\"\(state)\"><span>\(name)</span>"), "\(name) as \(state)")
            }
            #expect(rendered.dom.components(separatedBy: "<div class=\"r\" data-state=").count - 1 == 6, "one row per instance")
            #expect(rendered.dom.contains("awaiting-regenerate") && rendered.dom.contains("Regenerate"))
            let shot = fixture.directory.file("fleet.png")
            try chromium.screenshot(page, to: shot)
            #expect(try chromium.distinctPixelBytes(shot) > 16, "the screenshot is not blank")
        }

        @Test("the browser checks catch what they look for: a console error, a blocked request, a blank screenshot")
        func checksCanFail() throws {
            let directory = TemporaryDirectory("chromium")
            let chromium = Chromium(directory: directory)
            let bad = directory.write("bad.html", #"<!doctype html><html><head><meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'"></head><body><img src="https://example.com/x.png"><script>missing();</script></body></html>"#)
            let problems = Chromium.problems(try chromium.dump(bad).log)
            #expect(problems.contains { $0.contains("missing is not defined") }, "\(problems)")
            #expect(problems.contains { $0.contains("example.com/x.png") }, "\(problems)")
            let blank = directory.write("blank.html", "<!doctype html><html><body></body></html>")
            let shot = directory.file("blank.png")
            try chromium.screenshot(blank, to: shot)
            #expect(try chromium.distinctPixelBytes(shot) <= 16, "a blank page fails the screenshot check")
        }

        @Test("hostile names from Slack, W&B and labels render as text, never markup; the page holds no secret")
        func hostileNames() throws {
            let fixture = try JobFixture(instances: 2, workspaces: 1, groups: 0, simConfig: #"{"rollout_delay_ms": 50}"#, connected: 0)
            _ = try fixture.provision()
            let hostile = #"<img src=x onerror=alert(1)><script>document.title='owned'</script>"#
            let database = try DatabaseQueue(path: fixture.directory.file("slackfleet.db"))
            try database.write { db in
                try db.execute(sql: "UPDATE instance SET labels = ? WHERE name = 'wandb-0001'", arguments: [#"{"team":"\#(hostile.replacingOccurrences(of: "\"", with: "\\\""))"}"#])
                try db.execute(sql: "UPDATE run_result SET detail = ?, action = json_set(coalesce(action, '{}'), '$.why', ?, '$.page', ?)", arguments: [hostile, hostile, hostile])
                try db.execute(sql: "UPDATE workspace SET name = ?", arguments: [hostile])
            }
            try database.close()
            let page = fixture.directory.file("hostile.html")
            #expect(try fixture.cli.run(["report", "--output", page]).status == 0)
            let html = try String(contentsOfFile: page, encoding: .utf8)
            #expect(!html.contains("<img") && !html.contains("<script>document"), "escaped")
            let rendered = try Chromium(directory: fixture.directory).dump(page)
            #expect(!rendered.dom.contains("<img") && rendered.dom.contains("&lt;img src=x onerror=alert(1)&gt;"), "rendered as text")
            #expect(rendered.dom.contains("<title>SlackFleet: fleet status</title>"), "no script of theirs ran")
            #expect(Chromium.problems(rendered.log).isEmpty, "\(Chromium.problems(rendered.log))")
            // No secret the simulator issued is in the page.
            let inventory = try String(contentsOfFile: fixture.sim.inventory, encoding: .utf8)
            for secret in inventory.matches(of: /(xox[a-z]-[A-Za-z0-9-]+)/).map({ String($0.1) }) {
                #expect(!html.contains(secret))
            }
        }
    }
}
