import Foundation
import GRDB

/// App configuration tokens: each lives 12 hours, and the refresh token that renews it may be
/// single use. The pair `tooling.tokens.rotate` returns is sealed in the database, in one
/// transaction, before anything uses it; from then on it stands in for the inventory's
/// references, until the inventory is given a new seed (a refresh token other than the one
/// the stored pair came from), which then wins.
public enum ConfigTokens {
    /// The secret names a workspace's rotated pair is sealed under.
    static func tokenName(_ workspaceID: String) -> String { "slack-config/\(workspaceID)/token" }
    static func refreshName(_ workspaceID: String) -> String { "slack-config/\(workspaceID)/refresh-token" }

    /// The stored pair of a workspace, if it has been rotated.
    struct Stored {
        let seedFingerprint: String
        let expiresAt: String
        let rotatedAt: String
    }

    static func stored(_ workspaceID: String, in store: FleetStore) throws -> Stored? {
        try store.read("reading the configuration token of \(workspaceID)") { db in
            try Row.fetchOne(db, sql: "SELECT seed_fingerprint, expires_at, rotated_at FROM config_token WHERE workspace_id = ?",
                             arguments: [workspaceID]).map { Stored(seedFingerprint: $0[0], expiresAt: $0[1], rotatedAt: $0[2]) }
        }
    }

    /// The fingerprint of the refresh token the inventory names: of its value, read from a
    /// `secret:`, `env:` or `file:` reference; of the reference itself for `exec:` (never run for this).
    static func seedFingerprint(_ inventoryWorkspace: Workspace, vault: SecretVault) -> String? {
        if case .command(let command) = inventoryWorkspace.refreshToken {
            return vault.keyring.fingerprint(of: SecretValue("exec:" + command))
        }
        return (try? vault.resolve(inventoryWorkspace.refreshToken)).map { vault.keyring.fingerprint(of: $0) }
    }

    /// The workspaces as jobs use them: each with its rotated pair, unless the inventory holds a
    /// new seed. The stored tokens are read in one query: every run does this for every workspace
    /// before its first request.
    public static func effective(_ workspaces: [Workspace], vault: SecretVault) throws -> [Workspace] {
        let stored = try vault.store.read("reading the configuration tokens") { db in
            try Row.fetchAll(db, sql: "SELECT workspace_id, seed_fingerprint, expires_at, rotated_at FROM config_token").reduce(into: [String: Stored]()) { all, row in
                let workspaceID: String = row[0]
                all[workspaceID] = Stored(seedFingerprint: row[1], expiresAt: row[2], rotatedAt: row[3])
            }
        }
        return workspaces.map { effective($0, stored: stored[$0.id], vault: vault) }
    }

    /// `workspace` as jobs use it: with the rotated pair, unless the inventory holds a new seed.
    static func effective(_ workspace: Workspace, vault: SecretVault) throws -> Workspace {
        effective(workspace, stored: try stored(workspace.id, in: vault.store), vault: vault)
    }

    private static func effective(_ workspace: Workspace, stored: Stored?, vault: SecretVault) -> Workspace {
        guard let stored else { return workspace }
        // A seed that cannot be read any more cannot be new: keep the rotated pair.
        if let seed = seedFingerprint(workspace, vault: vault), seed != stored.seedFingerprint { return workspace }
        var effective = workspace
        effective.configToken = .stored(name: tokenName(workspace.id))
        effective.refreshToken = .stored(name: refreshName(workspace.id))
        effective.configTokenExpiresAt = stored.expiresAt
        return effective
    }

    /// What happened to a workspace's token in a run.
    public struct Outcome: Sendable {
        public let outcome: InstanceResult.Outcome
        public let detail: String
    }

