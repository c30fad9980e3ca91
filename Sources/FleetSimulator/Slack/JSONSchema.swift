import Foundation

/// A JSON Schema (draft-07) validator for the keywords Slack's manifest schema uses.
///
/// It follows draft-07 as Python's `jsonschema.Draft7Validator` does: a `$ref` replaces its
/// sibling keywords; `format` and unknown keywords (Slack's own `requires`, `regex`) are
/// annotations only; `integer` accepts 1.0; `pattern` searches, it does not anchor.
public final class JSONSchema: @unchecked Sendable {
    /// One way an instance breaks the schema, where Slack reports it: a message and a JSON pointer.
    public struct Violation: Sendable, Equatable {
        public let message: String
        public let pointer: String
    }

    public let root: JSONValue
    private let lock = NSLock()
    private var patterns: [String: NSRegularExpression] = [:]
    private var references: [String: JSONValue] = [:]

    public init(_ root: JSONValue) {
        self.root = root
    }

    /// Every violation of the schema by `instance`, in document order.
    public func validate(_ instance: JSONValue) -> [Violation] {
        var violations: [Violation] = []
        check(instance, against: root, at: "", into: &violations)
        return violations
    }

    private func check(_ instance: JSONValue, against schema: JSONValue, at pointer: String, into violations: inout [Violation]) {
        if case .bool(let allowed) = schema {
            if !allowed { violations.append(Violation(message: "is not allowed", pointer: pointer)) }
            return
        }
        guard case .object(let keywords) = schema else { return }
        if let reference = keywords["$ref"]?.stringValue {
            guard let target = resolve(reference) else {
                violations.append(Violation(message: "schema reference \(reference) cannot be resolved", pointer: pointer))
                return
            }
            check(instance, against: target, at: pointer, into: &violations)
            return
        }
        if let type = keywords["type"], !matches(instance, type: type) {
            violations.append(Violation(message: "must be of type \(typeNames(type))", pointer: pointer))
            return
        }
        if let options = keywords["enum"]?.arrayValue, !options.contains(where: { $0.schemaEquals(instance) }) {
            violations.append(Violation(message: "must be one of \(options.map(\.serialized).joined(separator: ", "))", pointer: pointer))
        }
        if let constant = keywords["const"], !constant.schemaEquals(instance) {
            violations.append(Violation(message: "must be \(constant.serialized)", pointer: pointer))
        }
        if let alternatives = keywords["anyOf"]?.arrayValue {
            let passes = alternatives.contains { alternative in
                var scratch: [Violation] = []
                check(instance, against: alternative, at: pointer, into: &scratch)
                return scratch.isEmpty
            }
            if !passes { violations.append(Violation(message: "does not match any of the allowed forms", pointer: pointer)) }
        }
        if let alternatives = keywords["oneOf"]?.arrayValue {
            let count = alternatives.filter { alternative in
                var scratch: [Violation] = []
                check(instance, against: alternative, at: pointer, into: &scratch)
                return scratch.isEmpty
            }.count
            if count != 1 { violations.append(Violation(message: "must match exactly one of the allowed forms", pointer: pointer)) }
        }
        if let all = keywords["allOf"]?.arrayValue {
            for part in all { check(instance, against: part, at: pointer, into: &violations) }
        }
        if let negated = keywords["not"] {
            var scratch: [Violation] = []
            check(instance, against: negated, at: pointer, into: &scratch)
            if scratch.isEmpty { violations.append(Violation(message: "must not match the excluded form", pointer: pointer)) }
        }
        switch instance {
        case .string(let text):
            let length = text.unicodeScalars.count
            if let minimum = keywords["minLength"]?.int64Value, length < minimum {
                violations.append(Violation(message: "must be at least \(minimum) characters", pointer: pointer))
            }
            if let maximum = keywords["maxLength"]?.int64Value, length > maximum {
                violations.append(Violation(message: "must be at most \(maximum) characters", pointer: pointer))
            }
            if let pattern = keywords["pattern"]?.stringValue, !search(pattern, in: text) {
                violations.append(Violation(message: "must match the pattern \(pattern)", pointer: pointer))
            }
        case .integer, .number:
            checkNumber(instance, keywords: keywords, at: pointer, into: &violations)
        case .array(let items):
            if let minimum = keywords["minItems"]?.int64Value, items.count < minimum {
                violations.append(Violation(message: "must have at least \(minimum) items", pointer: pointer))
            }
            if let maximum = keywords["maxItems"]?.int64Value, items.count > maximum {
                violations.append(Violation(message: "must have at most \(maximum) items", pointer: pointer))
            }
            if keywords["uniqueItems"]?.boolValue == true {
                outer: for (index, item) in items.enumerated() {
                    for other in items[(index + 1)...] where item.schemaEquals(other) {
                        violations.append(Violation(message: "must not contain duplicates (\(item.serialized))", pointer: pointer))
                        break outer
                    }
                }
            }
            if let itemSchema = keywords["items"] {
                if case .array(let tuple) = itemSchema {
                    for (index, item) in items.enumerated() where index < tuple.count {
                        check(item, against: tuple[index], at: pointer + "/\(index)", into: &violations)
                    }
                } else {
                    for (index, item) in items.enumerated() {
                        check(item, against: itemSchema, at: pointer + "/\(index)", into: &violations)
                    }
                }
            }
        case .object(let fields):
            if let minimum = keywords["minProperties"]?.int64Value, fields.count < minimum {
                violations.append(Violation(message: "must have at least \(minimum) properties", pointer: pointer))
            }
            if let maximum = keywords["maxProperties"]?.int64Value, fields.count > maximum {
                violations.append(Violation(message: "must have at most \(maximum) properties", pointer: pointer))
            }
            for required in keywords["required"]?.arrayValue ?? [] {
                if let name = required.stringValue, fields[name] == nil {
                    violations.append(Violation(message: "must have the property \(name)", pointer: pointer))
                }
            }
            let properties = keywords["properties"]?.objectValue ?? [:]
            let patternProperties = keywords["patternProperties"]?.objectValue ?? [:]
            for key in fields.keys.sorted() {
                guard let value = fields[key] else { continue }
                let child = pointer + "/" + JSONSchema.escapePointer(key)
                var matched = false
                if let schema = properties[key] {
                    matched = true
                    check(value, against: schema, at: child, into: &violations)
                }
                for (pattern, schema) in patternProperties where search(pattern, in: key) {
                    matched = true
                    check(value, against: schema, at: child, into: &violations)
                }
                if !matched, let additional = keywords["additionalProperties"] {
                    if case .bool(false) = additional {
                        violations.append(Violation(message: "has the unknown property \(key)", pointer: child))
                    } else {
                        check(value, against: additional, at: child, into: &violations)
                    }
                }
            }
        default:
            break
        }
    }

