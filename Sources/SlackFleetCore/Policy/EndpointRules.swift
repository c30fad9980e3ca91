import Foundation

/// The rules every URL and address in an inventory must follow, as pure functions that return
/// a problem (with its fix) or the normalised value.
public enum EndpointRules {
    /// A problem with one value: what is wrong, and what to do.
    public struct Problem: Error, Equatable, Sendable {
        public let problem: String
        public let fix: String
    }

    /// What kind of URL is being checked, which decides the scheme rules.
    public enum URLRole: Sendable {
        /// An API endpoint: https, or http to loopback when allowed.
        case endpoint
        /// A host URL that becomes a Slack redirect URL: https, or http to loopback when allowed; no query.
        case hostURL
    }

    /// The most characters Slack accepts in one redirect URL.
    public static let maximumRedirectURLLength = 2500

    /// Checks `text` and returns it normalised: lowercase scheme and host, no default port,
    /// no trailing slash.
    public static func checkURL(_ text: String, role: URLRole, allowInsecureHTTP: Bool) -> Result<String, Problem> {
        if TextRules.containsControlCharacter(text) || text.utf8.contains(0x20) {
            return .failure(Problem(problem: "contains a space, tab, line break or other control character", fix: "write the URL on one line with no whitespace"))
        }
        if text.count > maximumRedirectURLLength {
            return .failure(Problem(problem: "is \(text.count) characters long", fix: "Slack accepts at most \(maximumRedirectURLLength)"))
        }
        guard let url = HTTPURL(text) else {
            if !text.utf8.allSatisfy({ $0 < 0x80 }) {
                return .failure(Problem(problem: "\"\(text)\" has non-ASCII characters", fix: "write international host names in their xn-- form and percent-encode paths"))
            }
            return .failure(Problem(problem: "\"\(text)\" is not a URL", fix: "write it as https://host[:port][/path]"))
        }
        let scheme = url.scheme
        guard scheme == "https" || scheme == "http" else {
            return .failure(Problem(problem: "uses the scheme \"\(scheme)\"", fix: "only https URLs are allowed"))
        }
        guard !url.host.isEmpty else {
            return .failure(Problem(problem: "\"\(text)\" has no host", fix: "write it as https://host[:port][/path]"))
        }
        if url.hasUserInfo {
            return .failure(Problem(problem: "carries a user name or password", fix: "remove the userinfo part; credentials belong in secret references"))
        }
        if url.fragment != nil {
            return .failure(Problem(problem: "has a fragment (#...)", fix: "remove it: Slack refuses redirect URLs with '#'"))
        }
        if role == .hostURL, url.query != nil {
            return .failure(Problem(problem: "has a query string", fix: "a host URL is scheme, host, port and path only"))
        }
        let host = url.host
        if let reason = forbiddenHostReason(host) {
            return .failure(Problem(problem: "points at \(host), \(reason)", fix: "use the instance's real address"))
        }
        if scheme == "http" {
            guard allowInsecureHTTP else {
                return .failure(Problem(problem: "uses plain http", fix: "use https (http is allowed only to a loopback test host with allow_insecure_http: true)"))
            }
            guard isLoopback(host) else {
                return .failure(Problem(problem: "uses plain http to \(host), which is not a loopback address", fix: "use https; allow_insecure_http only permits http to 127.0.0.0/8, ::1 or localhost"))
            }
        }
        var path = url.path
        // A redirect URL matches itself and anything below it, so a trailing slash means nothing
        // there; an API endpoint's path is kept exactly as written.
        if role == .hostURL { while path.hasSuffix("/") { path.removeLast() } }
        var result = scheme + "://" + (host.contains(":") ? "[\(host)]" : host)
        if let port = url.port, !((scheme == "https" && port == 443) || (scheme == "http" && port == 80)) {
            result += ":\(port)"
        }
        result += path
        if role == .endpoint, let query = url.query { result += "?" + query }
        return .success(result)
    }

