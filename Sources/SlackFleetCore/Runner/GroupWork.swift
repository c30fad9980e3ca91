import Foundation

/// One app group's share of a run: the instances that share one Slack app.
public struct GroupWork: Sendable {
    public let key: Inventory.AppKey
    public let workspace: Workspace
    /// The group's instances this run works on (the selection's).
    public let instances: [Instance]
    /// Every instance of the group in service, selected or not: what the app's redirect URLs
    /// and IP allow-list are made of, so a run on one instance never drops another's.
    public let members: [Instance]

    public init(key: Inventory.AppKey, workspace: Workspace, instances: [Instance], members: [Instance]? = nil) {
        self.key = key
        self.workspace = workspace
        self.instances = instances
        self.members = members ?? instances
    }
}
