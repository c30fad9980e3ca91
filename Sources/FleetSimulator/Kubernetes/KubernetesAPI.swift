import Foundation

extension Simulator {
    /// One instance's Kubernetes API: Secrets, the WeightsAndBiases CR (v2 and v1), the api Deployment.
    func kubernetes(_ request: SimRequest, instance name: String, segments: [String]) -> SimResponse {
        withWorld { world in
            world.settle(name)
            guard let instance = world.instances[name] else { return .notFound }
            guard bearerToken(request) == instance.kubeToken else {
                return Simulator.status(401, "Unauthorized", "Unauthorized")
            }
            let faults = [world.faults["all"], world.faults["instance:\(name)"]].compactMap { $0 }
            if segments == ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"], request.method == "POST" {
                return Simulator.accessReview(request, forbidden: faults.reduce(into: Set<String>()) { $0.formUnion($1.forbidden) })
            }
            // api/v1/namespaces/NS/secrets/NAME or apis/GROUP/VERSION/namespaces/NS/KIND/NAME
            let (group, rest): (String, ArraySlice<String>)
            if segments.first == "api", segments.count == 6 {
                (group, rest) = ("v1", segments[2...])
            } else if segments.first == "apis", segments.count == 7 {
                (group, rest) = ("\(segments[1])/\(segments[2])", segments[3...])
            } else {
                return Simulator.status(404, "NotFound", "the server could not find the requested resource")
            }
            let parts = Array(rest)
            guard parts[0] == "namespaces" else { return Simulator.status(404, "NotFound", "the server could not find the requested resource") }
            let namespace = parts[1], kind = parts[2], objectName = parts[3]
            let supported = [("v1", "secrets"), ("apps/v1", "deployments"), ("apps.wandb.com/v2", "weightsandbiases"), ("apps.wandb.com/v1", "weightsandbiases"),
                             ("argoproj.io/v1alpha1", "rollouts")]
            guard supported.contains(where: { $0 == (group, kind) }) else {
                return Simulator.status(404, "NotFound", "the server could not find the requested resource")
            }
            // RBAC is checked before the object is looked up: a request the service account may
            // not make is 403 whether or not the object exists. The message and details are the
            // API server's (k8s.io/apiserver endpoints/handlers/responsewriters/errors.go,
            // forbiddenMessage; apimachinery errors.NewForbidden).
            let verb = ["GET": "get", "PATCH": "patch", "PUT": "update", "DELETE": "delete", "POST": "create"][request.method] ?? request.method.lowercased()
            let apiGroup = group.contains("/") ? String(group.split(separator: "/")[0]) : ""
            if faults.contains(where: { $0.forbidden.contains("\(verb) \(kind)") }) {
                var details: [String: JSONValue] = ["name": .string(objectName), "kind": .string(kind)]
                if !apiGroup.isEmpty { details["group"] = .string(apiGroup) }
                return Simulator.status(403, "Forbidden", "\(kind)\(apiGroup.isEmpty ? "" : "." + apiGroup) \"\(objectName)\" is forbidden: User \"\(Simulator.serviceAccount)\" cannot \(verb) resource \"\(kind)\" in API group \"\(apiGroup)\" in the namespace \"\(namespace)\"",
                                        details: details)
            }
            let resourceVersionMatches = (group == "apps.wandb.com/v2") == (instance.registrar == .operatorV2)
            let existing: SimKubeObject?
            switch kind {
            case "secrets": existing = namespace == "wandb" ? instance.secrets[objectName] : nil
            case "deployments": existing = namespace == "wandb" && instance.deployment?.body["metadata"]?["name"]?.stringValue == objectName ? instance.deployment : nil
            case "rollouts": existing = namespace == "wandb" && instance.rollout?.body["metadata"]?["name"]?.stringValue == objectName ? instance.rollout : nil
            default:
                existing = namespace == "wandb" && resourceVersionMatches && instance.resource?.body["metadata"]?["name"]?.stringValue == objectName ? instance.resource : nil
            }
            guard var object = existing else {
                return Simulator.status(404, "NotFound", "\(kind).\(group.split(separator: "/").first ?? "") \"\(objectName)\" not found",
                                        details: ["name": .string(objectName), "kind": .string(kind)])
            }
            switch request.method {
            case "GET":
                return .json(object.body)
            case "PATCH":
                guard request.mediaType == "application/merge-patch+json" else {
                    return Simulator.status(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json")
                }
                guard case .object(let patch)? = try? JSONValue.parse(request.body) else {
                    return Simulator.status(400, "BadRequest", "the patch is not a JSON object")
                }
                if let wanted = patch["metadata"]?["resourceVersion"]?.stringValue, wanted != String(object.resourceVersion) {
                    return Simulator.status(409, "Conflict", "Operation cannot be fulfilled on \(kind) \"\(objectName)\": the object has been modified; please apply your changes to the latest version and try again")
                }
                if faults.contains(where: { $0.invalid.contains(kind) }) {
                    return Simulator.invalid(kind: kind, group: apiGroup, name: objectName, patch: .object(patch))
                }
                let patched = Simulator.mergePatch(object.body, with: .object(patch))
                if kind == "secrets", let problem = Simulator.invalidSecretData(patched) {
                    return Simulator.status(400, "BadRequest", problem)
                }
                if kind == "weightsandbiases", group == "apps.wandb.com/v2", let problem = Simulator.admissionProblem(patched) {
                    return Simulator.status(400, "BadRequest", "admission webhook \"vweightsandbiases.wandb.com\" denied the request: \(problem)")
                }
                world.sequence += 1
                world.mutations["k8s:\(kind)", default: []].insert(name)
                object.resourceVersion = world.sequence
                object.body = Simulator.withResourceVersion(patched, object.resourceVersion)
                let delay = world.config.rolloutDelay + (world.faults["instance:\(name)"]?.slowRollout ?? 0)
                switch kind {
                case "secrets":
                    world.instances[name]?.secrets[objectName] = object
                case "deployments":
                    let before = instance.deployment?.body["spec"]?["template"]?["metadata"]?["annotations"]?["kubectl.kubernetes.io/restartedAt"]
                    let after = object.body["spec"]?["template"]?["metadata"]?["annotations"]?["kubectl.kubernetes.io/restartedAt"]
                    world.instances[name]?.deployment = object
                    if after != nil, after != before {
                        world.instances[name]?.pendingRollout = PendingRollout(completesAt: Date().addingTimeInterval(delay), credentials: nil)
                    }
                case "rollouts":
                    let before = instance.rollout?.body["spec"]?["restartAt"]
                    let after = object.body["spec"]?["restartAt"]
                    world.instances[name]?.rollout = object
                    if after != nil, after != before {
                        world.instances[name]?.pendingRollout = PendingRollout(completesAt: Date().addingTimeInterval(delay), credentials: nil)
                    }
                default:
                    // The v1 operator reconciles its values into `<release>-global-secret`, which the
                    // api pods load with `envFrom` and no checksum annotation (wandb/helm-charts
                    // charts/operator-wandb templates/global.yaml): nothing restarts until the api
                    // Deployment is restarted, as for v2.
                    world.instances[name]?.resource = object
                }
                return .json(object.body)
            default:
                return Simulator.status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            }
        }
    }

