import Foundation
import SlackFleetCore
import Testing

@Suite("Text rules")
struct TextRulesTests {
    @Test("plain YAML scalars that parsers read as numbers are recognised", arguments: [
        ("1", true), ("1.10", true), ("1234567890.1234567890", true), ("-3", true), ("+4.5e10", true), ("1_000", true),
        ("0x1F", true), ("0o17", true), (".inf", true), ("-.inf", true), (".nan", true), ("1e5", true), (".5", true),
        ("v1", false), ("1.2.3", false), ("203.0.113.0/24", false), ("1e", false), ("abc", false), ("-", false), ("0x", false), ("12ab", false),
    ])
    func yamlNumbers(_ text: String, _ isNumber: Bool) {
        #expect(TextRules.looksLikeYAMLNumber(text) == isNumber)
    }

    @Test("control characters are found, C0 and C1", arguments: [
        ("plain text", false), ("tab\there", true), ("line\nbreak", true), ("nul\u{0}", true), ("del\u{7f}", true), ("c1\u{85}", true), ("é ü 日本", false),
    ])
    func controlCharacters(_ text: String, _ contains: Bool) {
        #expect(TextRules.containsControlCharacter(text) == contains)
    }

    @Test("JSON quoting reads back to the same string, whatever it holds", arguments: [
        "plain", "quote \" and backslash \\", "new\nline\r\ttab", "nul \u{0} bell \u{7} del \u{7f}", "unicode é 日本 🚀", "",
    ])
    func jsonQuoting(_ text: String) throws {
        let quoted = JSONText.quoted(text)
        let decoded = try JSONSerialization.jsonObject(with: Data("[\(quoted)]".utf8)) as? [String]
        #expect(decoded == [text])
    }
}

@Suite("URL parsing")
struct URLParsingTests {
    @Test("URLs split into the parts the rules check", arguments: [
        ("https://Example.COM:8443/a/b?x=1", "https://example.com:8443/a/b?x=1"),
        ("https://[::1]:8443/api/", "https://[::1]:8443/api/"),
        ("https://example.com", "https://example.com"),
        ("https://example.com:443/", "https://example.com/"),
    ])
    func endpoints(_ text: String, _ normalised: String) {
        let checked = try? EndpointRules.checkURL(text, role: .endpoint, allowInsecureHTTP: false).get()
        #expect(checked == normalised)
    }

    @Test("malformed or smuggling URLs are refused", arguments: [
        "https://", "https//example.com", "://example.com", "https://exa mple.com", "https://example.com:0", "https://example.com:65536",
        "https://example.com:80a", "https://user@example.com", "https://a:b@example.com", "https://example.com\\@evil.com",
        "https://évil.com", "https://[::1", "https://example.com/#x", "ftp://example.com", "javascript://example.com",
    ])
    func refused(_ text: String) {
        #expect((try? EndpointRules.checkURL(text, role: .hostURL, allowInsecureHTTP: false).get()) == nil)
    }
}
