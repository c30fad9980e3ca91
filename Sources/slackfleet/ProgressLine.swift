import ArgumentParser
import Foundation
import Logging
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

/// Progress on stderr, with the ETA the pace so far implies: a live line on a terminal; in a
/// log (cron), a line at most once a minute. Standard output is left to the results.
final class ProgressLine: @unchecked Sendable {
    private let terminal: Bool
    private let lock = NSLock()
    private let started = Date()
    private var lastLogged = Date()

    init(terminal: Bool) {
        self.terminal = terminal
    }

    func update(_ progress: RunProgress) {
        lock.lock()
        defer { lock.unlock() }
        // A terminal gets at most ten redraws a second; a log, one line a minute.
        guard Date().timeIntervalSince(lastLogged) >= (terminal ? 0.1 : 60) || (terminal && progress.groupsDone == progress.groups) else { return }
        lastLogged = Date()
        let (done, total, changed, failed) = (progress.groupsDone, progress.groups, progress.changed, progress.failed)
        let elapsed = Date().timeIntervalSince(started)
        // The quotas' ETA when writes remain (they set the pace); else the pace so far.
        let remaining = progress.quotaETA ?? (done > 0 ? elapsed / Double(done) * Double(total - done) : nil)
        let eta = done < total ? remaining.map { " ETA \(Runner.duration($0))" } ?? "" : ""
        let line = "[\(done)/\(total) app groups] changed=\(changed) failed=\(failed)\(eta)"
        FileHandle.standardError.write(Data((terminal ? "\r\u{1b}[K" + line : line + "\n").utf8))
    }

    func finish() {
        guard terminal else { return }
        FileHandle.standardError.write(Data("\r\u{1b}[K".utf8))
    }

}