    /// The user every instance's token authenticates as.
    static let serviceAccount = "system:serviceaccount:wandb:slackfleet"

    /// A SelfSubjectAccessReview (kubernetes.io/docs/reference/access-authn-authz/authorization,
    /// "Checking API access"): the review sent, with `status.allowed` for its resourceAttributes.
    /// Every authenticated user may create one (the `system:basic-user` role); nothing is stored.
    static func accessReview(_ request: SimRequest, forbidden: Set<String>) -> SimResponse {
        guard case .object(var review)? = try? JSONValue.parse(request.body), let attributes = review["spec"]?["resourceAttributes"],
              let verb = attributes["verb"]?.stringValue, let resource = attributes["resource"]?.stringValue else {
            return status(400, "BadRequest", "a SelfSubjectAccessReview needs spec.resourceAttributes with verb and resource")
        }
        let allowed = !forbidden.contains("\(verb) \(resource)")
        review["status"] = allowed ? ["allowed": true, "reason": "RBAC: allowed by RoleBinding \"slackfleet/wandb\" of Role \"slackfleet\""] : ["allowed": false]
        review["apiVersion"] = "authorization.k8s.io/v1"
        review["kind"] = "SelfSubjectAccessReview"
        return .json(.object(review), status: 201)
    }

    /// 422 Invalid, as the API server refuses an update that validation or an admission policy
    /// rejects: `details.causes` name each field (apimachinery StatusReasonInvalid: "the
    /// requested create or update operation cannot be completed due to invalid data").
    static func invalid(kind: String, group: String, name: String, patch: JSONValue) -> SimResponse {
        let field = kind == "secrets" ? "data" : kind == "weightsandbiases" ? "spec.values.global.slack"
            : kind == "rollouts" ? "spec.restartAt" : "spec.template.metadata.annotations"
        let message = "Forbidden: changes to \(field) are denied by the cluster's policy \"restrict-wandb-changes\""
        var details: [String: JSONValue] = ["name": .string(name), "kind": .string(kind),
                                            "causes": [["reason": "FieldValueForbidden", "message": .string(message), "field": .string(field)]]]
        if !group.isEmpty { details["group"] = .string(group) }
        return status(422, "Invalid", "\(kind)\(group.isEmpty ? "" : "." + group) \"\(name)\" is invalid: \(field): \(message)", details: details)
    }

