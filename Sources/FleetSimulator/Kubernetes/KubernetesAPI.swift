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
            let supported = [("v1", "secrets"), ("apps/v1", "deployments"), ("apps.wandb.com/v2", "weightsandbiases"), ("apps.wandb.com/v1", "weightsandbiases")]
            guard supported.contains(where: { $0 == (group, kind) }) else {
                return Simulator.status(404, "NotFound", "the server could not find the requested resource")
            }
            let resourceVersionMatches = (group == "apps.wandb.com/v2") == (instance.registrar == .operatorV2)
            let existing: SimKubeObject?
            switch kind {
            case "secrets": existing = namespace == "wandb" ? instance.secrets[objectName] : nil
            case "deployments": existing = namespace == "wandb" && instance.deployment?.body["metadata"]?["name"]?.stringValue == objectName ? instance.deployment : nil
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
