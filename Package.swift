// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "sec1000",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sec1000", targets: ["sec1000"]),
        .library(name: "SEC1000Protocol", targets: ["SEC1000Protocol"]),
        .library(name: "Sockets", targets: ["Sockets"]),
        .library(name: "SEC1000Client", targets: ["SEC1000Client"]),
        .library(name: "SEC1000Simulator", targets: ["SEC1000Simulator"]),
        .library(name: "ModbusServer", targets: ["ModbusServer"]),
        .library(name: "Bridge", targets: ["Bridge"]),
        .library(name: "SunSpec", targets: ["SunSpec"]),
        .library(name: "MQTTClient", targets: ["MQTTClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // Frames, checksums and messages of the SEC1000 protocol: pure, no I/O.
        .target(name: "SEC1000Protocol", swiftSettings: strict),
        // A value behind a pthread mutex: how threads share state here (Locked.swift says why).
        .target(name: "Locking", swiftSettings: strict),
        // Blocking POSIX sockets with deadlines, shared by the client, the simulator and the server.
        .target(name: "Sockets", dependencies: ["CSocketCalls", "Locking"], swiftSettings: strict),
        // Declarations of the Linux calls that Swift's Glibc module hides (accept4, pipe2).
        .systemLibrary(name: "CSocketCalls"),
        // Small files done safely: atomic replacement with fsync, small-file reads, locks, set-aside copies.
        .target(name: "DurableFiles", dependencies: ["Locking"], swiftSettings: strict),
        // Talking to a real device: transport, retry policy, pacing, zero-power filter.
        .target(
            name: "SEC1000Client",
            dependencies: ["SEC1000Protocol", "Sockets", "Locking", "DurableFiles", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // A simulated SEC1000 with fault injection.
        .target(
            name: "SEC1000Simulator",
            dependencies: ["SEC1000Protocol", "Sockets", "Locking", .product(name: "Logging", package: "swift-log")],
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
            dependencies: ["CModbus", "Sockets", "Locking", .product(name: "Logging", package: "swift-log")],
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
                "CMosquitto", "CSocketCalls", "Sockets", "Locking",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Pollers, the register map and the services that make up `sec1000 bridge`.
        .target(
            name: "Bridge",
            dependencies: [
                "SEC1000Protocol", "SEC1000Client", "SEC1000Simulator", "ModbusServer", "SunSpec", "Locking", "DurableFiles",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "sec1000",
            dependencies: [
                "SEC1000Protocol", "SEC1000Client", "SEC1000Simulator", "Bridge", "DurableFiles",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // A real mosquitto broker on a loopback port, for every test target that speaks MQTT.
        .target(name: "MQTTTestSupport", dependencies: ["Sockets", "Locking"], path: "Tests/MQTTTestSupport", swiftSettings: strict),
        .testTarget(
            name: "MQTTClientTests",
            dependencies: [
                "MQTTClient", "MQTTTestSupport", "Sockets", "Locking",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "SEC1000ProtocolTests", dependencies: ["SEC1000Protocol"], swiftSettings: strict),
        .testTarget(name: "SocketsTests", dependencies: ["Sockets"], swiftSettings: strict),
        .testTarget(name: "DurableFilesTests", dependencies: ["DurableFiles"], swiftSettings: strict),
        .testTarget(name: "SunSpecTests", dependencies: ["SunSpec"], exclude: ["Fixtures"], swiftSettings: strict),
        .testTarget(
            name: "SEC1000ClientTests",
            dependencies: ["SEC1000Client", "SEC1000Simulator", "Sockets", "Locking", "DurableFiles", "sec1000"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "BridgeTests",
            dependencies: [
                "Bridge", "ModbusServer", "CModbus", "SEC1000Client", "SEC1000Simulator", "Sockets", "Locking", "DurableFiles", "sec1000", "SunSpec",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
