import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Named points where a test can have the process killed (SIGKILL, as a power cut or the OOM
/// killer would) to prove that the next run recovers.
///
/// `SLACKFLEET_CRASH_AT=NAME` kills the process the first time it reaches `NAME`;
/// `NAME#N` the N-th time. Names: `before:<action>:<kind>` (the audit intent is durable, the call
/// not made), `after:<action>:<kind>` (the call made, its outcome not yet recorded), where kind
/// is the target's prefix (`slack`, `k8s`, `exec`, `db`), and the named steps of the jobs
/// (`rotate:pending-stored`, `rotate:promoted`...). Unset, it costs one dictionary lookup.
public enum CrashPoint {
    private static let target: (name: String, count: Int)? = {
        guard let raw = ProcessInfo.processInfo.environment["SLACKFLEET_CRASH_AT"], !raw.isEmpty else { return nil }
        let parts = raw.split(separator: "#", maxSplits: 1)
        return (String(parts[0]), parts.count == 2 ? max(1, Int(parts[1]) ?? 1) : 1)
    }()
    nonisolated(unsafe) private static var hits = 0
    private static let lock = NSLock()

    public static func reach(_ name: @autoclosure () -> String) {
        guard let target else { return }
        guard name() == target.name else { return }
        lock.lock()
        hits += 1
        let kill = hits == target.count
        lock.unlock()
        if kill {
            FileHandle.standardError.write(Data("SLACKFLEET_CRASH_AT: killing the process at \(target.name)\n".utf8))
            Glibc.kill(getpid(), SIGKILL)
        }
    }
}
