import Foundation
import Yams

/// A value read from an inventory file, with the line it came from.
///
/// YAML scalars keep their text: a plain `1234567890.1234567890` is a number *as written*,
/// never a Double, so nothing downstream can round it (W&B's Helm chart once shipped a
/// corrupt Slack client ID that way).
struct SourceNode: Sendable {
    enum Value: Sendable {
        case string(String)
        /// A plain number as written in the file.
        case number(String)
        case bool(Bool)
        case null
        case list([SourceNode])
        case map([(key: String, keyLine: Int?, value: SourceNode)])
    }

    let value: Value
    let line: Int?

    var kindName: String {
        switch value {
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .null: "null"
        case .list: "a list"
        case .map: "a mapping"
        }
    }
}

/// Why a file could not be read as a tree at all.
struct SourceSyntaxError: Error {
    let line: Int?
    let problem: String
    var fix = "fix the syntax and import again"
}

enum SourceFormat: String {
    case yaml, json

    /// JSON for `.json` files, YAML otherwise (JSON documents are YAML too, but JSON's own
    /// parser gives better messages for them).
    static func guess(path: String) -> SourceFormat {
        path.lowercased().hasSuffix(".json") ? .json : .yaml
    }
}

extension SourceNode {
    /// The most bytes an inventory file may have.
    static let maximumFileSize = 64 << 20

    /// Decodes `data` as UTF-8 text and parses it.
    static func parse(_ data: Data, format: SourceFormat) throws -> SourceNode {
        guard data.count <= maximumFileSize else {
            throw SourceSyntaxError(line: nil, problem: "the file is \(data.count) bytes, more than the \(maximumFileSize >> 20) MiB an inventory may have", fix: "split the fleet across databases or shards")
        }
        guard let text = String(validatingUTF8Data: data) else {
            throw SourceSyntaxError(line: nil, problem: "the file is not valid UTF-8 text", fix: "save it as UTF-8")
        }
        if let index = text.unicodeScalars.firstIndex(where: { $0 == "\0" }) {
            let line = text.unicodeScalars[..<index].filter { $0 == "\n" }.count + 1
            throw SourceSyntaxError(line: line, problem: "the file contains a NUL character", fix: "remove it")
        }
        switch format {
        case .yaml: return try parseYAML(text)
        case .json: return try parseJSON(data)
        }
    }

    private static func parseYAML(_ text: String) throws -> SourceNode {
        let root: Node?
        do {
            // The basic resolver: scalars are classified here, not by Yams's regular expressions,
            // which otherwise dominate the time of a large import.
            root = try Yams.compose(yaml: text, .basic)
        } catch let error as YamlError {
            throw SourceSyntaxError(line: yamlErrorLine(error), problem: "not valid YAML: \(yamlErrorSummary(error))")
        }
        guard let root else {
            throw SourceSyntaxError(line: nil, problem: "the file is empty", fix: "an inventory starts with `version: 1`")
        }
        // Yams expands aliases; a file whose tree is much larger than its text is an alias bomb.
        var budget = 2 * text.utf8.count + 64
        return try SourceNode(yaml: root, budget: &budget)
    }

    private init(yaml node: Node, budget: inout Int) throws {
        budget -= 1
        guard budget >= 0 else {
            throw SourceSyntaxError(line: node.mark?.line, problem: "YAML aliases expand to far more values than the file holds", fix: "write the values out instead of using anchors and aliases")
        }
        let line = node.mark?.line
        switch node {
        case .scalar(let scalar):
            self.init(value: SourceNode.classify(scalar), line: line)
        case .sequence(let sequence):
            var items: [SourceNode] = []
            for item in sequence { items.append(try SourceNode(yaml: item, budget: &budget)) }
            self.init(value: .list(items), line: line)
        case .mapping(let mapping):
            var pairs: [(key: String, keyLine: Int?, value: SourceNode)] = []
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw SourceSyntaxError(line: key.mark?.line, problem: "a mapping key is not a plain name", fix: "write field names as plain words")
                }
                pairs.append((keyScalar.string, key.mark?.line, try SourceNode(yaml: value, budget: &budget)))
            }
            self.init(value: .map(pairs), line: line)
        case .alias:
            throw SourceSyntaxError(line: line, problem: "YAML aliases (*name) are not supported in an inventory", fix: "write the value out")
        }
    }

    private static func classify(_ scalar: Node.Scalar) -> Value {
        let text = scalar.string
        guard scalar.style == .plain else { return .string(text) }
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        return TextRules.looksLikeYAMLNumber(text) ? .number(text) : .string(text)
    }

    private static func yamlErrorLine(_ error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return nil
        }
    }

    private static func yamlErrorSummary(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _), .composer(let context, let problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
        default:
            return "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        }
    }

    private static func parseJSON(_ data: Data) throws -> SourceNode {
        do {
            return try JSONDecoder().decode(JSONTree.self, from: data).node
        } catch {
            // JSONDecoder says only "not valid JSON"; JSONSerialization says where.
            var detail = "the data is not valid JSON"
            var line: Int?
            do {
                _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            } catch let parseError as NSError {
                if let description = parseError.userInfo[NSDebugDescriptionErrorKey] as? String {
                    detail = description.trimmingCharacters(in: CharacterSet(charactersIn: "."))
                    if let range = description.range(of: #"character [0-9]+"#, options: .regularExpression),
                       let offset = Int(description[range].dropFirst("character ".count)) {
                        line = data.prefix(offset).filter { $0 == 0x0a }.count + 1
                    }
                }
            }
            throw SourceSyntaxError(line: line, problem: "not valid JSON: \(detail.prefix(300))")
        }
    }

    /// Decodes any JSON document into a `SourceNode` (without lines: JSON has none to give).
    private struct JSONTree: Decodable {
        let node: SourceNode

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        init(from decoder: any Decoder) throws {
            if let object = try? decoder.container(keyedBy: Key.self) {
                var pairs: [(key: String, keyLine: Int?, value: SourceNode)] = []
                for key in object.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
                    pairs.append((key.stringValue, nil, try object.decode(JSONTree.self, forKey: key).node))
                }
                node = SourceNode(value: .map(pairs), line: nil)
            } else if var array = try? decoder.unkeyedContainer() {
                var items: [SourceNode] = []
                while !array.isAtEnd { items.append(try array.decode(JSONTree.self).node) }
                node = SourceNode(value: .list(items), line: nil)
            } else {
                let single = try decoder.singleValueContainer()
                if single.decodeNil() {
                    node = SourceNode(value: .null, line: nil)
                } else if let value = try? single.decode(Bool.self) {
                    node = SourceNode(value: .bool(value), line: nil)
                } else if let value = try? single.decode(String.self) {
                    node = SourceNode(value: .string(value), line: nil)
                } else {
                    let number = try single.decode(Decimal.self)
                    node = SourceNode(value: .number("\(number)"), line: nil)
                }
            }
        }
    }
}

extension String {
    /// `data` as UTF-8 text, or nil when it is not valid UTF-8.
    init?(validatingUTF8Data data: Data) {
        guard let text = String(bytes: data, encoding: .utf8) else { return nil }
        // Foundation may repair some invalid sequences; compare round trips to be strict.
        guard text.utf8.elementsEqual(data) else { return nil }
        self = text
    }
}
