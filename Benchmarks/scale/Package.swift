// swift-tools-version:6.1
// The scale benchmark (Docs/performance.md): the polling core alone, with any number of devices.
// Kept out of the normal build and of CI; Benchmarks/scale/run.sh builds and runs it.
import PackageDescription

let package = Package(
    name: "sec1000-scale",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "sec1000", path: "../.."),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // Threads, memory and CPU of the benchmark's own process, for both executables.
        .target(name: "ProcessSampling", swiftSettings: [.enableUpcomingFeature("ExistentialAny")]),
        .executableTarget(
            name: "sec1000-scale",
            dependencies: [
                "ProcessSampling",
                .product(name: "Bridge", package: "sec1000"),
                .product(name: "SEC1000Client", package: "sec1000"),
                .product(name: "Sockets", package: "sec1000"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]),
        // The MQTT face under load: Benchmarks/scale/run.sh mqtt-load, mqtt-outage.
        .executableTarget(
            name: "sec1000-mqtt",
            dependencies: [
                "ProcessSampling",
                .product(name: "Bridge", package: "sec1000"),
                .product(name: "MQTTClient", package: "sec1000"),
                .product(name: "MQTTFace", package: "sec1000"),
                .product(name: "Sockets", package: "sec1000"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]),
    ],
    swiftLanguageModes: [.v6]
)
