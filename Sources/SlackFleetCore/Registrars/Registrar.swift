import Foundation

/// The Slack credentials an instance runs with.
public struct SlackCredentials: Sendable {
    public let appID: String
    /// Text that looks like a number; compared exactly, never parsed.
    public let clientID: String
    public let clientSecret: SecretValue

    public init(appID: String, clientID: String, clientSecret: SecretValue) {
        self.appID = appID
        self.clientID = clientID
        self.clientSecret = clientSecret
    }
}

/// What a registrar needs from the run: clients, the executor, the time it may wait.
public struct RegistrationContext: Sendable {
    public let instance: Instance
    public let executor: ChangeExecutor
    public let wandb: WandbClient
    public let vault: SecretVault
    public let environment: CallEnvironment
    public var control: RunControl { environment.control }
    /// How long to wait for the instance to report the new client ID.
    public let settleTimeout: TimeInterval
}

/// How credentials reach an instance, by its inventory `registrar.kind`.
public enum Registration {
    /// What a registration came to.
    public struct Outcome: Sendable {
        /// False when nothing had to change.
        public var changed: Bool
        /// The Slack integrations of the entity asked for, read with the last `serverInfo` (nil
        /// when none was asked for or not read, `.some(nil)` when the entity does not exist).
        public var integrations: WandbClient.EntityIntegrations??
    }

    /// Makes `context.instance` run with `credentials`: writes them where its kind keeps them
    /// (every write through the executor), then waits until `serverInfo.slackClientID` shows
    /// the new client ID. `fresh`: the app was created in this run, so no instance can be running
    /// it yet and the first read is skipped. `integrationsOf`: an entity whose Slack integrations
    /// the last `serverInfo` read also brings (the canary's, for the connection state).
    @discardableResult
    public static func register(_ credentials: SlackCredentials, context: RegistrationContext, fresh: Bool = false,
                                integrationsOf entity: String? = nil) throws -> Outcome {
        let instance = context.instance
        if !fresh {
            let read = try context.wandb.serverInfo(withIntegrationsOf: entity)
            if read.info.slackClientID == credentials.clientID { return Outcome(changed: false, integrations: read.integrations) }
        }
        switch instance.registrar {
        case .operatorV2(let target):
            try OperatorV2Registrar(target: target, context: context).write(credentials)
        case .operatorV1(let target):
            try OperatorV1Registrar(target: target, context: context).write(credentials)
        case .exec(let hook):
            try ExecRegistrar(hook: hook, context: context).write(credentials)
        }
        if context.executor.dryRun { return Outcome(changed: true, integrations: nil) }
        return Outcome(changed: true, integrations: try waitForClientID(credentials.clientID, context: context, integrationsOf: entity))
    }

    /// Polls `serverInfo` with backoff until it reports `clientID` (nil: no Slack app at all),
    /// within the settle timeout; returns the integrations of `entity` read with the last poll.
    @discardableResult
    static func waitForClientID(_ clientID: String?, context: RegistrationContext, integrationsOf entity: String? = nil) throws -> WandbClient.EntityIntegrations?? {
        let deadline = Date().addingTimeInterval(context.settleTimeout)
        var delay = 0.2
        var seen: String?
        while Date() < deadline {
            let read = try context.wandb.serverInfo(withIntegrationsOf: entity)
            seen = read.info.slackClientID
            if seen == clientID { return read.integrations }
            try context.control.sleep(min(delay, max(0, deadline.timeIntervalSinceNow)))
            delay = min(delay * 2, 5)
        }
        let what = clientID.map { "credentials were written (expected \($0))" } ?? "credentials were emptied"
        throw FleetError.failed("instance \(context.instance.name) still reports Slack client ID \(seen ?? "none") \(Int(context.settleTimeout)) s after its \(what): check that the api pods restarted")
    }

    /// The Secret names and keys the WeightsAndBiases v2 resource's
    /// `spec.wandb.notifications.slack` selectors give for the client ID and secret (nil where one
    /// is missing).
    static func slackSelectors(_ resource: JSON) -> (clientID: (secret: String, key: String)?, clientSecret: (secret: String, key: String)?) {
        let slack = resource["spec"]?["wandb"]?["notifications"]?["slack"]
        func selector(_ field: String) -> (secret: String, key: String)? {
            guard let secret = slack?[field]?["name"]?.stringValue, let key = slack?[field]?["key"]?.stringValue else { return nil }
            return (secret, key)
        }
        return (selector("clientId"), selector("clientSecret"))
    }

