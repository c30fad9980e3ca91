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
        try serverInfo(withIntegrationsOf: nil).info
    }

    /// `serverInfo`, and in the same request the Slack integrations of `entity` (one call where a
    /// job needs both; every page is read only when there are more than a hundred). The second
    /// value is nil when no entity was asked for, `.some(nil)` when it does not exist.
    public func serverInfo(withIntegrationsOf entity: String?) throws -> (info: ServerInfo, integrations: EntityIntegrations??) {
        let data: JSON
        if let entity {
            data = try query("query ServerInfoAndIntegrations($entityName: String!, $cursor: String, $perPage: Int) { serverInfo { slackClientID frontendHost } "
                             + WandbClient.entityIntegrationsSelection + " }",
                             variables: ["entityName": .string(entity), "perPage": .int(100)])
        } else {
            data = try query("{ serverInfo { slackClientID frontendHost } }")
        }
        guard let info = data["serverInfo"], info.objectValue != nil else { throw unreadable("serverInfo is not an object") }
        // A client ID that arrives as a number has been read as one somewhere: its digits may be gone.
        for field in ["slackClientID", "frontendHost"] where info[field] != nil && info[field] != .null && info[field]?.stringValue == nil {
            throw unreadable("serverInfo.\(field) is not text")
        }
        // `slackClientID` is `String!`: empty when no Slack app is configured (older servers may say null).
        let clientID = info["slackClientID"]?.stringValue
        let serverInfo = ServerInfo(slackClientID: clientID?.isEmpty == true ? nil : clientID, frontendHost: info["frontendHost"]?.stringValue)
        guard let entity else { return (serverInfo, nil) }
        let page = try integrationsPage(data, entity: entity)
        if let page, page.more { return (serverInfo, .some(try slackIntegrations(entity: entity))) }
        return (serverInfo, .some(page?.found))
    }

    /// The selection of an entity's Slack integrations, in the wandb SDK's `SlackIntegrationsByEntity`
    /// shape (wandb/wandb tools/graphql_codegen/automations/queries.graphql), with `isTeam`.
    private static let entityIntegrationsSelection = """
        entity(name: $entityName) {
          isTeam
          integrations(after: $cursor, first: $perPage) {
            pageInfo { endCursor hasNextPage }
            edges { cursor node { __typename ... on SlackIntegration { id teamName channelName } } }
          }
        }
        """

    /// One page of an entity's integrations from a GraphQL answer: nil when the entity does not exist.
    private func integrationsPage(_ data: JSON, entity: String) throws -> (found: EntityIntegrations, more: Bool, cursor: String?)? {
        guard let record = data["entity"], record != .null else { return nil }
        var found: [SlackIntegration] = []
        let connection = record["integrations"]
        for edge in connection?["edges"]?.listValue ?? [] {
            guard let node = edge["node"], node["__typename"]?.stringValue == "SlackIntegration" else { continue }
            guard let id = node["id"]?.stringValue, let team = node["teamName"]?.stringValue, let channel = node["channelName"]?.stringValue else {
                throw unreadable("a SlackIntegration of \(entity) lacks id, teamName or channelName")
            }
            found.append(SlackIntegration(id: id, teamName: team, channelName: channel))
        }
        let more = connection?["pageInfo"]?["hasNextPage"]?.boolValue == true
        return (EntityIntegrations(isTeam: record["isTeam"]?.boolValue ?? false, slack: found), more, connection?["pageInfo"]?["endCursor"]?.stringValue)
    }

    /// A Slack integration of a W&B entity, as W&B's published schema shows it
    /// (`SlackIntegration {id teamName channelName}`: no webhook, no app ID).
    public struct SlackIntegration: Sendable, Equatable, Hashable {
        public let id: String
        public let teamName: String
        /// Without a leading `#` (W&B stores what Slack's `incoming_webhook.channel` says, `#name`).
        public let channelName: String

        public init(id: String, teamName: String, channelName: String) {
            self.id = id
            self.teamName = teamName
            self.channelName = channelName.hasPrefix("#") ? String(channelName.dropFirst()) : channelName
        }
    }

    /// An entity's Slack integrations, and whether it is a team (its settings page differs).
    public struct EntityIntegrations: Sendable {
        public let isTeam: Bool
        public let slack: [SlackIntegration]
    }

    /// The Slack integrations of `entity`, every page (the wandb SDK's `SlackIntegrationsByEntity`,
    /// wandb/wandb tools/graphql_codegen/automations/queries.graphql); nil when the entity does
    /// not exist. Other kinds of integration are skipped by their `__typename`.
    public func slackIntegrations(entity: String) throws -> EntityIntegrations? {
        let text = "query SlackIntegrationsByEntity($entityName: String!, $cursor: String, $perPage: Int) { " + WandbClient.entityIntegrationsSelection + " }"
        var found: [SlackIntegration] = []
        var cursor: JSON = .null
        var isTeam = false
        // Bounded: 100 pages of 100.
        for _ in 0..<100 {
            let data = try query(text, variables: ["entityName": .string(entity), "cursor": cursor, "perPage": .int(100)])
            guard let page = try integrationsPage(data, entity: entity) else { return nil }
            isTeam = page.found.isTeam
            found += page.found.slack
            guard page.more, let next = page.cursor else { break }
            cursor = .string(next)
        }
        return EntityIntegrations(isTeam: isTeam, slack: found)
    }

    /// Every entity's name, through `Query.entities` (in W&B's published schema; its
    /// `EntityConnection` has edges and no pageInfo, so pages go on until one comes back short).
    /// nil when the server refuses it: whether it lets an admin list every entity is unconfirmed.
    public func entityNames() throws -> [String]? {
        let text = "query Entities($cursor: String, $perPage: Int) { entities(after: $cursor, first: $perPage) { edges { cursor node { name } } } }"
        var names: [String] = []
        var cursor: JSON = .null
        for _ in 0..<1000 {
            let data: JSON
            do {
                data = try query(text, variables: ["cursor": cursor, "perPage": .int(100)])
            } catch let error as ServiceError where error.code == "graphql_error" {
                return nil
            }
            let edges = data["entities"]?["edges"]?.listValue ?? []
            names += edges.compactMap { $0["node"]?["name"]?.stringValue }
            guard edges.count == 100, let last = edges.last?["cursor"]?.stringValue else { break }
            cursor = .string(last)
        }
        return names
    }

    /// Whether the instance answers `/ready` with 200.
    public func ready() throws -> Bool {
        let spec = HTTPRequestSpec(method: "GET", url: ServiceRequest.url(instance.baseURL, "/ready"), allowInsecureHTTP: instance.allowInsecureHTTP)
        // Retried like every other call (a reset or a 5xx from the load balancer passes); a
        // steady non-200 answer is the verdict.
        return try ServiceRequest(spec, endpoint: "wandb:ready").send(in: environment) { [instance] reply in
            if reply.status >= 500 { throw ServiceError(service: "wandb", target: instance.name, status: reply.status, code: "http_\(reply.status)") }
            return reply.status == 200
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
        let body: JSON = ["query": .string(text), "variables": .object(variables)]
        let spec = HTTPRequestSpec(method: "POST", url: ServiceRequest.url(instance.baseURL, "/graphql"),
                                   headers: [("Content-Type", "application/json"), ("Authorization", "Basic " + Data("api:\(apiKey.revealed)".utf8).base64EncodedString())],
                                   body: body.data, allowInsecureHTTP: instance.allowInsecureHTTP)
        return try ServiceRequest(spec, endpoint: "wandb:graphql").send(in: environment) { [instance] reply in
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
