import Foundation
import GraphQL
import OrderedCollections

/// The subset of W&B Server's GraphQL schema that SlackFleet uses, parsed and validated by a
/// real GraphQL implementation, so a malformed query fails as it would on a real server.
final class WandbGraphQL: @unchecked Sendable {
    let schema: GraphQLSchema
    /// Parsed and validated documents by query text: clients send the same few queries, and
    /// parsing and validating each time costs more than executing.
    private let lock = NSLock()
    private var documents: [String: Result<Document, GraphQLErrors>] = [:]
    private static let maximumCachedDocuments = 256

    /// What a resolver knows about the request.
    struct Context: Sendable {
        let simulator: Simulator
        let instance: String
        let admin: Bool
    }

    struct Viewer: Sendable {
        let id: String
        let username: String
        let admin: Bool
    }

    struct ServerInfo: Sendable {
        let slackClientID: String
        let frontendHost: String
    }

    /// One edge of a connection: the item and its cursor.
    struct Edge: Sendable {
        let cursor: String
        let node: any Sendable
    }

    /// A page of a connection (`edges`, `pageInfo`).
    struct Page: Sendable {
        let edges: [Edge]
        let hasNextPage: Bool
    }

    /// `first`/`after` paging over `items`, by position: the cursor is the item's index.
    static func page(_ items: [any Sendable], first: Int?, after: String?) -> Page {
        let start = after.flatMap { Data(base64Encoded: $0) }.flatMap { String(data: $0, encoding: .utf8) }
            .flatMap { $0.hasPrefix("cursor:") ? Int($0.dropFirst(7)) : nil }.map { $0 + 1 } ?? 0
        let count = max(0, min(first ?? 50, 100))
        let slice = Array(items.enumerated().dropFirst(start).prefix(count))
        return Page(edges: slice.map { Edge(cursor: Data("cursor:\($0.offset)".utf8).base64EncodedString(), node: $0.element) },
                    hasNextPage: start + slice.count < items.count)
    }

