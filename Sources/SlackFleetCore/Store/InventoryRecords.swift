import Foundation
import GRDB

/// The `workspace` table's row.
struct WorkspaceRecord: Encodable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "workspace"

    var id: String
    var name: String
    var apiURL: String
    var allowInsecureHTTP: Bool
    var configTokenRef: String
    var refreshTokenRef: String
    var configTokenExpiresAt: String?
    var botTokenRef: String?
    var canaryChannel: String?
    /// Text, as the inventory writes it (SlackFleet never stores text as a number).
    var runner: String?

    enum CodingKeys: String, CodingKey {
        case id, name, runner
        case apiURL = "api_url"
        case allowInsecureHTTP = "allow_insecure_http"
        case configTokenRef = "config_token_ref"
        case refreshTokenRef = "refresh_token_ref"
        case configTokenExpiresAt = "config_token_expires_at"
        case botTokenRef = "bot_token_ref"
        case canaryChannel = "canary_channel"
    }

    /// Read column by column: GRDB's Decodable path costs several times more, on every run.
    init(row: Row) throws {
        id = try row.decode(forColumn: "id")
        name = try row.decode(forColumn: "name")
        apiURL = try row.decode(forColumn: "api_url")
        allowInsecureHTTP = try row.decode(forColumn: "allow_insecure_http")
        configTokenRef = try row.decode(forColumn: "config_token_ref")
        refreshTokenRef = try row.decode(forColumn: "refresh_token_ref")
        configTokenExpiresAt = try row.decode(forColumn: "config_token_expires_at")
        botTokenRef = try row.decode(forColumn: "bot_token_ref")
        canaryChannel = try row.decode(forColumn: "canary_channel")
        runner = try row.decode(forColumn: "runner")
    }

    init(_ workspace: Workspace) {
        id = workspace.id
        name = workspace.name
        apiURL = workspace.apiURL
        allowInsecureHTTP = workspace.allowInsecureHTTP
        configTokenRef = workspace.configToken.description
        refreshTokenRef = workspace.refreshToken.description
        configTokenExpiresAt = workspace.configTokenExpiresAt
        botTokenRef = workspace.botToken?.description
        canaryChannel = workspace.canaryChannel
        runner = workspace.runner.map(String.init)
    }

    func workspace() throws -> Workspace {
        Workspace(id: id, name: name, apiURL: apiURL, allowInsecureHTTP: allowInsecureHTTP,
                  configToken: try StoredReference.parse(configTokenRef, "workspace \(id)", "config_token"),
                  refreshToken: try StoredReference.parse(refreshTokenRef, "workspace \(id)", "refresh_token"),
                  configTokenExpiresAt: configTokenExpiresAt,
                  botToken: try botTokenRef.map { try StoredReference.parse($0, "workspace \(id)", "bot_token") },
                  canaryChannel: canaryChannel, runner: runner.flatMap { Int($0) })
    }
}

