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

    /// A W&B entity (team or user) name: 1-64 letters, digits, '.', '_' and '-'.
    public static func isEntityName(_ text: String) -> Bool {
        ascii(text, count: 1...64, edge: { _ in true }) { isAlnum($0) || $0 == 0x2d || $0 == 0x2e || $0 == 0x5f }
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

    /// Whether a plain YAML scalar would be read as a number by YAML 1.1 or 1.2 parsers:
    /// decimal, float, exponent, hex, octal, infinity or NaN.
    public static func looksLikeYAMLNumber(_ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        guard let first = bytes.first else { return false }
        if [".inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN"].contains(text) { return true }
        if first == 0x2b || first == 0x2d {
            bytes = bytes.dropFirst()
            if [".inf", ".Inf", ".INF"].contains(String(decoding: bytes, as: UTF8.self)) { return true }
        }
        if bytes.count > 2, bytes.first == 0x30, bytes[bytes.startIndex + 1] == 0x78 || bytes[bytes.startIndex + 1] == 0x6f {
            let isHex = bytes[bytes.startIndex + 1] == 0x78
            return bytes.dropFirst(2).allSatisfy { isHex ? (isDigit($0) || (0x61...0x66).contains($0 | 0x20)) : (0x30...0x37).contains($0) }
        }
        // digits [. digits] [e[+-]digits], underscores allowed in the mantissa (YAML 1.1).
        var sawDigit = false, sawDot = false, index = bytes.startIndex
        while index < bytes.endIndex {
            let c = bytes[index]
            if isDigit(c) { sawDigit = true } else if c == 0x5f && sawDigit { } else if c == 0x2e && !sawDot { sawDot = true } else { break }
            index += 1
        }
        guard sawDigit else { return false }
        if index == bytes.endIndex { return true }
        guard bytes[index] | 0x20 == 0x65 else { return false }
        index += 1
        if index < bytes.endIndex, bytes[index] == 0x2b || bytes[index] == 0x2d { index += 1 }
        guard index < bytes.endIndex else { return false }
        return bytes[index...].allSatisfy(isDigit)
    }

    /// Whether `text` holds a C0 or C1 control character (line breaks, tabs, NUL, escape...).
    public static func containsControlCharacter(_ text: String) -> Bool {
        var previous: UInt8 = 0
        for byte in text.utf8 {
            if byte < 0x20 || byte == 0x7f { return true }
            if previous == 0xc2 && (0x80...0x9f).contains(byte) { return true }
            previous = byte
        }
        return false
    }

    /// An environment variable name.
    public static func isEnvironmentName(_ text: String) -> Bool {
        ascii(text, count: 1...255, edge: { _ in true }) { isAlnum($0) || $0 == 0x5f }
            && text.utf8.first.map { !isDigit($0) } == true
    }
}
