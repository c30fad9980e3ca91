import Foundation
import GRDB

/// The fleet at a glance, read from the database alone (no network call): what each workspace
/// and instance last showed, who must act, and what is stale. `slackfleet status` prints it and
/// `slackfleet report` draws it.
public struct FleetStatus: Sendable {
    /// What an instance's alerts look like now, from the last runs.
    public enum Health: String, Sendable, CaseIterable {
        /// The last verify-delivery saw its test alert in the channel, within the stale threshold.
        case delivering
        /// Its canary has no Slack integration: a person must connect one.
        case awaitingConnect = "awaiting-connect"
        /// Its canary's integration came through an app a rotation is retiring.
        case onRetiringApp = "on-retiring-app"
        /// The last verify-delivery failed.
        case failing
        /// Delivered, but longer ago than the stale threshold.
        case stale
        /// Never verified.
        case unverified
        /// Out of service: no job but retire works on it; not counted against the fleet.
        case retiring
        case disabled

        /// Counts against "everything delivering and fresh".
        public var isProblem: Bool { ![.delivering, .retiring, .disabled].contains(self) }
    }

    public struct Workspace: Sendable {
        public let id: String
        public let name: String
        /// When the configuration token SlackFleet holds expires (the rotated one if any, else the
        /// inventory's), and how far off that is.
        public let tokenExpiresAt: String?
        public let tokenExpiresInSeconds: Double?
        public let apps: Int
        /// Tier 1 writes the next provision-app would make (one app create per group without an
        /// app), and how long Slack's quota makes them take.
        public let pendingTier1Writes: Int
        public let pendingETASeconds: Double
        /// 429s Slack answered in the last run that recorded them (nil: no run did).
        public let rateLimitedLastRun: Int?
    }

    /// One job's last result for an instance.
    public struct LastResult: Sendable {
        public let result: String
        public let at: String
        public let detail: String
    }

    public struct Instance: Sendable {
        public let name: String
        public let workspace: String
        public let appGroup: String
        public let labels: [String: String]
        public var health: Health
        /// The Slack app of the group and the client ID the instance was last seen running.
        public let appID: String?
        public let clientID: String?
        /// The last verify-delivery: when, and seconds from test alert to Slack.
        public let verifiedAt: String?
        public let verifiedAgeSeconds: Double?
        public let deliverySeconds: Double?
        /// The connection state the newest result said.
        public let connection: String?
        /// A rotation stage waiting for a person (awaiting-regenerate, awaiting-connect), or
        /// registering while a rotation is part-way.
        public let rotationStage: String?
        /// Age of the client secret the group's current app has.
        public let secretAgeSeconds: Double?
        /// Each job's last result (not dry runs).
        public let lastResults: [String: LastResult]
    }

    /// The Tier 1 writes of one workspace in the last run that made any, seconds from its start.
    public struct WriteTimeline: Sendable {
        public let workspace: String
        public let runID: String
        public let seconds: [Double]
        /// Slack's Tier 1 quota, calls a minute.
        public let perMinute: Double
    }

    public let generatedAt: String
    public let staleAfterSeconds: Double
    /// The age past which a secret is due for rotation (the report's policy line).
    public let rotationPolicySeconds: Double
    public var workspaces: [Workspace]
    public var instances: [Instance]
    /// Each step only a person can take, with where.
    public var needsPerson: [PersonAction]
    /// Audit entries per day, oldest first (the last 60 days with any).
    public var auditPerDay: [DayCount]
    public var tier1Timelines: [WriteTimeline]

    public struct DayCount: Sendable {
        public let day: String
        public let count: Int
    }

    /// Everything delivering, fresh, and nobody asked to act.
    public var healthy: Bool { !instances.contains { $0.health.isProblem } && needsPerson.isEmpty }

    /// Instances per health, every health present.
    public var counts: [Health: Int] {
        var counts = Dictionary(uniqueKeysWithValues: Health.allCases.map { ($0, 0) })
        for instance in instances { counts[instance.health, default: 0] += 1 }
        return counts
    }
}

