import FleetSimulator
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A simulator serving a small fleet on an ephemeral loopback port, stopped when released.
final class SimHarness: @unchecked Sendable {
    let simulator: Simulator
    let server: SimulatorServer
    let fleet: IssuedFleet
    let baseURL: String
    let session: URLSession
    /// A session that never follows redirects: the OAuth page redirects to hosts that do not exist.
    let noRedirects: URLSession

    struct Reply {
        let status: Int
        let headers: [String: String]
        let body: Data
        var json: JSONValue { (try? JSONValue.parse(body)) ?? .null }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// `slackQuotas`: keep Slack's real per-minute quotas; otherwise they are lifted, so tests of
    /// other behaviour are not paced by Tier 1.
    init(instances: Int = 6, workspaces: Int = 2, sharedGroups: Int = 1, groupSize: Int = 3, slackQuotas: Bool = false,
         configure: (inout SimConfig) -> Void = { _ in }, userIntegrations: Int = 0) throws {
        simulator = try Simulator(seed: 42)
        simulator.configure {
            $0.alertDelay = 0
            $0.rolloutDelay = 0
            if !slackQuotas {
                for tier in SlackTier.allCases {
                    $0.tierQuota[tier] = 100_000
                    $0.tierBurst[tier] = 100_000
                }
            }
            configure(&$0)
        }
        var spec = FleetSpec(instances: instances, workspaces: workspaces, sharedGroups: sharedGroups, groupSize: groupSize)
        spec.userIntegrations = userIntegrations
        fleet = simulator.buildFleet(spec)
        server = SimulatorServer(simulator: simulator, threads: 2)
        let port = try server.start()
        baseURL = "http://127.0.0.1:\(port)"
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 30
        session = URLSession(configuration: configuration)
        noRedirects = URLSession(configuration: configuration, delegate: RefuseRedirects(), delegateQueue: nil)
    }

    deinit {
        try? server.stop()
    }

    var workspace: IssuedFleet.Workspace { fleet.workspaces[0] }

    func send(_ method: String, _ path: String, headers: [String: String] = [:], body: Data? = nil, timeout: TimeInterval = 30, followRedirects: Bool = true) async throws -> Reply {
        guard let url = URL(string: baseURL + path) else { throw SimulatorError("bad path \(path)") }
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.httpMethod = method
        request.httpBody = body
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await (followRedirects ? session : noRedirects).data(for: request)
        let http = response as? HTTPURLResponse
        var fields: [String: String] = [:]
        for (name, value) in http?.allHeaderFields ?? [:] { fields["\(name)".lowercased()] = "\(value)" }
        return Reply(status: http?.statusCode ?? 0, headers: fields, body: data)
    }

    /// A Web API call with form fields, the token as a Bearer header (or none).
    func slack(_ method: String, token: String?, _ form: [String: String] = [:]) async throws -> Reply {
        var headers = ["Content-Type": "application/x-www-form-urlencoded"]
        if let token { headers["Authorization"] = "Bearer \(token)" }
        let body = form.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
        return try await send("POST", "/api/\(method)", headers: headers, body: Data(body.utf8))
    }

    /// A Web API call with a JSON body.
    func slackJSON(_ method: String, token: String?, _ body: JSONValue) async throws -> Reply {
        var headers = ["Content-Type": "application/json; charset=utf-8"]
        if let token { headers["Authorization"] = "Bearer \(token)" }
        return try await send("POST", "/api/\(method)", headers: headers, body: body.data)
    }

    func graphql(_ instance: String, key: String, _ query: String, variables: JSONValue = [:]) async throws -> Reply {
        let credentials = Data("api:\(key)".utf8).base64EncodedString()
        return try await send("POST", "/wandb/\(instance)/graphql", headers: ["Authorization": "Basic \(credentials)", "Content-Type": "application/json"],
                              body: JSONValue.object(["query": .string(query), "variables": variables]).data)
    }

    func kube(_ method: String, _ instance: IssuedFleet.Instance, _ path: String, token: String? = nil, patch: JSONValue? = nil,
              contentType: String = "application/merge-patch+json") async throws -> Reply {
        var headers = ["Authorization": "Bearer \(token ?? instance.kubeToken)"]
        if patch != nil { headers["Content-Type"] = contentType }
        return try await send(method, "/k8s/\(instance.name)\(path)", headers: headers, body: patch?.data)
    }

    func control(_ method: String, _ path: String, _ body: JSONValue? = nil) async throws -> JSONValue {
        try await send(method, "/_sim/\(path)", headers: ["Content-Type": "application/json"], body: body?.data).json
    }

    /// A manifest for one app: incoming-webhook, the given redirect URLs.
    static func manifest(name: String = "W&B alerts", redirects: [String], scopes: [String] = ["incoming-webhook"], ranges: [String]? = nil) -> JSONValue {
        var manifest: [String: JSONValue] = [
            "display_information": ["name": .string(name)],
            "oauth_config": ["redirect_urls": .array(redirects.map(JSONValue.string)), "scopes": ["bot": .array(scopes.map(JSONValue.string))]],
        ]
        if let ranges { manifest["settings"] = ["allowed_ip_address_ranges": .array(ranges.map(JSONValue.string))] }
        return .object(manifest)
    }

    /// Creates an app for `instances` and returns (app id, client id, client secret).
    func createApp(for instances: [IssuedFleet.Instance], token: String? = nil, scopes: [String] = ["incoming-webhook"]) async throws -> (String, String, String) {
        let reply = try await slack("apps.manifest.create", token: token ?? workspace.configToken,
                                    ["manifest": SimHarness.manifest(redirects: instances.map(\.hostURL), scopes: scopes).serialized])
        let json = reply.json
        guard let appID = json["app_id"]?.stringValue, let id = json["credentials"]?["client_id"]?.stringValue,
              let secret = json["credentials"]?["client_secret"]?.stringValue else { throw SimulatorError("create failed: \(reply.text)") }
        return (appID, id, secret)
    }
}

/// Answers every redirect with "do not follow", so the 302 itself is returned.
final class RefuseRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(nil)
    }
}
