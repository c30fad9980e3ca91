import Crypto
import Foundation

/// The hash chain of the audit log, as pure functions over entries.
public enum AuditChain {
    /// The `prev_hash` of the first entry.
    public static let genesisHash = String(repeating: "0", count: 64)

    /// SHA-256 over the canonical encoding of `entry` and its `prevHash`.
    public static func hash(of entry: AuditEntry) -> String {
        var hasher = SHA256()
        func field(_ value: String?) {
            guard let value else {
                hasher.update(data: Data("-;".utf8))
                return
            }
            let bytes = Data(value.utf8)
            hasher.update(data: Data("\(bytes.count):".utf8))
            hasher.update(data: bytes)
            hasher.update(data: Data(";".utf8))
        }
        field(String(entry.seq))
        field(entry.time)
        field(entry.runID)
        field(entry.actor)
        field(entry.command)
        field(entry.instance)
        field(entry.target)
        field(entry.action)
        field(entry.phase)
        field(entry.detail)
        field(entry.prevHash)
        return Data(hasher.finalize()).hexString
    }

    /// Why a log does not verify: the first entry that breaks the chain.
    public struct Break: Error, Sendable, Equatable, CustomStringConvertible {
        /// The sequence number where the chain breaks (the expected one, when an entry is missing).
        public let seq: Int64
        public let reason: String

        public var description: String { "audit entry \(seq): \(reason)" }
    }

    /// Checks entries one at a time, in stored order, and remembers the head.
    public struct Verifier: Sendable {
        public private(set) var count: Int64 = 0
        public private(set) var headHash = AuditChain.genesisHash

        public init() {}

        /// Checks the next entry; throws the first break found.
        public mutating func check(_ entry: AuditEntry) throws {
            let expectedSeq = count + 1
            if entry.seq != expectedSeq {
                let reason = entry.seq > expectedSeq
                    ? "missing: the log jumps from \(count) to \(entry.seq) (entries were deleted)"
                    : "out of order: found \(entry.seq) after \(count)"
                throw Break(seq: expectedSeq, reason: reason)
            }
            if entry.prevHash != headHash {
                throw Break(seq: entry.seq, reason: "does not follow the entry before it (prev_hash differs: an entry before it was changed, removed or reordered)")
            }
            if entry.computedHash != entry.hash {
                throw Break(seq: entry.seq, reason: "was changed after it was written (its hash does not match its content)")
            }
            count = entry.seq
            headHash = entry.hash
        }
    }

    /// Verifies a whole sequence of entries; returns the number verified.
    public static func verify<S: Sequence>(_ entries: S) throws -> Int64 where S.Element == AuditEntry {
        var verifier = Verifier()
        for entry in entries { try verifier.check(entry) }
        return verifier.count
    }
}