extension FleetStatus {
    /// `status --json`: one compact JSON object, snake_case keys sorted. Each instance is written
    /// straight into the text (JSONText); building a JSON value of 10,000 instances and sorting
    /// its keys took 0.3 s, JSONEncoder about as long.
    public var jsonText: String {
        var out = ""
        out.reserveCapacity(instances.count * 600 + 4096)
        func key(_ name: String, first: Bool) {
            if !first { out += "," }
            JSONText.appendQuoted(name, to: &out)
            out += ":"
        }
        func field(_ name: String, _ value: JSON, first: Bool = false) {
            key(name, first: first)
            out += value.canonicalJSON
        }
        func text(_ name: String, _ value: String?, first: Bool = false) {
            key(name, first: first)
            if let value { JSONText.appendQuoted(value, to: &out) } else { out += "null" }
        }
        func number(_ name: String, _ value: Double?) {
            key(name, first: false)
            out += value.map { $0.isFinite ? "\($0)" : "null" } ?? "null"
        }
        out += "{"
        field("audit_per_day", .list(auditPerDay.map { .object(["day": .string($0.day), "count": .int($0.count)]) }), first: true)
        text("generated_at", generatedAt)
        field("healthy", .bool(healthy))
        key("instances", first: false)
        out += "["
        for (index, instance) in instances.enumerated() {
            out += index == 0 ? "{" : ",{"
            text("app_group", instance.appGroup, first: true)
            text("app_id", instance.appID)
            text("client_id", instance.clientID)
            text("connection", instance.connection)
            number("delivery_seconds", instance.deliverySeconds)
            text("health", instance.health.rawValue)
            key("labels", first: false)
            out += "{"
            for (position, label) in instance.labels.sorted(by: { $0.key < $1.key }).enumerated() {
                text(label.key, label.value, first: position == 0)
            }
            out += "}"
            key("last_results", first: false)
            out += "{"
            for (position, job) in instance.lastResults.sorted(by: { $0.key < $1.key }).enumerated() {
                key(job.key, first: position == 0)
                out += "{"
                text("at", job.value.at, first: true)
                text("detail", job.value.detail)
                text("result", job.value.result)
                out += "}"
            }
            out += "}"
            text("name", instance.name)
            text("rotation_stage", instance.rotationStage)
            number("secret_age_seconds", instance.secretAgeSeconds)
            number("verified_age_seconds", instance.verifiedAgeSeconds)
            text("verified_at", instance.verifiedAt)
            text("workspace", instance.workspace)
            out += "}"
        }
        out += "]"
        field("needs_person", .list(needsPerson.map(\.json)))
        number("rotation_policy_seconds", rotationPolicySeconds)
        number("stale_after_seconds", staleAfterSeconds)
        field("tier1_timelines", .list(tier1Timelines.map { .object(["workspace": .string($0.workspace), "run_id": .string($0.runID),
                                                                     "seconds": .list($0.seconds.map(JSON.double)), "per_minute": .double($0.perMinute)]) }))
        field("workspaces", .list(workspaces.map { workspace in
            .object(["id": .string(workspace.id), "name": .string(workspace.name), "apps": .int(workspace.apps),
                     "token_expires_at": workspace.tokenExpiresAt.map(JSON.string) ?? .null,
                     "token_expires_in_seconds": workspace.tokenExpiresInSeconds.map(JSON.double) ?? .null,
                     "pending_tier1_writes": .int(workspace.pendingTier1Writes), "pending_eta_seconds": .double(workspace.pendingETASeconds),
                     "rate_limited_last_run": workspace.rateLimitedLastRun.map(JSON.int) ?? .null])
        }))
        return out + "}"
    }

    /// One recorded result of a job for an instance.
    struct Recorded {
        let result: String
        let at: String
        let detail: String
        let connection: String?
        let action: String?
        let delivery: Double?
    }

