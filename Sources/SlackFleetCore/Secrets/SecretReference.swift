import Foundation

/// Where a secret lives: the inventory holds these, never values.
///
/// - `secret:NAME`: sealed in this database (`slackfleet secrets set NAME`);
/// - `env:VAR`: an environment variable of the process that runs the job;
/// - `file:PATH`: a file (such as a Kubernetes service account token);
/// - `exec:COMMAND`: the standard output of a command run with `/bin/sh -c`, for Vault or a
///   cloud secret manager.
public enum SecretReference: Hashable, Sendable, CustomStringConvertible {
    case stored(name: String)
    case environment(variable: String)
    case file(path: String)
    case command(String)

    /// Parses `text`, or returns why it is not a reference and how to write one.
    public static func parse(_ text: String) -> Result<SecretReference, ReferenceProblem> {
        guard let colon = text.firstIndex(of: ":") else {
            return .failure(ReferenceProblem(text: text))
        }
        let scheme = String(text[..<colon])
        let rest = String(text[text.index(after: colon)...])
        switch scheme {
        case "secret":
            guard SecretReference.isValidStoredName(rest) else {
                return .failure(ReferenceProblem(problem: "secret name \"\(rest)\" is not valid", fix: "use letters, digits, '.', '_', '-' and '/', starting with a letter or digit, at most 128 characters"))
            }
            return .success(.stored(name: rest))
        case "env":
            guard TextRules.isEnvironmentName(rest) else {
                return .failure(ReferenceProblem(problem: "environment variable name \"\(rest)\" is not valid", fix: "use letters, digits and '_', not starting with a digit"))
            }
            return .success(.environment(variable: rest))
        case "file":
            guard rest.hasPrefix("/") || rest.hasPrefix("./") || rest.hasPrefix("../") || rest.hasPrefix("~/") else {
                return .failure(ReferenceProblem(problem: "file reference \"\(rest)\" is not a path", fix: "start it with '/', './', '../' or '~/'"))
            }
            return .success(.file(path: rest))
        case "exec":
            guard !rest.trimmingCharacters(in: .whitespaces).isEmpty else {
                return .failure(ReferenceProblem(problem: "exec reference has no command", fix: "write exec:COMMAND"))
            }
            return .success(.command(rest))
        default:
            return .failure(ReferenceProblem(text: text))
        }
    }

    /// Whether `name` can name a secret stored in the database.
    public static func isValidStoredName(_ name: String) -> Bool {
        TextRules.isSecretName(name)
    }

    public var description: String {
        switch self {
        case .stored(let name): "secret:\(name)"
        case .environment(let variable): "env:\(variable)"
        case .file(let path): "file:\(path)"
        case .command(let command): "exec:\(command)"
        }
    }
}

/// Why a text is not a secret reference, and how to write one. Never includes the text
/// itself when it might be a secret pasted in by mistake.
public struct ReferenceProblem: Error, Sendable, CustomStringConvertible {
    public let problem: String
    public let fix: String

    init(problem: String, fix: String) {
        self.problem = problem
        self.fix = fix
    }

    init(text: String) {
        if SecretReference.looksLikeLiteralSecret(text) {
            problem = "looks like a secret value written in the inventory"
            fix = "store it with `slackfleet secrets set NAME` (value on stdin) and write secret:NAME, or use env:VAR, file:PATH or exec:COMMAND"
        } else {
            problem = "is not a secret reference"
            fix = "write secret:NAME, env:VAR, file:PATH or exec:COMMAND"
        }
    }

    public var description: String { "\(problem): \(fix)" }
}

extension SecretReference {
    /// Whether `text` has the shape of a Slack token or a long random credential.
    static func looksLikeLiteralSecret(_ text: String) -> Bool {
        if text.hasPrefix("xox") || text.hasPrefix("xapp-") { return true }
        return text.count >= 20 && !text.contains(" ") && !text.contains(":")
    }
}