    /// Whether `host` (lowercase, without brackets) is a loopback name or address.
    public static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        if let address = IPv4Address(host) { return address.octets[0] == 127 }
        return false
    }

    /// Why `host` must never be contacted (link-local or cloud metadata), or nil. Alternative
    /// spellings of an address (decimal, hex, octal or shortened IPv4; IPv4 inside IPv6) are
    /// refused too: resolvers read them as the address they hide.
    static func forbiddenHostReason(_ host: String) -> String? {
        if let address = IPv4Address(host) { return forbiddenReason(address) }
        if isNumericIPv4Spelling(host) {
            return "an IPv4 address in a shortened, decimal, hex or octal form that resolvers read as another address"
        }
        if host.contains(":") {
            var bytes = in6_addr()
            guard inet_pton(AF_INET6, host, &bytes) == 1 else { return nil }
            let octets = withUnsafeBytes(of: &bytes) { Array($0) }
            if octets[0] == 0xfe && octets[1] & 0xc0 == 0x80 { return "an IPv6 link-local address (fe80::/10)" }
            if octets == [0xfd, 0x00, 0x0e, 0xc2] + Array(repeating: 0, count: 10) + [0x02, 0x54] { return "a cloud metadata endpoint" }
            // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d).
            let mapped = octets[0..<10].allSatisfy { $0 == 0 } && octets[10] == 0xff && octets[11] == 0xff
            let compatible = octets[0..<12].allSatisfy { $0 == 0 } && (octets[12] != 0 || octets[13] != 0)
            let nat64 = octets[0..<12] == [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0]
            if mapped || compatible || nat64 {
                let embedded = IPv4Address(value: octets[12...].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
                return forbiddenReason(embedded).map { "IPv4 address \(embedded) written as IPv6: \($0)" }
            }
            return nil
        }
        if host == "metadata.google.internal" || host == "metadata" { return "a cloud metadata endpoint" }
        return nil
    }

    private static func forbiddenReason(_ address: IPv4Address) -> String? {
        address.octets[0] == 169 && address.octets[1] == 254 ? "a link-local / cloud metadata address (169.254.0.0/16)" : nil
    }

    /// Whether `host` is a number or dotted numbers that `inet_aton` would read as an IPv4
    /// address (`2852039166`, `0xa9fea9fe`, `0251.0376.0251.0376`, `127.1`) without being the
    /// plain four-decimal form.
    static func isNumericIPv4Spelling(_ host: String) -> Bool {
        var text = Substring(host)
        if text.hasSuffix(".") { text = text.dropLast() }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...4).contains(parts.count) else { return false }
        return parts.allSatisfy { part in
            if part.hasPrefix("0x") { return part.dropFirst(2).allSatisfy(\.isHexDigit) }
            return !part.isEmpty && part.allSatisfy { $0.isASCII && $0.isNumber }
        } && IPv4Address(String(text)) == nil || host.hasSuffix(".") && IPv4Address(String(text)) != nil
    }

    /// Checks an allow-list entry: an IPv4 address or CIDR range Slack accepts.
    public static func checkIPRange(_ text: String) -> Result<String, Problem> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        let prefixText = parts.count == 2 ? String(parts[1]) : "32"
        guard parts.count <= 2, let address = IPv4Address(String(parts[0])),
              let prefix = Int(prefixText), (0...32).contains(prefix), prefixText.allSatisfy(\.isASCII),
              prefixText == String(prefix) else {
            if text.contains(":") {
                return .failure(Problem(problem: "\"\(text)\" is an IPv6 address", fix: "Slack's allow-list takes IPv4 addresses and ranges only"))
            }
            return .failure(Problem(problem: "\"\(text)\" is not an IPv4 address or CIDR range", fix: "write it as 203.0.113.7 or 203.0.113.0/24 (no leading zeros, prefix 0-32)"))
        }
        let mask: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << (32 - prefix)
        if address.value & ~mask != 0 {
            let network = IPv4Address(value: address.value & mask)
            return .failure(Problem(problem: "\(text) has host bits set", fix: "did you mean \(network)/\(prefix)?"))
        }
        if prefix == 0 {
            return .failure(Problem(problem: "\(text) allows every address", fix: "leave ip_allowlist empty for no restriction"))
        }
        let first = address.octets[0], second = address.octets[1]
        if first == 169 && second == 254 {
            return .failure(Problem(problem: "\(text) is link-local (169.254.0.0/16)", fix: "list the public addresses your calls to Slack come from"))
        }
        if first == 127 || first == 0 || first == 10 || (first == 172 && (16...31).contains(second)) || (first == 192 && second == 168) {
            return .failure(Problem(problem: "\(text) is a local or private address", fix: "Slack sees only public addresses (its docs: local addresses are not supported); list your egress IPs"))
        }
        return .success(text)
    }
}

