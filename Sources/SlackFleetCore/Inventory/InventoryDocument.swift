import Foundation

/// The file form of an inventory: ordered fields with the names operators write, used to
/// export it (YAML or JSON) and to describe changes in the audit log.
public enum InventoryDocument {
    /// A value of the file form. Every text is written quoted, so IDs stay text.
    public indirect enum Value: Equatable, Sendable {
        case text(String)
        case bool(Bool)
        case list([Value])
        case fields([(String, Value)])

        public static func == (lhs: Value, rhs: Value) -> Bool {
            switch (lhs, rhs) {
            case let (.text(a), .text(b)): a == b
            case let (.bool(a), .bool(b)): a == b
            case let (.list(a), .list(b)): a == b
            case let (.fields(a), .fields(b)): a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
            default: false
            }
        }
    }

    /// The fields of a workspace, in file order; absent optional fields are left out.
    public static func fields(of workspace: Workspace) -> [(String, Value)] {
        var fields: [(String, Value)] = [("id", .text(workspace.id)), ("name", .text(workspace.name))]
        fields.append(("api_url", .text(workspace.apiURL)))
        if workspace.allowInsecureHTTP { fields.append(("allow_insecure_http", .bool(true))) }
        fields.append(("config_token", .text(workspace.configToken.description)))
        fields.append(("refresh_token", .text(workspace.refreshToken.description)))
        if let expires = workspace.configTokenExpiresAt { fields.append(("config_token_expires_at", .text(expires))) }
        if let bot = workspace.botToken { fields.append(("bot_token", .text(bot.description))) }
        if let channel = workspace.canaryChannel { fields.append(("canary_channel", .text(channel))) }
        if let runner = workspace.runner { fields.append(("runner", .text(String(runner)))) }
        return fields
    }

    /// The fields of an instance, in file order; defaults are left out.
    public static func fields(of instance: Instance) -> [(String, Value)] {
        var fields: [(String, Value)] = [("name", .text(instance.name)), ("base_url", .text(instance.baseURL))]
        fields.append(("host_urls", .list(instance.hostURLs.map(Value.text))))
        if !instance.ipAllowlist.isEmpty { fields.append(("ip_allowlist", .list(instance.ipAllowlist.map(Value.text)))) }
        fields.append(("workspace", .text(instance.workspaceID)))
        if instance.appGroup != instance.name { fields.append(("app_group", .text(instance.appGroup))) }
        fields.append(("api_key", .text(instance.apiKey.description)))
        if let canary = instance.canary {
            fields.append(("canary", .fields([("entity", .text(canary.entity)), ("project", .text(canary.project))])))
        }
        if !instance.watchEntities.isEmpty { fields.append(("watch_entities", .list(instance.watchEntities.map(Value.text)))) }
        if !instance.labels.isEmpty {
            fields.append(("labels", .fields(instance.labels.sorted { $0.key < $1.key }.map { ($0.key, .text($0.value)) })))
        }
        fields.append(("registrar", .fields(InventoryDocument.fields(of: instance.registrar))))
        if instance.allowInsecureHTTP { fields.append(("allow_insecure_http", .bool(true))) }
        if !instance.enabled { fields.append(("enabled", .bool(false))) }
        if instance.retirement == .marked { fields.append(("retire", .bool(true))) }
        return fields
    }

    /// The fields of a registrar, in file order.
    public static func fields(of registrar: Registrar) -> [(String, Value)] {
        var fields: [(String, Value)] = [("kind", .text(registrar.kind))]
        switch registrar {
        case .operatorV2(let target), .operatorV1(let target):
            fields.append(("api_url", .text(target.apiURL)))
            fields.append(("token", .text(target.token.description)))
            fields.append(("namespace", .text(target.namespace)))
            fields.append(("resource", .text(target.resource)))
            if let deployment = target.deployment { fields.append(("deployment", .text(deployment))) }
            if let workload = target.workload { fields.append(("workload", .text(workload.rawValue))) }
            if let caFile = target.caFile { fields.append(("ca_file", .text(caFile))) }
        case .exec(let hook):
            fields.append(("command", .list(hook.command.map(Value.text))))
            fields.append(("timeout", .text("\(hook.timeoutSeconds)s")))
        }
        return fields
    }

    /// The whole inventory in file form.
    public static func document(_ inventory: Inventory) -> Value {
        .fields([
            ("version", .text("1")),
            ("workspaces", .list(inventory.workspaces.map { .fields(fields(of: $0)) })),
            ("instances", .list(inventory.instances.map { .fields(fields(of: $0)) })),
        ])
    }

    /// YAML that `inventory import` reads back to the same inventory.
    public static func yaml(_ inventory: Inventory) -> String {
        var out = "# SlackFleet inventory, exported \(Timestamp.now())\n"
        guard case .fields(let top) = document(inventory) else { return out }
        for (key, value) in top {
            if key == "version" {
                out += "version: 1\n"
            } else {
                emitYAML(key: key, value: value, indent: 0, into: &out)
            }
        }
        return out
    }

    /// YAML lines for one record's fields, such as an instance for `inventory show`.
    public static func yaml(fields: [(String, Value)]) -> String {
        var out = ""
        for (key, value) in fields { emitYAML(key: key, value: value, indent: 0, into: &out) }
        return out
    }

    private static func emitYAML(key: String, value: Value, indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        switch value {
        case .text, .bool:
            out += "\(pad)\(key): \(scalar(value))\n"
        case .list(let items):
            if items.isEmpty {
                out += "\(pad)\(key): []\n"
            } else if items.allSatisfy({ if case .fields = $0 { false } else { true } }) {
                out += "\(pad)\(key): [\(items.map(scalar).joined(separator: ", "))]\n"
            } else {
                out += "\(pad)\(key):\n"
                for item in items {
                    guard case .fields(let fields) = item else { continue }
                    for (index, field) in fields.enumerated() {
                        var line = ""
                        emitYAML(key: field.0, value: field.1, indent: indent + 4, into: &line)
                        if index == 0 {
                            line = pad + "  - " + line.dropFirst(indent + 4)
                        }
                        out += line
                    }
                }
            }
        case .fields(let fields):
            out += "\(pad)\(key):\n"
            for field in fields { emitYAML(key: field.0, value: field.1, indent: indent + 2, into: &out) }
        }
    }

    private static func scalar(_ value: Value) -> String {
        switch value {
        case .text(let text): JSONText.quoted(text)
        case .bool(let flag): flag ? "true" : "false"
        default: ""
        }
    }

    /// JSON that `inventory import` reads back to the same inventory.
    public static func json(_ inventory: Inventory) -> String {
        var out = ""
        emitJSON(document(inventory), indent: 0, into: &out)
        return out + "\n"
    }

    private static func emitJSON(_ value: Value, indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent + 2)
        switch value {
        case .text(let text):
            out += indent == 0 ? text : JSONText.quoted(text)
        case .bool(let flag):
            out += flag ? "true" : "false"
        case .list(let items):
            if items.isEmpty { out += "[]"; return }
            out += "[\n"
            for (index, item) in items.enumerated() {
                out += pad
                emitJSON(item, indent: indent + 2, into: &out)
                out += index == items.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "]"
        case .fields(let fields):
            out += "{\n"
            for (index, field) in fields.enumerated() {
                out += pad + JSONText.quoted(field.0) + ": "
                if field.0 == "version" { out += "1" } else { emitJSON(field.1, indent: indent + 2, into: &out) }
                out += index == fields.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "}"
        }
    }
}