    static func kubernetes(_ target: KubernetesTarget, _ context: RegistrationContext) throws -> KubernetesClient {
        KubernetesClient(target: target, token: try context.vault.resolve(target.token), allowInsecureHTTP: context.instance.allowInsecureHTTP,
                         environment: context.environment)
    }

    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    /// Performs `writes` (the credentials), then restarts the api workload: only new pods read
    /// new credentials, for v1 and v2 alike. The workload is the inventory's `workload`; when it
    /// does not say, a Deployment, and if there is no such Deployment, an Argo Rollout of that
    /// name (the audit log then shows the Deployment's restart failed as not found, and the
    /// Rollout's applied).
    static func writeAndRestart(_ writes: [ChangeExecutor.Step], target: KubernetesTarget, client: KubernetesClient, context: RegistrationContext) throws {
        let name = context.instance.name
        let workload = target.deployment ?? "wandb-api"
        switch target.workload {
        case .rollout?:
            try context.executor.perform(writes + [restart(.rollout, target, client: client)], instance: name)
        case .deployment?:
            try context.executor.perform(writes + [restart(.deployment, target, client: client)], instance: name)
        case nil:
            do {
                try context.executor.perform(writes + [restart(.deployment, target, client: client)], instance: name)
            } catch is WorkloadNotFound {
                do {
                    try context.executor.perform([restart(.rollout, target, client: client)], instance: name)
                } catch is WorkloadNotFound {
                    throw FleetError.failed("instance \(name): the credentials were written, but neither a Deployment nor an Argo Rollout \(target.namespace)/\(workload) exists to restart: set registrar.deployment to the api workload's name (and registrar.workload to deployment or rollout)")
                }
            }
        }
    }

    /// The restart of one kind of workload answered 404: it does not exist.
    struct WorkloadNotFound: Error, CustomStringConvertible {
        let kind: WorkloadKind
        let path: String
        var description: String { "no \(kind == .rollout ? "Argo Rollout" : "Deployment") at \(path) (404)" }
    }

    /// The step that restarts the api workload: a Deployment the way `kubectl rollout restart`
    /// does (its pod template's `restartedAt` annotation), an Argo Rollout the way `kubectl argo
    /// rollouts restart` does (`spec.restartAt`, an RFC 3339 UTC time: "all of a Rollout's Pods
    /// should have been created after this timestamp", argoproj.github.io/argo-rollouts/features/restart).
    static func restart(_ kind: WorkloadKind, _ target: KubernetesTarget, client: KubernetesClient) -> ChangeExecutor.Step {
        let name = target.deployment ?? "wandb-api"
        switch kind {
        case .deployment:
            let stamp = Timestamp.now()
            let path = KubernetesClient.deploymentPath(target.namespace, name)
            return ChangeExecutor.Step(ChangeExecutor.Change(
                target: "k8s:deployment/\(target.namespace)/\(name)", action: "restart",
                summary: "restart Deployment \(target.namespace)/\(name) so it reads the new credentials",
                detail: ["restartedAt": .string(stamp)])) {
                try notFoundAs(kind, path) {
                    try client.mergePatch(path, ["spec": ["template": ["metadata": ["annotations": ["kubectl.kubernetes.io/restartedAt": .string(stamp)]]]]])
                }
            }
        case .rollout:
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime]
            let stamp = formatter.string(from: Date())
            let path = KubernetesClient.rolloutPath(target.namespace, name)
            return ChangeExecutor.Step(ChangeExecutor.Change(
                target: "k8s:rollout/\(target.namespace)/\(name)", action: "restart",
                summary: "restart Argo Rollout \(target.namespace)/\(name) so it reads the new credentials",
                detail: ["restartAt": .string(stamp)])) {
                try notFoundAs(kind, path) { try client.mergePatch(path, ["spec": ["restartAt": .string(stamp)]]) }
            }
        }
    }

    private static func notFoundAs(_ kind: WorkloadKind, _ path: String, _ body: () throws -> JSON) throws {
        do {
            _ = try body()
        } catch let error as ServiceError where error.status == 404 {
            throw WorkloadNotFound(kind: kind, path: path)
        }
    }
}

/// W&B operator v2: the Secret keys the WeightsAndBiases CR's `spec.wandb.notifications.slack`
/// selectors name, then a rollout restart of the api Deployment.
struct OperatorV2Registrar {
    let target: KubernetesTarget
    let context: RegistrationContext

    func write(_ credentials: SlackCredentials) throws {
        let client = try Registration.kubernetes(target, context)
        let name = context.instance.name
        let resource = try client.get(KubernetesClient.resourcePath("v2", target.namespace, target.resource))
        guard case let (id?, secret?) = Registration.slackSelectors(resource) else {
            throw FleetError.failed("instance \(name): the WeightsAndBiases resource \(target.namespace)/\(target.resource) has no spec.wandb.notifications.slack clientId and clientSecret selectors: add them (name and key of a Secret) and run again")
        }
        var patches: [String: [String: JSON]] = [:]
        patches[id.secret, default: [:]][id.key] = .string(Registration.base64(credentials.clientID))
        patches[secret.secret, default: [:]][secret.key] = .string(Registration.base64(credentials.clientSecret.revealed))
        // The Secret writes, then the restart: one sequence, whose intents share a commit.
        let steps: [ChangeExecutor.Step] = patches.sorted(by: { $0.key < $1.key }).map { secretName, data in
            let path = KubernetesClient.secretPath(target.namespace, secretName)
            let fingerprinted = data.mapValues { _ in JSON.string("(set)") }
            return ChangeExecutor.Step(ChangeExecutor.Change(
                target: "k8s:secret/\(target.namespace)/\(secretName)", action: "update",
                summary: "write Slack client ID \(credentials.clientID) into Secret \(target.namespace)/\(secretName)",
                detail: ["keys": .object(fingerprinted), "client_id": .string(credentials.clientID),
                         "client_secret": .string(context.executor.audit.fingerprint(of: credentials.clientSecret))])) {
                do {
                    try client.mergePatch(path, ["data": .object(data)])
                } catch let error as ServiceError where error.status == 404 {
                    throw FleetError.failed("instance \(name): the Secret \(target.namespace)/\(secretName) that the WeightsAndBiases resource's slack selectors name does not exist: create it, or point the selectors at one that does")
                }
            }
        }
        try Registration.writeAndRestart(steps, target: target, client: client, context: context)
    }
}

