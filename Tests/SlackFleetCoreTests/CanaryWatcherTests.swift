import Foundation
@testable import SlackFleetCore
import Testing

@Suite("Canary watcher and Kubernetes refusals")
struct CanaryWatcherTests {
    /// A channel the fake poll reads: messages newest first, and the `oldest` of each poll.
    final class Channel: @unchecked Sendable {
        var messages: [ChannelMessage] = []
        var asked: [String] = []
        var failure: (any Error)?

        func post(_ text: String, ts: String) {
            messages.insert(ChannelMessage(text: text, ts: Double(ts), tsText: ts), at: 0)
        }

        func poll(_ oldest: String) throws -> [ChannelMessage] {
            asked.append(oldest)
            if let failure { throw failure }
            return messages.filter { ($0.ts ?? 0) > (Double(oldest) ?? 0) }
        }
    }

    static let nonceA = CanaryWatcher.noncePrefix + "aaaaaaaa-0001"
    static let nonceB = CanaryWatcher.noncePrefix + "bbbbbbbb-0002"

    @Test("nonces are found in a message's text, each once")
    func nonces() {
        #expect(CanaryWatcher.nonces(in: "SlackFleet delivery check \(Self.nonceA)\nTest alert \(Self.nonceA) from ...") == [Self.nonceA])
        #expect(CanaryWatcher.nonces(in: "\(Self.nonceA) and \(Self.nonceB)") == [Self.nonceA, Self.nonceB])
        #expect(CanaryWatcher.nonces(in: "slackfleet-canary-short").isEmpty)
    }

    @Test("a poll reads from the watermark on; an alert read before its waiter came is still found, without another poll")
    func watermarkAndLateWaiter() throws {
        let watcher = CanaryWatcher()
        let channel = Channel()
        let sent = Date()
        let ts = String(format: "%.6f", sent.timeIntervalSince1970 + 0.5)
        channel.post("alert \(Self.nonceA)", ts: ts)
        channel.post("alert \(Self.nonceB)", ts: String(format: "%.6f", sent.timeIntervalSince1970 + 0.6))
        watcher.expect(nonce: Self.nonceA, sentAt: sent, channel: "T/C")
        let deadline = Date().addingTimeInterval(10)
        let first = try #require(try watcher.await(nonce: Self.nonceA, sentAt: sent, channel: "T/C", deadline: deadline, control: RunControl(), poll: channel.poll))
        #expect(first.latency > 0.4 && first.latency < 0.7, "from Slack's ts")
        #expect(channel.asked.count == 1)
        // B was read by A's poll before anyone waited for it (the channel's watermark was then
        // reset, nobody waiting): found at once.
        watcher.expect(nonce: Self.nonceB, sentAt: sent, channel: "T/C")
        let second = try watcher.await(nonce: Self.nonceB, sentAt: sent, channel: "T/C", deadline: deadline, control: RunControl()) { oldest in
            Issue.record("no second poll was needed")
            return try channel.poll(oldest)
        }
        #expect(second != nil)
    }

    @Test("while waiters remain, each poll asks only for what came after the newest message read")
    func readOnce() throws {
        let watcher = CanaryWatcher()
        let channel = Channel()
        let sent = Date()
        let base = sent.timeIntervalSince1970
        channel.post("chatter", ts: String(format: "%.6f", base + 0.1))
        watcher.expect(nonce: Self.nonceA, sentAt: sent, channel: "T/C")
        watcher.expect(nonce: Self.nonceB, sentAt: sent, channel: "T/C")
        let deadline = Date().addingTimeInterval(20)
        // A arrives after the first poll; B after A's poll.
        channel.post("alert \(Self.nonceA)", ts: String(format: "%.6f", base + 0.2))
        _ = try watcher.await(nonce: Self.nonceA, sentAt: sent, channel: "T/C", deadline: deadline, control: RunControl(), poll: channel.poll)
        channel.post("alert \(Self.nonceB)", ts: String(format: "%.6f", base + 0.3))
        let found = try watcher.await(nonce: Self.nonceB, sentAt: sent, channel: "T/C", deadline: deadline, control: RunControl(), poll: channel.poll)
        #expect(found != nil)
        #expect(channel.asked.first == String(format: "%.6f", base - 5), "the first poll from the send, less a margin")
        #expect(channel.asked.count == 2 && channel.asked.dropFirst().allSatisfy { Double($0) ?? 0 >= base + 0.2 - 1e-5 }, "then from the watermark: \(channel.asked)")
    }

    @Test("a lasting failure (the bot not in the channel) fails every waiter at once, not at the deadline")
    func lastingFailure() throws {
        let watcher = CanaryWatcher()
        let channel = Channel()
        channel.failure = FleetError.failed("the reader bot is not in the canary channel")
        let started = Date()
        #expect(throws: FleetError.self) {
            _ = try watcher.await(nonce: Self.nonceA, sentAt: Date(), channel: "T/C", deadline: Date().addingTimeInterval(60), control: RunControl(), poll: channel.poll)
        }
        #expect(Date().timeIntervalSince(started) < 30)
    }

    @Test("a 403 names the verb, resource, namespace and the Role rule; a 422 names each refused field")
    func refusals() throws {
        let path = "/api/v1/namespaces/wandb/secrets/wandb-slack"
        #expect(KubernetesClient.Resource(path: path) == KubernetesClient.Resource(path: "/api/v1/namespaces/wandb/secrets/wandb-slack"))
        let resource = try #require(KubernetesClient.Resource(path: "/apis/argoproj.io/v1alpha1/namespaces/ops/rollouts/wandb-api"))
        #expect(resource.group == "argoproj.io" && resource.resource == "rollouts" && resource.namespace == "ops" && resource.name == "wandb-api")
        let forbidden = try #require(KubernetesClient.refusal(status: 403, json: ["message": "secrets \"wandb-slack\" is forbidden"], method: "PATCH", path: path))
        #expect(forbidden.message.contains("may not patch secrets in namespace wandb (403 Forbidden)"))
        #expect(forbidden.message.contains(#"{apiGroups: [""], resources: ["secrets"], verbs: ["patch"], resourceNames: ["wandb-slack"]}"#))
        let invalid = try #require(KubernetesClient.refusal(status: 422, json: ["details": ["causes": [["field": "data", "message": "Forbidden: by policy"], ["field": "metadata.labels", "message": "Required value"]]]],
                                                            method: "PATCH", path: path))
        #expect(invalid.message.contains("(422 Invalid): data: Forbidden: by policy; metadata.labels: Required value"))
        #expect(KubernetesClient.refusal(status: 404, json: nil, method: "GET", path: path) == nil)
    }
}
