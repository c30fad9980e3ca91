import Foundation

/// A JSON value: audit details, stored columns, and the documents Slack, W&B and Kubernetes
/// exchange with us. There is deliberately no case for a secret: a secret enters an audit
/// detail only as its fingerprint.
///
/// Decoding keeps what a manifest holds (strings, booleans, integers, other numbers, nesting),
/// so a document read, edited in one field and written back changes only that field.
public enum JSON: Sendable, Equatable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case list([JSON])
    case object([String: JSON])
    case null

    public subscript(key: String) -> JSON? {
        if case .object(let fields) = self { return fields[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let flag) = self { return flag }
        return nil
    }

    public var intValue: Int? {
        switch self {
        case .int(let number): return number
        case .double(let number) where number == number.rounded() && abs(number) < 9e15: return Int(number)
        default: return nil
        }
    }

    public var listValue: [JSON]? {
        if case .list(let items) = self { return items }
        return nil
    }

    public var objectValue: [String: JSON]? {
        if case .object(let fields) = self { return fields }
        return nil
    }

    /// The strings of a list value (other items are skipped).
    public var strings: [String] { listValue?.compactMap(\.stringValue) ?? [] }

    /// Parses a JSON document (see JSONParser: integers stay integers, depth is bounded).
    public static func parse(_ data: Data) throws -> JSON {
        try JSONParser.parse(data)
    }

    /// This value with the member at `path` (object keys) replaced, creating objects on the way.
    public func setting(_ path: [String], to value: JSON) -> JSON {
        guard let key = path.first else { return value }
        var fields = objectValue ?? [:]
        fields[key] = (fields[key] ?? .object([:])).setting(Array(path.dropFirst()), to: value)
        return .object(fields)
    }

    /// The bytes of `canonicalJSON`.
    public var data: Data { Data(canonicalJSON.utf8) }
}

extension JSON: Decodable {
    public init(from decoder: any Decoder) throws {
        if var array = try? decoder.unkeyedContainer() {
            var items: [JSON] = []
            while !array.isAtEnd { items.append(try array.decode(JSON.self)) }
            self = .list(items)
            return
        }
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            var fields: [String: JSON] = [:]
            for key in object.allKeys { fields[key.stringValue] = try object.decode(JSON.self, forKey: key) }
            self = .object(fields)
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() { self = .null }
        else if let flag = try? single.decode(Bool.self) { self = .bool(flag) }
        else if let number = try? single.decode(Int.self) { self = .int(number) }
        else if let number = try? single.decode(Double.self) { self = .double(number) }
        else { self = .string(try single.decode(String.self)) }
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(arrayLiteral elements: JSON...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) { self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last })) }
}

extension JSON {
    /// Compact JSON with keys sorted, as stored and hashed: one value has one encoding.
    public var canonicalJSON: String {
        var out = ""
        write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .string(let text): JSONText.appendQuoted(text, to: &out)
        case .int(let number): out += String(number)
        case .double(let number): out += number.isFinite ? "\(number)" : "null"
        case .bool(let flag): out += flag ? "true" : "false"
        case .null: out += "null"
        case .list(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (index, key) in fields.keys.sorted().enumerated() {
                if index > 0 { out += "," }
                JSONText.appendQuoted(key, to: &out)
                out += ":"
                fields[key]?.write(to: &out)
            }
            out += "}"
        }
    }
}
