import Foundation

/// Taking a retiring instance's Slack credentials away through its registrar (`retire`).
///
/// The credentials are emptied, not deleted: W&B reads `SLACK_CLIENT_ID` and `SLACK_SECRET` from
/// what its configuration names, and an instance with them empty runs with no Slack app
/// (`serverInfo.slackClientID` is then "", W&B's `String!` for "not configured"). Deleting the
/// Secret keys instead would leave the api pods' `secretKeyRef`s pointing at nothing, and the
/// new pods could not start (CreateContainerConfigError) while the old ones kept the
/// credentials. Slack integrations already connected are not touched: each is a webhook of an
/// installation, which works without the client secret.
public enum Unregistration {
    /// What taking the credentials away came to, as a result's detail says it.
    public struct Outcome: Sendable {
        /// False when nothing had to change (already none, or the registrar cannot).
        public var changed: Bool
        public var note: String
    }

    /// Empties the Slack credentials `context.instance` runs with, restarts its api workload, and
    /// waits until `serverInfo` reports none. An instance that does not answer (shut down
    /// already) still has its configuration emptied where the Kubernetes API answers; the note
    /// says it could not be confirmed.
    public static func unregister(context: RegistrationContext) throws -> Outcome {
        let instance = context.instance
        var unanswered: String?
        do {
            if try context.wandb.serverInfo().slackClientID == nil {
                return Outcome(changed: false, note: "runs with no Slack credentials")
            }
        } catch let error as TransportError {
            unanswered = error.description
        } catch let error as ServiceError where error.status >= 500 {
            unanswered = error.description
        }
        switch instance.registrar {
        case .operatorV2(let target):
            try emptyV2(target, context: context)
        case .operatorV1(let target):
            try emptyV1(target, context: context)
        case .exec(let hook):
            // The hook's contract is to write the credentials it is given; giving it empty ones
            // could as well make it fail or write nothing. A person removes them.
            return Outcome(changed: false, note: "its Slack credentials are left in place: the exec registrar (\(hook.command.first ?? "")) has no way to remove them; remove SLACK_CLIENT_ID and SLACK_SECRET from the instance's configuration by hand")
        }
        let verb = context.executor.dryRun ? "would empty" : "emptied"
        let what = "\(verb) its Slack credentials and restarted its api workload"
        if context.executor.dryRun { return Outcome(changed: true, note: what) }
        if let unanswered {
            return Outcome(changed: true, note: "\(what); the instance did not answer (\(unanswered)), so that it runs without them is not confirmed")
        }
        try Registration.waitForClientID(nil, context: context)
        return Outcome(changed: true, note: what + "; it reports no Slack client ID")
    }

    /// Operator v2: the Secret keys the WeightsAndBiases resource's slack selectors name, set to
    /// "" (the keys stay), then the restart.
    static func emptyV2(_ target: KubernetesTarget, context: RegistrationContext) throws {
        let client = try Registration.kubernetes(target, context)
        let resource = try client.get(KubernetesClient.resourcePath("v2", target.namespace, target.resource))
        let named = Registration.slackSelectors(resource)
        let selectors = [named.clientID, named.clientSecret].compactMap { $0 }
        guard !selectors.isEmpty else {
            // Nothing names Slack credentials: the instance cannot be running with any of ours.
            return
        }
        var patches: [String: [String: JSON]] = [:]
        for selector in selectors { patches[selector.secret, default: [:]][selector.key] = .string("") }
        let steps: [ChangeExecutor.Step] = patches.sorted(by: { $0.key < $1.key }).map { secretName, data in
            let path = KubernetesClient.secretPath(target.namespace, secretName)
            return ChangeExecutor.Step(ChangeExecutor.Change(
                target: "k8s:secret/\(target.namespace)/\(secretName)", action: "update",
                summary: "empty the Slack credential keys of Secret \(target.namespace)/\(secretName) (instance retired)",
                detail: ["keys": .object(data.mapValues { _ in JSON.string("(emptied)") })])) {
                do {
                    _ = try client.mergePatch(path, ["data": .object(data)])
                } catch let error as ServiceError where error.status == 404 {
                    // No Secret, no credentials in it: nothing to take away.
                }
            }
        }
        try Registration.writeAndRestart(steps, target: target, client: client, context: context)
    }

    /// Operator v1: `spec.values.global.slack` set to "" (the chart renders them into the
    /// global Secret the api pods load), then the restart.
    static func emptyV1(_ target: KubernetesTarget, context: RegistrationContext) throws {
        let client = try Registration.kubernetes(target, context)
        let path = KubernetesClient.resourcePath("v1", target.namespace, target.resource)
        _ = try client.get(path)
        let update = ChangeExecutor.Step(ChangeExecutor.Change(
            target: "k8s:weightsandbiases/\(target.namespace)/\(target.resource)", action: "update",
            summary: "empty spec.values.global.slack of \(target.namespace)/\(target.resource) (instance retired)",
            detail: ["client_id": .string(""), "client_secret": .string("(emptied)")])) {
            _ = try client.mergePatch(path, ["spec": ["values": ["global": ["slack": ["clientId": .string(""), "secret": .string("")]]]]])
        }
        try Registration.writeAndRestart([update], target: target, client: client, context: context)
    }
}