    /// A Kubernetes `Status` failure object.
    static func status(_ code: Int, _ reason: String, _ message: String, details: [String: JSONValue]? = nil) -> SimResponse {
        var body: [String: JSONValue] = [
            "kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Failure",
            "message": .string(message), "reason": .string(reason), "code": .integer(Int64(code)),
        ]
        if let details { body["details"] = .object(details) }
        return .json(.object(body), status: code)
    }

    /// RFC 7386 JSON merge patch.
    static func mergePatch(_ target: JSONValue, with patch: JSONValue) -> JSONValue {
        guard case .object(let changes) = patch else { return patch }
        var result = target.objectValue ?? [:]
        for (key, value) in changes {
            if value == .null {
                result.removeValue(forKey: key)
            } else {
                result[key] = mergePatch(result[key] ?? .null, with: value)
            }
        }
        return .object(result)
    }

    static func withResourceVersion(_ object: JSONValue, _ version: Int) -> JSONValue {
        guard case .object(var fields) = object else { return object }
        var metadata = fields["metadata"]?.objectValue ?? [:]
        metadata["resourceVersion"] = .string(String(version))
        fields["metadata"] = .object(metadata)
        return .object(fields)
    }

    static func invalidSecretData(_ secret: JSONValue) -> String? {
        for (key, value) in secret["data"]?.objectValue ?? [:] {
            guard let text = value.stringValue, Data(base64Encoded: text) != nil else {
                return "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data.\(key)"
            }
        }
        return nil
    }

    /// The operator's admission webhook: a slack block needs both secret key selectors.
    static func admissionProblem(_ resource: JSONValue) -> String? {
        guard let slack = resource["spec"]?["wandb"]?["notifications"]?["slack"] else { return nil }
        for field in ["clientId", "clientSecret"] {
            guard slack[field]?["name"]?.stringValue?.isEmpty == false, slack[field]?["key"]?.stringValue?.isEmpty == false else {
                return "spec.wandb.notifications.slack.\(field) must be a secret key selector with name and key"
            }
        }
        return nil
    }
}
