import Foundation
import GRDB

/// A database failure, described with its SQLite result code and what was being done.
///
/// The SQL is shown, but never the statement arguments: they may hold secrets (encrypted
/// or not), so they are replaced by their count.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    /// What the tool was doing, in the user's terms.
    public let operation: String
    /// The SQLite extended result code, when the failure came from SQLite.
    public let resultCode: Int32?
    /// SQLite's message, without arguments.
    public let detail: String
    /// The statement that failed, if any.
    public let sql: String?

    public init(_ error: any Error, while operation: String) {
        self.operation = operation
        if let error = error as? DatabaseError {
            resultCode = error.extendedResultCode.rawValue
            detail = error.message ?? "\(error.resultCode)"
            sql = error.sql
        } else {
            resultCode = nil
            detail = "\(error)"
            sql = nil
        }
    }

    /// Whether another process holds the database (SQLITE_BUSY or SQLITE_LOCKED).
    public var isBusy: Bool {
        guard let code = resultCode else { return false }
        let primary = code & 0xff
        return primary == 5 || primary == 6
    }

    public var description: String {
        var text = "database error while \(operation)"
        if let code = resultCode { text += " (SQLite code \(code))" }
        text += ": \(detail)"
        if let sql { text += " [SQL: \(sql)]" }
        if isBusy {
            text += "; another slackfleet process is writing to this database: try again when it is done"
        }
        return text
    }
}
