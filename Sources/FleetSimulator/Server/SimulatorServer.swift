import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The simulator's HTTP server: one loopback port for Slack, every W&B instance, their
/// Kubernetes APIs and the control API.
public final class SimulatorServer: @unchecked Sendable {
    /// The most bytes a request body may have.
    public static let maximumBodySize = 10 << 20

    public let simulator: Simulator
    private let group: MultiThreadedEventLoopGroup
    private var channel: Channel?

    public init(simulator: Simulator, threads: Int = System.coreCount) {
        self.simulator = simulator
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
    }

    /// Binds 127.0.0.1 (port 0: any free port) and returns the port. With `tls` (a certificate
    /// chain and its key, PEM files) it serves https only.
    @discardableResult
    public func start(host: String = "127.0.0.1", port: Int = 0, tls: (certificate: String, key: String)? = nil) throws -> Int {
        let simulator = simulator
        let sslContext = try tls.map { tls in
            try NIOSSLContext(configuration: .makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(tls.certificate).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.key, format: .pem))))
        }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let secured: EventLoopFuture<Void> = sslContext.map { context in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context)) }
                } ?? channel.eventLoop.makeSucceededVoidFuture()
                return secured.flatMap {
                    channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true)
                }.flatMap {
                    channel.pipeline.addHandler(RequestHandler(simulator: simulator))
                }
            }
        let channel = try bootstrap.bind(host: host, port: port).wait()
        self.channel = channel
        guard let bound = channel.localAddress?.port else { throw SimulatorError("the server has no local port") }
        simulator.setBaseURL("\(tls == nil ? "http" : "https")://\(host):\(bound)")
        return bound
    }

    /// Stops accepting, closes every connection and stops the event loops.
    public func stop() throws {
        try channel?.close().wait()
        channel = nil
        try group.syncShutdownGracefully()
    }
}

/// Collects one request, hands it to the simulator, writes the answer (or misbehaves).
private final class RequestHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let simulator: Simulator
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var tooLarge = false

    init(simulator: Simulator) {
        self.simulator = simulator
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
            tooLarge = false
        case .body(var chunk):
            if body.readableBytes + chunk.readableBytes > SimulatorServer.maximumBodySize {
                tooLarge = true
            } else {
                body.writeBuffer(&chunk)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let channel = context.channel
            if tooLarge {
                Self.write(SimResponse.text("request body too large", status: 413), head: head, to: channel)
                return
            }
            let request = Self.request(head, body: Data(body.readableBytesView))
            // Calls to the services count toward the requests in flight; the control API's do not.
            let gauge: InFlightGauge? = request.path.hasPrefix("/_sim/") ? nil : simulator.inFlight
            gauge?.begin()
            if let response = simulator.answerAtOnce(request) {
                Self.deliver(response, head: head, to: channel, gauge: gauge)
                return
            }
            let simulator = simulator
            Task {
                let response = await simulator.handle(request)
                Self.deliver(response, head: head, to: channel, gauge: gauge)
            }
        }
    }

    private static func request(_ head: HTTPRequestHead, body: Data) -> SimRequest {
        let uri = head.uri
        let parts = uri.split(separator: "?", maxSplits: 1).map(String.init)
        var headers: [String: String] = [:]
        for (name, value) in head.headers { headers[name.lowercased()] = value }
        return SimRequest(method: head.method.rawValue, path: parts.first ?? "/",
                          query: parts.count == 2 ? SimRequest.formFields(parts[1]) : [:],
                          headers: headers, body: body)
    }

    private static func deliver(_ response: SimResponse, head: HTTPRequestHead, to channel: Channel, gauge: InFlightGauge? = nil) {
        let loop = channel.eventLoop
        switch response.disposition {
        case .reset:
            loop.scheduleTask(in: .milliseconds(Int64(response.delay * 1000))) {
                gauge?.end()
                // SO_LINGER 0 turns the close into a TCP reset.
                if let provider = channel as? SocketOptionProvider {
                    _ = provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).flatMap { channel.close() }
                } else {
                    _ = channel.close()
                }
            }
        case .hang(let seconds):
            loop.scheduleTask(in: .milliseconds(Int64(seconds * 1000))) {
                gauge?.end()
                _ = channel.close()
            }
        case .respond:
            if response.delay > 0 {
                loop.scheduleTask(in: .microseconds(Int64(response.delay * 1_000_000))) {
                    gauge?.end()
                    write(response, head: head, to: channel)
                }
            } else {
                loop.execute {
                    gauge?.end()
                    write(response, head: head, to: channel)
                }
            }
        }
    }

    private static func write(_ response: SimResponse, head: HTTPRequestHead, to channel: Channel) {
        var headers = HTTPHeaders()
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
        let keepAlive = head.isKeepAlive
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let responseHead = HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        channel.write(HTTPServerResponsePart.head(responseHead), promise: nil)
        if !response.body.isEmpty {
            var buffer = channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            channel.write(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
        }
        let done = channel.writeAndFlush(HTTPServerResponsePart.end(nil))
        if !keepAlive { done.whenComplete { _ in _ = channel.close() } }
    }
}

/// The requests to the simulated services between arrival and answer, and the most at once
/// since the last reset: what a test reads to see a client's bound on calls in flight.
final class InFlightGauge: @unchecked Sendable {
    private let lock = NSLock()
    private var current = 0
    private var peak = 0

    func begin() {
        lock.withLock {
            current += 1
            peak = max(peak, current)
        }
    }

    func end() {
        lock.withLock { current -= 1 }
    }

    /// The most at once since the last reset.
    var mostAtOnce: Int { lock.withLock { peak } }

    func reset() {
        lock.withLock { peak = current }
    }
}
