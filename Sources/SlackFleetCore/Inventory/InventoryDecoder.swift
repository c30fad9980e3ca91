import Foundation

/// Turns the tree of an inventory file into `Inventory` values, checking each field.
final class InventoryDecoder {
    let sink: ProblemSink
    /// The ids and names of every workspace record, valid or not, so an instance that names a
    /// workspace with its own errors is not reported a second time.
    private(set) var workspaceKeys: Set<String> = []

    init(sink: ProblemSink) {
        self.sink = sink
    }

    static let slugFix = "use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit"

    func decode(_ root: SourceNode) -> Inventory? {
        guard let top = Record(root, row: "file", sink: sink) else { return nil }
        if let version = top.node("version", required: true, hint: "start the file with `version: 1`") {
            if case .number(let text) = version.value, text == "1" {} else {
                sink.error(line: version.line, "file/version", "is not 1", "this SlackFleet reads inventory version 1")
            }
        }
        let workspaceNodes = top.list("workspaces", required: true, hint: "add a workspaces: list with at least one Slack workspace") ?? []
        let instanceNodes = top.list("instances") ?? []
        top.rejectUnknownFields()
        if instanceNodes.count > InventoryReader.maximumInstances {
            sink.error(line: top.lineOf("instances"), "file/instances", "has \(instanceNodes.count) instances", "one inventory holds at most \(InventoryReader.maximumInstances): split the fleet across databases")
            return nil
        }
        let workspaces = workspaceNodes.enumerated().compactMap { decodeWorkspace($1, index: $0) }
        return Inventory(workspaces: workspaces, instances: decodeInstances(instanceNodes))
    }

