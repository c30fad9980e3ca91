import Foundation

/// Puts a stored snapshot of an app's manifest back (through the executor, audited).
public enum SnapshotRestore {
    /// Restores snapshot `id` with the sync-redirects job's defaults; returns the app's id.
    public static func restore(snapshot id: Int64, store: FleetStore, vault: SecretVault, audit: AuditLog,
                               transport configuration: HTTPTransport.Configuration = HTTPTransport.Configuration()) throws -> String {
        // A restore is a change to Slack like a job's: it holds the run lock, so it never races a
        // sync-redirects run on the same app and its intent is never taken for a crashed one.
        let (lock, _) = try RunLock.acquire(store, runID: audit.context.runID, job: "apps restore")
        defer { lock.release() }
        guard let found = try AppRepository.snapshot(id: id, in: store) else {
            throw FleetError.data("no snapshot \(id): see `slackfleet apps snapshots INSTANCE`")
        }
        let workspaces = try InventoryRepository.load(store).workspaces
        guard let workspace = workspaces.first(where: { $0.id == found.app.workspaceID }) else {
            throw FleetError.data("the workspace \(found.app.workspaceID) of snapshot \(id) is no longer in the inventory")
        }
        // A shard's database restores only in the workspaces its shard owns.
        if let shard = try Shard.recorded(in: store), try !shard.owned(workspaces).contains(workspace.id) {
            throw FleetError.config("workspace \(workspace.id) of snapshot \(id) belongs to another shard than this database's (\(shard)): restore it from that shard's runner")
        }
        let transport = HTTPTransport(configuration: configuration)
        defer { transport.shutdown() }
        let context = JobContext.standalone(store: store, vault: vault, audit: audit, settings: JobSettings.base,
                                            transport: transport, control: RunControl())
        return try restore(snapshot: id, context: context, workspace: workspace)
    }

    static func restore(snapshot id: Int64, context: JobContext, workspace: Workspace) throws -> String {
        guard let snapshot = try AppRepository.snapshot(id: id, in: context.store), let appID = snapshot.app.slackAppID else {
            throw FleetError.data("no snapshot \(id): see `slackfleet apps snapshots`")
        }
        let token = try context.vault.resolve(workspace.configToken)
        let slack = context.slack(workspace)
        let current = try slack.export(appID: appID, token: token)
        try AppRepository.snapshot(snapshot.app, manifest: current, reason: "before restoring snapshot \(id)", in: context.store)
        try slack.validate(snapshot.manifest, appID: appID, token: token)
        try context.executor.perform(ChangeExecutor.Change(target: "slack:app/\(appID)", action: "restore",
                                                           summary: "restore app \(appID)'s manifest from snapshot \(id) (\(snapshot.takenAt))",
                                                           detail: ["snapshot": .int(Int(id))]), instance: nil) {
            try slack.update(appID: appID, manifest: snapshot.manifest, token: token)
        }
        try context.executor.audit.flush()
        return appID
    }
}
