// swift-tools-version:6.1
// libFuzzer targets, kept out of the normal build. Build and run them with `make fuzz`
// (scripts/fuzz.sh), which passes `-sanitize=fuzzer,address` to every module.
import PackageDescription

let package = Package(
    name: "sec1000-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "sec1000", path: "..")],
    targets: [
        // The SEC1000 frame decoders: ResponseFrameReader, ResponseDecoder, AnswerAnalysis, RequestDecoder.
        .executableTarget(
            name: "FuzzSEC1000Frames",
            dependencies: [.product(name: "SEC1000Protocol", package: "sec1000"), .product(name: "Hex", package: "sec1000")]),
        // The Modbus framing and `decide`, against the real BridgeRegisterBank.
        .executableTarget(
            name: "FuzzModbusDecide",
            dependencies: [
                .product(name: "ModbusServer", package: "sec1000"),
                .product(name: "Sockets", package: "sec1000"),
                .product(name: "Bridge", package: "sec1000"),
                .product(name: "SEC1000Protocol", package: "sec1000"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
