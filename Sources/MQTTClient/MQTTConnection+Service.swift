import ServiceLifecycle

extension MQTTConnection: Service {
    /// Starts the connection and keeps it until graceful shutdown (or cancellation), then shuts
    /// it down cleanly with the final message given at init.
    public func run() async throws {
        start()
        // Throws only when the task is cancelled: shut down cleanly then too.
        try? await gracefulShutdown()
        await shutdown()
    }
}