    /// Reads the status of the instances `selected` accepts (every one by default), in a few
    /// set-wise queries: on 10,000 instances it stays well under a second.
    public static func read(_ store: FleetStore, staleAfter: TimeInterval = 7 * 86400, rotationPolicy: TimeInterval = 90 * 86400,
                            now: Date = Date(), selected: (SlackFleetCore.Instance) -> Bool = { _ in true }) throws -> FleetStatus {
        try store.read("reading the fleet's status") { db in
            let inventory = try InventoryRepository.load(db)
            let instances = inventory.instances.filter(selected)
            let chosenWorkspaces = Set(instances.map(\.workspaceID))

            // Each instance's last result per job (not dry runs): the runs newest first, each read
            // by its key, until every instance has a result of that job. A job's newest run
            // usually covers its instances, so older runs are skipped unread (a GROUP BY over the
            // whole history sorted every result ever recorded: 0.23 s at 120,000).
            var last: [String: [String: Recorded]] = [:]
            let names = Set(inventory.instances.map(\.name))
            var covered: [String: Int] = [:]
            let resultsOfRun = try db.cachedStatement(sql: "SELECT instance, result, detail, connection, action, delivery_seconds FROM run_result WHERE run_id = ?")
            for run in try Row.fetchAll(db, sql: "SELECT id, job, started_at FROM run WHERE dry_run = 0 ORDER BY started_at DESC") {
                let job: String = run["job"]
                guard covered[job, default: 0] < names.count else { continue }
                let at: String = run["started_at"]
                let rows = try Row.fetchCursor(resultsOfRun, arguments: [run["id"] as String])
                while let row = try rows.next() {
                    let instance: String = row[0]
                    guard last[instance]?[job] == nil else { continue }
                    last[instance, default: [:]][job] = Recorded(result: row[1], at: at, detail: row[2], connection: row[3], action: row[4], delivery: row[5])
                    if names.contains(instance) { covered[job, default: 0] += 1 }
                }
            }
            let apps = try App.filter(Column("stage") != AppStage.retired.rawValue).fetchAll(db)
            let current = Dictionary(apps.filter { $0.stage == .current }.map { (Inventory.AppKey(workspaceID: $0.workspaceID, appGroup: $0.appGroup), $0) },
                                     uniquingKeysWith: { first, _ in first })
            let appsByID = Dictionary(try App.fetchAll(db).compactMap { app in app.id.map { ($0, app) } }, uniquingKeysWith: { first, _ in first })
            var running: [String: (app: App, state: String)] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT instance, app_id, state FROM instance_credential") {
                if let app = appsByID[row[1]] { running[row[0]] = (app, row[2]) }
            }
            var waits: [Inventory.AppKey: (stage: String, since: String)] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT workspace_id, app_group, stage, since FROM rotation_wait") {
                waits[Inventory.AppKey(workspaceID: row[0], appGroup: row[1])] = (row[2], row[3])
            }
            // Parsed once per distinct time: results share their run's start, apps their group's.
            var parsed: [String: Date?] = [:]
            func age(_ text: String?) -> Double? {
                guard let text else { return nil }
                if let known = parsed[text] { return known.map { now.timeIntervalSince($0) } }
                let date = Timestamp.parse(text)
                parsed[text] = date
                return date.map { now.timeIntervalSince($0) }
            }