    init() throws {
        let viewer = try GraphQLObjectType(name: "User", fields: [
            "id": GraphQLField(type: GraphQLNonNull(GraphQLID)) { source, _, _, _ in (source as? Viewer)?.id },
            "username": GraphQLField(type: GraphQLString) { source, _, _, _ in (source as? Viewer)?.username },
            "admin": GraphQLField(type: GraphQLBoolean) { source, _, _, _ in (source as? Viewer)?.admin },
        ])
        // `ServerInfo.slackClientID` is `String!` (wandb-js src/gql/graphql.ts): empty when unset.
        let serverInfo = try GraphQLObjectType(name: "ServerInfo", fields: [
            "slackClientID": GraphQLField(type: GraphQLNonNull(GraphQLString)) { source, _, _, _ in (source as? ServerInfo)?.slackClientID },
            "frontendHost": GraphQLField(type: GraphQLString) { source, _, _, _ in (source as? ServerInfo)?.frontendHost },
        ])
        let severity = try GraphQLEnumType(name: "AlertSeverity", values: [
            "INFO": GraphQLEnumValue(value: "INFO"), "WARN": GraphQLEnumValue(value: "WARN"), "ERROR": GraphQLEnumValue(value: "ERROR"),
        ])
        let duration = try GraphQLScalarType(name: "Duration", description: "Milliseconds.")
        let input = try GraphQLInputObjectType(name: "NotifyScriptableRunAlertInput", fields: [
            "entityName": InputObjectField(type: GraphQLNonNull(GraphQLString)),
            "projectName": InputObjectField(type: GraphQLNonNull(GraphQLString)),
            "runName": InputObjectField(type: GraphQLNonNull(GraphQLString)),
            "title": InputObjectField(type: GraphQLNonNull(GraphQLString)),
            "text": InputObjectField(type: GraphQLNonNull(GraphQLString)),
            "severity": InputObjectField(type: severity, defaultValue: "INFO"),
            "waitDuration": InputObjectField(type: duration),
            "clientMutationId": InputObjectField(type: GraphQLString),
        ])
        let payload = try GraphQLObjectType(name: "NotifyScriptableRunAlertPayload", fields: [
            "success": GraphQLField(type: GraphQLNonNull(GraphQLBoolean)) { source, _, _, _ in (source as? [String: String])?["success"] == "true" },
            "clientMutationId": GraphQLField(type: GraphQLString) { source, _, _, _ in (source as? [String: String])?["clientMutationId"] },
        ])

        // Integrations, as W&B's published schema has them (wandb-js src/gql/graphql.ts;
        // wandb/wandb tools/graphql_codegen/automations/queries.graphql): an `Integration`
        // interface; `SlackIntegration {id teamName channelName}` (no webhook, no app ID); and a
        // generic webhook kind, so a client must tell them apart by `__typename`.
        let integration = try GraphQLInterfaceType(name: "Integration", fields: [
            "id": GraphQLField(type: GraphQLNonNull(GraphQLID)),
        ], resolveType: { value, _ in value is SimIntegration ? "SlackIntegration" : "GenericWebhookIntegration" })
        let slackIntegration = try GraphQLObjectType(name: "SlackIntegration", fields: [
            "id": GraphQLField(type: GraphQLNonNull(GraphQLID)) { source, _, _, _ in (source as? SimIntegration)?.id },
            "teamName": GraphQLField(type: GraphQLNonNull(GraphQLString)) { source, _, _, _ in (source as? SimIntegration)?.teamName },
            "channelName": GraphQLField(type: GraphQLNonNull(GraphQLString)) { source, _, _, _ in (source as? SimIntegration)?.channelName },
        ], interfaces: [integration], isTypeOf: { source, _ in source is SimIntegration })
        let webhookIntegration = try GraphQLObjectType(name: "GenericWebhookIntegration", fields: [
            "id": GraphQLField(type: GraphQLNonNull(GraphQLID)) { source, _, _, _ in (source as? GenericWebhook)?.id },
            "name": GraphQLField(type: GraphQLNonNull(GraphQLString)) { source, _, _, _ in (source as? GenericWebhook)?.name },
            "urlEndpoint": GraphQLField(type: GraphQLNonNull(GraphQLString)) { source, _, _, _ in (source as? GenericWebhook)?.url },
        ], interfaces: [integration], isTypeOf: { source, _ in source is GenericWebhook })
        let pageInfo = try GraphQLObjectType(name: "PageInfo", fields: [
            "endCursor": GraphQLField(type: GraphQLString) { source, _, _, _ in (source as? Page)?.edges.last?.cursor },
            "hasNextPage": GraphQLField(type: GraphQLNonNull(GraphQLBoolean)) { source, _, _, _ in (source as? Page)?.hasNextPage },
        ])
        let integrationEdge = try GraphQLObjectType(name: "IntegrationEdge", fields: [
            "cursor": GraphQLField(type: GraphQLNonNull(GraphQLString)) { source, _, _, _ in (source as? Edge)?.cursor },
            "node": GraphQLField(type: integration) { source, _, _, _ in (source as? Edge)?.node },
        ])
        let integrationConnection = try GraphQLObjectType(name: "IntegrationConnection", fields: [
            "edges": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(integrationEdge)))) { source, _, _, _ in (source as? Page)?.edges },
            "pageInfo": GraphQLField(type: GraphQLNonNull(pageInfo)) { source, _, _, _ in source as? Page },
        ])
        let connectionArgs: GraphQLArgumentConfigMap = [
            "after": GraphQLArgument(type: GraphQLString), "before": GraphQLArgument(type: GraphQLString),
            "first": GraphQLArgument(type: GraphQLInt), "last": GraphQLArgument(type: GraphQLInt),
        ]
        let entity = try GraphQLObjectType(name: "Entity", fields: [
            "id": GraphQLField(type: GraphQLNonNull(GraphQLID)) { source, _, _, _ in (source as? EntityRef).map { Data("Entity:\($0.entity.name)".utf8).base64EncodedString() } },
            "name": GraphQLField(type: GraphQLNonNull(GraphQLString)) { source, _, _, _ in (source as? EntityRef)?.entity.name },
            "isTeam": GraphQLField(type: GraphQLNonNull(GraphQLBoolean)) { source, _, _, _ in (source as? EntityRef)?.entity.isTeam },
            "integrations": GraphQLField(type: integrationConnection, args: connectionArgs) { source, args, _, _ in
                guard let ref = source as? EntityRef else { return nil }
                let items: [any Sendable] = (ref.simulator.integrations(instance: ref.instance, entity: ref.entity.name) ?? []) + ref.webhooks
                return WandbGraphQL.page(items, first: args["first"].int, after: args["after"].string)
            },
        ])
        let entityEdge = try GraphQLObjectType(name: "EntityEdge", fields: [
            "cursor": GraphQLField(type: GraphQLNonNull(GraphQLString)) { source, _, _, _ in (source as? Edge)?.cursor },
            "node": GraphQLField(type: entity) { source, _, _, _ in (source as? Edge)?.node },
        ])
        // `EntityConnection` has edges and no pageInfo in the published schema.
        let entityConnection = try GraphQLObjectType(name: "EntityConnection", fields: [
            "edges": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(entityEdge)))) { source, _, _, _ in (source as? Page)?.edges },
        ])
        let query = try GraphQLObjectType(name: "Query", fields: [
            "viewer": GraphQLField(type: viewer) { _, _, context, _ in
                guard let context = context as? Context else { return nil }
                return Viewer(id: "VXNlcjox", username: context.admin ? "admin" : "member", admin: context.admin)
            },
            "serverInfo": GraphQLField(type: serverInfo) { _, _, context, _ in
                guard let context = context as? Context else { return nil }
                return context.simulator.serverInfo(instance: context.instance)
            },
            "entity": GraphQLField(type: entity, args: ["name": GraphQLArgument(type: GraphQLString), "login": GraphQLArgument(type: GraphQLBoolean)]) { _, args, context, _ in
                guard let context = context as? Context, let name = args["name"].string,
                      let found = context.simulator.entity(instance: context.instance, entity: name) else { return nil }
                return EntityRef(simulator: context.simulator, instance: context.instance, entity: found)
            },
            "entities": GraphQLField(type: entityConnection, args: connectionArgs.merging(["order": GraphQLArgument(type: GraphQLString)]) { first, _ in first }) { _, args, context, _ in
                guard let context = context as? Context else { return nil }
                guard let all = context.simulator.entities(instance: context.instance) else {
                    throw SimulatorError("permission denied: listing every entity is not allowed on this server")
                }
                let refs: [any Sendable] = all.map { EntityRef(simulator: context.simulator, instance: context.instance, entity: $0) }
                return WandbGraphQL.page(refs, first: args["first"].int, after: args["after"].string)
            },
        ])
        let createInput = try GraphQLInputObjectType(name: "CreateSlackIntegrationInput", fields: [
            "clientMutationId": InputObjectField(type: GraphQLString),
            "code": InputObjectField(type: GraphQLNonNull(GraphQLString)),
            "entityName": InputObjectField(type: GraphQLNonNull(GraphQLString)),
            "redirectURI": InputObjectField(type: GraphQLNonNull(GraphQLString)),
        ])
        let createPayload = try GraphQLObjectType(name: "CreateIntegrationPayload", fields: [
            "clientMutationId": GraphQLField(type: GraphQLString) { _, _, _, _ in nil as String? },
            "integration": GraphQLField(type: GraphQLNonNull(integration)) { source, _, _, _ in source as? SimIntegration },
        ])
        let deleteInput = try GraphQLInputObjectType(name: "DeleteIntegrationInput", fields: [
            "clientMutationId": InputObjectField(type: GraphQLString),
            "id": InputObjectField(type: GraphQLNonNull(GraphQLID)),
        ])
        let deletePayload = try GraphQLObjectType(name: "DeleteIntegrationPayload", fields: [
            "clientMutationId": GraphQLField(type: GraphQLString) { _, _, _, _ in nil as String? },
            "success": GraphQLField(type: GraphQLBoolean) { source, _, _, _ in source as? Bool },
        ])
        let mutation = try GraphQLObjectType(name: "Mutation", fields: [
            "notifyScriptableRunAlert": GraphQLField(
                type: payload,
                args: ["input": GraphQLArgument(type: GraphQLNonNull(input))]
            ) { _, args, context, _ in
                guard let context = context as? Context, let fields = args["input"].dictionary else { return nil }
                let success = context.simulator.sendAlert(
                    instance: context.instance, entity: fields["entityName"]?.string ?? "", title: fields["title"]?.string ?? "",
                    text: fields["text"]?.string ?? "", severity: fields["severity"]?.string ?? "INFO", runName: fields["runName"]?.string ?? "",
                    waitDuration: fields["waitDuration"]?.double)
                return ["success": success ? "true" : "false", "clientMutationId": fields["clientMutationId"]?.string ?? ""]
            },
            // W&B exchanges the code with its running client ID and secret and stores the
            // installation's webhook; Slack's refusal is W&B's error.
            "createSlackIntegration": GraphQLField(type: createPayload, args: ["input": GraphQLArgument(type: GraphQLNonNull(createInput))]) { _, args, context, _ in
                guard let context = context as? Context, let fields = args["input"].dictionary else { return nil }
                switch context.simulator.createSlackIntegration(instance: context.instance, entity: fields["entityName"]?.string ?? "",
                                                                code: fields["code"]?.string ?? "", redirectURI: fields["redirectURI"]?.string ?? "") {
                case .success(let created): return created
                case .failure(let failure): throw SimulatorError("could not connect Slack: \(failure.code)")
                }
            },
            "deleteIntegration": GraphQLField(type: deletePayload, args: ["input": GraphQLArgument(type: GraphQLNonNull(deleteInput))]) { _, args, context, _ in
                guard let context = context as? Context, context.admin, let id = args["input"].dictionary?["id"]?.string else { return false }
                return context.simulator.deleteIntegration(instance: context.instance, id: id)
            },
        ])
        schema = try GraphQLSchema(query: query, mutation: mutation, types: [slackIntegration, webhookIntegration])
        let problems = validateSchema(schema: schema)
        guard problems.isEmpty else { throw SimulatorError("the W&B GraphQL schema is invalid: \(problems)") }
    }

    /// An entity of one instance, as the GraphQL resolvers pass it along.
    struct EntityRef: Sendable {
        let simulator: Simulator
        let instance: String
        let entity: SimEntity
        /// A generic webhook integration beside the Slack ones of the canary entity on one instance
        /// in ten (wandb-0001, wandb-0011, ...), so clients meet the other kind
        /// (GenericWebhookIntegration in the published schema).
        var webhooks: [any Sendable] {
            guard entity.name == World.canaryEntity, (Int(instance.filter(\.isNumber)) ?? 0) % 10 == 1 else { return [] }
            return [GenericWebhook(id: Data("Integration:webhook-\(instance)".utf8).base64EncodedString(), name: "pager", url: "https://pager.example.com/hook")]
        }
    }

    struct GenericWebhook: Sendable {
        let id: String
        let name: String
        let url: String
    }

    /// The document of `query`, parsed and validated against the schema, from the cache if seen.
    private func document(_ query: String) throws -> Result<Document, GraphQLErrors> {
        lock.lock()
        let cached = documents[query]
        lock.unlock()
        if let cached { return cached }
        let parsed = try parse(source: Source(body: query, name: "GraphQL request"))
        let errors = validate(schema: schema, ast: parsed)
        let result: Result<Document, GraphQLErrors> = errors.isEmpty ? .success(parsed) : .failure(GraphQLErrors(errors))
        lock.lock()
        if documents.count >= WandbGraphQL.maximumCachedDocuments { documents.removeAll() }
        documents[query] = result
        lock.unlock()
        return result
    }

    /// Parses, validates and executes one request body (`{"query", "variables", "operationName"}`).
    func execute(_ body: Data, context: Context) async -> SimResponse {
        guard case .object(let request)? = try? JSONValue.parse(body), let query = request["query"]?.stringValue else {
            return WandbGraphQL.errors(["the request body must be JSON with a query"], status: 400)
        }
        var variables: [String: Map] = [:]
        if case .object(let values)? = request["variables"] {
            for (name, value) in values { variables[name] = WandbGraphQL.map(value) }
        }
        do {
            let result: GraphQLResult
            switch try document(query) {
            case .success(let parsed):
                result = try await GraphQL.execute(schema: schema, documentAST: parsed, rootValue: (), context: context,
                                                   variableValues: variables, operationName: request["operationName"]?.stringValue)
            case .failure(let invalid):
                result = GraphQLResult(errors: invalid.errors)
            }
            return .json(WandbGraphQL.json(result), status: result.data == nil && !result.errors.isEmpty ? 400 : 200)
        } catch {
            return WandbGraphQL.errors(["\(error)"], status: 400)
        }
    }

    /// A result as GraphQL's JSON form spells it (`data`, and `errors` with message, locations and
    /// path), written directly: the Codable encoder took a tenth of the simulator's time.
    static func json(_ result: GraphQLResult) -> JSONValue {
        var fields: [String: JSONValue] = [:]
        if let data = result.data { fields["data"] = json(data) }
        if !result.errors.isEmpty {
            fields["errors"] = .array(result.errors.map { error in
                var entry: [String: JSONValue] = ["message": .string(error.message)]
                if !error.locations.isEmpty {
                    entry["locations"] = .array(error.locations.map { ["line": .integer(Int64($0.line)), "column": .integer(Int64($0.column))] })
                }
                if !error.path.elements.isEmpty {
                    entry["path"] = .array(error.path.elements.map { element in
                        switch element {
                        case .index(let index): return .integer(Int64(index))
                        case .key(let key): return .string(key)
                        }
                    })
                }
                return .object(entry)
            })
        }
        return .object(fields)
    }

    static func json(_ value: Map) -> JSONValue {
        switch value {
        case .undefined, .null: return .null
        case .bool(let flag): return .bool(flag)
        case .number(let number):
            switch number.storageType {
            case .bool: return .bool(number.boolValue)
            case .int: return .integer(Int64(number.intValue))
            default: return .number(number.doubleValue)
            }
        case .string(let text): return .string(text)
        case .array(let items): return .array(items.map(json))
        case .dictionary(let fields):
            var object: [String: JSONValue] = [:]
            for (key, item) in fields where item != .undefined { object[key] = json(item) }
            return .object(object)
        }
    }

    static func errors(_ messages: [String], status: Int) -> SimResponse {
        .json(["errors": .array(messages.map { ["message": .string($0)] })], status: status)
    }

    static func map(_ value: JSONValue) -> Map {
        switch value {
        case .null: return .null
        case .bool(let flag): return .bool(flag)
        case .integer(let number): return .number(Number(Int(number)))
        case .number(let number): return .number(Number(number))
        case .string(let text): return .string(text)
        case .array(let items): return .array(items.map(map))
        case .object(let fields):
            var dictionary = OrderedDictionary<String, Map>()
            for key in fields.keys.sorted() { dictionary[key] = fields[key].map(map) }
            return .dictionary(dictionary)
        }
    }
}
