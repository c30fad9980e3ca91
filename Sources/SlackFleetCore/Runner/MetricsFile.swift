import Foundation

/// A Prometheus textfile (for node_exporter's textfile collector), replaced atomically.
public enum MetricsFile {
    /// Writes `report`'s figures to `path`, keeping the last success time of earlier runs when
    /// this one did not succeed.
    public static func write(_ report: RunReport, to path: String) throws {
        let job = "job=\"\(report.job)\""
        var lastSuccess: Double?
        if report.exitStatus == .ok || report.exitStatus == .changesPending {
            lastSuccess = report.finishedAt.timeIntervalSince1970
        } else if let old = try? String(contentsOfFile: path, encoding: .utf8) {
            for line in old.split(separator: "\n") where line.hasPrefix("slackfleet_last_success_timestamp_seconds{\(job)}") {
                lastSuccess = line.split(separator: " ").last.flatMap { Double($0) }
            }
        }
        var out = """
            # HELP slackfleet_last_run_timestamp_seconds When the last run of the job ended.
            # TYPE slackfleet_last_run_timestamp_seconds gauge
            slackfleet_last_run_timestamp_seconds{\(job)} \(report.finishedAt.timeIntervalSince1970)
            # HELP slackfleet_last_success_timestamp_seconds When a run of the job last ended without failures.
            # TYPE slackfleet_last_success_timestamp_seconds gauge

            """
        if let lastSuccess { out += "slackfleet_last_success_timestamp_seconds{\(job)} \(lastSuccess)\n" }
        out += """
            # HELP slackfleet_run_duration_seconds How long the last run took.
            # TYPE slackfleet_run_duration_seconds gauge
            slackfleet_run_duration_seconds{\(job)} \(report.finishedAt.timeIntervalSince(report.startedAt))
            # HELP slackfleet_run_exit_code The last run's exit code.
            # TYPE slackfleet_run_exit_code gauge
            slackfleet_run_exit_code{\(job)} \(report.exitStatus.rawValue)
            # HELP slackfleet_instances Instances by result in the last run.
            # TYPE slackfleet_instances gauge

            """
        for outcome in InstanceResult.Outcome.allCases { out += "slackfleet_instances{\(job),result=\"\(outcome.rawValue)\"} \(report.count(outcome))\n" }
        out += "# HELP slackfleet_instance_result 1 for each instance's result in the last run.\n# TYPE slackfleet_instance_result gauge\n"
        for result in report.results.sorted(by: { $0.instance < $1.instance }) {
            out += "slackfleet_instance_result{\(job),instance=\"\(result.instance)\",result=\"\(result.outcome.rawValue)\"} 1\n"
        }
        let connected = report.results.filter { $0.connection != nil }.sorted(by: { $0.instance < $1.instance })
        if !connected.isEmpty {
            // Registered and delivering are different states: an operator alerts on awaiting-connect.
            out += "# HELP slackfleet_connections Instances by the state of their canary's Slack integration in the last run.\n# TYPE slackfleet_connections gauge\n"
            for state in ConnectionState.allCases {
                out += "slackfleet_connections{\(job),state=\"\(state.rawValue)\"} \(connected.filter { $0.connection == state }.count)\n"
            }
            out += "# HELP slackfleet_instance_connection 1 for each instance's connection state in the last run.\n# TYPE slackfleet_instance_connection gauge\n"
            for result in connected {
                out += "slackfleet_instance_connection{\(job),instance=\"\(result.instance)\",state=\"\(result.connection?.rawValue ?? "")\"} 1\n"
            }
        }
        if !report.quotaUtilization.isEmpty {
            out += "# HELP slackfleet_quota_utilization The share of each workspace's Slack quota the last run used (1: no call could have gone sooner).\n# TYPE slackfleet_quota_utilization gauge\n"
            for (tier, shares) in report.quotaUtilization.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                for (workspace, share) in shares.sorted(by: { $0.key < $1.key }) {
                    out += "slackfleet_quota_utilization{\(job),workspace=\"\(workspace)\",tier=\"\(tier.rawValue)\"} \(share)\n"
                }
            }
        }
        out += "# HELP slackfleet_slack_rate_limited_total 429 answers in the last run, per workspace.\n# TYPE slackfleet_slack_rate_limited_total gauge\n"
        for (workspace, count) in report.rateLimited.sorted(by: { $0.key < $1.key }) {
            out += "slackfleet_slack_rate_limited_total{\(job),workspace=\"\(workspace)\"} \(count)\n"
        }
        out += report.jobMetrics
        try FileSystem.writePrivateFileAtomically(atPath: path, contents: Data(out.utf8))
    }
}
