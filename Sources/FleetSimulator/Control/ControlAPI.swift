import Foundation

extension Simulator {
    /// `/_sim/...`: what tests and the demo use to set faults, move the clock and read the
    /// simulated services' state. JSON in and out.
    func control(_ request: SimRequest, segments: [String]) -> SimResponse {
        let body = (try? JSONValue.parse(request.body)) ?? .object([:])
        return withWorld { world in
            switch (request.method, segments) {
            case ("GET", ["health"]):
                return .json(["ok": true])
            case ("GET", ["calls"]):
                return .json(["calls": .object(world.calls.mapValues { .integer(Int64($0)) }),
                              "ratelimited": .object(world.rateLimiter.limited.mapValues { .integer(Int64($0)) }),
                              "most_in_flight": .integer(Int64(inFlight.mostAtOnce)),
                              "history_messages": .object(world.historyServed.mapValues { .integer(Int64($0)) })])
            case ("GET", ["mutations"]):
                return .json(.object(world.mutations.mapValues { .array($0.sorted().map(JSONValue.string)) }))
            case ("POST", ["calls", "reset"]):
                world.calls.removeAll()
                world.historyServed.removeAll()
                inFlight.reset()
                return .json(["ok": true])
            case ("GET", ["apps"]):
                return .json(.array(world.apps.values.sorted { $0.id < $1.id }.map(Simulator.describe)))
            case ("POST", let path) where path.count == 3 && path[0] == "apps" && path[2] == "edit":
                return editApp(path[1], body, world: &world)
            case ("POST", let path) where path.count == 3 && path[0] == "apps" && path[2] == "regenerate-secret":
                // What a person does with "Regenerate" under App Credentials: the old secret stops working.
                guard let app = world.apps[path[1]], !app.deleted else { return .json(["error": "no such app"], status: 404) }
                // Existing webhooks keep working: they do not use the secret (wandb-server.md).
                let secret = world.hex(16)
                world.apps[path[1]]?.clientSecret = secret
                world.note(team: app.teamID, cause: "the client secret of \(app.id) was regenerated")
                return .json(["ok": true, "client_secret": .string(secret)])
            case ("POST", ["connect"]):
                // A person plays "Connect Slack" end to end (SlackIntegrations.swift).
                guard let instance = body["instance"]?.stringValue, let entity = body["entity"]?.stringValue else {
                    return .json(["error": "send instance and entity (and channel: a channel ID; the canary channel without it)"], status: 400)
                }
                switch world.connect(instance: instance, entity: entity, channelID: body["channel"]?.stringValue, person: body["person"]?.stringValue ?? "a simulated person") {
                case .success(let integration): return .json(["ok": true, "integration": world.describe(integration)])
                case .failure(let failure): return .json(failure.json, status: 409)
                }
            case ("GET", ["losses"]):
                // Integrations lost (a delivery path of an entity that stopped), by cause.
                return .json(["total": .integer(Int64(world.integrationLosses.values.reduce(0, +))),
                              "by_cause": .object(world.integrationLosses.mapValues { .integer(Int64($0)) })])
            case ("GET", ["instances"]):
                for name in world.instances.keys { world.settle(name) }
                return .json(.array(world.instances.keys.sorted().compactMap { world.describe($0, full: false) }))
            case ("GET", let path) where path.count == 3 && path[0] == "instances" && path[2] == "keys":
                // The instance's W&B API keys: an admin's (the inventory's) and a member's.
                guard let instance = world.instances[path[1]] else { return .json(["error": "no such instance"], status: 404) }
                return .json(["admin_key": .string(instance.adminKey), "user_key": .string(instance.userKey)])
            case ("GET", let path) where path.count == 2 && path[0] == "instances":
                world.settle(path[1])
                return world.describe(path[1], full: true).map { .json($0) } ?? .json(["error": "no such instance"], status: 404)
            case ("POST", let path) where path.count == 3 && path[0] == "instances" && path[2] == "credentials":
                guard world.instances[path[1]] != nil else { return .json(["error": "no such instance"], status: 404) }
                guard let id = body["client_id"]?.stringValue, let secret = body["client_secret"]?.stringValue else {
                    return .json(["error": "send client_id and client_secret"], status: 400)
                }
                let delay = world.config.rolloutDelay + (world.faults["instance:\(path[1])"]?.slowRollout ?? 0)
                world.instances[path[1]]?.pendingRollout = PendingRollout(completesAt: Date().addingTimeInterval(delay), credentials: (id, secret))
                world.mutations["exec", default: []].insert(path[1])
                return .json(["ok": true])
            case ("GET", ["tokens"]):
                return .json(.array(world.tokens.values.sorted { $0.issuedAt < $1.issuedAt }.map { token in
                    ["token": .string(token.value), "kind": .string(token.kind.rawValue), "team_id": .string(token.teamID),
                     "issued_at": .number(token.issuedAt), "expires_at": token.expiresAt.map(JSONValue.number) ?? .null,
                     "revoked": .bool(token.revoked), "app_id": token.appID.map(JSONValue.string) ?? .null]
                }))
            case ("POST", ["tokens", "revoke"]):
                guard let value = body["token"]?.stringValue, world.tokens[value] != nil else { return .json(["error": "no such token"], status: 404) }
                world.tokens[value]?.revoked = true
                return .json(["ok": true])
            case ("GET", ["workspaces"]):
                return .json(.array(world.workspaces.values.sorted { $0.id < $1.id }.map { workspace in
                    ["id": .string(workspace.id), "name": .string(workspace.name), "canary_channel": .string(workspace.canaryChannelID)]
                }))
            case ("POST", let path) where path.count == 3 && path[0] == "workspaces" && path[2] == "tokens":
                guard let workspace = world.workspaces[path[1]] else { return .json(["error": "no such workspace"], status: 404) }
                let pair = world.issueConfigurationTokens(teamID: workspace.id, userID: workspace.userID)
                return .json(["token": .string(pair.token), "refresh_token": .string(pair.refresh),
                              "exp": .integer(Int64(world.tokens[pair.token]?.expiresAt ?? 0))])
            case ("GET", let path) where (path.count == 2 || path.count == 3) && path[0] == "channels":
                // channels/T: the canary channel's messages; channels/T/C: another channel's.
                guard let workspace = world.workspaces[path[1]], let channel = workspace.channels[path.count == 3 ? path[2] : workspace.canaryChannelID] else {
                    return .json(["error": "no such workspace or channel"], status: 404)
                }
                let now = world.now
                return .json(.array(channel.messages.map { message in
                    ["ts": .string(message.ts), "text": .string(message.text), "visible": .bool(message.visibleAt <= now), "by": .string(message.sentBy),
                     "app_id": message.appID.map(JSONValue.string) ?? .null]
                }))
            case ("POST", let path) where path.count == 3 && path[0] == "channels" && path[2] == "archive":
                guard let workspace = world.workspaces[path[1]] else { return .json(["error": "no such workspace"], status: 404) }
                world.workspaces[path[1]]?.channels[body["channel"]?.stringValue ?? workspace.canaryChannelID]?.archived = body["archived"]?.boolValue ?? true
                world.note(team: workspace.id, cause: "a channel archived in \(workspace.id)")
                return .json(["ok": true])
            case ("POST", let path) where path.count == 3 && path[0] == "channels" && path[2] == "settings":
                // {"channel": ID (default: the canary), "private": Bool, "bot_member": Bool}: a
                // private canary channel, or a reader bot nobody invited (or that was removed).
                guard let workspace = world.workspaces[path[1]] else { return .json(["error": "no such workspace"], status: 404) }
                let channelID = body["channel"]?.stringValue ?? workspace.canaryChannelID
                guard workspace.channels[channelID] != nil else { return .json(["error": "no such channel"], status: 404) }
                if let value = body["private"]?.boolValue { world.workspaces[path[1]]?.channels[channelID]?.isPrivate = value }
                if let value = body["bot_member"]?.boolValue {
                    if value {
                        world.workspaces[path[1]]?.channels[channelID]?.members.insert(workspace.botUserID)
                    } else {
                        world.workspaces[path[1]]?.channels[channelID]?.members.remove(workspace.botUserID)
                    }
                }
                return .json(["ok": true])
            case ("POST", let path) where path.count == 3 && path[0] == "instances" && path[2] == "workload":
                // {"kind": "rollout" | "deployment"}: the operator runs the api as an Argo Rollout.
                guard let instance = world.instances[path[1]], instance.registrar != .exec else {
                    return .json(["error": "no such instance, or it has no Kubernetes workload"], status: 404)
                }
                switch body["kind"]?.stringValue {
                case "rollout": world.instances[path[1]]?.useRollout(sequence: &world.sequence)
                case "deployment": world.instances[path[1]]?.useDeployment(sequence: &world.sequence)
                default: return .json(["error": "kind must be rollout or deployment"], status: 400)
                }
                return .json(["ok": true])
            case ("POST", ["faults"]):
                guard let target = body["target"]?.stringValue, target == "all" || target.hasPrefix("workspace:") || target.hasPrefix("instance:") else {
                    return .json(["error": "target must be all, workspace:TEAM or instance:NAME"], status: 400)
                }
                world.faults[target] = Simulator.faults(from: body, base: world.faults[target] ?? Faults())
                return .json(["ok": true])
            case ("DELETE", ["faults"]):
                world.faults.removeAll()
                return .json(["ok": true])
            case ("POST", ["clock", "advance"]):
                guard let seconds = body["seconds"].flatMap(Simulator.double) else { return .json(["error": "send seconds"], status: 400) }
                world.clock.advanced += seconds
                return .json(["now": .number(world.now)])
            case ("GET", ["clock"]):
                return .json(["now": .number(world.now)])
            case ("POST", ["config"]):
                Simulator.apply(body, to: &world.config)
                return .json(["ok": true])
            case ("POST", ["ratelimits", "reset"]):
                world.rateLimiter.reset()
                return .json(["ok": true])
            default:
                return .json(["error": .string("unknown control endpoint \(request.method) /_sim/\(segments.joined(separator: "/"))")], status: 404)
            }
        }
    }

