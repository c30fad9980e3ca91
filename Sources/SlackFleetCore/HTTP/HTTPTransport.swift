import AsyncHTTPClient
import NIOSSL
import Foundation
import Logging
import Synchronization
import NIOCore
import NIOHTTP1

/// A request as the clients describe it.
public struct HTTPRequestSpec: Sendable {
    public var method: String
    public var url: String
    public var headers: [(String, String)]
    public var body: Data?
    /// Whether plain http is acceptable, which it is only to a loopback host.
    public var allowInsecureHTTP: Bool
    /// The whole request must complete within this many seconds.
    public var timeout: TimeInterval

    public init(method: String, url: String, headers: [(String, String)] = [], body: Data? = nil, allowInsecureHTTP: Bool = false, timeout: TimeInterval = 30) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.allowInsecureHTTP = allowInsecureHTTP
        self.timeout = timeout
    }
}

/// An answer: status, headers (names lowercased) and the body.
public struct HTTPReply: Sendable {
    public let status: Int
    public let headers: [String: String]
    public let body: Data
}

/// The one HTTP transport: a shared AsyncHTTPClient with a connection pool, connect and request
/// timeouts, TLS verification always on, no redirects followed (a 3xx is an error, so
/// credentials never travel to another host), a cap on response size, and plain http only to
/// loopback when the inventory allows it.
///
/// `send` blocks its caller: the runner calls it from its own Dispatch lanes, never from an
/// event loop.
public final class HTTPTransport: Sendable {
    public struct Configuration: Sendable {
        public var connectTimeout: TimeInterval = 5
        public var maximumResponseBytes = 8 << 20
        /// A PEM file of CA certificates trusted besides the system's (`--ca-file`), for a
        /// private CA in front of W&B or Kubernetes. Verification itself is never turned off.
        public var caFile: String?
        /// The most requests in flight at once (`--concurrency`); nil for no bound.
        public var maximumInFlight: Int?

        public init() {}
    }