    /// Decodes instances in chunks on every core; each chunk has its own problem list, merged
    /// back in file order, so the messages are exactly those of a serial pass.
    private func decodeInstances(_ nodes: [SourceNode]) -> [Instance] {
        let chunkSize = 500
        let chunks = (nodes.count + chunkSize - 1) / chunkSize
        let results = ChunkResults(count: chunks)
        let file = sink.file
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let sink = ProblemSink(file: file)
            let decoder = InventoryDecoder(sink: sink)
            let range = (chunk * chunkSize)..<min(nodes.count, (chunk + 1) * chunkSize)
            let instances = range.compactMap { decoder.decodeInstance(nodes[$0], index: $0) }
            results.store(chunk, instances: instances, problems: sink.problems)
        }
        var instances: [Instance] = []
        instances.reserveCapacity(nodes.count)
        for chunk in 0..<chunks {
            let (decoded, problems) = results.result(chunk)
            instances.append(contentsOf: decoded)
            sink.append(problems)
        }
        return instances
    }

    private final class ChunkResults: @unchecked Sendable {
        private let lock = NSLock()
        private var slots: [([Instance], [InventoryProblem])]

        init(count: Int) {
            slots = Array(repeating: ([], []), count: count)
        }

        func store(_ chunk: Int, instances: [Instance], problems: [InventoryProblem]) {
            lock.lock()
            slots[chunk] = (instances, problems)
            lock.unlock()
        }

        func result(_ chunk: Int) -> ([Instance], [InventoryProblem]) {
            lock.lock()
            defer { lock.unlock() }
            return slots[chunk]
        }
    }

    private func slug(_ record: Record, _ key: String, required: Bool) -> String? {
        guard let text = record.string(key, required: required) else { return nil }
        guard TextRules.isSlug(text) else {
            sink.error(line: record.lineOf(key), record.location(key), "\"\(text)\" is not a valid name", InventoryDecoder.slugFix)
            return nil
        }
        return text
    }

    private func url(_ record: Record, _ key: String, role: EndpointRules.URLRole, allowInsecureHTTP: Bool, required: Bool) -> String? {
        guard let text = record.string(key, required: required, maximumLength: EndpointRules.maximumRedirectURLLength * 2) else { return nil }
        switch EndpointRules.checkURL(text, role: role, allowInsecureHTTP: allowInsecureHTTP) {
        case .success(let normalised): return normalised
        case .failure(let problem):
            sink.error(line: record.lineOf(key), record.location(key), problem.problem, problem.fix)
            return nil
        }
    }

    private func decodeWorkspace(_ node: SourceNode, index: Int) -> Workspace? {
        guard let record = Record(node, row: "workspaces[\(index)]", sink: sink) else { return nil }
        let id = record.string("id", required: true, hint: "add the Slack team id, such as id: T0123ABCD")
        if case .map(let pairs) = node.value {
            for pair in pairs where pair.key == "id" || pair.key == "name" {
                if case .string(let text) = pair.value.value { workspaceKeys.insert(text) }
            }
        }
        if let id {
            record.row = "workspace \(id)"
            if !TextRules.isSlackID(id, prefixes: ["T", "E"]) {
                sink.error(line: record.lineOf("id"), record.location("id"), "\"\(id)\" is not a Slack team id", "copy it from Slack: T followed by capital letters and digits, such as T0123ABCD")
            }
        }
        let name = slug(record, "name", required: true)
        let allowInsecure = record.bool("allow_insecure_http", default: false)
        let apiURL = record.node("api_url") == nil
            ? Workspace.defaultAPIURL
            : url(record, "api_url", role: .endpoint, allowInsecureHTTP: allowInsecure, required: false)
        let configToken = record.reference("config_token", required: true)
        let refreshToken = record.reference("refresh_token", required: true)
        var expiresAt: String?
        if let text = record.string("config_token_expires_at") {
            if let date = Timestamp.parse(text) {
                expiresAt = Timestamp.format(date)
            } else {
                sink.error(line: record.lineOf("config_token_expires_at"), record.location("config_token_expires_at"), "\"\(text)\" is not a time", "write an RFC 3339 time such as 2026-11-29T15:00:00Z")
            }
        }
        let botToken = record.reference("bot_token")
        let canaryChannel = record.string("canary_channel")
        if let canaryChannel, !TextRules.isSlackID(canaryChannel, prefixes: ["C", "G"]) {
            sink.error(line: record.lineOf("canary_channel"), record.location("canary_channel"), "\"\(canaryChannel)\" is not a Slack channel id", "copy the channel id (C followed by capital letters and digits), not its #name")
        }
        if (botToken == nil) != (canaryChannel == nil), record.node("bot_token") != nil || record.node("canary_channel") != nil {
            let missing = botToken == nil ? "bot_token" : "canary_channel"
            sink.error(line: record.line, record.location(missing), "is missing", "verify-delivery needs both bot_token and canary_channel; add \(missing) or remove the other")
        }
        var runner: Int?
        if let text = record.string("runner") {
            if text.count <= 4, text.allSatisfy(\.isASCII), let value = Int(text), value >= 1 {
                runner = value
            } else {
                sink.error(line: record.lineOf("runner"), record.location("runner"), "\"\(text)\" is not a shard number", "write the shard this workspace is pinned to, 1 to the number of shards (such as runner: 2), or leave it out")
            }
        }
        record.rejectUnknownFields()
        guard let id, let name, let apiURL, let configToken, let refreshToken else { return nil }
        return Workspace(id: id, name: name, apiURL: apiURL, allowInsecureHTTP: allowInsecure, configToken: configToken,
                         refreshToken: refreshToken, configTokenExpiresAt: expiresAt, botToken: botToken, canaryChannel: canaryChannel, runner: runner)
    }

    private func decodeInstance(_ node: SourceNode, index: Int) -> Instance? {
        guard let record = Record(node, row: "instances[\(index)]", sink: sink) else { return nil }
        let name = slug(record, "name", required: true)
        if let name { record.row = "instance \(name)" }
        let allowInsecure = record.bool("allow_insecure_http", default: false)
        let baseURL = url(record, "base_url", role: .endpoint, allowInsecureHTTP: allowInsecure, required: true)
        let hostURLs = decodeHostURLs(record, allowInsecure: allowInsecure)
        let ipAllowlist = decodeIPAllowlist(record)
        let workspace = record.string("workspace", required: true, hint: "add workspace: with the id or name of one of the workspaces")
        let appGroup = slug(record, "app_group", required: false)
        let apiKey = record.reference("api_key", required: true)
        let canary = decodeCanary(record)
        let watchEntities = decodeWatchEntities(record)
        let labels = decodeLabels(record)
        let registrar = decodeRegistrar(record, allowInsecure: allowInsecure)
        let enabled = record.bool("enabled", default: true)
        let retire = record.bool("retire", default: false)
        record.rejectUnknownFields()
        guard let name, let baseURL, let hostURLs, let ipAllowlist, let workspace, let apiKey, let watchEntities, let labels, let registrar else { return nil }
        return Instance(name: name, baseURL: baseURL, hostURLs: hostURLs, ipAllowlist: ipAllowlist, workspaceID: workspace,
                        appGroup: appGroup, apiKey: apiKey, canary: canary, watchEntities: watchEntities, labels: labels, registrar: registrar,
                        allowInsecureHTTP: allowInsecure, enabled: enabled, retirement: retire ? .marked : nil)
    }

    private func decodeHostURLs(_ record: Record, allowInsecure: Bool) -> [String]? {
        guard let items = record.list("host_urls", required: true, hint: "add host_urls: the URLs people open the instance at (they become the Slack app's redirect URLs)") else { return nil }
        if items.isEmpty {
            sink.error(line: record.lineOf("host_urls"), record.location("host_urls"), "is empty", "list at least one URL people open the instance at")
            return nil
        }
        if items.count > InventoryReader.maximumRedirectURLsPerApp {
            sink.error(line: record.lineOf("host_urls"), record.location("host_urls"), "has \(items.count) URLs", "a Slack app takes at most \(InventoryReader.maximumRedirectURLsPerApp)")
            return nil
        }
        var result: [String] = []
        var seen: [String: Int] = [:]
        var valid = true
        for (index, item) in items.enumerated() {
            let location = record.location("host_urls[\(index)]")
            guard let text = Record.text(item, location: location, sink: sink, maximumLength: EndpointRules.maximumRedirectURLLength * 2) else { valid = false; continue }
            switch EndpointRules.checkURL(text, role: .hostURL, allowInsecureHTTP: allowInsecure) {
            case .success(let normalised):
                if let first = seen[normalised] {
                    sink.error(line: item.line, location, "is the same URL as host_urls[\(first)] once normalised (\(normalised))", "remove one of them")
                    valid = false
                } else {
                    seen[normalised] = index
                    result.append(normalised)
                }
            case .failure(let problem):
                sink.error(line: item.line, location, problem.problem, problem.fix)
                valid = false
            }
        }
        return valid ? result : nil
    }

    private func decodeIPAllowlist(_ record: Record) -> [String]? {
        guard let items = record.list("ip_allowlist") else { return record.node("ip_allowlist") == nil ? [] : nil }
        var result: [String] = []
        var valid = true
        for (index, item) in items.enumerated() {
            let location = record.location("ip_allowlist[\(index)]")
            guard let text = Record.text(item, location: location, sink: sink) else { valid = false; continue }
            switch EndpointRules.checkIPRange(text) {
            case .success(let range):
                if let first = result.firstIndex(of: range) {
                    sink.error(line: item.line, location, "repeats ip_allowlist[\(first)] (\(range))", "remove one of them")
                    valid = false
                } else {
                    result.append(range)
                }
            case .failure(let problem):
                sink.error(line: item.line, location, problem.problem, problem.fix)
                valid = false
            }
        }
        return valid ? result : nil
    }

    /// W&B entity names (teams or users) whose Slack integrations a rotation must not break.
    private func decodeWatchEntities(_ record: Record) -> [String]? {
        guard let items = record.list("watch_entities") else { return record.node("watch_entities") == nil ? [] : nil }
        if items.count > InventoryReader.maximumWatchedEntities {
            sink.error(line: record.lineOf("watch_entities"), record.location("watch_entities"), "names \(items.count) entities",
                       "watch at most \(InventoryReader.maximumWatchedEntities) per instance; a W&B server that lets an admin list every entity is watched whole anyway")
            return nil
        }
        var result: [String] = []
        var valid = true
        for (index, item) in items.enumerated() {
            let location = record.location("watch_entities[\(index)]")
            guard let text = Record.text(item, location: location, sink: sink, maximumLength: 64) else { valid = false; continue }
            if !TextRules.isEntityName(text) {
                sink.error(line: item.line, location, "\"\(text)\" is not a W&B entity name", "use the team or user name as W&B shows it: letters, digits, '-', '_' and '.'")
                valid = false
            } else if let first = result.firstIndex(of: text) {
                sink.error(line: item.line, location, "repeats watch_entities[\(first)] (\(text))", "remove one of them")
                valid = false
            } else {
                result.append(text)
            }
        }
        return valid ? result : nil
    }

    private func decodeCanary(_ record: Record) -> Canary? {
        guard let node = record.node("canary"), let canary = Record(node, row: record.location("canary"), sink: sink) else { return nil }
        let entity = canary.string("entity", required: true, hint: "add the W&B entity test alerts are posted under")
        let project = canary.string("project", required: true, hint: "add the W&B project test alerts are posted in")
        canary.rejectUnknownFields()
        guard let entity, let project else { return nil }
        return Canary(entity: entity, project: project)
    }

    private func decodeLabels(_ record: Record) -> [String: String]? {
        guard let node = record.node("labels") else { return [:] }
        guard case .map(let pairs) = node.value else {
            sink.error(line: node.line, record.location("labels"), "is \(node.kindName)", "write labels as a mapping, such as {env: prod, region: us-east}")
            return nil
        }
        var labels: [String: String] = [:]
        var valid = true
        for pair in pairs {
            let location = record.location("labels/\(pair.key)")
            if !TextRules.isLabelKey(pair.key) {
                sink.error(line: pair.keyLine, location, "is not a valid label key", "use lowercase letters, digits, '.', '_', '/' and '-', at most 63 characters")
                valid = false
                continue
            }
            if labels[pair.key] != nil {
                sink.error(line: pair.keyLine, location, "appears twice", "keep one")
                valid = false
                continue
            }
            guard let value = Record.text(pair.value, location: location, sink: sink, maximumLength: 63) else { valid = false; continue }
            if !TextRules.isLabelValue(value) {
                sink.error(line: pair.value.line, location, "\"\(value)\" is not a valid label value", "use letters, digits, '.', '_' and '-'")
                valid = false
                continue
            }
            labels[pair.key] = value
        }
        return valid ? labels : nil
    }

    private func decodeRegistrar(_ record: Record, allowInsecure: Bool) -> Registrar? {
        guard let node = record.node("registrar", required: true, hint: "add registrar: with kind operator-v2, operator-v1 or exec"),
              let registrar = Record(node, row: record.location("registrar"), sink: sink) else { return nil }
        guard let kind = registrar.string("kind", required: true, hint: "add kind: operator-v2, operator-v1 or exec") else { return nil }
        switch kind {
        case "operator-v2", "operator-v1":
            let apiURL = url(registrar, "api_url", role: .endpoint, allowInsecureHTTP: allowInsecure, required: true)
            let token = registrar.reference("token", required: true)
            let namespace = kubernetesName(registrar, "namespace", required: true)
            let resource = kubernetesName(registrar, "resource", required: true)
            let deployment = kubernetesName(registrar, "deployment", required: kind == "operator-v2")
            let caFile = registrar.string("ca_file")
            var workload: WorkloadKind?
            var workloadValid = true
            if let text = registrar.string("workload") {
                workload = WorkloadKind(rawValue: text)
                if workload == nil {
                    workloadValid = false
                    sink.error(line: registrar.lineOf("workload"), registrar.location("workload"), "is \"\(text)\", not deployment or rollout",
                               "write deployment (an apps/v1 Deployment) or rollout (an Argo Rollout), or leave it out to find out which")
                }
            }
            guard let apiURL, let token, let namespace, let resource, kind == "operator-v1" || deployment != nil, workloadValid else {
                registrar.rejectUnknownFields()
                return nil
            }
            registrar.rejectUnknownFields()
            let target = KubernetesTarget(apiURL: apiURL, token: token, namespace: namespace, resource: resource, deployment: deployment,
                                          workload: workload, caFile: caFile)
            return kind == "operator-v2" ? .operatorV2(target) : .operatorV1(target)
        case "exec":
            defer { registrar.rejectUnknownFields() }
            guard let items = registrar.list("command", required: true, hint: "add command: [program, arg...]; it receives the credentials as JSON on stdin") else { return nil }
            let command = items.enumerated().compactMap { Record.text($1, location: registrar.location("command[\($0)]"), sink: sink) }
            guard !items.isEmpty else {
                sink.error(line: registrar.lineOf("command"), registrar.location("command"), "is empty", "give the program to run and its arguments")
                return nil
            }
            guard command.count == items.count else { return nil }
            var timeout = ExecHook.defaultTimeoutSeconds
            if let node = registrar.node("timeout") {
                guard let seconds = Duration.seconds(node) , (1...3600).contains(seconds) else {
                    sink.error(line: node.line, registrar.location("timeout"), "is not a duration between 1s and 1h", "write it like 120s, 5m or 1h")
                    return nil
                }
                timeout = seconds
            }
            return .exec(ExecHook(command: command, timeoutSeconds: timeout))
        default:
            sink.error(line: registrar.lineOf("kind"), registrar.location("kind"), "\"\(kind)\" is not a registrar kind", "use operator-v2, operator-v1 or exec")
            return nil
        }
    }

    private func kubernetesName(_ record: Record, _ key: String, required: Bool) -> String? {
        guard let text = record.string(key, required: required) else { return nil }
        guard TextRules.isKubernetesName(text) else {
            sink.error(line: record.lineOf(key), record.location(key), "\"\(text)\" is not a Kubernetes object name", "use lowercase letters, digits, '-' and '.'")
            return nil
        }
        return text
    }

    /// Durations as written in the inventory: `120s`, `5m`, `1h`, or a number of seconds.
    enum Duration {
        static func seconds(_ node: SourceNode) -> Int? {
            let text: String
            switch node.value {
            case .string(let value): text = value
            case .number(let value): text = value
            default: return nil
            }
            let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600]
            if let unit = text.last, let multiplier = units[unit], let value = Int(text.dropLast()) { return value * multiplier }
            return Int(text)
        }
    }
}
