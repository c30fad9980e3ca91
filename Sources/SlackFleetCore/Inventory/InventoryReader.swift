import Foundation

/// Reads an inventory file into an `Inventory`, collecting every problem rather than stopping
/// at the first, so one run of `inventory import` shows the operator everything to fix.
public struct InventoryReader {
    /// The name the file is reported under.
    public let file: String

    /// Most instances one inventory may hold.
    public static let maximumInstances = 100_000
    /// Most characters in any one text field other than URLs.
    static let maximumFieldLength = 1024
    /// Most redirect URLs one Slack app may have.
    public static let maximumRedirectURLsPerApp = 1000
    /// Most IP ranges in one app's allow-list (Slack's schema); Slack's settings page says 10.
    public static let maximumIPRangesPerApp = 50
    /// Entities an instance may list in `watch_entities`.
    public static let maximumWatchedEntities = 200
    static let ipRangesWarningThreshold = 10

    public init(file: String) {
        self.file = file
    }

    /// Parses and validates `data`; returns the inventory and its warnings, or throws
    /// `InventoryRejected` with every error found.
    public func read(_ data: Data, format: String? = nil) throws -> (inventory: Inventory, warnings: [InventoryProblem]) {
        let sink = ProblemSink(file: file)
        let sourceFormat = format.flatMap(SourceFormat.init(rawValue:)) ?? SourceFormat.guess(path: file)
        let root: SourceNode
        do {
            root = try SourceNode.parse(data, format: sourceFormat)
        } catch let error as SourceSyntaxError {
            sink.error(line: error.line, "file", error.problem, error.fix)
            throw InventoryRejected(problems: sink.problems)
        }
        let decoder = InventoryDecoder(sink: sink)
        var inventory = decoder.decode(root)
        if var decoded = inventory {
            // An instance may name its workspace by id or by name; keep ids from here on.
            let idsByName = Dictionary(decoded.workspaces.map { ($0.name, $0.id) }, uniquingKeysWith: { first, _ in first })
            let ids = Set(decoded.workspaces.map(\.id))
            for index in decoded.instances.indices where !ids.contains(decoded.instances[index].workspaceID) {
                if let id = idsByName[decoded.instances[index].workspaceID] { decoded.instances[index].workspaceID = id }
            }
            InventoryChecks(sink: sink, attemptedWorkspaces: decoder.workspaceKeys).check(decoded)
            inventory = decoded
        }
        guard let inventory, !sink.problems.contains(where: { $0.severity == .error }) else {
            throw InventoryRejected(problems: sink.problems)
        }
        return (inventory, sink.problems)
    }
}

/// Collects problems in file order.
final class ProblemSink {
    let file: String
    private(set) var problems: [InventoryProblem] = []

    init(file: String) {
        self.file = file
    }

    func error(line: Int?, _ location: String, _ problem: String, _ fix: String) {
        problems.append(InventoryProblem(file: file, line: line, location: location, problem: problem, fix: fix, severity: .error))
    }

    func append(_ more: [InventoryProblem]) {
        problems.append(contentsOf: more)
    }

    func warning(line: Int?, _ location: String, _ problem: String, _ fix: String) {
        problems.append(InventoryProblem(file: file, line: line, location: location, problem: problem, fix: fix, severity: .warning))
    }
}

/// A mapping being read: hands out its fields by name, then reports the ones nobody asked for.
final class Record {
    let sink: ProblemSink
    /// How problems name this record: `instance prod-us-east`, `workspaces[2]`.
    var row: String
    let line: Int?
    private var fields: [String: (line: Int?, node: SourceNode)] = [:]
    private var order: [String] = []
    private var known: Set<String> = []

