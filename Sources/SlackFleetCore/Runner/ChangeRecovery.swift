import Foundation

/// How a run settles one kind of change that a crash left with an intent and no outcome: it
/// reads what the stored state says became of it. A job declares the recoveries of the changes it
/// makes (FleetJob.recoveries); every run settles every job's leftovers before its own work.
public protocol ChangeRecovery: Sendable {
    /// Whether this settles `entry` (by its target and action).
    func settles(_ entry: AuditEntry) -> Bool
    /// What became of the change, as the `recovered` audit entry and the run's note say it.
    func found(_ entry: AuditEntry, detail: JSON?, store: FleetStore) throws -> String
}
