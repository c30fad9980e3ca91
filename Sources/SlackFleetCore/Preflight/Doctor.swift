import Foundation

/// `slackfleet doctor`: a read-only preflight of everything a run will need, before anything
/// changes. Every check reads: no app, Secret, workload, integration or token is written (a
/// SelfSubjectAccessReview is a question the API server answers and keeps nothing of).
public enum Doctor {
    /// One thing that is wrong, and how to fix it.
    public struct Finding: Sendable, Equatable {
        /// The instance, or the workspace for a workspace's checks.
        public let instance: String?
        public let workspace: String
        public let check: String
        public let problem: String
        public let fix: String

        public var json: JSON {
            ["instance": instance.map(JSON.string) ?? .null, "workspace": .string(workspace), "check": .string(check),
             "problem": .string(problem), "fix": .string(fix)]
        }
    }

    public struct Report: Sendable {
        public var findings: [Finding] = []
        /// How many checks ran (a check skipped because an earlier one failed is not counted).
        public var checks = 0
        public var instances = 0
        public var workspaces = 0
        public var ready: Bool { findings.isEmpty }
    }

    /// The checks, in the order they run and are shown.
    public static let checkNames = ["config_token", "refresh_token", "bot_token", "canary_channel",
                                    "api_key", "tls", "wandb", "wandb_admin", "kubernetes_token", "kubernetes_access", "kubernetes_objects", "exec"]

    /// What the checks of one workspace or instance found, and how many ran.
    private struct Tally: Sendable {
        var findings: [Finding] = []
        var checks = 0
    }

    /// Checks `instances` and their workspaces. `expiryMargin`: a configuration token that
    /// expires sooner than this is reported.
    public static func run(_ instances: [Instance], workspaces: [Workspace], context: JobContext, expiryMargin: TimeInterval = 3600) -> Report {
        let used = Set(instances.map(\.workspaceID))
        let checked = workspaces.filter { used.contains($0.id) }
        let workspaceTallies = context.each(checked) { check($0, context: context, expiryMargin: expiryMargin) }
        let instanceTallies = context.each(instances) { check($0, context: context) }
        var report = Report(instances: instances.count, workspaces: checked.count)
        for tally in workspaceTallies + instanceTallies {
            report.findings += tally.findings
            report.checks += tally.checks
        }
        let order = Dictionary(uniqueKeysWithValues: checkNames.enumerated().map { ($1, $0) })
        report.findings.sort {
            ($0.workspace, $0.instance ?? "", order[$0.check] ?? 99) < ($1.workspace, $1.instance ?? "", order[$1.check] ?? 99)
        }
        return report
    }

    // MARK: A workspace

    private static func check(_ workspace: Workspace, context: JobContext, expiryMargin: TimeInterval) -> Tally {
        var tally = Tally()
        func found(_ check: String, _ problem: String, _ fix: String) {
            tally.findings.append(Finding(instance: nil, workspace: workspace.id, check: check, problem: problem, fix: fix))
        }
        let slack = context.slack(workspace)

        tally.checks += 1
        if let token = resolve(workspace.configToken, context: context, check: "config_token", report: found) {
            if let expiry = workspace.configTokenExpiresAt.flatMap(Timestamp.parse) {
                if expiry <= Date() {
                    found("config_token", "the configuration token expired at \(workspace.configTokenExpiresAt ?? "")",
                          "run `slackfleet rotate-secret --config-tokens` (it renews with the stored refresh token), or store a fresh token")
                } else if expiry.timeIntervalSinceNow < expiryMargin {
                    found("config_token", "the configuration token expires at \(workspace.configTokenExpiresAt ?? ""), within \(Runner.duration(expiryMargin))",
                          "run `slackfleet rotate-secret --config-tokens` before the next job")
                }
            }
            do {
                // A manifest check changes nothing and needs the token to be valid.
                try slack.validate(["display_information": ["name": "slackfleet doctor"]], appID: nil, token: token)
            } catch let error as SlackAPIError where error.code == "invalid_manifest" {
                // The token was accepted; the probe manifest's content does not matter.
            } catch {
                if let fix = tlsFinding(error) {
                    found("tls", ChangeExecutor.describe(error), fix)
                    return tally
                }
                found("config_token", "Slack refuses the configuration token: \(ChangeExecutor.describe(error))",
                      "generate a new configuration token at https://api.slack.com/apps (Your App Configuration Tokens), store it, and import the inventory again")
            }
        }

        tally.checks += 1
        _ = resolve(workspace.refreshToken, context: context, check: "refresh_token", report: found)

        tally.checks += 1
        guard let botReference = workspace.botToken, let channel = workspace.canaryChannel else {
            found("bot_token", "workspace \(workspace.id) has no \(workspace.botToken == nil ? "bot_token" : "canary_channel"): verify-delivery cannot read the test alerts",
                  "add bot_token (a bot that can read the canary channel) and canary_channel to the workspace in the inventory")
            return tally
        }
        guard let botToken = resolve(botReference, context: context, check: "bot_token", report: found) else { return tally }

        tally.checks += 1
        do {
            let info = try slack.channelInfo(channel, token: botToken)
            let name = info["name"]?.stringValue.map { "#\($0) (\(channel))" } ?? channel
            if info["is_archived"]?.boolValue == true {
                found("canary_channel", "the canary channel \(name) is archived: alerts cannot be posted there",
                      "unarchive it, or pick another canary channel (canary_channel in the inventory)")
            } else if info["is_member"]?.boolValue == false {
                let invite = "/invite @" + (context.facts.botName(workspace, slack: slack, botToken: botToken) ?? "<the reader bot>")
                found("canary_channel", "the reader bot is not in the canary channel \(name) of workspace \(workspace.id): it cannot read the test alerts",
                      "type `\(invite)` in that channel")
            }
        } catch {
            if let known = context.facts.canaryProblem(error, workspace: workspace, slack: slack, botToken: botToken) {
                found("canary_channel", known.problem, known.fix)
            } else if let fix = tlsFinding(error) {
                found("tls", ChangeExecutor.describe(error), fix)
            } else {
                found("canary_channel", "cannot read the canary channel \(channel): \(ChangeExecutor.describe(error))", "check bot_token and canary_channel in the inventory")
            }
        }
        return tally
    }

