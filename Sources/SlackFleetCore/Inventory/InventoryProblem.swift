/// One thing wrong with an inventory file, located and with a fix.
///
/// Rendered as `FILE:LINE: ROW/FIELD: problem: what to do`, for example
/// `fleet.yaml:14: instance prod-us-east/host_urls[1]: uses plain http: use https ...`.
public struct InventoryProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable {
        case error, warning
    }

    public let file: String
    public let line: Int?
    /// `ROW/FIELD`, such as `instance prod-us-east/host_urls[1]` or `workspaces[2]/id`.
    public let location: String
    public let problem: String
    public let fix: String
    public let severity: Severity

    public var description: String {
        let place = line.map { "\(file):\($0)" } ?? file
        let prefix = severity == .warning ? "warning: " : ""
        return InventoryProblem.visible("\(place): \(prefix)\(location): \(problem): \(fix)")
    }

    /// `text` with every character outside printable ASCII written as `\u{...}`: a look-alike
    /// letter (Cyrillic `а` for `a`) then shows, and a bidi override cannot reorder the line.
    static func visible(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.value >= 0x20 && scalar.value < 0x7f {
                out.unicodeScalars.append(scalar)
            } else {
                out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            }
        }
        return out
    }
}

/// An inventory that cannot be imported; nothing was written.
public struct InventoryRejected: Error, Sendable, CustomStringConvertible {
    public let problems: [InventoryProblem]

    public var errors: [InventoryProblem] { problems.filter { $0.severity == .error } }

    public var description: String {
        let errors = errors
        let lines = errors.map(\.description)
        return lines.joined(separator: "\n") + "\n\(errors.count) problem\(errors.count == 1 ? "" : "s") found; nothing was imported"
    }
}
