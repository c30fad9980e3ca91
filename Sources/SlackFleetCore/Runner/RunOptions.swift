import Foundation

/// How to run a job.
public struct RunOptions: Sendable {
    public var selection = Selection()
    public var dryRun = false
    public var concurrency: Int?
    public var maxFailures: FailureBudget?
    public var maxDuration: TimeInterval?
    public var settings: JobSettings
    /// The transport's settings (`--ca-file`).
    public var transport = HTTPTransport.Configuration()
    /// The inventory's read, started when the database opened (the job commands start it before
    /// they read the job's settings and open the keyring); nil, or a read of another database
    /// than the runner's: the run starts its own.
    public var inventory: InventoryRead?

    public init(settings: JobSettings) {
        self.settings = settings
    }
}