    /// Rotates the configuration token of `inventoryWorkspace` if it expires within
    /// `minRemaining` seconds (or its expiry is unknown).
    public static func rotate(_ inventoryWorkspace: Workspace, minRemaining: TimeInterval, context: JobContext) -> Outcome {
        let id = inventoryWorkspace.id
        do {
            let workspace = try effective(inventoryWorkspace, vault: context.vault)
            let expiresAt = workspace.configTokenExpiresAt.flatMap(Timestamp.parse)
            if let expiresAt, expiresAt.timeIntervalSinceNow > minRemaining {
                return Outcome(outcome: .ok, detail: "the configuration token of workspace \(id) is valid for \(Runner.duration(expiresAt.timeIntervalSinceNow)) more (rotated when less than \(Runner.duration(minRemaining)) is left)")
            }
            let why = expiresAt.map { $0.timeIntervalSinceNow <= 0 ? "expired at \(Timestamp.format($0))" : "expires in \(Runner.duration($0.timeIntervalSinceNow))" } ?? "its expiry is unknown"
            let refresh = try context.vault.resolve(workspace.refreshToken)
            guard refresh.revealed.hasPrefix("xoxe-") else {
                throw FleetError.config("the refresh_token of workspace \(id) is not a refresh token (they start with xoxe-1-): \(reseed(id))")
            }
            // The seed this pair descends from: kept across rotations, replaced by a new seed.
            let seed = try stored(id, in: context.store).flatMap { stored in
                workspace.refreshToken == .stored(name: refreshName(id)) ? stored.seedFingerprint : nil
            } ?? seedFingerprint(inventoryWorkspace, vault: context.vault) ?? context.vault.keyring.fingerprint(of: refresh)
            let change = ChangeExecutor.Change(
                target: "slack:config-token/\(id)", action: "rotate",
                summary: "rotate the configuration token of workspace \(id) (\(why))",
                detail: ["refresh_token": .string(context.vault.keyring.fingerprint(of: refresh)), "previous_expiry": workspace.configTokenExpiresAt.map(JSON.string) ?? .null])
            let slack = context.slack(workspace)
            let newExpiry = try context.executor.perform(change, instance: nil) { () throws -> String in
                let answer: JSON
                do {
                    answer = try slack.call("tooling.tokens.rotate", token: nil, ["refresh_token": refresh.revealed], idempotent: false)
                } catch let error as SlackAPIError where error.code == "invalid_refresh_token" {
                    throw FleetError.failed("Slack refused the refresh token of workspace \(id) (invalid_refresh_token): it was used already or revoked, and the configuration token \(why). \(reseed(id))")
                } catch let error as ServiceError where SlackClient.transientErrors.contains(error.code) {
                    throw FleetError.failed("Slack answered tooling.tokens.rotate for workspace \(id) with \(error.code), which it says may follow a partial success: if Slack used the refresh token up, the new pair is lost with it. The next run tries again; if Slack then answers invalid_refresh_token, \(reseed(id))")
                } catch let error as TransportError where error.kind != .connectFailed {
                    throw FleetError.failed("the answer to tooling.tokens.rotate for workspace \(id) was lost (\(error.kind.rawValue)): if Slack used the refresh token up, the new pair is lost with it. The next run tries again; if Slack then answers invalid_refresh_token, \(reseed(id))")
                }
                guard let token = answer["token"]?.stringValue, let newRefresh = answer["refresh_token"]?.stringValue,
                      let exp = answer["exp"]?.intValue else {
                    throw ServiceError(service: "slack", target: "tooling.tokens.rotate", status: 200, code: "unreadable_answer",
                                       message: "no token, refresh_token or exp in the answer")
                }
                CrashPoint.reach("config-token:answered")
                let expiry = Timestamp.format(Date(timeIntervalSince1970: Double(exp)))
                // Durable before anything uses it: the old refresh token may be dead already.
                try context.store.write("storing the rotated configuration token of \(id)") { db in
                    _ = try context.vault.set(tokenName(id), to: SecretValue(token), in: db)
                    _ = try context.vault.set(refreshName(id), to: SecretValue(newRefresh), in: db)
                    try db.execute(sql: """
                        INSERT INTO config_token (workspace_id, seed_fingerprint, token_ref, refresh_token_ref, expires_at, rotated_at)
                        VALUES (?, ?, ?, ?, ?, ?)
                        ON CONFLICT(workspace_id) DO UPDATE SET seed_fingerprint = excluded.seed_fingerprint, token_ref = excluded.token_ref,
                            refresh_token_ref = excluded.refresh_token_ref, expires_at = excluded.expires_at, rotated_at = excluded.rotated_at
                        """, arguments: [id, seed, "secret:" + tokenName(id), "secret:" + refreshName(id), expiry, Timestamp.now()])
                }
                CrashPoint.reach("rotate:config-token-stored")
                return expiry
            }
            guard let newExpiry else {
                return Outcome(outcome: .changed, detail: "would rotate the configuration token of workspace \(id) (\(why))")
            }
            return Outcome(outcome: .changed, detail: "rotated the configuration token of workspace \(id) (\(why)); the new one expires at \(newExpiry)")
        } catch {
            return Outcome(outcome: JobContext.outcome(of: error), detail: ChangeExecutor.describe(error))
        }
    }

    /// How to give a workspace a new seed.
    static func reseed(_ id: String) -> String {
        "Re-seed it: generate a new configuration token in Slack (https://api.slack.com/apps > Your App Configuration Tokens > Generate Token, for workspace \(id)), put the token and its refresh token where the inventory's config_token and refresh_token point (or store them with `slackfleet secrets set`), and run `slackfleet rotate-secret --config-tokens` again"
    }
}
