import Foundation

/// Settles a configuration token rotation (`slack:config-token/WORKSPACE`) that a crash left
/// unfinished: a pair stored after the intent means the rotation completed; none means Slack may
/// have used up the refresh token.
public struct ConfigTokenRecovery: ChangeRecovery {
    public init() {}

    public func settles(_ entry: AuditEntry) -> Bool {
        entry.action == "rotate" && entry.target.hasPrefix("slack:config-token/")
    }

    public func found(_ entry: AuditEntry, detail: JSON?, store: FleetStore) throws -> String {
        let id = String(entry.target.dropFirst("slack:config-token/".count))
        if let stored = try ConfigTokens.stored(id, in: store), stored.rotatedAt >= entry.time {
            return "the new configuration token was stored (it expires at \(stored.expiresAt))"
        }
        return "no new configuration token was stored: if Slack used up the refresh token, the next rotation is refused with invalid_refresh_token and the workspace must be re-seeded"
    }
}