/// An IPv4 address in dotted-quad form.
struct IPv4Address: CustomStringConvertible {
    let value: UInt32

    init(value: UInt32) {
        self.value = value
    }

    /// Parses strict dotted-quad text (four decimal octets), nil otherwise.
    init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            // No leading zeros: "010" is octal to some parsers and decimal to others.
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }), part.count == 1 || part.first != "0",
                  let octet = UInt32(part), octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        self.value = value
    }

    var octets: [UInt32] { [value >> 24, (value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff] }

    var description: String { octets.map(String.init).joined(separator: ".") }
}

/// An http(s)-shaped URL split into its parts: `scheme://[userinfo@]host[:port][path][?query][#fragment]`.
///
/// Strict and ASCII-only (international names in xn-- form), so the rules above see exactly
/// what a client will connect to; scheme and host come back lowercase, IPv6 hosts without brackets.
struct HTTPURL {
    let scheme: String
    let hasUserInfo: Bool
    let host: String
    let port: Int?
    let path: String
    let query: String?
    let fragment: String?

    init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { return nil }
        func string(_ range: Range<Int>, lowercase: Bool = false) -> String {
            String(decoding: lowercase ? bytes[range].map { TextRules.isUpper($0) ? $0 | 0x20 : $0 } : Array(bytes[range]), as: UTF8.self)
        }
        // scheme "://"
        var index = 0
        while index < bytes.count, TextRules.isAlnum(bytes[index]) || bytes[index] == 0x2b || bytes[index] == 0x2d || bytes[index] == 0x2e { index += 1 }
        guard index > 0, !TextRules.isDigit(bytes[0]), index + 2 < bytes.count,
              bytes[index] == 0x3a, bytes[index + 1] == 0x2f, bytes[index + 2] == 0x2f else { return nil }
        scheme = string(0..<index, lowercase: true)
        let authorityStart = index + 3
        let fragmentStart = bytes[authorityStart...].firstIndex(of: 0x23)
        let end = fragmentStart ?? bytes.count
        fragment = fragmentStart.map { string(($0 + 1)..<bytes.count) }
        let queryStart = bytes[authorityStart..<end].firstIndex(of: 0x3f)
        query = queryStart.map { string(($0 + 1)..<end) }
        let pathEnd = queryStart ?? end
        let authorityEnd = bytes[authorityStart..<pathEnd].firstIndex(of: 0x2f) ?? pathEnd
        path = string(authorityEnd..<pathEnd)
        guard !bytes[authorityEnd..<pathEnd].contains(0x5c) else { return nil }
        var hostStart = authorityStart
        if let at = bytes[authorityStart..<authorityEnd].lastIndex(of: 0x40) {
            hasUserInfo = true
            hostStart = at + 1
        } else {
            hasUserInfo = false
        }
        var hostEnd = authorityEnd
        var portStart: Int?
        if hostStart < authorityEnd, bytes[hostStart] == 0x5b {
            guard let close = bytes[hostStart..<authorityEnd].firstIndex(of: 0x5d) else { return nil }
            host = string((hostStart + 1)..<close, lowercase: true)
            if close + 1 < authorityEnd {
                guard bytes[close + 1] == 0x3a else { return nil }
                portStart = close + 2
            }
            guard !host.isEmpty, host.utf8.allSatisfy({ TextRules.isAlnum($0) || $0 == 0x3a || $0 == 0x2e }) else { return nil }
        } else {
            if let colon = bytes[hostStart..<authorityEnd].firstIndex(of: 0x3a) {
                hostEnd = colon
                portStart = colon + 1
            }
            guard bytes[hostStart..<hostEnd].allSatisfy({ TextRules.isAlnum($0) || $0 == 0x2d || $0 == 0x2e || $0 == 0x5f }) else { return nil }
            host = string(hostStart..<hostEnd, lowercase: true)
        }
        if let portStart {
            let digits = bytes[portStart..<authorityEnd]
            guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy(TextRules.isDigit),
                  let port = Int(String(decoding: digits, as: UTF8.self)), (1...65535).contains(port) else { return nil }
            self.port = port
        } else {
            port = nil
        }
    }
}
