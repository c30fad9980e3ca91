import Foundation

/// Writes a SlackFleet inventory for exactly the fleet a simulator built.
///
/// Secret values go to files of their own (mode 0600) in `<inventory>.secrets/`, and the
/// inventory refers to them as `file:` references, as an operator's would.
public enum InventoryWriter {
    /// Writes the inventory to `path` and the secrets beside it; `registerCommand` is the
    /// program exec-kind instances run to register credentials (`fleet-sim register`).
    public static func write(_ fleet: IssuedFleet, baseURL: String, to path: String, registerCommand: [String]) throws {
        let secretsDirectory = path + ".secrets"
        try FileManager.default.createDirectory(atPath: secretsDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let absolute = URL(fileURLWithPath: secretsDirectory).standardizedFileURL.path
        func secret(_ name: String, _ value: String) throws -> String {
            let file = absolute + "/" + name
            guard FileManager.default.createFile(atPath: file, contents: Data(value.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw SimulatorError("cannot write \(file)")
            }
            return "file:" + file
        }
        func quoted(_ text: String) -> String {
            "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        var out = "# A SlackFleet inventory for the fleet-sim fleet at \(baseURL).\n# Written by fleet-sim; secrets are in \(absolute)/.\nversion: 1\nworkspaces:\n"
        for workspace in fleet.workspaces {
            let expires = Date(timeIntervalSince1970: workspace.configTokenExpiresAt)
            out += """
                  - id: \(workspace.id)
                    name: \(workspace.name)
                    api_url: \(quoted(baseURL + "/api/"))
                    allow_insecure_http: true
                    config_token: \(quoted(try secret("\(workspace.id)-config-token", workspace.configToken)))
                    refresh_token: \(quoted(try secret("\(workspace.id)-refresh-token", workspace.refreshToken)))
                    config_token_expires_at: \(quoted(ISO8601DateFormatter().string(from: expires)))
                    bot_token: \(quoted(try secret("\(workspace.id)-bot-token", workspace.botToken)))
                    canary_channel: \(workspace.canaryChannel)

                """
        }
        out += "instances:\n"
        for instance in fleet.instances {
            out += """
                  - name: \(instance.name)
                    base_url: \(quoted(baseURL + "/wandb/" + instance.name))
                    host_urls: [\(quoted(instance.hostURL))]
                    workspace: \(instance.teamID)
                    app_group: \(instance.appGroup)
                    api_key: \(quoted(try secret("\(instance.name)-api-key", instance.adminKey)))
                    canary: {entity: ops, project: slack-canary}
                    labels: {simulated: "true", registrar: \(instance.registrar)}
                    allow_insecure_http: true

                """
            if !instance.watchedEntities.isEmpty {
                out += "    watch_entities: [\(instance.watchedEntities.joined(separator: ", "))]\n"
            }
            if instance.registrar == "exec" {
                out += "    registrar:\n      kind: exec\n      command: [\((registerCommand + ["--instance", instance.name]).map(quoted).joined(separator: ", "))]\n      timeout: 30s\n"
            } else {
                out += """
                        registrar:
                          kind: \(instance.registrar)
                          api_url: \(quoted(baseURL + "/k8s/" + instance.name))
                          token: \(quoted(try secret("\(instance.name)-kube-token", instance.kubeToken)))
                          namespace: wandb
                          resource: wandb

                    """
                out += "      deployment: wandb-api\n"
            }
        }
        guard FileManager.default.createFile(atPath: path, contents: Data(out.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw SimulatorError("cannot write \(path)")
        }
    }
}
