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
        if text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == " " }) {
            return .failure(Problem(problem: "contains a space, tab, line break or other control character", fix: "write the URL on one line with no whitespace"))
        }
        if text.count > maximumRedirectURLLength {
            return .failure(Problem(problem: "is \(text.count) characters long", fix: "Slack accepts at most \(maximumRedirectURLLength)"))
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            return .failure(Problem(problem: "\"\(text)\" is not a URL", fix: "write it as https://host[:port][/path]"))
        }
        guard scheme == "https" || scheme == "http" else {
            return .failure(Problem(problem: "uses the scheme \"\(scheme)\"", fix: "only https URLs are allowed"))
        }
        guard let rawHost = components.host, !rawHost.isEmpty else {
            return .failure(Problem(problem: "\"\(text)\" has no host", fix: "write it as https://host[:port][/path]"))
        }
        if components.user != nil || components.password != nil {
            return .failure(Problem(problem: "carries a user name or password", fix: "remove the userinfo part; credentials belong in secret references"))
        }
        if text.contains("#") {
            return .failure(Problem(problem: "has a fragment (#...)", fix: "remove it: Slack refuses redirect URLs with '#'"))
        }
        if role == .hostURL, components.query != nil {
            return .failure(Problem(problem: "has a query string", fix: "a host URL is scheme, host, port and path only"))
        }
        let host = rawHost.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
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
        var normalised = URLComponents()
        normalised.scheme = scheme
        normalised.host = rawHost.lowercased()
        if let port = components.port, !((scheme == "https" && port == 443) || (scheme == "http" && port == 80)) {
            normalised.port = port
        }
        var path = components.percentEncodedPath
        // A redirect URL matches itself and anything below it, so a trailing slash means nothing
        // there; an API endpoint's path is kept exactly as written.
        if role == .hostURL { while path.hasSuffix("/") { path.removeLast() } }
        normalised.percentEncodedPath = path
        if role == .endpoint, let query = components.percentEncodedQuery { normalised.percentEncodedQuery = query }
        guard let result = normalised.string else {
            return .failure(Problem(problem: "\"\(text)\" cannot be normalised", fix: "write it as https://host[:port][/path]"))
        }
        return .success(result)
    }

    /// Whether `host` (lowercase, without brackets) is a loopback name or address.
    public static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        if let address = IPv4Address(host) { return address.octets[0] == 127 }
        return false
    }

    /// Why `host` must never be contacted (link-local or cloud metadata), or nil.
    static func forbiddenHostReason(_ host: String) -> String? {
        if let address = IPv4Address(host), address.octets[0] == 169, address.octets[1] == 254 {
            return "a link-local / cloud metadata address (169.254.0.0/16)"
        }
        if host.hasPrefix("fe8") || host.hasPrefix("fe9") || host.hasPrefix("fea") || host.hasPrefix("feb") {
            return "an IPv6 link-local address (fe80::/10)"
        }
        if host == "fd00:ec2::254" || host == "metadata.google.internal" || host == "metadata" {
            return "a cloud metadata endpoint"
        }
        return nil
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