    init?(_ node: SourceNode, row: String, sink: ProblemSink) {
        self.sink = sink
        self.row = row
        self.line = node.line
        guard case .map(let pairs) = node.value else {
            sink.error(line: node.line, row, "is \(node.kindName)", "write it as a mapping of field: value")
            return nil
        }
        for pair in pairs {
            if let first = fields[pair.key] {
                sink.error(line: pair.keyLine, "\(row)/\(pair.key)", "appears twice (first on line \(first.line.map(String.init) ?? "?"))", "keep one")
                continue
            }
            fields[pair.key] = (pair.keyLine ?? pair.value.line, pair.value)
            order.append(pair.key)
        }
    }

    func location(_ key: String) -> String { "\(row)/\(key)" }

    func lineOf(_ key: String) -> Int? { fields[key]?.line ?? line }

    /// The node of `key`, marking it known; nil (and a problem when required) when absent or null.
    func node(_ key: String, required: Bool = false, hint: String = "") -> SourceNode? {
        known.insert(key)
        guard let field = fields[key], !(field.node.value.isNull) else {
            if required {
                sink.error(line: line, location(key), "is missing", hint.isEmpty ? "add \(key)" : hint)
            }
            return nil
        }
        return field.node
    }

    func string(_ key: String, required: Bool = false, hint: String = "", maximumLength: Int = InventoryReader.maximumFieldLength) -> String? {
        guard let node = node(key, required: required, hint: hint) else { return nil }
        return Record.text(node, location: location(key), sink: sink, maximumLength: maximumLength)
    }

    /// A text value; numbers and booleans are refused rather than converted, so a Slack ID can
    /// never be a rounded float.
    static func text(_ node: SourceNode, location: String, sink: ProblemSink, maximumLength: Int = InventoryReader.maximumFieldLength) -> String? {
        switch node.value {
        case .string(let text):
            if text.isEmpty {
                sink.error(line: node.line, location, "is empty", "write a value or remove the field")
                return nil
            }
            if text.count > maximumLength {
                sink.error(line: node.line, location, "is \(text.count) characters long", "at most \(maximumLength) are allowed")
                return nil
            }
            if TextRules.containsControlCharacter(text) {
                sink.error(line: node.line, location, "contains a control character (line break, tab, NUL...)", "write the value on one line")
                return nil
            }
            return text
        case .number(let text):
            sink.error(line: node.line, location, "is the number \(text), not text", "quote it (\"\(text)\") so it stays exactly as written")
            return nil
        default:
            sink.error(line: node.line, location, "is \(node.kindName)", "write a text value")
            return nil
        }
    }

    func bool(_ key: String, default defaultValue: Bool) -> Bool {
        guard let node = node(key) else { return defaultValue }
        if case .bool(let value) = node.value { return value }
        sink.error(line: node.line, location(key), "is \(node.kindName)", "write true or false")
        return defaultValue
    }

    func list(_ key: String, required: Bool = false, hint: String = "") -> [SourceNode]? {
        guard let node = node(key, required: required, hint: hint) else { return nil }
        if case .list(let items) = node.value { return items }
        sink.error(line: node.line, location(key), "is \(node.kindName)", "write a list ([a, b] or one '- item' per line)")
        return nil
    }

    func reference(_ key: String, required: Bool = false) -> SecretReference? {
        guard let text = string(key, required: required, hint: "add \(key): secret:NAME (or env:VAR, file:PATH, exec:COMMAND)") else { return nil }
        switch SecretReference.parse(text) {
        case .success(let reference):
            return reference
        case .failure(let problem):
            // The problem never echoes the value: it may be a secret pasted in by mistake.
            sink.error(line: lineOf(key), location(key), problem.problem, problem.fix)
            return nil
        }
    }

    /// Reports fields that no one asked for, with the nearest known name.
    func rejectUnknownFields() {
        for key in order where !known.contains(key) {
            let suggestion = known.min { Record.distance(key, $0) < Record.distance(key, $1) }
            let hint = suggestion.flatMap { Record.distance(key, $0) <= 3 ? "did you mean \($0)?" : nil }
                ?? "known fields: \(known.sorted().joined(separator: ", "))"
            sink.error(line: fields[key]?.line, location(key), "is not a known field", hint)
        }
    }

    private static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

extension SourceNode.Value {
    var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}
