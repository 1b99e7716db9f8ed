import ServiceLifecycle
import SEC1000Simulator

/// Runs the built-in simulated device for `bridge --simulate`, for as long as the bridge runs.
struct SimulatorService: Service {
    let device: SimulatedDevice

    func run() async throws {
        device.start()
        // Until graceful shutdown or cancellation.
        try? await gracefulShutdown()
        device.stop()
    }
}
