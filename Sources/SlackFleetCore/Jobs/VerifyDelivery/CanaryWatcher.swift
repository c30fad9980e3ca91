import Foundation

/// Waits for test alerts to show in canary channels, with one poll of a channel serving every
/// instance waiting on it: `conversations.history` calls grow with channels, polling rounds and
/// pages of new messages, not with instances.
///
/// Each channel has a watermark, the newest message read: a poll reads only what came after it,
/// through every page (a channel that a 1,000-instance group posts to holds several), so each
/// message is read once. Every test alert read is kept for a while by its nonce, so an instance
/// that starts waiting after the poll that read its alert still finds it.
///
/// Whoever waits on a channel that nobody is polling becomes its poller for one round, then
/// hands the role on; the rounds back off from 1 s to 5 s.
public final class CanaryWatcher: @unchecked Sendable {
    private let condition = NSCondition()
    /// The nonces waited for, per channel, with when each alert was sent.
    private var waiting: [String: [String: Double]] = [:]
    /// Test alerts read, per channel and nonce.
    private var found: [String: [String: Found]] = [:]
    private var watermark: [String: (ts: String, value: Double)] = [:]
    private var polling: Set<String> = []
    private var nextPoll: [String: Date] = [:]
    private var interval: [String: TimeInterval] = [:]
    /// Why the last poll of a channel failed, if it did, and whether asking again cannot help
    /// (the bot is not in the channel, a scope is missing): then every waiter fails at once.
    private var pollFailure: [String: (reason: String, lasting: Bool)] = [:]

    /// How long past its deadline a waiter waits for a poll already in flight.
    static let pollGrace: TimeInterval = 10
    /// How long an alert read is kept for a waiter that has not come yet.
    static let keepFound: TimeInterval = 600
    /// Every nonce starts so: `slackfleet-canary-` and 13 characters of a UUID.
    public static let noncePrefix = "slackfleet-canary-"
    static let nonceLength = noncePrefix.count + 13

    public init() {}

    /// A test alert seen in its channel: how long it took, and the messages that held it (one
    /// per Slack integration that posted it, each naming its bot).
    public struct Sighting: Sendable {
        public let latency: TimeInterval
        public let messages: [ChannelMessage]
    }

    private struct Found {
        /// Newest first, as read.
        var messages: [ChannelMessage]
        /// When the poll that first read it ended (seconds since 1970).
        let polledAt: Double
    }

    /// The nonces in a message's text.
    static func nonces(in text: String) -> [String] {
        var found: [String] = []
        var rest = text[...]
        while let range = rest.range(of: noncePrefix) {
            let end = rest.index(range.lowerBound, offsetBy: nonceLength, limitedBy: rest.endIndex) ?? rest.endIndex
            let nonce = rest[range.lowerBound..<end]
            if nonce.count == nonceLength, !found.contains(where: { $0 == nonce }) { found.append(String(nonce)) }
            rest = rest[range.upperBound...]
        }
        return found
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
    /// channel that could not be read. `poll` reads every message after `oldest` (exclusive).
    public func await(nonce: String, sentAt: Date, channel: String, deadline: Date, control: RunControl,
                      poll: (_ oldest: String) throws -> [ChannelMessage]) throws -> Sighting? {
        condition.lock()
        let sent = sentAt.timeIntervalSince1970
        waiting[channel, default: [:]][nonce] = sent
        defer {
            waiting[channel]?.removeValue(forKey: nonce)
            found[channel]?.removeValue(forKey: nonce)
            if waiting[channel]?.isEmpty ?? true {
                // Nobody waits here: the next waiter reads from its own send time again, instead
                // of through everything posted in between.
                waiting.removeValue(forKey: channel)
                watermark.removeValue(forKey: channel)
            }
            condition.unlock()
        }
        while true {
            if let seen = found[channel]?[nonce] {
                // The oldest (history is newest first): the first integration's post. Slack's
                // timestamp when it is plausible (between the send and the poll that read it);
                // otherwise (a clock apart from ours) the time of that poll.
                let ts = seen.messages.last?.ts.flatMap { (sent - 1...seen.polledAt + 1).contains($0) ? $0 : nil }
                return Sighting(latency: max(0, (ts ?? seen.polledAt) - sent), messages: seen.messages)
            }
            if let stop = control.stop { throw RunControl.Interrupted(reason: stop) }
            if let failure = pollFailure[channel], failure.lasting {
                throw FleetError.failed("could not read \(channel.split(separator: "/").last ?? "") to look for the test alert: \(failure.reason)")
            }
            let now = Date()
            // A poll in flight when the time is up may still bring the message: wait for it, a little.
            if now >= deadline, polling.contains(channel), now < deadline.addingTimeInterval(CanaryWatcher.pollGrace) {
                _ = condition.wait(until: deadline.addingTimeInterval(CanaryWatcher.pollGrace))
                continue
            }
            if now >= deadline {
                guard let failure = pollFailure[channel] else { return nil }
                throw FleetError.failed("could not read \(channel.split(separator: "/").last ?? "") to look for the test alert: \(failure.reason)")
            }
            let due = nextPoll[channel] ?? .distantPast
            if !polling.contains(channel), now >= due {
                pollOnce(channel, fallback: sent, poll: poll)
                continue
            }
            _ = condition.wait(until: min(deadline, polling.contains(channel) ? deadline : max(due, now.addingTimeInterval(0.05))))
        }
    }

    /// One poll of `channel`, as its poller (the lock held on entry and exit, not during the call).
    private func pollOnce(_ channel: String, fallback sent: Double, poll: (_ oldest: String) throws -> [ChannelMessage]) {
        polling.insert(channel)
        let oldest = watermark[channel]?.ts ?? String(format: "%.6f", (waiting[channel]?.values.min() ?? sent) - 5)
        condition.unlock()
        var messages: [ChannelMessage] = []
        var failure: (reason: String, lasting: Bool)?
        do {
            messages = try poll(oldest)
        } catch {
            let passes = (error as? TransportError)?.isRetryable == true || (error as? ServiceError)?.isRetryable == true || error is RunControl.Interrupted
            failure = (ChangeExecutor.describe(error), !passes)
        }
        let polledAt = Date().timeIntervalSince1970
        condition.lock()
        pollFailure[channel] = failure
        polling.remove(channel)
        let pause = min((interval[channel] ?? 0.7) * 1.5, 5)
        interval[channel] = pause
        nextPoll[channel] = Date().addingTimeInterval(pause)
        if let newest = messages.compactMap({ message in message.ts.map { (message.tsText ?? String(format: "%.6f", $0), $0) } }).max(by: { $0.1 < $1.1 }),
           newest.1 > watermark[channel]?.value ?? -.infinity {
            watermark[channel] = (newest.0, newest.1)
        }
        var known = found[channel] ?? [:]
        known = known.filter { waiting[channel]?[$0.key] != nil || polledAt - $0.value.polledAt < CanaryWatcher.keepFound }
        for message in messages {
            for nonce in CanaryWatcher.nonces(in: message.text) {
                // A message read twice (after a channel's watermark was reset) counts once.
                if known[nonce]?.messages.contains(where: { $0.tsText != nil && $0.tsText == message.tsText }) == true { continue }
                known[nonce, default: Found(messages: [], polledAt: polledAt)].messages.append(message)
            }
        }
        found[channel] = known
        condition.broadcast()
    }
}