    private func checkNumber(_ instance: JSONValue, keywords: [String: JSONValue], at pointer: String, into violations: inout [Violation]) {
        let value: Double
        switch instance {
        case .integer(let number): value = Double(number)
        case .number(let number): value = number
        default: return
        }
        func bound(_ key: String) -> Double? {
            switch keywords[key] {
            case .integer(let number)?: return Double(number)
            case .number(let number)?: return number
            default: return nil
            }
        }
        if let minimum = bound("minimum"), value < minimum { violations.append(Violation(message: "must be at least \(minimum)", pointer: pointer)) }
        if let maximum = bound("maximum"), value > maximum { violations.append(Violation(message: "must be at most \(maximum)", pointer: pointer)) }
        if let minimum = bound("exclusiveMinimum"), value <= minimum { violations.append(Violation(message: "must be more than \(minimum)", pointer: pointer)) }
        if let maximum = bound("exclusiveMaximum"), value >= maximum { violations.append(Violation(message: "must be less than \(maximum)", pointer: pointer)) }
    }

    private func matches(_ instance: JSONValue, type: JSONValue) -> Bool {
        if case .array(let names) = type { return names.contains { matches(instance, type: $0) } }
        switch (type.stringValue, instance) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object): return true
        case ("number", .integer), ("number", .number), ("integer", .integer): return true
        case ("integer", .number(let value)): return value.isFinite && value == value.rounded()
        default: return false
        }
    }

    private func typeNames(_ type: JSONValue) -> String {
        if case .array(let names) = type { return names.compactMap(\.stringValue).joined(separator: " or ") }
        return type.stringValue ?? "?"
    }

    private func resolve(_ reference: String) -> JSONValue? {
        lock.lock()
        let cached = references[reference]
        lock.unlock()
        if let cached { return cached }
        let resolved = walk(reference)
        if let resolved {
            lock.lock()
            references[reference] = resolved
            lock.unlock()
        }
        return resolved
    }

    private func walk(_ reference: String) -> JSONValue? {
        guard reference.hasPrefix("#") else { return nil }
        var node = root
        for token in reference.dropFirst().split(separator: "/", omittingEmptySubsequences: true) {
            let key = (String(token).removingPercentEncoding ?? String(token))
                .replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            switch node {
            case .object(let fields): guard let next = fields[key] else { return nil }; node = next
            case .array(let items): guard let index = Int(key), items.indices.contains(index) else { return nil }; node = items[index]
            default: return nil
            }
        }
        return node
    }

    private func search(_ pattern: String, in text: String) -> Bool {
        lock.lock()
        var expression = patterns[pattern]
        if expression == nil {
            expression = try? NSRegularExpression(pattern: pattern)
            patterns[pattern] = expression
        }
        lock.unlock()
        guard let expression else { return true }
        return expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    static func escapePointer(_ key: String) -> String {
        key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }
}

extension JSONSchema {
    /// Slack's published app manifest schema (slackapi/manifest-schema, MIT licence), bundled.
    public static func slackManifest() throws -> JSONSchema {
        guard let url = Bundle.module.url(forResource: "manifest.schema.1.0.0", withExtension: "json") else {
            throw SimulatorError("the bundled Slack manifest schema is missing from the FleetSimulator resources")
        }
        return JSONSchema(try JSONValue.parse(try Data(contentsOf: url)))
    }
}
