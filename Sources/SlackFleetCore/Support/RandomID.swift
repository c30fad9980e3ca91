import Foundation

/// Identifiers for changes: UUIDs of version 7 (RFC 9562), lowercased.
///
/// Version 7 starts with the time in milliseconds and is random after it, so identifiers made
/// one after another sort one after another: the audit log's index on change IDs grows at its
/// end, and a commit of many entries touches a page or two of it, not one page per entry.
/// The random part comes from the system generator (`getrandom`); Foundation's `UUID()` on
/// Linux opens, reads and closes /dev/urandom for every identifier.
public enum RandomID {
    public static func uuid(now: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        let milliseconds = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        let high: UInt64 = generator.next(), low: UInt64 = generator.next()
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - UInt64(index)))) }
        for index in 6..<8 { bytes[index] = UInt8(truncatingIfNeeded: high >> (8 * UInt64(index))) }
        for index in 8..<16 { bytes[index] = UInt8(truncatingIfNeeded: low >> (8 * UInt64(index - 8))) }
        bytes[6] = (bytes[6] & 0x0f) | 0x70 // version 7
        bytes[8] = (bytes[8] & 0x3f) | 0x80 // RFC 9562 variant
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