/// The `instance` table's row; lists and maps are JSON text.
struct InstanceRecord: Encodable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "instance"

    var name: String
    var baseURL: String
    var hostURLs: String
    var ipAllowlist: String
    var workspaceID: String
    var appGroup: String
    var apiKeyRef: String
    var canaryEntity: String?
    var canaryProject: String?
    var watchEntities: String
    var labels: String
    var registrar: String
    var allowInsecureHTTP: Bool
    var enabled: Bool
    var retirement: String?

    enum CodingKeys: String, CodingKey {
        case name
        case baseURL = "base_url"
        case hostURLs = "host_urls"
        case ipAllowlist = "ip_allowlist"
        case workspaceID = "workspace_id"
        case appGroup = "app_group"
        case apiKeyRef = "api_key_ref"
        case canaryEntity = "canary_entity"
        case canaryProject = "canary_project"
        case watchEntities = "watch_entities"
        case labels, registrar
        case allowInsecureHTTP = "allow_insecure_http"
        case enabled, retirement
    }

    /// Read column by column (see WorkspaceRecord): every run reads every instance.
    init(row: Row) throws {
        name = try row.decode(forColumn: "name")
        baseURL = try row.decode(forColumn: "base_url")
        hostURLs = try row.decode(forColumn: "host_urls")
        ipAllowlist = try row.decode(forColumn: "ip_allowlist")
        workspaceID = try row.decode(forColumn: "workspace_id")
        appGroup = try row.decode(forColumn: "app_group")
        apiKeyRef = try row.decode(forColumn: "api_key_ref")
        canaryEntity = try row.decode(forColumn: "canary_entity")
        canaryProject = try row.decode(forColumn: "canary_project")
        watchEntities = try row.decode(forColumn: "watch_entities")
        labels = try row.decode(forColumn: "labels")
        registrar = try row.decode(forColumn: "registrar")
        allowInsecureHTTP = try row.decode(forColumn: "allow_insecure_http")
        enabled = try row.decode(forColumn: "enabled")
        retirement = try row.decode(forColumn: "retirement")
    }

    init(_ instance: Instance) throws {
        name = instance.name
        baseURL = instance.baseURL
        hostURLs = JSON.list(instance.hostURLs.map(JSON.string)).canonicalJSON
        ipAllowlist = JSON.list(instance.ipAllowlist.map(JSON.string)).canonicalJSON
        workspaceID = instance.workspaceID
        appGroup = instance.appGroup
        apiKeyRef = instance.apiKey.description
        canaryEntity = instance.canary?.entity
        canaryProject = instance.canary?.project
        watchEntities = JSON.list(instance.watchEntities.map(JSON.string)).canonicalJSON
        labels = JSON.object(instance.labels.mapValues(JSON.string)).canonicalJSON
        registrar = try StoredJSON.encode(RegistrarSettings(instance.registrar))
        allowInsecureHTTP = instance.allowInsecureHTTP
        enabled = instance.enabled
        retirement = instance.retirement?.rawValue
    }

    func instance() throws -> Instance {
        let row = "instance \(name)"
        var canary: Canary?
        if let canaryEntity, let canaryProject { canary = Canary(entity: canaryEntity, project: canaryProject) }
        return Instance(
            name: name, baseURL: baseURL,
            hostURLs: try StoredJSON.strings(hostURLs, row, "host_urls"),
            ipAllowlist: try StoredJSON.strings(ipAllowlist, row, "ip_allowlist"),
            workspaceID: workspaceID, appGroup: appGroup,
            apiKey: try StoredReference.parse(apiKeyRef, row, "api_key"),
            canary: canary,
            watchEntities: try StoredJSON.strings(watchEntities, row, "watch_entities"),
            labels: try StoredJSON.stringMap(labels, row, "labels"),
            registrar: try RegistrarSettings(stored: registrar, row).registrar(row),
            allowInsecureHTTP: allowInsecureHTTP, enabled: enabled, retirement: retirement.flatMap(Retirement.init(rawValue:)))
    }
}

/// A registrar as stored: the inventory's own field names.
struct RegistrarSettings: Encodable {
    var kind: String
    var apiURL: String?
    var token: String?
    var namespace: String?
    var resource: String?
    var deployment: String?
    var workload: String?
    var caFile: String?
    var command: [String]?
    var timeoutSeconds: Int?

    enum CodingKeys: String, CodingKey {
        case kind
        case apiURL = "api_url"
        case token, namespace, resource, deployment, workload
        case caFile = "ca_file"
        case command
        case timeoutSeconds = "timeout_seconds"
    }

    init(_ registrar: Registrar) {
        kind = registrar.kind
        switch registrar {
        case .operatorV2(let target), .operatorV1(let target):
            apiURL = target.apiURL
            token = target.token.description
            namespace = target.namespace
            resource = target.resource
            deployment = target.deployment
            workload = target.workload?.rawValue
            caFile = target.caFile
        case .exec(let hook):
            command = hook.command
            timeoutSeconds = hook.timeoutSeconds
        }
    }

