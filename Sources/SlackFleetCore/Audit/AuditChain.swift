import Crypto
import Foundation

/// The hash chain of the audit log, as pure functions over entries.
public enum AuditChain {
    /// The `prev_hash` of the first entry.
    public static let genesisHash = String(repeating: "0", count: 64)

    /// SHA-256 over the canonical encoding of `entry` and its `prevHash`.
    ///
    /// Each field is written as `<UTF-8 length>:<bytes>;` (a missing one as `-;`), so no two
    /// different entries share an encoding.
    public static func hash(of entry: AuditEntry) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256 + entry.detail.utf8.count)
        func field(_ value: String?) {
            guard let value else {
                bytes.append(0x2d)
                bytes.append(0x3b)
                return
            }
            bytes.append(contentsOf: String(value.utf8.count).utf8)
            bytes.append(0x3a)
            bytes.append(contentsOf: value.utf8)
            bytes.append(0x3b)
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
        return SHA256.hash(data: bytes).hexString
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

        /// Checks that the log ends at the signed head: catches entries removed from the end,
        /// and entries appended or rewritten by someone without the master key.
        public func checkEnd(signedHead seq: Int64, hash: String) throws {
            guard seq == count, hash == headHash else {
                let reason = seq > count
                    ? "the signed head is entry \(seq) but the log ends at \(count): entries were removed from its end"
                    : seq < count
                    ? "the log ends at \(count) but the signed head is entry \(seq): entries were added without the master key"
                    : "the last entry is not the one the signed head names: the log was rewritten without the master key"
                throw Break(seq: min(seq, count + 1), reason: reason)
            }
        }
    }

    /// Verifies a whole sequence of entries, and that it ends at `signedHead` when given;
    /// returns the number verified.
    public static func verify<S: Sequence>(_ entries: S, signedHead: (seq: Int64, hash: String)? = nil) throws -> Int64 where S.Element == AuditEntry {
        var verifier = Verifier()
        for entry in entries { try verifier.check(entry) }
        if let signedHead { try verifier.checkEnd(signedHead: signedHead.seq, hash: signedHead.hash) }
        return verifier.count
    }
}
