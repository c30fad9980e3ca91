import Foundation

/// What a run learns about each workspace once and then reuses: the names W&B's
/// `SlackIntegration {teamName channelName}` is recognised by, which app each bot belongs to (to
/// tell which app's webhook posted a message), and whether Slack's answer to a credential probe
/// means anything in this workspace. Shared by every lane of a run.
public final class WorkspaceFacts: @unchecked Sendable {
    private let condition = NSCondition()
    private var known: [String: Result<String?, any Error>] = [:]
    private var working: Set<String> = []
    private var targets: [String: Connections.CanaryTarget] = [:]

    public init() {}

    /// The canary target of a workspace, worked out by `make` the first time it is asked for.
    func canaryTarget(_ workspaceID: String, make: () -> Connections.CanaryTarget) -> Connections.CanaryTarget {
        condition.lock()
        if let known = targets[workspaceID] {
            condition.unlock()
            return known
        }
        condition.unlock()
        let target = make()
        condition.lock()
        targets[workspaceID] = target
        condition.unlock()
        return target
    }

    /// The value for `key`, worked out once: a second caller waits for the first.
    private func once(_ key: String, _ work: () throws -> String?) throws -> String? {
        condition.lock()
        while working.contains(key) { condition.wait() }
        if let found = known[key] {
            condition.unlock()
            return try found.get()
        }
        working.insert(key)
        condition.unlock()
        let result = Result { try work() }
        condition.lock()
        working.remove(key)
        // A failure is not kept if the run was stopped: the next caller may try again.
        if case .failure(let error) = result, error is RunControl.Interrupted {} else { known[key] = result }
        condition.broadcast()
        condition.unlock()
        return try result.get()
    }

    /// The workspace's name as Slack shows it (`auth.test` with the bot token), or nil.
    public func teamName(_ workspace: Workspace, slack: SlackClient, botToken: SecretValue?) -> String? {
        guard let botToken else { return nil }
        return (try? once("team|" + workspace.id) { try slack.teamName(token: botToken) }) ?? nil
    }

    /// The canary channel's name without `#` (`conversations.info`), or nil when the bot may not
    /// read it (`channels:read`, `groups:read` for a private channel).
    public func canaryChannelName(_ workspace: Workspace, slack: SlackClient, botToken: SecretValue?) -> String? {
        guard let botToken, let channel = workspace.canaryChannel else { return nil }
        return (try? once("channel|" + workspace.id + "|" + channel) { try slack.channelName(channel, token: botToken) }) ?? nil
    }

    /// The reader bot's user name (`auth.test`'s `user`), for `/invite @name`; nil if unknown.
    public func botName(_ workspace: Workspace, slack: SlackClient, botToken: SecretValue) -> String? {
        (try? once("bot-name|" + workspace.id) { try slack.call("auth.test", token: botToken)["user"]?.stringValue }) ?? nil
    }

    /// What is wrong, and what a person must do, when the bot cannot read the canary channel,
    /// for the errors that mean that; nil for any other error. Slack answers `not_in_channel` for
    /// a public channel the bot is not in, and `channel_not_found` for a private one (a bot token
    /// reads only the conversations its bot is a member of:
    /// docs.slack.dev/reference/methods/conversations.history).
    public func canaryProblem(_ error: any Error, workspace: Workspace, slack: SlackClient, botToken: SecretValue) -> (problem: String, fix: String)? {
        guard let error = error as? SlackAPIError, ["not_in_channel", "channel_not_found", "missing_scope"].contains(error.code),
              let channel = workspace.canaryChannel else { return nil }
        let invite = "/invite @" + (botName(workspace, slack: slack, botToken: botToken) ?? "<the reader bot>")
        switch error.code {
        case "not_in_channel":
            let name = canaryChannelName(workspace, slack: slack, botToken: botToken).map { "#\($0) (\(channel))" } ?? channel
            return ("the reader bot is not in the canary channel \(name) of workspace \(workspace.id) (not_in_channel)",
                    "type `\(invite)` in that channel")
        case "channel_not_found":
            return ("the reader bot cannot see the canary channel \(channel) of workspace \(workspace.id) (channel_not_found)",
                    "if it is private, type `\(invite)` in it and give the reader app groups:history; otherwise check canary_channel in the inventory")
        default:
            return ("the reader bot may not read the canary channel \(channel) of workspace \(workspace.id) (missing_scope)",
                    "add \(error.needed ?? "channels:history (groups:history for a private channel)") to the reader app's bot scopes and reinstall it")
        }
    }

    /// The app whose bot posted a message (`app_id` on the message, else `bots.info`).
    public func app(of message: ChannelMessage, workspace: Workspace, slack: SlackClient, botToken: SecretValue) -> String? {
        if let appID = message.appID { return appID }
        guard let botID = message.botID else { return nil }
        return (try? once("bot|" + workspace.id + "|" + botID) { try slack.appOfBot(botID, token: botToken) }) ?? nil
    }

    /// Probes `credentials` (SlackClient.probe), once Slack is known to check the secret before
    /// the code in this workspace: a probe with a secret that is certainly wrong must answer
    /// `bad_client_secret`. If it answers `invalid_code`, Slack checks the code first, and no
    /// probe can tell a current secret from a stale one: `inconclusive`.
    public func probe(_ credentials: SlackCredentials, workspace: Workspace, slack: SlackClient) throws -> CredentialProbe {
        let order = try once("probe-order|" + workspace.id) {
            let answer = try slack.probe(clientID: credentials.clientID, secret: SecretValue("slackfleet-certainly-not-the-secret"))
            return answer == .staleSecret ? "secret-first" : answer == .accepted ? "code-first" : nil
        }
        if order == "code-first" { return .inconclusive }
        return try slack.probe(clientID: credentials.clientID, secret: credentials.clientSecret)
    }
}