    /// Checks that `path` holds at least one PEM certificate, with a message that says what to fix.
    public static func checkCAFile(_ path: String) throws {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw FleetError.config("--ca-file \(path) cannot be read as PEM certificates (\(String("\(error)".prefix(120)))): give a file of -----BEGIN CERTIFICATE----- blocks")
        }
        guard !certificates.isEmpty else {
            throw FleetError.config("--ca-file \(path) holds no certificate: give a file of -----BEGIN CERTIFICATE----- blocks")
        }
    }

    private let client: HTTPClient
    private let verdicts = Mutex<[String: HostVerdict]>([:])
    private let closing = Mutex<EventLoopFuture<Void>?>(nil)
    private let configuration: Configuration
    private let logger: Logger
    /// One permit per request in flight, when the run bounds them.
    private let slots: DispatchSemaphore?

    public init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "slackfleet.http", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.configuration = configuration
        self.logger = logger
        slots = configuration.maximumInFlight.map { DispatchSemaphore(value: max(1, $0)) }
        var clientConfiguration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .milliseconds(Int64(configuration.connectTimeout * 1000)))
        )
        if let caFile = configuration.caFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.additionalTrustRoots = [.file(caFile)]
            clientConfiguration.tlsConfiguration = tls
        }
        clientConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        // A connection that cannot be made fails its request at once, and the one RetryPolicy
        // decides: AsyncHTTPClient would otherwise try again until the request's deadline, so a
        // certificate that will never verify took the whole timeout to say so.
        clientConfiguration.connectionPool.retryConnectionEstablishment = false
        clientConfiguration.httpVersion = .http1Only
        // No distributed tracing: with the default (no-op) tracer AsyncHTTPClient still builds
        // every request's span attributes, about a tenth of its event loops' time in a run.
        clientConfiguration.tracing.tracer = nil
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
    }

    /// Starts the shared event loops on another thread now, so that the transport a run makes
    /// (after it takes its lock, on the way to its first request) finds them running.
    public static func startEventLoops() {
        DispatchQueue.global().async { _ = HTTPClient.defaultEventLoopGroup }
    }

    /// Starts closing every connection without waiting for it; no request may follow.
    public func beginShutdown() {
        closing.withLock { if $0 == nil { $0 = client.shutdown() } }
    }

    /// Closes every connection and waits until they are closed; call once, when the run is over.
    public func shutdown() {
        beginShutdown()
        try? closing.withLock { $0 }?.wait()
    }

    /// Sends `spec` and waits for the whole answer.
    public func send(_ spec: HTTPRequestSpec) throws -> HTTPReply {
        guard let url = URL(string: spec.url), let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased() else {
            throw TransportError(.invalidURL, target: spec.method + " (invalid URL)")
        }
        let target = HTTPTransport.target(spec.method, url)
        let bareHost = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let verdict = verdict(bareHost)
        if scheme == "http" {
            guard spec.allowInsecureHTTP, verdict.loopback else {
                throw TransportError(.insecureURL, target: target, detail: "plain http is used only to a loopback host marked allow_insecure_http")
            }
        } else if scheme != "https" {
            throw TransportError(.insecureURL, target: target, detail: "only https is used")
        }
        if let reason = verdict.forbidden {
            throw TransportError(.insecureURL, target: target, detail: "\(bareHost) is \(reason)")
        }
        var headers = HTTPHeaders()
        for (name, value) in spec.headers { headers.add(name: name, value: value) }
        if let body = spec.body { headers.replaceOrAdd(name: "Content-Length", value: String(body.count)) }
        let request: HTTPClient.Request
        do {
            request = try HTTPClient.Request(url: url, method: HTTPMethod(rawValue: spec.method), headers: headers,
                                             body: spec.body.map { .bytes($0) })
        } catch {
            throw TransportError(.invalidURL, target: target)
        }
        // AsyncHTTPClient logs at debug and trace only, and sets metadata on the logger it is
        // given for every request, which a stream handler formats at once: above debug it gets
        // a logger that discards everything.
        var requestLogger = logger.logLevel <= .debug ? logger : HTTPTransport.silent
        if logger.logLevel <= .debug { requestLogger[metadataKey: "request-id"] = "\(RandomID.uuid().prefix(8))" }
        requestLogger.debug("→ \(target)")
        // A permit for the request's time in flight (`--concurrency`); the timeout starts after it.
        slots?.wait()
        defer { slots?.signal() }
        let started = DispatchTime.now()
        let accumulator = ResponseAccumulator(request: request, maxBodySize: configuration.maximumResponseBytes)
        let response: HTTPClient.Response
        do {
            response = try execute(request, accumulator, deadline: .now() + .milliseconds(Int64(spec.timeout * 1000)), logger: requestLogger)
        } catch {
            let mapped = HTTPTransport.map(error, target: target)
            requestLogger.debug("✗ \(mapped)")
            throw mapped
        }
        requestLogger.debug("← \(response.status.code) \(target) in \((DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1_000_000) ms")
        if (300...399).contains(Int(response.status.code)) {
            throw TransportError(.redirectRefused, target: target, detail: "HTTP \(response.status.code) to another location; redirects are not followed")
        }
        var fields: [String: String] = [:]
        for (name, value) in response.headers { fields[name.lowercased()] = value }
        return HTTPReply(status: Int(response.status.code), headers: fields, body: response.body.map { Data($0.readableBytesView) } ?? Data())
    }

    /// Runs the request from one of the client's event loops and waits for its answer. Called
    /// from a lane's thread, AsyncHTTPClient would hop to an event loop several times per
    /// request (each a wake-up through the loop's eventfd): its request setup, the pool's lease,
    /// and the wait's own callback; from an event loop it hops at most once, to the connection's.
    private func execute(_ request: HTTPClient.Request, _ accumulator: ResponseAccumulator, deadline: NIODeadline, logger: Logger) throws -> HTTPClient.Response {
        assert(!client.eventLoopGroup.any().inEventLoop, "HTTPTransport.send blocks: it is never called from an event loop")
        let answered = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<HTTPClient.Response, any Error>?>(nil)
        client.eventLoopGroup.next().execute { [client] in
            client.execute(request: request, delegate: accumulator, deadline: deadline, logger: logger).futureResult.whenComplete { result in
                outcome.withLock { $0 = result }
                answered.signal()
            }
        }
        answered.wait()
        guard let result = outcome.withLock({ $0 }) else { throw TransportError(.other, target: "(no answer)") }
        return try result.get()
    }

    private static let silent = Logger(label: "slackfleet.http", factory: { _ in SwiftLogNoOpLogHandler() })

    /// What the endpoint rules say about a host, worked out once per host and run: a run sends
    /// thousands of requests to a few hundred hosts.
    private func verdict(_ host: String) -> HostVerdict {
        if let known = verdicts.withLock({ $0[host] }) { return known }
        let verdict = HostVerdict(loopback: EndpointRules.isLoopback(host), forbidden: EndpointRules.forbiddenHostReason(host))
        verdicts.withLock { $0[host] = verdict }
        return verdict
    }

    private struct HostVerdict {
        let loopback: Bool
        let forbidden: String?
    }

    /// `METHOD host:port/path`: what a message may say about a request.
    static func target(_ method: String, _ url: URL) -> String {
        "\(method) \(url.host ?? "")\(url.port.map { ":\($0)" } ?? "")\(url.path)"
    }

    static func map(_ error: any Error, target: String) -> TransportError {
        if let error = error as? TransportError { return error }
        if error is ResponseAccumulator.ResponseTooBigError { return TransportError(.responseTooLarge, target: target, detail: "\(error)") }
        if let error = error as? HTTPClientError {
            switch error {
            case .readTimeout, .connectTimeout, .deadlineExceeded, .writeTimeout, .getConnectionFromPoolTimeout, .tlsHandshakeTimeout:
                return TransportError(.timeout, target: target)
            case .remoteConnectionClosed:
                return TransportError(.connectionReset, target: target)
            default:
                return TransportError(.other, target: target, detail: "\(error)")
            }
        }
        let text = "\(error)"
        if text.contains("NIOSSL") || text.contains("certificate") || text.contains("handshake") { return TransportError(.tls, target: target, detail: String(text.prefix(200))) }
        if text.contains("reset") || text.contains("ECONNRESET") || text.contains("Broken pipe") { return TransportError(.connectionReset, target: target) }
        if text.contains("refused") || text.contains("connect") { return TransportError(.connectFailed, target: target, detail: String(text.prefix(200))) }
        return TransportError(.other, target: target, detail: String(text.prefix(200)))
    }
}