            var needs: [PersonAction] = []
            var seenActions = Set<String>()
            let built: [Instance] = instances.sorted { $0.name < $1.name }.map { instance in
                let key = Inventory.AppKey(workspaceID: instance.workspaceID, appGroup: instance.appGroup)
                let results = last[instance.name] ?? [:]
                let verify = results["verify-delivery"]
                let newestConnection = results.values.filter { $0.connection != nil }.max { $0.at < $1.at }
                let wait = waits[key]
                var health: Health
                if !instance.enabled {
                    health = .disabled
                } else if instance.retirement != nil {
                    health = .retiring
                } else if let newest = newestConnection, newest.at >= (verify?.at ?? ""), newest.connection == ConnectionState.awaitingConnect.rawValue {
                    health = .awaitingConnect
                } else if let verify {
                    if verify.result == InstanceResult.Outcome.needsConnect.rawValue {
                        health = .awaitingConnect
                    } else if verify.result != InstanceResult.Outcome.ok.rawValue {
                        health = .failing
                    } else if (age(verify.at) ?? .infinity) > staleAfter {
                        health = .stale
                    } else {
                        health = verify.connection == ConnectionState.onRetiringApp.rawValue ? .onRetiringApp : .delivering
                    }
                } else {
                    health = .unverified
                }
                if health == .delivering, newestConnection?.connection == ConnectionState.onRetiringApp.rawValue, (newestConnection?.at ?? "") >= (verify?.at ?? "") {
                    health = .onRetiringApp
                }
                // What a person must do: the newest action any job asked for, while it still applies.
                if instance.isActive, let newest = results.values.filter({ $0.action != nil }).max(by: { $0.at < $1.at }),
                   let text = newest.action, let action = PersonAction(json: text) {
                    let applies: Bool
                    switch action.kind {
                    case .connect: applies = health == .awaitingConnect || health == .onRetiringApp || wait?.stage == "awaiting-connect"
                    case .regenerate, .copySecret: applies = wait?.stage == "awaiting-regenerate"
                    }
                    // One regeneration serves a whole app group: listed once.
                    let identity = action.kind == .connect ? "\(action.kind)/\(instance.name)/\(action.entity ?? "")" : "\(action.kind)/\(action.link)"
                    if applies, seenActions.insert(identity).inserted { needs.append(action) }
                }
                let app = current[key]
                let seen = running[instance.name]
                // Without a rotation's record, the last verify-delivery or provision-app that went
                // through saw the instance report its app's client ID.
                let ranCurrent = [verify, results["provision-app"]].contains { $0.map { ["ok", "changed"].contains($0.result) && $0.at >= (app?.createdAt ?? "") } ?? false }
                return Instance(
                    name: instance.name, workspace: instance.workspaceID, appGroup: instance.appGroup, labels: instance.labels, health: health,
                    appID: app?.slackAppID, clientID: seen?.state == "running" ? seen?.app.clientID : ranCurrent ? app?.clientID : nil,
                    verifiedAt: verify?.at, verifiedAgeSeconds: age(verify?.at), deliverySeconds: verify?.delivery,
                    connection: newestConnection?.connection, rotationStage: wait?.stage ?? (seen?.state == "registering" ? "registering" : nil),
                    secretAgeSeconds: age(app?.createdAt),
                    lastResults: results.mapValues { LastResult(result: $0.result, at: $0.at, detail: $0.detail) })
            }

