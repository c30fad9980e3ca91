import Foundation

/// Times as the database and the audit log store them: UTC, ISO 8601, milliseconds.
public enum Timestamp {
    /// The current time in the stored form.
    public static func now() -> String { format(Date()) }

    /// `date` in the stored form, for example `2026-11-29T03:34:18.123Z`.
    public static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
    }

    /// Parses the stored form, or any RFC 3339 time with or without fractional seconds.
    public static func parse(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt).parse(text) {
            return date
        }
        return try? Date.ISO8601FormatStyle(timeZone: .gmt).parse(text)
    }
}
