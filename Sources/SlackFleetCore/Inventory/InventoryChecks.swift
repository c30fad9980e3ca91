/// Checks that span records: uniqueness, references between them, and per-app limits.
struct InventoryChecks {
    let sink: ProblemSink
    /// Every workspace id or name the file tried to define, valid or not.
    let attemptedWorkspaces: Set<String>

    func check(_ inventory: Inventory) {
        var workspaceIDs: Set<String> = []
        var workspaceNames: [String: String] = [:]
        for workspace in inventory.workspaces {
            if !workspaceIDs.insert(workspace.id).inserted {
                sink.error(line: nil, "workspace \(workspace.id)/id", "appears twice", "list each Slack workspace once")
            }
            if let other = workspaceNames[workspace.name], other != workspace.id {
                sink.error(line: nil, "workspace \(workspace.id)/name", "\"\(workspace.name)\" is also the name of workspace \(other)", "give each workspace its own name")
            }
            workspaceNames[workspace.name] = workspace.id
        }
        var names: Set<String> = []
        for instance in inventory.instances where !names.insert(instance.name).inserted {
            sink.error(line: nil, "instance \(instance.name)/name", "appears twice", "give each instance its own name")
        }
        for instance in inventory.instances where !workspaceIDs.contains(instance.workspaceID) && !attemptedWorkspaces.contains(instance.workspaceID) {
            sink.error(line: nil, "instance \(instance.name)/workspace", "\"\(instance.workspaceID)\" is not a workspace of this file", "use the id or name of one of: \(inventory.workspaces.map(\.id).joined(separator: ", "))")
        }
        let workspacesByID = Dictionary(inventory.workspaces.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for instance in inventory.instances {
            guard let workspace = workspacesByID[instance.workspaceID] else { continue }
            if instance.canary != nil, workspace.canaryChannel == nil {
                sink.warning(line: nil, "instance \(instance.name)/canary", "workspace \(workspace.id) has no canary_channel or bot_token", "verify-delivery cannot confirm this instance's alerts until they are added")
            }
        }
        checkApps(inventory)
    }

    private func checkApps(_ inventory: Inventory) {
        var owners: [String: String] = [:]
        for (key, instances) in inventory.instancesByApp.sorted(by: { $0.key < $1.key }) {
            let app = "app group \(key.appGroup) in workspace \(key.workspaceID)"
            let urls = Set(instances.flatMap(\.hostURLs))
            if urls.count > InventoryReader.maximumRedirectURLsPerApp {
                sink.error(line: nil, "\(app)/host_urls", "its instances have \(urls.count) host URLs", "a Slack app takes at most \(InventoryReader.maximumRedirectURLsPerApp) redirect URLs: split the group")
            }
            let ranges = Set(instances.flatMap(\.ipAllowlist))
            if ranges.count > InventoryReader.maximumIPRangesPerApp {
                sink.error(line: nil, "\(app)/ip_allowlist", "its instances list \(ranges.count) IP ranges", "a Slack app takes at most \(InventoryReader.maximumIPRangesPerApp): merge them into wider ranges")
            } else if ranges.count > InventoryReader.ipRangesWarningThreshold {
                sink.warning(line: nil, "\(app)/ip_allowlist", "its instances list \(ranges.count) IP ranges", "Slack's settings page allows 10; the API's limit is unconfirmed, so Slack may refuse more")
            }
            for url in urls.sorted() {
                if let owner = owners[url], owner != app {
                    sink.warning(line: nil, "\(app)/host_urls", "\(url) is also a host URL of \(owner)", "two apps will accept installs from the same host; check that this is intended")
                }
                owners[url] = app
            }
        }
    }
}
