import Foundation

/// sync-redirects: each app's redirect URLs and IP allow-list equal what the inventory says;
/// nothing else in the manifest is touched.
public struct SyncRedirects: FleetJob {
    public let name = "sync-redirects"
    /// An update per app at most: reads (exports) dominate, so more of them in flight.
    public static let defaultSettings = JobSettings.base.with { $0.concurrency = 32 }
    private let apps = CurrentApps()

    public init() {}

    /// What differs between the exported manifest and the inventory.
    public struct Drift: Sendable, Equatable {
        public var addedURLs: [String] = []
        public var removedURLs: [String] = []
        public var addedRanges: [String] = []
        public var removedRanges: [String] = []

        public var isEmpty: Bool { addedURLs.isEmpty && removedURLs.isEmpty && addedRanges.isEmpty && removedRanges.isEmpty }

        public var summary: String {
            var parts: [String] = []
            if !addedURLs.isEmpty || !removedURLs.isEmpty { parts.append("redirect URLs +\(addedURLs.count) -\(removedURLs.count)") }
            if !addedRanges.isEmpty || !removedRanges.isEmpty { parts.append("IP ranges +\(addedRanges.count) -\(removedRanges.count)") }
            return parts.joined(separator: ", ")
        }

        /// Lines such as `+ https://new.example.com` and `- 203.0.113.0/24`.
        public var lines: [String] {
            addedURLs.map { "+ \($0)" } + removedURLs.map { "- \($0)" } + addedRanges.map { "+ ip \($0)" } + removedRanges.map { "- ip \($0)" }
        }
    }

    /// Compares only the two fields this job owns, normalised: Slack's own additions to an
    /// export (`_metadata`, default settings) never count as drift.
    public static func drift(exported: JSON, instances: [Instance]) -> Drift {
        let desiredURLs = Set(ProvisionApp.redirectURLs(instances))
        // The desired URLs are normalised already (at import), and normalising is idempotent:
        // only an exported URL spelled otherwise needs the work.
        let actualURLs = Set(exported["oauth_config"]?["redirect_urls"]?.strings.map { desiredURLs.contains($0) ? $0 : normalised($0) } ?? [])
        let desiredRanges = Set(ProvisionApp.ipRanges(instances))
        let actualRanges = Set(exported["settings"]?["allowed_ip_address_ranges"]?.strings ?? [])
        return Drift(addedURLs: desiredURLs.subtracting(actualURLs).sorted(), removedURLs: actualURLs.subtracting(desiredURLs).sorted(),
                     addedRanges: desiredRanges.subtracting(actualRanges).sorted(), removedRanges: actualRanges.subtracting(desiredRanges).sorted())
    }

    static func normalised(_ url: String) -> String {
        (try? EndpointRules.checkURL(url, role: .hostURL, allowInsecureHTTP: true).get()) ?? url
    }

    /// The exported manifest with only redirect URLs and the allow-list replaced.
    public static func edited(_ exported: JSON, instances: [Instance]) -> JSON {
        var manifest = exported.setting(["oauth_config", "redirect_urls"], to: .list(ProvisionApp.redirectURLs(instances).map(JSON.string)))
        let ranges = ProvisionApp.ipRanges(instances)
        if ranges.isEmpty {
            // Slack's schema wants at least one range when the list is present: no list means no restriction.
            if case .object(var settings)? = manifest["settings"] {
                settings.removeValue(forKey: "allowed_ip_address_ranges")
                manifest = manifest.setting(["settings"], to: .object(settings))
            }
        } else {
            manifest = manifest.setting(["settings", "allowed_ip_address_ranges"], to: .list(ranges.map(JSON.string)))
        }
        return manifest
    }

    public func prepare(context: JobContext) {
        // A failure here is met again, and reported, by each group.
        try? apps.load(store: context.store, run: context.runID)
    }

    public func expectedTier1Writes(_ group: GroupWork, context: JobContext) -> Int { 0 }

    /// Exports the app once the workspace's Tier 3 quota lets a read go, and on drift updates it
    /// once its Tier 1 quota lets a write go: each its own step, so no worker waits on a quota.
    public func start(_ group: GroupWork, context: JobContext) -> GroupStep {
        do {
            guard let app = try apps.app(workspaceID: group.workspace.id, appGroup: group.key.appGroup, store: context.store, run: context.runID),
                  let appID = app.slackAppID else {
                return .done(context.all(group, .skipped, "no Slack app yet: run provision-app first"))
            }
            return .spend(.tier3) { context in self.compare(group, app: app, appID: appID, context: context) }
        } catch {
            return .done(context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error)))
        }
    }

    /// Export, compare, and (on drift) keep a snapshot and validate the edited manifest.
    private func compare(_ group: GroupWork, app: App, appID: String, context: JobContext) -> GroupStep {
        do {
            let token = try context.vault.resolve(group.workspace.configToken)
            let slack = context.slack(group.workspace)
            let exported = try slack.export(appID: appID, token: token)
            let drift = SyncRedirects.drift(exported: exported, instances: group.members)
            if drift.isEmpty {
                return .done(context.all(group, .ok, "app \(appID): redirect URLs and IP allow-list match the inventory"))
            }
            let edited = SyncRedirects.edited(exported, instances: group.members)
            if !context.executor.dryRun {
                try AppRepository.snapshot(app, manifest: exported, reason: "before sync-redirects run \(context.executor.audit.context.runID)", in: context.store)
            }
            do {
                try slack.validate(edited, appID: appID, token: token)
            } catch let error as SlackAPIError {
                throw FleetError.failed("Slack refused the edited manifest of app \(appID): " + error.problems.map { "\($0.pointer): \($0.message)" }.joined(separator: "; "))
            }
            if context.executor.dryRun { return .done(update(group, appID: appID, edited: edited, drift: drift, token: token, context: context)) }
            return .spend(.tier1) { context in .done(self.update(group, appID: appID, edited: edited, drift: drift, token: token, context: context)) }
        } catch {
            return .done(context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error)))
        }
    }

    /// apps.manifest.update with the complete edited manifest, through the executor.
    private func update(_ group: GroupWork, appID: String, edited: JSON, drift: Drift, token: SecretValue, context: JobContext) -> [InstanceResult] {
        do {
            let slack = context.slack(group.workspace)
            let change = ChangeExecutor.Change(
                target: "slack:app/\(appID)", action: "update-redirects", summary: "app \(appID): \(drift.summary)",
                detail: ["redirect_urls_added": .list(drift.addedURLs.map(JSON.string)), "redirect_urls_removed": .list(drift.removedURLs.map(JSON.string)),
                         "ip_ranges_added": .list(drift.addedRanges.map(JSON.string)), "ip_ranges_removed": .list(drift.removedRanges.map(JSON.string))])
            try context.executor.perform(change, instance: nil) {
                try slack.update(appID: appID, manifest: edited, token: token)
            }
            let verb = context.executor.dryRun ? "would change" : "changed"
            return context.all(group, .changed, "app \(appID): \(verb) \(drift.summary): " + drift.lines.joined(separator: ", "))
        } catch {
            return context.all(group, JobContext.outcome(of: error), ChangeExecutor.describe(error))
        }
    }
}
