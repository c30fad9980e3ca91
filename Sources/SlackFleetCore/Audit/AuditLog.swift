import Foundation
import GRDB

/// The append-only audit log: every change the tool makes, chained by SHA-256, with the
/// head signed under a key derived from the master key.
///
/// Appends come two ways: `append(_:in:)` inside a transaction that also makes the change
/// (an inventory import and its entries commit together), and `record(_:)`, which makes an
/// entry durable on its own before a change to the outside world. Concurrent `record` calls
/// share commits: whichever caller finds no commit in progress writes every waiting entry
/// in one transaction, so 64 workers do not queue on 64 fsyncs. `commit(_:_:)` lets other
/// writes that must be durable at once (the credentials of a new app) share those commits too.
public final class AuditLog: @unchecked Sendable {
    /// The database the log lives in.
    public let store: FleetStore
    /// Who is writing.
    public let context: AuditContext
    private let keyring: Keyring

    // Group commit state, guarded by `condition`.
    private let condition = NSCondition()
    private var waiting: [Queued] = []
    private var results: [Int: Result<[AuditEntry], any Error>] = [:]
    private var nextTicket = 0
    private var committing = false
    /// Queued entries nobody waits for; their results are dropped once committed.
    private var deferredTickets: Set<Int> = []
    /// A queued entry that failed to commit: reported by the next flush.
    private var deferredFailure: (any Error)?
    /// Writers inside `record` now, and a decaying high-water mark of it: how many a leader
    /// can expect to join a batch.
    private var writersInside = 0
    private var recentWriters = 0

    static let headMetaKey = "audit_head"

    public init(store: FleetStore, keyring: Keyring, context: AuditContext) {
        self.store = store
        self.keyring = keyring
        self.context = context
    }

    /// The fingerprint of a secret, the only form in which one may enter the log.
    public func fingerprint(of value: SecretValue) -> String {
        keyring.fingerprint(of: value)
    }

    /// Appends `drafts` inside the caller's write transaction and re-signs the head.
    @discardableResult
    public func append(_ drafts: [AuditDraft], in db: Database) throws -> [AuditEntry] {
        guard !drafts.isEmpty else { return [] }
        // Cached statements here and in signHead: every commit of every run comes through.
        let last = try Row.fetchOne(db.cachedStatement(sql: "SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1"))
        var seq: Int64 = last?["seq"] ?? 0
        var previous: String = last?["hash"] ?? AuditChain.genesisHash
        let time = Timestamp.now()
        var entries: [AuditEntry] = []
        entries.reserveCapacity(drafts.count)
        for draft in drafts {
            seq += 1
            var entry = AuditEntry(
                seq: seq, time: time, runID: context.runID, actor: context.actor, command: context.command,
                instance: draft.instance, target: draft.target, action: draft.action, phase: draft.phase.rawValue,
                detail: try AuditLog.canonicalJSON(draft.detail), prevHash: previous, hash: "")
            entry.hash = entry.computedHash
            try entry.append(to: db)
            previous = entry.hash
            entries.append(entry)
        }
        try signHead(seq: seq, hash: previous, keyring: keyring, in: db)
        return entries
    }

    /// Entries or a write waiting for the next shared commit.
    private struct Queued {
        let ticket: Int
        let drafts: [AuditDraft]
        /// A write of the caller's own, run in a savepoint of the shared transaction while its
        /// caller waits in `commit`.
        let work: ((Database) throws -> Void)?
        /// What the write does, for its error message.
        let what: String
    }

    /// Appends one entry and returns once it is durable, sharing the commit with concurrent callers.
    @discardableResult
    public func record(_ draft: AuditDraft) throws -> AuditEntry {
        guard let entry = try record([draft]).first else {
            throw FleetError.failed("the audit entry was not written")
        }
        return entry
    }

    /// Appends `drafts`, one after another, and returns once they are durable (one commit,
    /// shared with concurrent callers).
    @discardableResult
    public func record(_ drafts: [AuditDraft]) throws -> [AuditEntry] {
        guard !drafts.isEmpty else { return [] }
        return try enqueue(drafts, work: nil, what: "writing \(drafts.count == 1 ? "an audit entry" : "audit entries")")
    }

    /// Runs `work` in a write transaction shared with concurrent audit entries and writes, and
    /// returns once it is durable. For a write that must be on disk before the run goes on
    /// (the credentials Slack shows once): it costs no commit of its own. If `work` throws,
    /// only its own changes are rolled back and the error is thrown here; the others commit.
    public func commit<T>(_ what: String, _ work: @escaping (Database) throws -> T) throws -> T {
        var value: T?
        _ = try enqueue([], work: { db in value = try work(db) }, what: what)
        guard let value else { throw FleetError.failed("\(what): the write was not made") }
        return value
    }

