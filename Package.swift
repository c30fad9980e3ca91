// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "SlackFleet",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "slackfleet", targets: ["slackfleet"]),
        .executable(name: "fleet-sim", targets: ["fleet-sim"]),
        .library(name: "SlackFleetCore", targets: ["SlackFleetCore"]),
        .library(name: "FleetSimulator", targets: ["FleetSimulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/GraphQLSwift/GraphQL", from: "4.3.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        .target(
            name: "SlackFleetCore",
            dependencies: [
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "slackfleet",
            dependencies: [
                "SlackFleetCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "FleetSimulator",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "GraphQL", package: "GraphQL"),
                .product(name: "OrderedCollections", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["Slack/manifest-schema-LICENSE"],
            resources: [.copy("Slack/manifest.schema.1.0.0.json")]
        ),
        .executableTarget(
            name: "fleet-sim",
            dependencies: [
                "FleetSimulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "fleet-sim-bench",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Benchmarks/fleet-sim-bench"
        ),
        .executableTarget(
            name: "slackfleet-soak",
            dependencies: ["SlackFleetCore", "SlackFleetTestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Benchmarks/slackfleet-soak"
        ),
        .executableTarget(
            name: "slackfleet-fuzz",
            dependencies: ["SlackFleetCore"],
            path: "Fuzz",
            exclude: ["corpus", "regressions"]
        ),
        .executableTarget(
            name: "slackfleet-bench",
            dependencies: ["SlackFleetCore", "SlackFleetTestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Benchmarks/slackfleet-bench"
        ),
        // What the tests, the benchmarks and the soak share: a fleet-sim process, the CLI as a
        // user runs it, temporary directories (kept under Sources/, as swift-argument-parser keeps
        // ArgumentParserTestHelpers, because the benchmarks use it too).
        .target(
            name: "SlackFleetTestSupport",
            dependencies: ["SlackFleetCore"]
        ),
        .testTarget(
            name: "SlackFleetCoreTests",
            dependencies: [
                "SlackFleetCore",
                "SlackFleetTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "FleetSimulatorTests",
            dependencies: ["FleetSimulator", "SlackFleetTestSupport"]
        ),
        .testTarget(
            name: "SlackFleetEndToEndTests",
            dependencies: [
                "SlackFleetTestSupport",
                "slackfleet",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
