import Foundation

/// One app group's share of a run: the instances that share one Slack app.
public struct GroupWork: Sendable {
    public let key: Inventory.AppKey
    public let workspace: Workspace
    public let instances: [Instance]

    public init(key: Inventory.AppKey, workspace: Workspace, instances: [Instance]) {
        self.key = key
        self.workspace = workspace
        self.instances = instances
    }
}
