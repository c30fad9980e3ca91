import Foundation

/// The Kubernetes API of one instance's cluster: GET and JSON merge-patch of single objects.
public struct KubernetesClient: Sendable {
    public let target: KubernetesTarget
    let token: SecretValue
    let allowInsecureHTTP: Bool
    let environment: CallEnvironment

    public init(target: KubernetesTarget, token: SecretValue, allowInsecureHTTP: Bool, environment: CallEnvironment) {
        self.target = target
        self.token = token
        self.allowInsecureHTTP = allowInsecureHTTP
        self.environment = environment
    }

    public static func secretPath(_ namespace: String, _ name: String) -> String { "/api/v1/namespaces/\(namespace)/secrets/\(name)" }
    public static func deploymentPath(_ namespace: String, _ name: String) -> String { "/apis/apps/v1/namespaces/\(namespace)/deployments/\(name)" }
    public static func resourcePath(_ version: String, _ namespace: String, _ name: String) -> String {
        "/apis/apps.wandb.com/\(version)/namespaces/\(namespace)/weightsandbiases/\(name)"
    }

    public static func rolloutPath(_ namespace: String, _ name: String) -> String { "/apis/argoproj.io/v1alpha1/namespaces/\(namespace)/rollouts/\(name)" }

    /// What a request path names: API group ("" for the core group), resource, namespace, name.
    public struct Resource: Sendable, Equatable {
        public let group: String
        public let resource: String
        public let namespace: String?
        public let name: String?

        /// `/api/v1/namespaces/NS/RESOURCE/NAME` or `/apis/GROUP/VERSION/namespaces/NS/RESOURCE/NAME`.
        public init?(path: String) {
            let parts = path.split(separator: "/").map(String.init)
            let rest: ArraySlice<String>
            if parts.first == "api", parts.count >= 3 {
                group = ""
                rest = parts[2...]
            } else if parts.first == "apis", parts.count >= 4 {
                group = parts[1]
                rest = parts[3...]
            } else {
                return nil
            }
            let items = Array(rest)
            if items.count >= 3, items[0] == "namespaces" {
                namespace = items[1]
                resource = items[2]
                name = items.count >= 4 ? items[3] : nil
            } else if let first = items.first {
                namespace = nil
                resource = first
                name = items.count >= 2 ? items[1] : nil
            } else {
                return nil
            }
        }
    }

    /// The RBAC verb of an HTTP method on one object.
    static func verb(_ method: String) -> String {
        ["GET": "get", "PATCH": "patch", "PUT": "update", "POST": "create", "DELETE": "delete"][method] ?? method.lowercased()
    }

    /// A 403 or 422 said as what to fix; nil for other answers. A 403 is RBAC: the service
    /// account lacks a verb on a resource, and the message names the Role rule that grants it. A
    /// 422 is a refused update (validation or an admission policy): `details.causes` name the
    /// fields (apimachinery StatusReasonInvalid).
    static func refusal(status: Int, json: JSON?, method: String, path: String) -> FleetError? {
        guard status == 403 || status == 422, let target = Resource(path: path) else { return nil }
        let verb = verb(method)
        let qualified = target.resource + (target.group.isEmpty ? "" : "." + target.group)
        let said = json?["message"]?.stringValue.map { " (Kubernetes: \($0))" } ?? ""
        if status == 403 {
            let scope = target.namespace.map { "in namespace \($0)" } ?? "cluster-wide"
            let names = target.name.map { ", resourceNames: [\"\($0)\"]" } ?? ""
            return FleetError.failed("the service account may not \(verb) \(qualified) \(scope) (403 Forbidden)\(said): grant it with a Role rule "
                + "{apiGroups: [\"\(target.group)\"], resources: [\"\(target.resource)\"], verbs: [\"\(verb)\"]\(names)}"
                + (target.namespace.map { " in namespace \($0), bound to the service account" } ?? ""))
        }
        let causes = (json?["details"]?["causes"]?.listValue ?? []).map { cause in
            [cause["field"]?.stringValue, cause["message"]?.stringValue].compactMap { $0 }.joined(separator: ": ")
        }.filter { !$0.isEmpty }
        let object = [target.namespace, target.name].compactMap { $0 }.joined(separator: "/")
        return FleetError.failed("Kubernetes refused to \(verb) \(qualified) \(object) (422 Invalid): "
            + (causes.isEmpty ? (json?["message"]?.stringValue ?? "no cause given") : causes.joined(separator: "; "))
            + ". A validating policy or webhook of the cluster refuses the change: ask its owner to allow it for this service account")
    }

    public func get(_ path: String) throws -> JSON {
        try send("GET", path, body: nil)
    }

    /// Applies an RFC 7386 merge patch.
    @discardableResult
    public func mergePatch(_ path: String, _ patch: JSON) throws -> JSON {
        try send("PATCH", path, body: patch)
    }

    /// Creates `body` at `path` (POST): for reviews, which the API server answers and keeps nothing of.
    public func create(_ path: String, _ body: JSON) throws -> JSON {
        try send("POST", path, body: body)
    }

    /// Whether the service account may `verb` `resource` (of API `group`) in `namespace`, asked
    /// with a SelfSubjectAccessReview instead of by trying
    /// (kubernetes.io/docs/reference/access-authn-authz/authorization, "Checking API access").
    public func mayI(_ verb: String, _ resource: String, group: String, namespace: String, name: String? = nil) throws -> Bool {
        var attributes: [String: JSON] = ["verb": .string(verb), "resource": .string(resource), "group": .string(group), "namespace": .string(namespace)]
        if let name { attributes["name"] = .string(name) }
        let review = try create("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                                ["apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": ["resourceAttributes": .object(attributes)]])
        guard let allowed = review["status"]?["allowed"]?.boolValue else {
            throw ServiceError(service: "kubernetes", target: "POST selfsubjectaccessreviews", status: 200, code: "unreadable_answer", message: "no status.allowed")
        }
        return allowed
    }

    private func send(_ method: String, _ path: String, body: JSON?) throws -> JSON {
        var headers = [("Authorization", "Bearer \(token.revealed)"), ("Accept", "application/json")]
        if body != nil { headers.append(("Content-Type", method == "PATCH" ? "application/merge-patch+json" : "application/json")) }
        let spec = HTTPRequestSpec(method: method, url: ServiceRequest.url(target.apiURL, path), headers: headers, body: body?.data, allowInsecureHTTP: allowInsecureHTTP)
        return try ServiceRequest(spec, endpoint: "k8s:\(method)").send(in: environment) { reply in
            let json = try? JSON.parse(reply.body)
            guard (200...299).contains(reply.status) else {
                if let refusal = KubernetesClient.refusal(status: reply.status, json: json, method: method, path: path) { throw refusal }
                throw ServiceError(service: "kubernetes", target: "\(method) \(path)", status: reply.status,
                                   code: json?["reason"]?.stringValue ?? "http_\(reply.status)", message: json?["message"]?.stringValue ?? "",
                                   retryAfter: reply.headers["retry-after"].flatMap(Double.init))
            }
            guard let json else {
                throw ServiceError(service: "kubernetes", target: "\(method) \(path)", status: reply.status, code: "unreadable_answer")
            }
            return json
        }
    }
}