    /// Commits `drafts` and `work` (if any) with everything queued before them; returns the
    /// entries written for `drafts`.
    @discardableResult
    private func enqueue(_ drafts: [AuditDraft], work: ((Database) throws -> Void)?, what: String) throws -> [AuditEntry] {
        condition.lock()
        let ticket = nextTicket
        nextTicket += 1
        let flushOnly = drafts.isEmpty && work == nil
        if !flushOnly { waiting.append(Queued(ticket: ticket, drafts: drafts, work: work, what: what)) }
        writersInside += 1
        recentWriters = max(recentWriters, writersInside)
        while true {
            if let result = results.removeValue(forKey: ticket) {
                writersInside -= 1
                condition.unlock()
                return try result.get()
            }
            if flushOnly, !committing, waiting.isEmpty {
                // A flush with nothing left to commit.
                writersInside -= 1
                condition.unlock()
                return []
            }
            if committing {
                condition.wait()
                continue
            }
            // Lead. Writers woken by the previous commit re-enqueue within microseconds, but only
            // once this lock is free: under contention, give them a moment to join the batch,
            // so one fsync carries many entries. A lone writer never waits.
            committing = true
            if recentWriters > 1 {
                // Gather only while writers keep arriving: when they are busy elsewhere (a job's
                // lanes wait on HTTP), commit at once instead of waiting for nobody.
                let deadline = DispatchTime.now() + .microseconds(1500)
                var seen = waiting.count
                while waiting.count < recentWriters * 3 / 4, DispatchTime.now() < deadline {
                    condition.unlock()
                    usleep(100)
                    condition.lock()
                    if waiting.count == seen { break }
                    seen = waiting.count
                }
            }
            while !waiting.isEmpty {
                let batch = waiting
                recentWriters = max(writersInside, recentWriters * 7 / 8)
                waiting.removeAll(keepingCapacity: true)
                condition.unlock()
                let outcomes = commit(batch)
                condition.lock()
                for (item, outcome) in zip(batch, outcomes) {
                    if deferredTickets.remove(item.ticket) != nil {
                        if case .failure(let error) = outcome { deferredFailure = error }
                    } else {
                        results[item.ticket] = outcome
                    }
                }
                condition.broadcast()
            }
            committing = false
        }
    }

    /// One transaction for `batch`: each write in a savepoint of its own (one that fails is
    /// rolled back alone and fails alone), then every entry of the writes that succeeded. If the
    /// transaction itself fails, every member fails.
    private func commit(_ batch: [Queued]) -> [Result<[AuditEntry], any Error>] {
        var outcomes: [Result<[AuditEntry], any Error>] = Array(repeating: .success([]), count: batch.count)
        do {
            try store.pool.write { db in
                var drafts: [(index: Int, draft: AuditDraft)] = []
                for (index, item) in batch.enumerated() {
                    if let work = item.work {
                        do {
                            try db.inSavepoint {
                                try work(db)
                                return .commit
                            }
                        } catch {
                            outcomes[index] = .failure(error is DatabaseError ? StoreError(error, while: item.what) : error)
                            continue
                        }
                    }
                    drafts += item.drafts.map { (index, $0) }
                }
                var written: [Int: [AuditEntry]] = [:]
                for (entry, item) in zip(try append(drafts.map(\.draft), in: db), drafts) {
                    written[item.index, default: []].append(entry)
                }
                for (index, entries) in written { outcomes[index] = .success(entries) }
            }
        } catch {
            return batch.map { item in .failure(error is DatabaseError ? StoreError(error, while: item.what) : error) }
        }
        return outcomes
    }

    /// Queues an entry without waiting for it to be durable: the next `record` (by any caller)
    /// or `flush` commits it, in order. For outcomes: the intent before the call must be
    /// durable, the outcome after it may ride along with the next commit; if the process dies
    /// first, the intent is found without an outcome and recovered by the next run.
    public func recordDeferred(_ draft: AuditDraft) {
        condition.lock()
        let ticket = nextTicket
        nextTicket += 1
        waiting.append(Queued(ticket: ticket, drafts: [draft], work: nil, what: "writing an audit entry"))
        deferredTickets.insert(ticket)
        condition.unlock()
    }

    /// Commits every queued entry; call before the process ends.
    public func flush() throws {
        try enqueue([], work: nil, what: "writing the audit log")
        condition.lock()
        let failure = deferredFailure
        deferredFailure = nil
        condition.unlock()
        if let failure { throw failure }
    }

    /// Re-signs the head under another keyring, inside the caller's transaction (for rekey).
    func resignHead(with newKeyring: Keyring, in db: Database) throws {
        guard let last = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1") else { return }
        try signHead(seq: last["seq"], hash: last["hash"], keyring: newKeyring, in: db)
    }

