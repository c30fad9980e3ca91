import Foundation

/// One W&B Server instance's GraphQL API (`<base_url>/graphql`, Basic auth, user `api`).
public struct WandbClient: Sendable {
    public let instance: Instance
    let apiKey: SecretValue
    let environment: CallEnvironment

    public init(instance: Instance, apiKey: SecretValue, environment: CallEnvironment) {
        self.instance = instance
        self.apiKey = apiKey
        self.environment = environment
    }

    /// What the running instance reports: the Slack client ID it uses (text, compared exactly) and its host.
    public struct ServerInfo: Sendable, Equatable {
        public let slackClientID: String?
        public let frontendHost: String?
    }

    public func serverInfo() throws -> ServerInfo {
        let data = try query("{ serverInfo { slackClientID frontendHost } }")
        guard let info = data["serverInfo"], info.objectValue != nil else { throw unreadable("serverInfo is not an object") }
        // A client ID that arrives as a number has been read as one somewhere: its digits may be gone.
        for field in ["slackClientID", "frontendHost"] where info[field] != nil && info[field] != .null && info[field]?.stringValue == nil {
            throw unreadable("serverInfo.\(field) is not text")
        }
        return ServerInfo(slackClientID: info["slackClientID"]?.stringValue, frontendHost: info["frontendHost"]?.stringValue)
    }

    /// Whether the instance answers `/ready` with 200.
    public func ready() throws -> Bool {
        var base = instance.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        var spec = HTTPRequestSpec(method: "GET", url: base + "/ready", allowInsecureHTTP: instance.allowInsecureHTTP)
        if let left = environment.control.remaining { spec.timeout = max(0.5, min(spec.timeout, left)) }
        // Retried like every other call (a reset or a 5xx from the load balancer passes); a
        // steady non-200 answer is the verdict.
        return try environment.retry.run(environment.control, onRetry: { _, _ in environment.metrics.retried() }) {
            environment.metrics.called("wandb:ready")
            let status = try environment.transport.send(spec).status
            if status >= 500 { throw ServiceError(service: "wandb", target: instance.name, status: status, code: "http_\(status)") }
            return status == 200
        }
    }

    /// Sends a test alert through the instance (`notifyScriptableRunAlert`); returns its `success`.
    /// Success does not prove Slack received it: only the message in the channel does.
    public func notifyAlert(entity: String, project: String, run: String, title: String, text: String) throws -> Bool {
        let mutation = """
            mutation NotifyScriptableRunAlert($entityName: String!, $projectName: String!, $runName: String!, $title: String!, $text: String!, $severity: AlertSeverity = INFO, $waitDuration: Duration) {
              notifyScriptableRunAlert(input: {entityName: $entityName, projectName: $projectName, runName: $runName, title: $title, text: $text, severity: $severity, waitDuration: $waitDuration}) { success }
            }
            """
        let data = try query(mutation, variables: ["entityName": .string(entity), "projectName": .string(project), "runName": .string(run),
                                                   "title": .string(title), "text": .string(text), "severity": "INFO"])
        guard let success = data["notifyScriptableRunAlert"]?["success"]?.boolValue else {
            throw unreadable("notifyScriptableRunAlert.success is not true or false")
        }
        return success
    }

    private func unreadable(_ message: String) -> ServiceError {
        ServiceError(service: "wandb", target: instance.name, status: 200, code: "unreadable_answer", message: message)
    }

    /// Runs a GraphQL operation; returns `data`, or throws the first error.
    public func query(_ text: String, variables: [String: JSON] = [:]) throws -> JSON {
        var base = instance.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        let body: JSON = ["query": .string(text), "variables": .object(variables)]
        var spec = HTTPRequestSpec(method: "POST", url: base + "/graphql",
                                   headers: [("Content-Type", "application/json"), ("Authorization", "Basic " + Data("api:\(apiKey.revealed)".utf8).base64EncodedString())],
                                   body: body.data, allowInsecureHTTP: instance.allowInsecureHTTP)
        if let left = environment.control.remaining { spec.timeout = max(0.5, min(spec.timeout, left)) }
        return try environment.retry.run(environment.control, onRetry: { _, _ in environment.metrics.retried() }) {
            environment.metrics.called("wandb:graphql")
            let reply = try environment.transport.send(spec)
            let json = try? JSON.parse(reply.body)
            let firstError = json?["errors"]?.listValue?.first?["message"]?.stringValue
            if reply.status == 401 || reply.status == 403 {
                throw ServiceError(service: "wandb", target: instance.name, status: reply.status, code: "unauthorized",
                                   message: "the API key was refused: check the instance's api_key (it must be an admin's)")
            }
            guard reply.status == 200 else {
                throw ServiceError(service: "wandb", target: instance.name, status: reply.status, code: firstError == nil ? "http_\(reply.status)" : "graphql_error",
                                   message: firstError ?? "", retryAfter: reply.headers["retry-after"].flatMap(Double.init))
            }
            if let firstError {
                throw ServiceError(service: "wandb", target: instance.name, status: 200, code: "graphql_error", message: firstError)
            }
            guard let data = json?["data"], data.objectValue != nil else {
                throw ServiceError(service: "wandb", target: instance.name, status: 200, code: "unreadable_answer", message: "no data in the GraphQL answer")
            }
            return data
        }
    }
}
