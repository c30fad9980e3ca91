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
        let slackClientID: String?
        let frontendHost: String
    }

    init() throws {
        let viewer = try GraphQLObjectType(name: "User", fields: [
            "id": GraphQLField(type: GraphQLNonNull(GraphQLID)) { source, _, _, _ in (source as? Viewer)?.id },
            "username": GraphQLField(type: GraphQLString) { source, _, _, _ in (source as? Viewer)?.username },
            "admin": GraphQLField(type: GraphQLBoolean) { source, _, _, _ in (source as? Viewer)?.admin },
        ])
        let serverInfo = try GraphQLObjectType(name: "ServerInfo", fields: [
            "slackClientID": GraphQLField(type: GraphQLString) { source, _, _, _ in (source as? ServerInfo)?.slackClientID },
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
        let query = try GraphQLObjectType(name: "Query", fields: [
            "viewer": GraphQLField(type: viewer) { _, _, context, _ in
                guard let context = context as? Context else { return nil }
                return Viewer(id: "VXNlcjox", username: context.admin ? "admin" : "member", admin: context.admin)
            },
            "serverInfo": GraphQLField(type: serverInfo) { _, _, context, _ in
                guard let context = context as? Context else { return nil }
                return context.simulator.serverInfo(instance: context.instance)
            },
        ])
        let mutation = try GraphQLObjectType(name: "Mutation", fields: [
            "notifyScriptableRunAlert": GraphQLField(
                type: payload,
                args: ["input": GraphQLArgument(type: GraphQLNonNull(input))]
            ) { _, args, context, _ in
                guard let context = context as? Context, let fields = args["input"].dictionary else { return nil }
                let success = context.simulator.sendAlert(
                    instance: context.instance, title: fields["title"]?.string ?? "", text: fields["text"]?.string ?? "",
                    severity: fields["severity"]?.string ?? "INFO", runName: fields["runName"]?.string ?? "",
                    waitDuration: fields["waitDuration"]?.double)
                return ["success": success ? "true" : "false", "clientMutationId": fields["clientMutationId"]?.string ?? ""]
            },
        ])
        schema = try GraphQLSchema(query: query, mutation: mutation)
        let problems = validateSchema(schema: schema)
        guard problems.isEmpty else { throw SimulatorError("the W&B GraphQL schema is invalid: \(problems)") }
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
            let data = try GraphQLJSONEncoder().encode(result)
            return SimResponse(status: result.data == nil && !result.errors.isEmpty ? 400 : 200,
                               headers: [("Content-Type", "application/json")], body: data)
        } catch {
            return WandbGraphQL.errors(["\(error)"], status: 400)
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
