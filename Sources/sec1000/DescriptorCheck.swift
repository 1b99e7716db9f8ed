import ArgumentParser
import Bridge
import Sockets

extension BridgeCommand {
    /// Raises the soft descriptor limit to the hard one, then refuses (exit 64) a `--max-connections`
    /// that does not fit beside the descriptors the devices and files need: with too few, accepting
    /// fails with EMFILE and device polls fail with it.
    func checkDescriptorLimit() throws {
        let configuration = try bridgeConfiguration(simulatorPort: simulate ? 1 : nil)
        let limits = raiseDescriptorLimit()
        let reserve = configuration.reservedDescriptors
        let needed = configuration.maxConnections + reserve
        guard needed > limits.soft else { return }
        let fitting = limits.soft - reserve
        let hard = limits.hard == Int.max ? "unlimited" : "\(limits.hard)"
        printError("""
            error: --max-connections \(configuration.maxConnections) needs \(needed) file descriptors \
            (\(configuration.maxConnections) connections + \(reserve) for \(configuration.devices.count) device(s), \
            files and pipes: 32 + 2 per device), but this process may open only \(limits.soft) (ulimit -n; hard \
            limit \(hard)). \(fitting >= 1 ? "Give --max-connections \(fitting) or less" : "Give fewer devices"), \
            or raise the limit (ulimit -n, or LimitNOFILE= in the systemd unit).
            """)
        throw ExitCode.validationFailure
    }
}