    // MARK: An instance

    private static func check(_ instance: Instance, context: JobContext) -> Tally {
        var tally = Tally()
        func found(_ check: String, _ problem: String, _ fix: String) {
            tally.findings.append(Finding(instance: instance.name, workspace: instance.workspaceID, check: check, problem: problem, fix: fix))
        }

        tally.checks += 1
        if let apiKey = resolve(instance.apiKey, context: context, check: "api_key", report: found) {
            tally.checks += 2
            let wandb = WandbClient(instance: instance, apiKey: apiKey, environment: context.environment)
            do {
                let data = try wandb.query("{ viewer { username admin } serverInfo { slackClientID frontendHost } }")
                if data["serverInfo"]?.objectValue == nil {
                    found("wandb", "\(instance.baseURL) answered without serverInfo", "check base_url: it must be the W&B server's address")
                }
                if data["viewer"]?["admin"]?.boolValue != true {
                    let user = data["viewer"]?["username"]?.stringValue.map { "user \($0)" } ?? "no user"
                    found("wandb_admin", "the W&B API key belongs to \(user), not an admin: registering and testing alerts need an admin",
                          "use an admin's API key (api_key in the inventory)")
                }
            } catch {
                if let fix = tlsFinding(error) {
                    found("tls", ChangeExecutor.describe(error), fix)
                } else {
                    found("wandb", "cannot read serverInfo: \(ChangeExecutor.describe(error))", "check base_url and api_key, and that the instance is up")
                }
            }
        }

        switch instance.registrar {
        case .operatorV2(let target), .operatorV1(let target):
            let v2: Bool
            if case .operatorV2 = instance.registrar { v2 = true } else { v2 = false }
            tally.checks += 1
            guard let token = resolve(target.token, context: context, check: "kubernetes_token", report: found) else { return tally }
            let client = KubernetesClient(target: target, token: token, allowInsecureHTTP: instance.allowInsecureHTTP, environment: context.environment)
            tally.checks += checkKubernetes(target, v2: v2, client: client, found: found)
        case .exec(let hook):
            tally.checks += 1
            let program = hook.command[0]
            let path = program.hasPrefix("/") ? program : FileManager.default.currentDirectoryPath + "/" + program
            if !FileManager.default.isExecutableFile(atPath: path) {
                found("exec", "the exec registrar \(program) is not an executable file (looked at \(path))",
                      "fix registrar.command in the inventory, or make the file executable")
            }
        }
        return tally
    }

    /// The verbs the registrar needs, asked with SelfSubjectAccessReviews; then the objects it
    /// writes, looked at where the service account may read them. Returns how many checks ran.
    private static func checkKubernetes(_ target: KubernetesTarget, v2: Bool, client: KubernetesClient,
                                        found: (String, String, String) -> Void) -> Int {
        var checks = 0
        let namespace = target.namespace
        let workloadName = target.deployment ?? "wandb-api"
        func denied(_ verb: String, _ resource: String, _ group: String, _ name: String?, why: String) -> Bool {
            do {
                if try client.mayI(verb, resource, group: group, namespace: namespace, name: name) { return false }
                let qualified = resource + (group.isEmpty ? "" : "." + group)
                found("kubernetes_access", "the service account may not \(verb) \(qualified)\(name.map { " \($0)" } ?? "") in namespace \(namespace) (\(why))",
                      "add a Role rule {apiGroups: [\"\(group)\"], resources: [\"\(resource)\"], verbs: [\"\(verb)\"]\(name.map { ", resourceNames: [\"\($0)\"]" } ?? "")} in namespace \(namespace), bound to the service account")
            } catch {
                found(tlsFinding(error) == nil ? "kubernetes_access" : "tls", "cannot ask the Kubernetes API what the service account may do: \(ChangeExecutor.describe(error))",
                      tlsFinding(error) ?? "check registrar.api_url and registrar.token")
            }
            return true
        }