/// W&B operator v1 / Helm values: `spec.values.global.slack` of the WeightsAndBiases resource,
/// then a rollout restart of the api Deployment. The chart writes the values into
/// `<release>-global-secret`, which the api pods load with `envFrom` and no checksum annotation
/// (wandb/helm-charts charts/operator-wandb templates/global.yaml): changing them restarts nothing
/// by itself, as with v2.
struct OperatorV1Registrar {
    let target: KubernetesTarget
    let context: RegistrationContext

    func write(_ credentials: SlackCredentials) throws {
        let client = try Registration.kubernetes(target, context)
        let path = KubernetesClient.resourcePath("v1", target.namespace, target.resource)
        _ = try client.get(path)
        let update = ChangeExecutor.Step(ChangeExecutor.Change(
            target: "k8s:weightsandbiases/\(target.namespace)/\(target.resource)", action: "update",
            summary: "set spec.values.global.slack of \(target.namespace)/\(target.resource) to client ID \(credentials.clientID)",
            detail: ["client_id": .string(credentials.clientID), "client_secret": .string(context.executor.audit.fingerprint(of: credentials.clientSecret))])) {
            try client.mergePatch(path, ["spec": ["values": ["global": ["slack": ["clientId": .string(credentials.clientID),
                                                                                  "secret": .string(credentials.clientSecret.revealed)]]]]])
        }
        try Registration.writeAndRestart([update], target: target, client: client, context: context)
    }
}

/// A command of the operator's own: the credentials arrive as JSON on stdin (never in argv or
/// the environment); exit 0 means done.
struct ExecRegistrar {
    let hook: ExecHook
    let context: RegistrationContext

    func write(_ credentials: SlackCredentials) throws {
        let name = context.instance.name
        try context.executor.perform(ChangeExecutor.Change(
            target: "exec:\(hook.command.first ?? "")", action: "register",
            summary: "run \(hook.command.joined(separator: " ")) with client ID \(credentials.clientID) on stdin",
            detail: ["client_id": .string(credentials.clientID), "client_secret": .string(context.executor.audit.fingerprint(of: credentials.clientSecret))]),
            instance: name) {
            try run(credentials)
        }
    }

    func run(_ credentials: SlackCredentials) throws {
        let name = context.instance.name
        let input: JSON = ["instance": .string(name), "workspace": .string(context.instance.workspaceID), "app_id": .string(credentials.appID),
                           "client_id": .string(credentials.clientID), "client_secret": .string(credentials.clientSecret.revealed)]
        let process = Process()
        let program = hook.command[0]
        process.executableURL = URL(fileURLWithPath: program.hasPrefix("/") ? program : FileManager.default.currentDirectoryPath + "/" + program)
        process.arguments = Array(hook.command.dropFirst())
        // A small, fixed environment: nothing of SlackFleet's own (such as the master key) leaks in.
        let parent = ProcessInfo.processInfo.environment
        process.environment = ["PATH": parent["PATH"] ?? "/usr/bin:/bin", "HOME": parent["HOME"] ?? "/", "LANG": "C.UTF-8"]
        let stdin = Pipe(), output = Pipe()
        process.standardInput = stdin
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            throw FleetError.failed("instance \(name): cannot run the exec registrar \(program): \(error.localizedDescription); check registrar.command in the inventory")
        }
        stdin.fileHandleForWriting.write(input.data)
        try? stdin.fileHandleForWriting.close()
        let collected = Collected()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            collected.data = output.fileHandleForReading.readDataToEndOfFile()
            done.signal()
        }
        if done.wait(timeout: .now() + .seconds(hook.timeoutSeconds)) == .timedOut {
            process.terminate()
            _ = done.wait(timeout: .now() + 5)
            throw FleetError.failed("instance \(name): the exec registrar did not finish within \(hook.timeoutSeconds) s and was stopped")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            var said = String(decoding: collected.data.prefix(400), as: UTF8.self)
            said = said.replacingOccurrences(of: credentials.clientSecret.revealed, with: "<redacted>")
            throw FleetError.failed("instance \(name): the exec registrar exited with status \(process.terminationStatus)\(said.isEmpty ? "" : ": \(said.trimmingCharacters(in: .whitespacesAndNewlines))")")
        }
    }

    private final class Collected: @unchecked Sendable {
        var data = Data()
    }
}
