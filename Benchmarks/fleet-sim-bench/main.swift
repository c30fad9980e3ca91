// fleet-sim's own targets (make bench): requests per second on loopback with no injected
// latency, and resident memory while serving 10,000 instances. The simulator runs as its own
// process, as in the demo; the load comes from keep-alive connections driven by SwiftNIO.
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

func argument(_ name: String) -> String? {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else { return nil }
    return CommandLine.arguments[index + 1]
}

let binary = argument("--fleet-sim") ?? ".build/release/fleet-sim"
let instances = Int(argument("--instances") ?? "") ?? 10_000
let seconds = Double(argument("--seconds") ?? "") ?? 5
let connections = Int(argument("--connections") ?? "") ?? 32

// Start fleet-sim on an ephemeral port.
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-sim-bench-\(getpid())").path
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
let process = Process()
process.executableURL = URL(fileURLWithPath: binary)
process.arguments = ["serve", "--instances", String(instances), "--workspaces", "10", "--inventory-out", directory + "/fleet.yaml"]
let output = Pipe()
process.standardOutput = output
process.standardError = FileHandle.nullDevice
try process.run()

/// Stops fleet-sim, removes its files and exits: `exit` runs no top-level `defer`, which left
/// the simulator running after every `make bench`.
func finish(_ status: Int32) -> Never {
    process.terminate()
    process.waitUntilExit()
    try? FileManager.default.removeItem(atPath: directory)
    exit(status)
}
var line = Data()
while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) { line.append(byte) }
let base = String(decoding: line, as: UTF8.self)
guard let port = URL(string: base)?.port else { print("fleet-sim did not start"); finish(1) }

func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
func secret(_ name: String) -> String { read(directory + "/fleet.yaml.secrets/" + name) }
func residentKB(_ field: String) -> Int {
    for entry in read("/proc/\(process.processIdentifier)/status").split(separator: "\n") where entry.hasPrefix(field + ":") {
        return Int(entry.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }
    return 0
}

/// Sends requests over keep-alive connections for `seconds`, returns answered requests and non-2xx.
final class Load: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    let head: HTTPRequestHead
    let body: ByteBuffer
    let deadline: NIODeadline
    let counters: Counters
    var status = 0

    init(head: HTTPRequestHead, body: ByteBuffer, deadline: NIODeadline, counters: Counters) {
        self.head = head
        self.body = body
        self.deadline = deadline
        self.counters = counters
    }

    func channelActive(context: ChannelHandlerContext) { send(context) }

    func send(_ context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let response): status = Int(response.status.code)
        case .body: break
        case .end:
            counters.record(ok: (200..<300).contains(status))
            if NIODeadline.now() < deadline { send(context) } else { context.close(promise: nil) }
        }
    }
}

final class Counters: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var answered = 0
    private(set) var failed = 0
    func record(ok: Bool) { lock.lock(); answered += 1; if !ok { failed += 1 }; lock.unlock() }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
func run(_ name: String, method: HTTPMethod, path: String, headers: [(String, String)], body: String) throws -> (Double, Int) {
    let counters = Counters()
    let deadline = NIODeadline.now() + .milliseconds(Int64(seconds * 1000))
    var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
    head.headers.add(name: "Host", value: "127.0.0.1")
    head.headers.add(name: "Content-Length", value: String(body.utf8.count))
    for (field, value) in headers { head.headers.add(name: field, value: value) }
    let start = Date()
    var channels: [Channel] = []
    for _ in 0..<connections {
        let handler = Load(head: head, body: ByteBuffer(string: body), deadline: deadline, counters: counters)
        channels.append(try ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.pipeline.addHTTPClientHandlers().flatMap { channel.pipeline.addHandler(handler) }
            }
            .connect(host: "127.0.0.1", port: port).wait())
    }
    for channel in channels { try channel.closeFuture.wait() }
    let elapsed = Date().timeIntervalSince(start)
    return (Double(counters.answered) / elapsed, counters.failed)
}

// Lift the Slack quotas through the control API with one plain request.
_ = try run("config", method: .POST, path: "/_sim/config", headers: [("Content-Type", "application/json")],
            body: #"{"tier_quota":{"tier1":1e9,"tier2":1e9,"tier3":1e9,"tier4":1e9,"special":1e9},"tier_burst":{"tier1":1e9,"tier2":1e9,"tier3":1e9,"tier4":1e9,"special":1e9}}"#)
let bot = secret("TSIM0001-bot-token")
let key = secret("wandb-0001-api-key")
let basic = Data("api:\(key)".utf8).base64EncodedString()

var rows: [(String, Double, Int, Double)] = []
let (slackRate, slackFailed) = try run("slack", method: .POST, path: "/api/auth.test", headers: [("Authorization", "Bearer \(bot)")], body: "")
rows.append(("Slack auth.test (requests/s)", slackRate, slackFailed, 5000))
let (historyRate, historyFailed) = try run("history", method: .POST, path: "/api/conversations.history",
                                           headers: [("Authorization", "Bearer \(bot)"), ("Content-Type", "application/x-www-form-urlencoded")],
                                           body: "channel=CCANARY001&limit=10")
rows.append(("Slack conversations.history (requests/s)", historyRate, historyFailed, 5000))
let (graphRate, graphFailed) = try run("graphql", method: .POST, path: "/wandb/wandb-0001/graphql",
                                       headers: [("Authorization", "Basic \(basic)"), ("Content-Type", "application/json")],
                                       body: #"{"query":"{ serverInfo { slackClientID frontendHost } }"}"#)
rows.append(("W&B GraphQL serverInfo (requests/s)", graphRate, graphFailed, 5000))
let peakMB = Double(residentKB("VmHWM")) / 1024
try group.syncShutdownGracefully()

print("fleet-sim benchmark: \(instances) instances, 10 workspaces, \(connections) connections, \(Int(seconds)) s per run, no injected latency")
print("measure                                      value     target  failed  result")
var ok = true
for (name, value, failed, target) in rows {
    let pass = value >= target && failed == 0
    ok = ok && pass
    print(name.padding(toLength: 42, withPad: " ", startingAt: 0) + String(format: "%9.0f  >= %6.0f  %6d  %@", value, target, failed, pass ? "ok" : "LOW"))
}
let memoryOK = peakMB < 200
ok = ok && memoryOK
print("peak resident memory of fleet-sim (MB)".padding(toLength: 42, withPad: " ", startingAt: 0) + String(format: "%9.1f  <  %6.0f  %6@  %@", peakMB, 200.0, "-", memoryOK ? "ok" : "HIGH"))
finish(ok ? 0 : 1)