        // The CR: read by both, written by v1 (its Helm values).
        checks += 1
        let version = v2 ? "v2" : "v1"
        let readCR = !denied("get", "weightsandbiases", "apps.wandb.com", target.resource, why: "to read the WeightsAndBiases resource")
        if !v2 { _ = denied("patch", "weightsandbiases", "apps.wandb.com", target.resource, why: "to set spec.values.global.slack") }
        var secretNames: [String] = []
        if readCR {
            checks += 1
            do {
                let resource = try client.get(KubernetesClient.resourcePath(version, namespace, target.resource))
                if v2 {
                    let slack = resource["spec"]?["wandb"]?["notifications"]?["slack"]
                    secretNames = Array(Set([slack?["clientId"]?["name"]?.stringValue, slack?["clientSecret"]?["name"]?.stringValue].compactMap { $0 })).sorted()
                    if secretNames.isEmpty || slack?["clientId"]?["key"] == nil || slack?["clientSecret"]?["key"] == nil {
                        found("kubernetes_objects", "the WeightsAndBiases resource \(namespace)/\(target.resource) has no spec.wandb.notifications.slack clientId and clientSecret selectors",
                              "add them (name and key of a Secret) to the resource")
                    }
                }
            } catch let error as ServiceError where error.status == 404 {
                found("kubernetes_objects", "there is no WeightsAndBiases resource \(namespace)/\(target.resource) (apps.wandb.com/\(version))",
                      "fix registrar.resource and registrar.namespace (or registrar.kind: operator-\(v2 ? "v1" : "v2")) in the inventory")
            } catch {
                found(tlsFinding(error) == nil ? "kubernetes_objects" : "tls", "cannot read the WeightsAndBiases resource: \(ChangeExecutor.describe(error))",
                      tlsFinding(error) ?? "check registrar.api_url and registrar.token")
            }
        }
        // v2: the Secrets its selectors name.
        if v2 {
            checks += 1
            for name in secretNames.isEmpty ? [nil] : secretNames.map(Optional.some) {
                _ = denied("patch", "secrets", "", name, why: "to write the Slack client ID and secret")
            }
        }

        // The api workload: the kind the inventory names, else the one that exists.
        checks += 1
        var kind = target.workload
        if kind == nil {
            for candidate in WorkloadKind.allCases {
                let (resource, group) = candidate == .deployment ? ("deployments", "apps") : ("rollouts", "argoproj.io")
                // Existence can only be looked at with get; the registrar itself needs only patch.
                guard (try? client.mayI("get", resource, group: group, namespace: namespace, name: workloadName)) == true else { continue }
                let path = candidate == .deployment ? KubernetesClient.deploymentPath(namespace, workloadName) : KubernetesClient.rolloutPath(namespace, workloadName)
                if (try? client.get(path)) != nil {
                    kind = candidate
                    break
                }
            }
        } else if let named = kind {
            let (resource, group) = named == .deployment ? ("deployments", "apps") : ("rollouts", "argoproj.io")
            if (try? client.mayI("get", resource, group: group, namespace: namespace, name: workloadName)) == true {
                let path = named == .deployment ? KubernetesClient.deploymentPath(namespace, workloadName) : KubernetesClient.rolloutPath(namespace, workloadName)
                do {
                    _ = try client.get(path)
                } catch let error as ServiceError where error.status == 404 {
                    found("kubernetes_objects", "there is no \(named == .deployment ? "Deployment" : "Argo Rollout") \(namespace)/\(workloadName) to restart",
                          "fix registrar.deployment (the api workload's name) or registrar.workload in the inventory")
                } catch {}
            }
        }
        let restartKind = kind ?? .deployment
        let (resource, group) = restartKind == .deployment ? ("deployments", "apps") : ("rollouts", "argoproj.io")
        _ = denied("patch", resource, group, workloadName, why: "to restart the api so it reads new credentials")
        return checks
    }

    // MARK: Helpers

    /// The secret `reference` names, or nil after reporting why it does not resolve.
    private static func resolve(_ reference: SecretReference, context: JobContext, check: String,
                                report: (String, String, String) -> Void) -> SecretValue? {
        do {
            return try context.vault.resolve(reference)
        } catch {
            report(check, "\(reference.description) does not resolve: \(ChangeExecutor.describe(error))",
                   "set it (an env: variable, a file: path, or `slackfleet secrets set NAME` for secret:NAME) or fix the reference in the inventory")
            return nil
        }
    }

    /// The fix for a certificate that does not verify, or nil for any other error.
    static func tlsFinding(_ error: any Error) -> String? {
        guard let error = error as? TransportError, error.kind == .tls else { return nil }
        return "the server's certificate chain does not verify: pass --ca-file (or set SLACKFLEET_CA_FILE) with the CA that signed it; verification is never turned off"
    }
}
