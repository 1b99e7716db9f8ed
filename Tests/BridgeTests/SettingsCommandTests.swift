import Foundation
import SEC1000Protocol
import SEC1000Simulator
import Sockets
import TestSupport
import Testing

/// `sec1000 settings get/set` and `bridge --device` as processes against an in-process simulator.
@Suite("sec1000 settings end to end", .timeLimit(.minutes(1)))
struct SettingsCommandTests {
    func withDevice(_ configure: (inout SimulatorConfiguration) -> Void = { _ in }, _ body: (SimulatedDevice) async throws -> Void) async throws {
        var configuration = SimulatorConfiguration(listen: SocketAddress(host: "127.0.0.1", port: 0), seed: 7)
        configure(&configuration)
        let device = try SimulatedDevice(configuration: configuration, logger: quietLogger)
        device.start()
        defer { device.stop() }
        try await body(device)
    }

    @Test func getPrintsTheSettingsAsJSON() async throws {
        try await withDevice { device in
            let result = try await runSEC1000(["settings", "get", "--host", "127.0.0.1", "--port", "\(device.port)", "--format", "json"])
            #expect(result.status == 0, "\(result.errors)")
            #expect(result.output == """
                {"control_mode": "value", "control_mode_code": 3, "total_capacity_w": 8000, "ct_ratio": 1, "export_limit_w": 5000}

                """)
        }
    }

    @Test func setChangesTheDeviceAndPrintsTheReadBack() async throws {
        try await withDevice { device in
            let result = try await runSEC1000([
                "settings", "set", "--host", "127.0.0.1", "--port", "\(device.port)",
                "--export-limit", "2500", "--capacity", "6000", "--meter-mode", "each-phase", "--control-mode", "rcr",
            ])
            #expect(result.status == 0, "\(result.errors)")
            #expect(result.output.contains("export limit    2500 W") && result.output.contains("control mode    rcr (2)"))
            #expect(device.settings == ExportSettings(mode: .rcr, totalCapacity: 6000, ctRatio: 1, exportLimit: 2500))
            #expect(device.meterMode == .eachPhase)
        }
    }

    @Test func setRefusesAnInvalidChangeWithoutTouchingTheDevice() async throws {
        try await withDevice { device in
            let result = try await runSEC1000([
                "settings", "set", "--host", "127.0.0.1", "--port", "\(device.port)", "--export-limit", "9000", "--meter-mode", "sum",
            ])
            #expect(result.status == 2)
            #expect(result.errors.contains("above the total capacity 8000 W") && result.errors.split(separator: "\n").count == 1)
            #expect(device.records.allSatisfy { $0.request == .readExportSettings })
        }
    }

    @Test func setReportsADeviceThatDoesNotConfirm() async throws {
        try await withDevice({ $0.ignoreSets = true }) { device in
            let result = try await runSEC1000([
                "settings", "set", "--host", "127.0.0.1", "--port", "\(device.port)", "--control-mode", "off",
            ])
            #expect(result.status == 3)
            #expect(result.errors.contains("did not confirm"))
        }
    }

    @Test func setWithoutAnyChangeIsAUsageError() async throws {
        let result = try await runSEC1000(["settings", "set", "--host", "127.0.0.1"])
        #expect(result.status == 64)
    }

    /// A real device on the default unit 1, with no simulator beside it.
    @Test func theBridgeServesAGivenDeviceOnUnit1() async throws {
        try await withDevice({ $0.replayCapture = true }) { device in
            let executable = try sec1000Executable()
            let process = Process()
            process.executableURL = executable
            process.arguments = ["bridge", "--device", "127.0.0.1:\(device.port)", "--listen", "127.0.0.1:0", "--interval", "1",
                                 "--min-gap", "0", "--log-level", "error"]
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            defer { if process.isRunning { process.terminate() } }
            let firstLine = await offPool { () -> String in
                var text = ""
                while !text.contains("\n") {
                    let chunk = out.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    text += String(decoding: chunk, as: UTF8.self)
                }
                return text
            }
            let port = try #require(firstLine.split(separator: " ").dropFirst(4).first.flatMap { UInt16($0.trimmingCharacters(in: .punctuationCharacters)) })
            try await waitUntil("unit 1 to serve the device", timeout: .seconds(15)) {
                await offPool { (try? ModbusClient(port: port, unit: 1))?.read(18, 2).values.map(int32s) } == [-351]
            }
        }
    }
}