    /// A change "as a person would make it in the Slack UI": sets one field of an app's manifest.
    private func editApp(_ appID: String, _ body: JSONValue, world: inout World) -> SimResponse {
        guard let app = world.apps[appID], !app.deleted else { return .json(["error": "no such app"], status: 404) }
        guard let pointer = body["pointer"]?.stringValue, pointer.hasPrefix("/"), let value = body["value"] else {
            return .json(["error": "send pointer (such as /display_information/description) and value"], status: 400)
        }
        let keys = pointer.dropFirst().split(separator: "/").map(String.init)
        let edited = Simulator.setting(app.manifest, keys[...], to: value)
        let violations = manifestSchema.validate(edited)
        guard violations.isEmpty else {
            return .json(["error": .string(violations.map { "\($0.pointer): \($0.message)" }.joined(separator: "; "))], status: 400)
        }
        world.apps[appID]?.manifest = edited
        world.note(team: app.teamID, cause: "an edit of \(appID) in Slack's UI")
        return .json(["ok": true])
    }

    static func setting(_ value: JSONValue, _ keys: ArraySlice<String>, to newValue: JSONValue) -> JSONValue {
        guard let key = keys.first else { return newValue }
        var fields = value.objectValue ?? [:]
        fields[key] = setting(fields[key] ?? .object([:]), keys.dropFirst(), to: newValue)
        return .object(fields)
    }

