import Foundation

/// Waits for test alerts to show in canary channels, with one poll of a channel serving every
/// instance waiting on it: `conversations.history` calls grow with channels and polling rounds,
/// not with instances.
///
/// Whoever waits on a channel that nobody is polling becomes its poller for one round, then
/// hands the role on; the rounds back off from 1 s to 5 s.
public final class CanaryWatcher: @unchecked Sendable {
    private let condition = NSCondition()
    private var waiting: [String: [String: Double]] = [:]
    private var seen: [String: (at: Double, messages: [ChannelMessage])] = [:]
    private var polling: Set<String> = []
    private var nextPoll: [String: Date] = [:]
    private var interval: [String: TimeInterval] = [:]
    /// Why the last poll of a channel failed, if it did.
    private var pollFailure: [String: String] = [:]

    /// How long past its deadline a waiter waits for a poll already in flight.
    static let pollGrace: TimeInterval = 10

    public init() {}

    /// A test alert seen in its channel: how long it took, and the messages that held it (one
    /// per Slack integration that posted it, each naming its bot).
    public struct Sighting: Sendable {
        public let latency: TimeInterval
        public let messages: [ChannelMessage]
    }

    /// Starts watching for `nonce` before anyone waits for it, so every poll looks for it: a
    /// group's alerts are all sent first and then awaited one by one.
    public func expect(nonce: String, sentAt: Date, channel: String) {
        condition.lock()
        waiting[channel, default: [:]][nonce] = sentAt.timeIntervalSince1970
        condition.unlock()
    }

    /// Waits until a message holding `nonce` appears in `channel`, or until `deadline`.
    /// Returns the seconds from `sentAt` to the message (by its Slack timestamp when it has
    /// one) and the messages that held it, or nil if it never came. If it never came and the last
    /// poll of the channel failed, throws that failure instead, so "not seen" is never said of a
    /// channel that could not be read.
    public func await(nonce: String, sentAt: Date, channel: String, deadline: Date, control: RunControl,
                      poll: (_ oldest: String) throws -> [ChannelMessage]) throws -> Sighting? {
        condition.lock()
        if waiting[channel]?[nonce] == nil, seen[nonce] == nil { waiting[channel, default: [:]][nonce] = sentAt.timeIntervalSince1970 }
        defer {
            waiting[channel]?.removeValue(forKey: nonce)
            seen.removeValue(forKey: nonce)
            condition.unlock()
        }
        while true {
            if let found = seen[nonce] { return Sighting(latency: max(0, found.at - sentAt.timeIntervalSince1970), messages: found.messages) }
            if let stop = control.stop { throw RunControl.Interrupted(reason: stop) }
            let now = Date()
            // A poll in flight when the time is up may still bring the message: wait for it, a little.
            if now >= deadline, polling.contains(channel), now < deadline.addingTimeInterval(CanaryWatcher.pollGrace) {
                _ = condition.wait(until: deadline.addingTimeInterval(CanaryWatcher.pollGrace))
                continue
            }
            if now >= deadline {
                guard let failure = pollFailure[channel] else { return nil }
                throw FleetError.failed("could not read \(channel.split(separator: "/").last ?? "") to look for the test alert: \(failure)")
            }
            let due = nextPoll[channel] ?? .distantPast
            if !polling.contains(channel), now >= due {
                polling.insert(channel)
                let oldest = (waiting[channel]?.values.min() ?? sentAt.timeIntervalSince1970) - 5
                condition.unlock()
                var messages: [ChannelMessage] = []
                var failure: String?
                do {
                    messages = try poll(String(format: "%.6f", oldest))
                } catch {
                    failure = ChangeExecutor.describe(error)
                }
                condition.lock()
                pollFailure[channel] = failure
                polling.remove(channel)
                let pause = min((interval[channel] ?? 0.7) * 1.5, 5)
                interval[channel] = pause
                nextPoll[channel] = Date().addingTimeInterval(pause)
                let polledAt = Date().timeIntervalSince1970
                for (waiter, sent) in waiting[channel] ?? [:] {
                    let holding = messages.filter { $0.text.contains(waiter) }
                    // The oldest (history is newest first): the first integration's post.
                    if let message = holding.last {
                        // Slack's timestamp when it is plausible (between the send and this poll);
                        // otherwise (a clock apart from ours) the time of the poll that saw it.
                        let ts = message.ts.flatMap { (sent - 1...polledAt + 1).contains($0) ? $0 : nil }
                        seen[waiter] = (ts ?? polledAt, holding + (seen[waiter]?.messages ?? []))
                    }
                }
                condition.broadcast()
                continue
            }
            _ = condition.wait(until: min(deadline, polling.contains(channel) ? deadline : max(due, now.addingTimeInterval(0.05))))
        }
    }
}