            // Workspaces: the token SlackFleet holds, apps, the next provision's Tier 1 writes.
            var rotated: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT workspace_id, expires_at FROM config_token") { rotated[row[0]] = row[1] }
            var limited: [String: Int] = [:]
            if let summary = try String.fetchOne(db, sql: """
                SELECT summary FROM run WHERE dry_run = 0 AND json_extract(summary, '$.rate_limited') IS NOT NULL ORDER BY started_at DESC LIMIT 1
                """), let parsed = try? JSON.parse(Data(summary.utf8)), case .object(let items)? = parsed["rate_limited"] {
                for (workspace, count) in items { limited[workspace] = count.intValue ?? 0 }
            }
            let pacer = SlackPacer(quotas: JobSettings.base.slackQuotas)
            let groups = Dictionary(grouping: instances.filter(\.isActive)) { Inventory.AppKey(workspaceID: $0.workspaceID, appGroup: $0.appGroup) }
            let workspaces: [Workspace] = inventory.workspaces.filter { chosenWorkspaces.contains($0.id) }.sorted { $0.id < $1.id }.map { workspace in
                let expires = rotated[workspace.id] ?? workspace.configTokenExpiresAt
                let pending = groups.keys.filter { $0.workspaceID == workspace.id && current[$0] == nil }.count
                return Workspace(id: workspace.id, name: workspace.name, tokenExpiresAt: expires,
                                 tokenExpiresInSeconds: expires.flatMap(Timestamp.parse).map { $0.timeIntervalSince(now) },
                                 apps: current.keys.filter { $0.workspaceID == workspace.id }.count, pendingTier1Writes: pending,
                                 pendingETASeconds: pending == 0 ? 0 : pacer.eta(workspace: workspace.id, calls: pending, tier: .tier1),
                                 rateLimitedLastRun: limited.isEmpty ? nil : limited[workspace.id] ?? 0)
            }
            let perDay = try Row.fetchAll(db, sql: """
                SELECT day, n FROM (SELECT substr(time, 1, 10) AS day, COUNT(*) AS n FROM audit_entry GROUP BY day ORDER BY day DESC LIMIT 60) ORDER BY day
                """).map { DayCount(day: $0[0], count: $0[1]) }
            return FleetStatus(generatedAt: Timestamp.format(now), staleAfterSeconds: staleAfter, rotationPolicySeconds: rotationPolicy,
                               workspaces: workspaces, instances: built, needsPerson: needs, auditPerDay: perDay,
                               tier1Timelines: try timelines(db, workspaces: chosenWorkspaces, apps: appsByID.values))
        }
    }

    /// Per workspace, the Tier 1 writes (app creates, updates, deletes, restores: each intent)
    /// of the last run that made any there, as seconds from that run's first.
    static func timelines(_ db: Database, workspaces: Set<String>, apps: Dictionary<Int64, App>.Values) throws -> [WriteTimeline] {
        let workspaceOfApp = Dictionary(apps.compactMap { app in app.slackAppID.map { ($0, app.workspaceID) } }, uniquingKeysWith: { first, _ in first })
        var byWorkspace: [String: [String: [String]]] = [:]
        var order: [String: String] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT e.run_id, e.target, e.time FROM audit_entry e JOIN run r ON r.id = e.run_id
            WHERE e.phase = 'intent' AND e.target LIKE 'slack:app/%' AND e.action IN ('create', 'update-redirects', 'delete', 'restore') ORDER BY e.seq
            """) {
            let runID: String = row[0]
            let path = String((row[1] as String).dropFirst("slack:app/".count)).split(separator: "/").map(String.init)
            // slack:app/WORKSPACE/GROUP, or slack:app/APP_ID.
            guard let workspace = path.count == 2 ? path[0] : workspaceOfApp[path.first ?? ""], workspaces.contains(workspace) else { continue }
            byWorkspace[workspace, default: [:]][runID, default: []].append(row[2])
            order[runID] = max(order[runID] ?? "", row[2])
        }
        let perMinute = JobSettings.base.slackQuotas.perMinute[.tier1] ?? 1
        return byWorkspace.keys.sorted().compactMap { workspace in
            guard let runs = byWorkspace[workspace], let latest = runs.keys.max(by: { (order[$0] ?? "") < (order[$1] ?? "") }),
                  let times = runs[latest]?.compactMap(Timestamp.parse), let first = times.min() else { return nil }
            return WriteTimeline(workspace: workspace, runID: latest, seconds: times.map { $0.timeIntervalSince(first) }.sorted(), perMinute: perMinute)
        }
    }
}

extension PersonAction {
    /// Reads back the JSON form a run recorded (`json`); nil if it is not one.
    init?(json text: String) {
        guard let json = try? JSON.parse(Data(text.utf8)), let kind = json["kind"]?.stringValue.flatMap(Kind.init(rawValue:)),
              let instance = json["instance"]?.stringValue, let workspace = json["workspace"]?.stringValue,
              let link = json["link"]?.stringValue, let page = json["page"]?.stringValue, let why = json["why"]?.stringValue else { return nil }
        self.init(kind: kind, instance: instance, entity: json["entity"]?.stringValue, channel: json["channel"]?.stringValue, workspace: workspace,
                  link: link, page: page, why: why, then: json["then"]?.stringValue)
    }
}