    static func describe(_ app: SimApp) -> JSONValue {
        ["app_id": .string(app.id), "team_id": .string(app.teamID), "client_id": .string(app.clientID),
         "client_secret": .string(app.clientSecret), "deleted": .bool(app.deleted), "manifest": app.manifest,
         "uninstalled": .bool(app.uninstalled),
         "webhooks": .array(app.webhooks.keys.sorted().map { .string("/services/\($0)") })]
    }

    static func double(_ value: JSONValue) -> Double? {
        switch value {
        case .integer(let number): return Double(number)
        case .number(let number): return number
        default: return nil
        }
    }

    static func faults(from body: JSONValue, base: Faults) -> Faults {
        var faults = base
        func number(_ key: String) -> Double? { body[key].flatMap(double) }
        if let value = number("latency_ms") { faults.latency = value / 1000 }
        if let value = number("jitter_ms") { faults.jitter = value / 1000 }
        if let value = number("error_rate") { faults.errorRate = value }
        if let value = number("hang_rate") { faults.hangRate = value }
        if let value = number("reset_rate") { faults.resetRate = value }
        if let value = number("slow_rollout_ms") { faults.slowRollout = value / 1000 }
        if let value = body["ratelimit_storm"]?.boolValue { faults.rateLimitStorm = value }
        if let value = body["down"]?.boolValue { faults.down = value }
        if let value = number("drop_response_rate") { faults.dropResponseRate = value }
        if let value = number("drop_responses") { faults.dropResponses = max(0, Int(value)) }
        if let value = body["endpoint"]?.stringValue { faults.endpoint = value.isEmpty ? nil : value }
        if let value = body["hostile"]?.stringValue { faults.hostile = Simulator.hostileKinds.contains(value) ? value : nil }
        if let value = number("short_pages") { faults.shortPages = max(0, Int(value)) }
        if let value = number("internal_error_rate") { faults.internalErrorRate = value }
        if let value = body["forbidden"]?.arrayValue { faults.forbidden = Set(value.compactMap(\.stringValue)) }
        if let value = body["invalid"]?.arrayValue { faults.invalid = Set(value.compactMap(\.stringValue)) }
        return faults
    }

