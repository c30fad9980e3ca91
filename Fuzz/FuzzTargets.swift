import Foundation
import SlackFleetCore

/// Fuzz targets: what SlackFleet reads from files and from the far side, fed arbitrary bytes.
/// Each must end with a value or a thrown error, never a crash, a hang or unbounded memory.
///
/// Built with libFuzzer (`make fuzz`, part of `make soak`): `-sanitize=fuzzer,address -DFUZZING`,
/// and `FUZZ_TARGET` picks the target. Built normally, the same binary replays files:
/// `slackfleet-fuzz TARGET FILE...` (how a crash found becomes a regression test).
enum FuzzTargets {
    static let names = ["inventory", "manifest-diff", "responses"]

    static func run(_ target: String, _ data: Data) {
        switch target {
        case "inventory":
            // YAML and JSON, as `inventory import` reads them.
            _ = try? InventoryReader(file: "fuzz.yaml").read(data)
            _ = try? InventoryReader(file: "fuzz.json").read(data, format: "json")
        case "manifest-diff":
            // An exported manifest against a fleet: normalising, diffing and editing it.
            guard let manifest = try? JSON.parse(data) else { return }
            let drift = SyncRedirects.drift(exported: manifest, instances: fleet)
            _ = drift.summary
            _ = SyncRedirects.edited(manifest, instances: fleet).canonicalJSON
        default:
            // What a response decoder meets first: JSON, then the values it checks.
            if let json = try? JSON.parse(data) {
                _ = json.canonicalJSON
                _ = json["ok"]?.boolValue
                _ = json["manifest"]?["oauth_config"]?["redirect_urls"]?.strings
                _ = json["exp"]?.intValue
                _ = json["data"]?["serverInfo"]?["slackClientID"]?.stringValue
            }
            let text = String(decoding: data, as: UTF8.self)
            _ = EndpointRules.checkURL(text, role: .hostURL, allowInsecureHTTP: true)
            _ = EndpointRules.checkURL(text, role: .endpoint, allowInsecureHTTP: false)
            _ = EndpointRules.checkIPRange(text)
            _ = SecretReference.parse(text)
        }
    }

    /// A small fleet for the manifest target: two instances of one app group.
    static let fleet: [Instance] = {
        let text = """
            version: 1
            workspaces:
              - {id: T0123ABCD, name: acme, config_token: "secret:slack/config", refresh_token: "secret:slack/refresh"}
            instances:
              - {name: alpha, base_url: "https://wandb.alpha.example.com", host_urls: ["https://wandb.alpha.example.com", "https://ml.example.com/x"], workspace: T0123ABCD, app_group: shared, api_key: "secret:wandb/alpha", ip_allowlist: ["203.0.113.0/24"], registrar: {kind: exec, command: [./register.sh]}}
              - {name: beta, base_url: "https://wandb.beta.example.com", host_urls: ["https://wandb.beta.example.com"], workspace: T0123ABCD, app_group: shared, api_key: "secret:wandb/beta", registrar: {kind: exec, command: [./register.sh]}}
            """
        return (try? InventoryReader(file: "fleet.yaml").read(Data(text.utf8)).inventory.instances) ?? []
    }()
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = bytes.map { Data(bytes: $0, count: count) } ?? Data()
    FuzzTargets.run(ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? "inventory", data)
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// SwiftPM links an executable's entry point under the module's name; libFuzzer's driver runs from it.
@_cdecl("slackfleet_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { bytes, size in fuzzOne(bytes, size) }
}
#else
@main
struct FuzzReplay {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let target = arguments.first, FuzzTargets.names.contains(target), arguments.count >= 2 else {
            FileHandle.standardError.write(Data("usage: slackfleet-fuzz \(FuzzTargets.names.joined(separator: "|")) FILE...\n".utf8))
            exit(64)
        }
        for path in arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                FileHandle.standardError.write(Data("cannot read \(path)\n".utf8))
                exit(66)
            }
            FuzzTargets.run(target, data)
        }
        print("replayed \(arguments.count - 1) input(s) through \(target) without a crash")
    }
}
#endif
