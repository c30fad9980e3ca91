import Foundation

/// A JSON reader straight into `JSON` (RFC 8259), for every answer from Slack, W&B and
/// Kubernetes and every stored detail.
///
/// Written by hand because JSONSerialization builds Foundation objects that then have to be
/// cast back one value at a time; in a run of a thousand instances that cast was a tenth of
/// the tool's CPU time. Integers that fit in `Int` stay integers, other numbers are doubles;
/// a repeated key keeps its last value; nesting deeper than `maximumDepth` is refused rather
/// than allowed to exhaust the stack.
struct JSONParser {
    struct Failure: Error, CustomStringConvertible {
        let reason: String
        let offset: Int
        var description: String { "invalid JSON at byte \(offset): \(reason)" }
    }

    static let maximumDepth = 512

    private let bytes: UnsafeBufferPointer<UInt8>
    private var position = 0
    private var depth = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    static func parse<Bytes: ContiguousBytes>(_ data: Bytes) throws -> JSON {
        var value = JSON.null
        try reading(data) { parser in value = try parser.value() }
        return value
    }

    /// Reads the JSON object in `data` one member at a time, without building the object: for the
    /// stored columns every run reads for every instance, where the dictionary `parse` builds was
    /// most of the cost. A repeated key is given twice, in order (the last is what `parse` keeps).
    static func forEachMember<Bytes: ContiguousBytes>(of data: Bytes, _ member: (String, JSON) throws -> Void) throws {
        try reading(data) { parser in
            guard parser.current == UInt8(ascii: "{") else { throw parser.failure("expected an object") }
            try parser.members(closing: "}", in: "an object") { parser in
                let key = try parser.key()
                try member(key, try parser.value())
            }
        }
    }

    /// Reads the JSON array in `data` one item at a time, without building the array.
    static func forEachItem<Bytes: ContiguousBytes>(of data: Bytes, _ item: (JSON) throws -> Void) throws {
        try reading(data) { parser in
            guard parser.current == UInt8(ascii: "[") else { throw parser.failure("expected an array") }
            try parser.members(closing: "]", in: "an array") { parser in try item(try parser.value()) }
        }
    }

    /// Runs `body` on a parser at the first value of `data`, then checks nothing follows it.
    private static func reading<Bytes: ContiguousBytes>(_ data: Bytes, _ body: (inout JSONParser) throws -> Void) throws {
        try data.withUnsafeBytes { raw in
            var parser = JSONParser(raw.bindMemory(to: UInt8.self))
            parser.skipWhitespace()
            try body(&parser)
            parser.skipWhitespace()
            guard parser.position == parser.bytes.count else { throw parser.failure("unexpected content after the value") }
        }
    }

