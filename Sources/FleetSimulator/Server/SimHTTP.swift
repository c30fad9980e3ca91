import Foundation

/// A request as the simulated services see it.
public struct SimRequest: Sendable {
    public let method: String
    /// The path without its query, percent-decoded per segment by the routes that need it.
    public let path: String
    public let query: [String: String]
    /// Header names lowercased.
    public let headers: [String: String]
    public let body: Data

    public init(method: String, path: String, query: [String: String] = [:], headers: [String: String] = [:], body: Data = Data()) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// `application/json` or `application/x-www-form-urlencoded`, without parameters.
    public var mediaType: String {
        (headers["content-type"] ?? "").split(separator: ";").first.map { SimRequest.trimmedLowercased($0) } ?? ""
    }

    /// The `charset` parameter of the content type, if any.
    public var charset: String? {
        for part in (headers["content-type"] ?? "").split(separator: ";").dropFirst() {
            let pair = part.split(separator: "=", maxSplits: 1).map { SimRequest.trimmedLowercased($0) }
            if pair.count == 2, pair[0] == "charset" { return pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        }
        return nil
    }

    /// Header text without surrounding spaces or tabs, ASCII letters lowercased (header
    /// tokens are ASCII): several times cheaper than Foundation's trimming, on every request.
    static func trimmedLowercased(_ text: Substring) -> String {
        lowercasedASCII(trimmed(text))
    }

    /// `text` with the ASCII letters lowercased and everything else as it is.
    static func lowercasedASCII(_ text: Substring) -> String {
        String(decoding: text.utf8.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    /// Header text without surrounding spaces or tabs.
    static func trimmed(_ text: Substring) -> Substring {
        var start = text.startIndex, end = text.endIndex
        while start < end, text[start] == " " || text[start] == "\t" { start = text.index(after: start) }
        while end > start, case let last = text[text.index(before: end)], last == " " || last == "\t" { end = text.index(before: end) }
        return text[start..<end]
    }

    /// Parses `application/x-www-form-urlencoded` text.
    public static func formFields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.utf8.split(separator: UInt8(ascii: "&")) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            fields[decode(parts[0])] = parts.count == 2 ? decode(parts[1]) : ""
        }
        return fields
    }

    /// `+` is a space, `%XX` a byte; a malformed escape is kept as it is.
    private static func decode(_ bytes: Substring.UTF8View.SubSequence) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        func hex(_ byte: UInt8) -> UInt8? {
            switch byte {
            case 0x30...0x39: return byte - 0x30
            case 0x41...0x46: return byte - 0x37
            case 0x61...0x66: return byte - 0x57
            default: return nil
            }
        }
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                out.append(0x20)
            } else if byte == UInt8(ascii: "%"), let first = bytes.index(index, offsetBy: 1, limitedBy: bytes.endIndex), first < bytes.endIndex,
                      let second = bytes.index(first, offsetBy: 1, limitedBy: bytes.endIndex), second < bytes.endIndex,
                      let high = hex(bytes[first]), let low = hex(bytes[second]) {
                out.append(high << 4 | low)
                index = second
            } else {
                out.append(byte)
            }
            index = bytes.index(after: index)
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// What the simulator does with a request: answer it (maybe late), or misbehave on purpose.
public struct SimResponse: Sendable {
    public enum Disposition: Sendable {
        case respond
        /// Never answer; close the connection after the given seconds.
        case hang(seconds: Double)
        /// Close the connection with a TCP reset, no answer.
        case reset
    }

    public var status: Int
    public var headers: [(String, String)]
    public var body: Data
    public var delay: Double = 0
    public var disposition: Disposition = .respond

    public init(status: Int, headers: [(String, String)] = [], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func json(_ value: JSONValue, status: Int = 200, headers: [(String, String)] = []) -> SimResponse {
        SimResponse(status: status, headers: [("Content-Type", "application/json; charset=utf-8")] + headers, body: value.data)
    }

    public static func text(_ text: String, status: Int, contentType: String = "text/plain; charset=utf-8", headers: [(String, String)] = []) -> SimResponse {
        SimResponse(status: status, headers: [("Content-Type", contentType)] + headers, body: Data(text.utf8))
    }

    public static let notFound = SimResponse.text("not found", status: 404)
}
