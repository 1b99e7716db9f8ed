/// `sec1000 config example`: a commented file that passes `config check` and starts the bridge on
/// the built-in simulated SEC1000; the Debian package installs it as /etc/sec1000/bridge.yaml.
public let exampleConfiguration = #"""
# sec1000 bridge configuration (Docs/configuration.md).
# Each key is the long option of `sec1000 bridge` with the same name, and takes the same values;
# an option given on the command line wins over its key. Check the file with
#   sec1000 config check /etc/sec1000/bridge.yaml
# and reload the service after a change: systemctl reload sec1000-bridge (what a reload cannot
# change is logged and listed in Docs/configuration.md; restart for those).

# Where to serve Modbus TCP. 127.0.0.1 serves this machine only; 0.0.0.0:502 serves the network.
# (An IPv6 address needs quotes: "[::]:502".)
listen: 127.0.0.1:502

# The HTTP face: metrics for Prometheus, health checks, a status page (Docs/http.md). Read-only.
# Remove the line to turn it off.
http: 127.0.0.1:8080

# Until you list your devices, the bridge serves the built-in simulated SEC1000 on unit 1.
# Remove this line (or set it to false) when you add devices below.
simulate: true

# Your SEC1000s. Each needs host:; the rest have defaults.
devices: []
#  - name: roof                 # id in logs and, later, MQTT topics and metrics: a-z A-Z 0-9 _ -, 1 to 64
#    host: 192.168.1.50
#    port: 1234
#    unit: 2                    # Modbus unit id, 1 to 247, one per device (the simulator has 1)
#    serial: SEC1000-ROOF       # SunSpec serial number (default: made from host and port)
#    grid-sign: import-positive # this device's sign convention (default: grid-sign below)
#    meter-mode: sum            # this device's meter mode (default: meter-mode below)
#    energy-import-wh: 1234567  # set the counters to the utility meter's readings, once
#    energy-export-wh: 765432
#    energy-production-wh: 2345678

# Polling (seconds). Under 5 s risks overloading a real device.
interval: 10
# stale-after: 30              # default: 3 intervals
timeout: 5
retries: 3
retry-wait: 2
min-gap: 1
max-backoff: 60
grid-sign: import-positive      # or export-positive

# Modbus clients.
max-connections: 64
max-connections-per-address: 16
idle-timeout: 60

# Energy counters, kept across restarts in this file (the package's state directory).
energy-state: /var/lib/sec1000/energy.json
energy-save-interval: 60
max-plant-power: 10000000

# Export-limit control through Modbus writes (Docs/control.md): off unless enabled, and then only
# for the networks listed.
enable-control: false
control-allow: []
#  - 192.168.1.0/24
# max-export-limit: 6000
# The meter mode the devices were commissioned with: each-phase or sum. The device does not report
# it and every limit change carries it; without it a limit change must also write it.
# meter-mode: sum
write-timeout: 30
settings-every: 30
sync-clock: false

log-level: info
"""#