    /// The stored column, read member by member with JSONParser (JSONDecoder was a tenth of a
    /// converged run's CPU time, and a dictionary of the members half of reading an instance), as
    /// strictly as JSONDecoder read it: each field has its type or is absent (or null); a
    /// repeated field counts as its last value, and unknown fields are ignored.
    init(stored text: String, _ row: String) throws {
        let invalid = FleetError.config("the stored registrar of \(row) is not valid: import the inventory again")
        var kind, apiURL, token, namespace, resource, deployment, workload, caFile: String?
        var command: [String]?, timeoutSeconds: Int?
        do {
            try JSONParser.forEachMember(of: Array(text.utf8)) { key, value in
                func string() throws -> String? {
                    switch value {
                    case .null: return nil
                    case .string(let text): return text
                    default: throw invalid
                    }
                }
                switch CodingKeys(rawValue: key) {
                case .kind?: kind = try string()
                case .apiURL?: apiURL = try string()
                case .token?: token = try string()
                case .namespace?: namespace = try string()
                case .resource?: resource = try string()
                case .deployment?: deployment = try string()
                case .workload?: workload = try string()
                case .caFile?: caFile = try string()
                case .command?:
                    switch value {
                    case .null: command = nil
                    case .list(let items):
                        command = try items.map { item in
                            guard case .string(let text) = item else { throw invalid }
                            return text
                        }
                    default: throw invalid
                    }
                case .timeoutSeconds?:
                    switch value {
                    case .null: timeoutSeconds = nil
                    case .int(let seconds): timeoutSeconds = seconds
                    default: throw invalid
                    }
                case nil: break
                }
            }
        } catch {
            throw invalid
        }
        guard let kind else { throw invalid }
        self.kind = kind
        self.apiURL = apiURL
        self.token = token
        self.namespace = namespace
        self.resource = resource
        self.deployment = deployment
        self.workload = workload
        self.caFile = caFile
        self.command = command
        self.timeoutSeconds = timeoutSeconds
    }

    func registrar(_ row: String) throws -> Registrar {
        switch kind {
        case "operator-v2", "operator-v1":
            guard let apiURL, let token, let namespace, let resource else {
                throw FleetError.config("the stored registrar of \(row) is incomplete: import the inventory again")
            }
            let target = KubernetesTarget(apiURL: apiURL, token: try StoredReference.parse(token, row, "registrar/token"),
                                          namespace: namespace, resource: resource, deployment: deployment,
                                          workload: workload.flatMap(WorkloadKind.init(rawValue:)), caFile: caFile)
            return kind == "operator-v2" ? .operatorV2(target) : .operatorV1(target)
        case "exec":
            guard let command, !command.isEmpty else {
                throw FleetError.config("the stored registrar of \(row) has no command: import the inventory again")
            }
            return .exec(ExecHook(command: command, timeoutSeconds: timeoutSeconds ?? ExecHook.defaultTimeoutSeconds))
        default:
            throw FleetError.config("the stored registrar of \(row) has the unknown kind \(kind): import the inventory again")
        }
    }
}

/// JSON columns, encoded deterministically so unchanged rows compare equal. Plain lists and
/// maps use the audit log's canonical JSON writer, which is much faster than JSONEncoder.
enum StoredJSON {
    static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// A JSON array of strings. JSONParser is several times faster than JSONDecoder for these
    /// plain shapes, which every stored instance has.
    static func strings(_ text: String, _ row: String, _ field: String) throws -> [String] {
        var strings: [String] = []
        do {
            try JSONParser.forEachItem(of: Array(text.utf8)) { item in
                guard case .string(let string) = item else { throw invalid(row, field) }
                strings.append(string)
            }
        } catch {
            throw invalid(row, field)
        }
        return strings
    }

    /// A JSON object of strings (a repeated key keeps its last value).
    static func stringMap(_ text: String, _ row: String, _ field: String) throws -> [String: String] {
        var strings: [String: String] = [:]
        do {
            try JSONParser.forEachMember(of: Array(text.utf8)) { key, value in
                guard case .string(let string) = value else { throw invalid(row, field) }
                strings[key] = string
            }
        } catch {
            throw invalid(row, field)
        }
        return strings
    }

    private static func invalid(_ row: String, _ field: String) -> FleetError {
        FleetError.config("the stored \(field) of \(row) is not valid: import the inventory again")
    }
}

/// References read back from the database.
enum StoredReference {
    static func parse(_ text: String, _ row: String, _ field: String) throws -> SecretReference {
        switch SecretReference.parse(text) {
        case .success(let reference): return reference
        case .failure: throw FleetError.config("the stored \(field) reference of \(row) is not valid: import the inventory again")
        }
    }
}