    static func apply(_ body: JSONValue, to config: inout SimConfig) {
        func number(_ key: String) -> Double? { body[key].flatMap(double) }
        if let value = number("time_scale"), value > 0 { config.timeScale = value }
        if let value = body["refresh_token_single_use"]?.boolValue { config.refreshTokenSingleUse = value }
        if let value = number("max_ip_ranges") { config.maxIPRanges = Int(value) }
        if let value = number("config_token_lifetime") { config.configTokenLifetime = value }
        if let value = number("alert_delay_ms") { config.alertDelay = value / 1000 }
        if let value = number("rollout_delay_ms") { config.rolloutDelay = value / 1000 }
        if let value = number("hang_seconds") { config.hangSeconds = value }
        if let value = body["egress_ip"]?.stringValue { config.egressIP = value }
        if let value = number("storm_retry_after") { config.stormRetryAfter = value }
        if let value = body["message_app_id"]?.boolValue { config.messageAppID = value }
        if let value = body["entities_query"]?.boolValue { config.entitiesQuery = value }
        if let value = body["oauth_checks_code_first"]?.boolValue { config.oauthChecksCodeFirst = value }
        if let value = number("connected") { config.connectedFraction = min(1, max(0, value)) }
        for (key, value) in body["tier_quota"]?.objectValue ?? [:] {
            if let tier = SlackTier(rawValue: key), let quota = double(value) { config.tierQuota[tier] = quota }
        }
        for (key, value) in body["tier_burst"]?.objectValue ?? [:] {
            if let tier = SlackTier(rawValue: key), let burst = double(value) { config.tierBurst[tier] = burst }
        }
    }
}

extension World {
    /// An integration as the control API shows it: where it delivers, the app it came through,
    /// and whether it still delivers.
    func describe(_ integration: SimIntegration) -> JSONValue {
        ["id": .string(integration.id), "entity": .string(integration.entity), "team_id": .string(integration.teamID),
         "channel": .string(integration.channelID), "channel_name": .string(integration.channelName), "app_id": .string(integration.appID),
         "delivers": .bool(delivers(integration)), "created_at": .number(integration.createdAt)]
    }

    mutating func describe(_ name: String, full: Bool) -> JSONValue? {
        guard let instance = instances[name] else { return nil }
        var fields: [String: JSONValue] = [
            "name": .string(name), "team_id": .string(instance.teamID), "registrar": .string(instance.registrar.rawValue),
            "host_url": .string(instance.hostURL),
            "effective_client_id": instance.effectiveClientID.map(JSONValue.string) ?? .null,
            "can_deliver": .bool(canDeliver(name)),
            "can_connect": .bool(canConnect(name)),
            "connect_losses": .integer(Int64(instance.connectLosses)),
            "last_connect_loss": instance.lastConnectLoss.map(JSONValue.string) ?? .null,
            "integrations": .array(instance.integrations.map(describe)),
            "integrations_lost": .array(instance.lostPaths.map { ["path": .string($0.path), "cause": .string($0.cause)] }),
            "rollout_pending": .bool(instance.pendingRollout != nil),
            "last_rollout_error": instance.lastRolloutError.map(JSONValue.string) ?? .null,
            "alerts_sent": .integer(Int64(instance.alertsSent)), "alerts_delivered": .integer(Int64(instance.alertsDelivered)),
            "delivery_losses": .integer(Int64(instance.lostPaths.count)),
            "last_delivery_loss": instance.lostPaths.last.map { .string("\($0.path): \($0.cause)") } ?? .null,
        ]
        if full {
            fields["effective_client_secret"] = instance.effectiveSecret.map(JSONValue.string) ?? .null
            fields["secrets"] = .object(instance.secrets.mapValues(\.body))
            fields["resource"] = instance.resource?.body ?? .null
            fields["deployment"] = instance.deployment?.body ?? .null
            fields["rollout"] = instance.rollout?.body ?? .null
        }
        return .object(fields)
    }
}
