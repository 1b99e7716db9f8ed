// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "sec1000",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sec1000", targets: ["sec1000"]),
        .library(name: "SEC1000Protocol", targets: ["SEC1000Protocol"]),
        .library(name: "Hex", targets: ["Hex"]),
        .library(name: "Sockets", targets: ["Sockets"]),
        .library(name: "SEC1000Client", targets: ["SEC1000Client"]),
        .library(name: "SEC1000Simulator", targets: ["SEC1000Simulator"]),
        .library(name: "ModbusServer", targets: ["ModbusServer"]),
        .library(name: "Bridge", targets: ["Bridge"]),
        .library(name: "SunSpec", targets: ["SunSpec"]),
        .library(name: "HTTPFace", targets: ["HTTPFace"]),
        .library(name: "MQTTClient", targets: ["MQTTClient"]),
        .library(name: "MQTTFace", targets: ["MQTTFace"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // HummingbirdCore only: its default traits would build swift-configuration for nothing.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        // HummingbirdCore's own dependencies, named for the HTTP face's channel handler (RequestGuard)
        // and its response types.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // Hexadecimal text, read and written one way everywhere.
        .target(name: "Hex", swiftSettings: strict),
        // The wall clock in Unix seconds.
        .target(name: "UnixClock", swiftSettings: strict),
        // Frames, checksums and messages of the SEC1000 protocol: pure, no I/O.
        .target(name: "SEC1000Protocol", dependencies: ["Hex"], swiftSettings: strict),
        // A value behind a pthread mutex: how threads share state here (Locked.swift says why).
        .target(name: "Locking", swiftSettings: strict),
        // JSON text written in a fixed key order with exact numbers: the MQTT payloads and the HTTP
        // face's documents.
        .target(name: "JSONText", swiftSettings: strict),
        // A dedicated OS thread for a blocking loop, off Swift's cooperative pool.
        .target(name: "Threading", swiftSettings: strict),
        // POSIX sockets with deadlines: blocking ones for the simulator and the server, async ones on
        // one shared poll() thread for device transactions.
        .target(name: "Sockets", dependencies: ["CSocketCalls", "Locking", "Threading"], swiftSettings: strict),
        // Declarations of the Linux calls that Swift's Glibc module hides (accept4, pipe2).
        .systemLibrary(name: "CSocketCalls"),
        // glibc's mallopt, which Swift's Glibc module hides (the bridge fixes the mmap threshold).
        .systemLibrary(name: "CMallocCalls"),
        // Small files done safely: atomic replacement with fsync, small-file reads, locks, set-aside copies.
        .target(name: "DurableFiles", dependencies: ["Locking"], swiftSettings: strict),
        // Talking to a real device: transport, retry policy, pacing, zero-power filter.
        .target(
            name: "SEC1000Client",
            dependencies: ["SEC1000Protocol", "Sockets", "Locking", "DurableFiles", "Hex", "UnixClock", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // A simulated SEC1000 with fault injection.
        .target(
            name: "SEC1000Simulator",
            dependencies: ["Threading", "SEC1000Protocol", "Sockets", "Locking", "Hex", "UnixClock", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // SunSpec models and their encoding: pure, no I/O.
        .target(name: "SunSpec", swiftSettings: strict),
        // Debian's libmodbus-dev.
        .systemLibrary(
            name: "CModbus",
            pkgConfig: "libmodbus",
            providers: [.apt(["libmodbus-dev"])]
        ),
        // A Modbus TCP server on libmodbus that knows nothing of the SEC1000.
        .target(
            name: "ModbusServer",
            dependencies: ["Threading", "CModbus", "Sockets", "Locking", "Hex", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // The strict number parsers of the command line, shared with the configuration file.
        .target(name: "OptionValues", dependencies: ["Sockets"], swiftSettings: strict),
        // `sec1000 bridge --config FILE`: the YAML file, its keys (one per long option) and its errors.
        .target(
            name: "ConfigurationFile",
            dependencies: ["Bridge", "MQTTClient", "OptionValues", "SEC1000Protocol", "SEC1000Simulator", "Sockets", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // Debian's libmosquitto-dev.
        .systemLibrary(
            name: "CMosquitto",
            pkgConfig: "libmosquitto",
            providers: [.apt(["libmosquitto-dev"])]
        ),
        // An MQTT client connection on libmosquitto that knows nothing of the SEC1000: reconnects,
        // keeps the latest message per topic while the broker is away, survives broker restarts.
        .target(
            name: "MQTTClient",
            dependencies: [
                "CMallocCalls", "CMosquitto", "CSocketCalls", "Sockets", "Locking", "Threading",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // What makes up `sec1000 bridge`: one service per device, the reading and its broadcast, the
        // control path, the fleet, the register map and bank (Docs/architecture.md).
        .target(
            name: "Bridge",
            dependencies: [
                "SEC1000Protocol", "SEC1000Client", "ModbusServer", "SunSpec", "Locking", "Threading", "DurableFiles", "Hex", "UnixClock",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The HTTP face of `sec1000 bridge --http`: Prometheus metrics, health checks, JSON status and
        // a status page, read-only, on HummingbirdCore (Docs/http.md says why that server).
        .target(
            name: "HTTPFace",
            dependencies: [
                "Bridge", "ModbusServer", "SEC1000Protocol", "SEC1000Client", "Locking", "Hex", "UnixClock", "JSONText",
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The MQTT face of `sec1000 bridge --mqtt`: topics, Home Assistant discovery and control
        // from MQTT (Docs/mqtt.md), on the MQTTClient connection.
        .target(
            name: "MQTTFace",
            dependencies: [
                "Bridge", "MQTTClient", "ModbusServer", "SEC1000Protocol", "SEC1000Client", "Locking", "JSONText",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "sec1000",
            dependencies: [
                "SEC1000Protocol", "SEC1000Client", "SEC1000Simulator", "Bridge", "DurableFiles", "OptionValues", "ConfigurationFile", "HTTPFace",
                "Hex", "MQTTClient", "MQTTFace", "CMallocCalls",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // What the test targets share: the off-pool helper, the wait, the process runner, the log recorder.
        .target(
            name: "TestSupport",
            dependencies: [
                "CSocketCalls", "Locking", "Threading",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: strict
        ),
        // A real mosquitto broker on a loopback port, for every test target that speaks MQTT.
        .target(name: "MQTTTestSupport", dependencies: ["Sockets", "Locking", "Threading", "TestSupport"], path: "Tests/MQTTTestSupport", swiftSettings: strict),
        .testTarget(
            name: "MQTTClientTests",
            dependencies: [
                "MQTTClient", "MQTTTestSupport", "TestSupport", "Sockets", "Locking",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "MQTTFaceTests",
            dependencies: [
                "MQTTFace", "MQTTClient", "MQTTTestSupport", "TestSupport", "Bridge", "SEC1000Simulator", "SEC1000Client", "SEC1000Protocol",
                "Sockets", "Locking", "Threading", "CModbus", "sec1000",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "SEC1000ProtocolTests", dependencies: ["SEC1000Protocol", "Hex"], swiftSettings: strict),
        .testTarget(name: "JSONTextTests", dependencies: ["JSONText"], swiftSettings: strict),
        .testTarget(
            name: "ConfigurationFileTests",
            dependencies: ["ConfigurationFile", "Bridge", "OptionValues", "Sockets"],
            swiftSettings: strict
        ),
        .testTarget(name: "SocketsTests", dependencies: ["Sockets", "Threading"], swiftSettings: strict),
        .testTarget(name: "DurableFilesTests", dependencies: ["DurableFiles"], swiftSettings: strict),
        .testTarget(name: "SunSpecTests", dependencies: ["SunSpec"], exclude: ["Fixtures"], swiftSettings: strict),
        .testTarget(
            name: "SEC1000ClientTests",
            dependencies: ["SEC1000Client", "SEC1000Simulator", "Sockets", "Locking", "Threading", "DurableFiles", "Hex", "sec1000", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "BridgeTests",
            dependencies: [
                "Bridge", "ModbusServer", "CModbus", "SEC1000Client", "SEC1000Simulator", "Sockets", "Locking", "Threading", "DurableFiles", "sec1000", "SunSpec", "ConfigurationFile",
                "HTTPFace", "Hex", "TestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