    private func signHead(seq: Int64, hash: String, keyring: Keyring, in db: Database) throws {
        let head = SignedHead(seq: seq, hash: hash, mac: keyring.auditHeadMAC(seq: seq, hash: hash))
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)")
            .execute(arguments: [AuditLog.headMetaKey, head.encoded])
    }

    static func canonicalJSON(_ detail: [String: JSON]) throws -> String {
        JSON.object(detail).canonicalJSON
    }
}

/// The last entry's sequence number and hash, signed with the audit key.
struct SignedHead: Decodable {
    let seq: Int64
    let hash: String
    let mac: String

    /// The stored form (read back with JSONDecoder), written without JSONEncoder's cost on
    /// every commit.
    var encoded: Data {
        let value: JSON = ["seq": .int(Int(seq)), "hash": .string(hash), "mac": .string(mac)]
        return value.data
    }
}

/// What `audit verify` found.
public struct AuditVerification: Sendable {
    /// Entries checked.
    public let count: Int64
    /// The last entry's hash: ship it off the machine and pass it back with `--expect-head`.
    public let headHash: String
    /// Whether the signed head was checked (it needs the master key).
    public let headChecked: Bool
}

extension AuditLog {
    /// Verifies the chain of `store`'s log and, given a keyring, its signed head.
    ///
    /// `expectedHead` (`SEQ:HASH`, from an earlier `audit verify` or an export kept elsewhere)
    /// proves that entry is still there, unchanged: the check that catches a truncation even
    /// by someone holding the key.
    public static func verify(_ store: FleetStore, keyring: Keyring?, expectedHead: (seq: Int64, hash: String)? = nil) throws -> AuditVerification {
        try store.read("verifying the audit log") { db in
            var verifier = AuditChain.Verifier()
            var expectedSeen = false
            let cursor = try AuditEntry.fetchCursor(db, sql: "SELECT * FROM audit_entry ORDER BY seq")
            while let entry = try cursor.next() {
                try verifier.check(entry)
                if let expectedHead, entry.seq == expectedHead.seq {
                    guard entry.hash == expectedHead.hash else {
                        throw AuditChain.Break(seq: entry.seq, reason: "differs from the head you expected (\(expectedHead.hash)): the log was rewritten from here on")
                    }
                    expectedSeen = true
                }
            }
            if let expectedHead, !expectedSeen {
                throw AuditChain.Break(seq: expectedHead.seq, reason: "is missing: the log ends at \(verifier.count), so entries were removed from its end")
            }
            guard let keyring else {
                return AuditVerification(count: verifier.count, headHash: verifier.headHash, headChecked: false)
            }
            guard let data = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [headMetaKey]) else {
                if verifier.count == 0 {
                    return AuditVerification(count: 0, headHash: verifier.headHash, headChecked: true)
                }
                throw AuditChain.Break(seq: verifier.count, reason: "the signed head is missing: the log was written or altered without the master key")
            }
            let head = try JSONDecoder().decode(SignedHead.self, from: data)
            guard head.mac == keyring.auditHeadMAC(seq: head.seq, hash: head.hash) else {
                throw AuditChain.Break(seq: head.seq, reason: "the head's signature does not verify with this master key: the log was rewritten without the key")
            }
            try verifier.checkEnd(signedHead: head.seq, hash: head.hash)
            return AuditVerification(count: verifier.count, headHash: verifier.headHash, headChecked: true)
        }
    }

    /// Entries, oldest first, optionally for one instance and from a time on.
    public static func entries(_ store: FleetStore, instance: String? = nil, since: String? = nil, limit: Int? = nil) throws -> [AuditEntry] {
        try store.read("reading the audit log") { db in
            var request = AuditEntry.order(Column("seq"))
            if let instance { request = request.filter(Column("instance") == instance) }
            if let since { request = request.filter(Column("time") >= since) }
            if let limit {
                // The newest `limit` entries, still oldest first.
                let newest = try request.reversed().limit(limit).fetchAll(db)
                return newest.reversed()
            }
            return try request.fetchAll(db)
        }
    }

    /// Writes every entry as one JSON object per line, oldest first, without loading the log into memory.
    public static func export(_ store: FleetStore, to handle: FileHandle) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try store.read("exporting the audit log") { db in
            let cursor = try AuditEntry.fetchCursor(db, sql: "SELECT * FROM audit_entry ORDER BY seq")
            var buffer = Data()
            while let entry = try cursor.next() {
                buffer.append(try encoder.encode(entry))
                buffer.append(0x0a)
                if buffer.count > 1 << 16 {
                    handle.write(buffer)
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            handle.write(buffer)
        }
    }
}