    private func failure(_ reason: String) -> Failure {
        Failure(reason: reason, offset: position)
    }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func value() throws -> JSON {
        guard let byte = current else { throw failure("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try list()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw failure("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw failure("unexpected end of input") }
        for index in 0..<count where bytes[position + index] != word.utf8Start[index] {
            throw failure("unexpected character")
        }
        position += count
    }

    private mutating func object() throws -> JSON {
        var fields: [String: JSON] = [:]
        try members(closing: "}", in: "an object") { parser in
            let key = try parser.key()
            fields[key] = try parser.value()
        }
        return .object(fields)
    }

    /// A member's key and the colon after it; `position` is at the key's opening quote, and ends
    /// at the value.
    private mutating func key() throws -> String {
        guard current == UInt8(ascii: "\"") else { throw failure("expected a key in double quotes") }
        let key = try string()
        skipWhitespace()
        guard current == UInt8(ascii: ":") else { throw failure("expected ':' after a key") }
        position += 1
        skipWhitespace()
        return key
    }

    private mutating func list() throws -> JSON {
        var items: [JSON] = []
        try members(closing: "]", in: "an array") { parser in items.append(try parser.value()) }
        return .list(items)
    }

    /// The comma-separated members of an object or array, each read by `member`; `position` is
    /// at the opening bracket, and ends after `closing`.
    private mutating func members(closing: Unicode.Scalar, in what: String, _ member: (inout JSONParser) throws -> Void) throws {
        depth += 1
        if depth > JSONParser.maximumDepth { throw failure("nested deeper than \(JSONParser.maximumDepth) levels") }
        let close = UInt8(ascii: closing)
        position += 1
        skipWhitespace()
        if current != close {
            while true {
                try member(&self)
                skipWhitespace()
                guard current == UInt8(ascii: ",") else { break }
                position += 1
                skipWhitespace()
            }
            guard current == close else { throw failure("expected ',' or '\(closing)' in \(what)") }
        }
        position += 1
        depth -= 1
    }

    /// A string; `position` is at its opening quote.
    private mutating func string() throws -> String {
        position += 1
        let start = position
        // The common case: no escape, so the bytes are the string (once checked as UTF-8).
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                let text = try utf8(start..<position)
                position += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw failure("a control character inside a string") }
            position += 1
        }
        guard position < bytes.count else { throw failure("unterminated string") }
        var text = try utf8(start..<position)
        var run = position
        while position < bytes.count {
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                text += try utf8(run..<position)
                position += 1
                return text
            case UInt8(ascii: "\\"):
                text += try utf8(run..<position)
                position += 1
                guard let escaped = current else { throw failure("unterminated string") }
                position += 1
                switch escaped {
                case UInt8(ascii: "\""): text += "\""
                case UInt8(ascii: "\\"): text += "\\"
                case UInt8(ascii: "/"): text += "/"
                case UInt8(ascii: "b"): text += "\u{08}"
                case UInt8(ascii: "f"): text += "\u{0C}"
                case UInt8(ascii: "n"): text += "\n"
                case UInt8(ascii: "r"): text += "\r"
                case UInt8(ascii: "t"): text += "\t"
                case UInt8(ascii: "u"): text.unicodeScalars.append(try unicodeEscape())
                default: throw failure("an unknown escape in a string")
                }
                run = position
            default:
                if byte < 0x20 { throw failure("a control character inside a string") }
                position += 1
            }
        }
        throw failure("unterminated string")
    }

    /// The scalar of `\uXXXX` (a surrogate pair takes two); `position` is after the `u`.
    private mutating func unicodeEscape() throws -> Unicode.Scalar {
        let first = try hex4()
        if (0xD800...0xDBFF).contains(first) {
            guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                throw failure("a lone surrogate in a \\u escape")
            }
            position += 2
            let second = try hex4()
            guard (0xDC00...0xDFFF).contains(second) else { throw failure("a lone surrogate in a \\u escape") }
            let value = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            guard let scalar = Unicode.Scalar(value) else { throw failure("an invalid \\u escape") }
            return scalar
        }
        guard let scalar = Unicode.Scalar(first) else { throw failure("a lone surrogate in a \\u escape") }
        return scalar
    }

    private mutating func hex4() throws -> UInt32 {
        guard position + 4 <= bytes.count else { throw failure("unterminated string") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("an invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    private func utf8(_ range: Range<Int>) throws -> String {
        guard let text = String(validating: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self) else {
            throw Failure(reason: "a string that is not valid UTF-8", offset: range.lowerBound)
        }
        return text
    }

    private mutating func number() throws -> JSON {
        let start = position
        var isInteger = true
        if current == UInt8(ascii: "-") { position += 1 }
        guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { throw failure("a number without digits") }
        if first == UInt8(ascii: "0") {
            position += 1
        } else {
            skipDigits()
        }
        if current == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            guard skipDigits() > 0 else { throw failure("a number without digits after '.'") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            isInteger = false
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard skipDigits() > 0 else { throw failure("a number without digits in its exponent") }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        if isInteger, let integer = Int(text) { return .int(integer) }
        guard let double = Double(text), double.isFinite else { throw Failure(reason: "a number out of range", offset: start) }
        return .double(double)
    }

    @discardableResult
    private mutating func skipDigits() -> Int {
        let start = position
        while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
        return position - start
    }
}
