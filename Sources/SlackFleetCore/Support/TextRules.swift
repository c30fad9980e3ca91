/// Character-level checks for identifiers, written out rather than as regular expressions
/// because they run for every field of every instance (NSRegularExpression compiles per call).
public enum TextRules {
    private static func ascii(_ text: String, count: ClosedRange<Int>, edge: (UInt8) -> Bool, inner: (UInt8) -> Bool) -> Bool {
        let bytes = Array(text.utf8)
        guard count.contains(bytes.count), let first = bytes.first, let last = bytes.last else { return false }
        return edge(first) && edge(last) && bytes.allSatisfy(inner)
    }

    static func isLower(_ c: UInt8) -> Bool { c >= 0x61 && c <= 0x7a }
    static func isUpper(_ c: UInt8) -> Bool { c >= 0x41 && c <= 0x5a }
    static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    static func isLowerAlnum(_ c: UInt8) -> Bool { isLower(c) || isDigit(c) }
    static func isAlnum(_ c: UInt8) -> Bool { isLower(c) || isUpper(c) || isDigit(c) }

    /// A name: 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit.
    public static func isSlug(_ text: String) -> Bool {
        ascii(text, count: 1...63, edge: isLowerAlnum) { isLowerAlnum($0) || $0 == 0x2d }
    }

    /// A label key: like a slug, also allowing '.', '_' and '/'.
    public static func isLabelKey(_ text: String) -> Bool {
        ascii(text, count: 1...63, edge: isLowerAlnum) { isLowerAlnum($0) || $0 == 0x2d || $0 == 0x2e || $0 == 0x5f || $0 == 0x2f }
    }

    /// A label value: 1-63 letters, digits, '.', '_' and '-'.
    public static func isLabelValue(_ text: String) -> Bool {
        ascii(text, count: 1...63, edge: { _ in true }) { isAlnum($0) || $0 == 0x2d || $0 == 0x2e || $0 == 0x5f }
    }

    /// A Kubernetes object name (DNS subdomain).
    public static func isKubernetesName(_ text: String) -> Bool {
        ascii(text, count: 1...253, edge: isLowerAlnum) { isLowerAlnum($0) || $0 == 0x2d || $0 == 0x2e }
    }

    /// A Slack id: one of `prefixes`, then 2-20 capital letters and digits.
    public static func isSlackID(_ text: String, prefixes: Set<Character>) -> Bool {
        guard let first = text.first, prefixes.contains(first) else { return false }
        return ascii(String(text.dropFirst()), count: 2...20, edge: { _ in true }) { isUpper($0) || isDigit($0) }
    }

    /// A stored secret's name: letters, digits, '.', '_', '-' and '/', starting with a letter or digit.
    public static func isSecretName(_ text: String) -> Bool {
        ascii(text, count: 1...128, edge: { _ in true }) { isAlnum($0) || $0 == 0x2d || $0 == 0x2e || $0 == 0x5f || $0 == 0x2f }
            && text.utf8.first.map(isAlnum) == true
    }

    /// An environment variable name.
    public static func isEnvironmentName(_ text: String) -> Bool {
        ascii(text, count: 1...255, edge: { _ in true }) { isAlnum($0) || $0 == 0x5f }
            && text.utf8.first.map { !isDigit($0) } == true
    }
}
