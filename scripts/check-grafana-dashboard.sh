#!/usr/bin/env bash
# Checks Docs/grafana-dashboard.json against a real bridge and a real Prometheus (Debian's
# `prometheus`), since Grafana is not packaged in Debian: the JSON's structure (what Grafana's import
# needs), and every panel's `expr`, with Grafana's variables replaced as Grafana does, as an instant
# query that Prometheus accepts and answers with data. Also the scrape config of Docs/monitoring.md.
#
#   scripts/check-grafana-dashboard.sh            uses .build/debug/sec1000 (swift build if absent)
#   BRIDGE=path/to/sec1000 scripts/check-grafana-dashboard.sh
#
# Everything listens on loopback on free ports; the processes are stopped on any exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DASHBOARD=${DASHBOARD:-$ROOT/Docs/grafana-dashboard.json}
WORK=$(mktemp -d /tmp/sec1000-dashboard-check.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
die() { echo "check-grafana-dashboard: $*" >&2; exit 1; }

command -v prometheus >/dev/null || die "prometheus is not installed (apt-get install prometheus)"
if [[ -z "${BRIDGE:-}" ]]; then
    BRIDGE=$ROOT/.build/debug/sec1000
    [[ -x "$BRIDGE" ]] || (cd "$ROOT" && swift build --product sec1000)
fi
[[ -x "$BRIDGE" ]] || die "no bridge at $BRIDGE"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
modbus_port=$(free_port)
http_port=$(free_port)
prometheus_port=$(free_port)

# Some polls fail (implausible answers, retried), so the failure counter has series too.
"$BRIDGE" bridge --simulate --implausible-rate 0.3 --interval 1 --listen "127.0.0.1:$modbus_port" \
    --http "127.0.0.1:$http_port" --log-level warning >"$WORK/bridge.log" 2>&1 &
pids+=($!)

# The scrape config of Docs/monitoring.md (its first yaml block), with this bridge as the target
# and a 1 s interval.
awk '/^```yaml$/ { inside = 1; next } inside && /^```$/ { exit } inside' "$ROOT/Docs/monitoring.md" >"$WORK/documented.yml"
[[ -s "$WORK/documented.yml" ]] || die "no yaml block in Docs/monitoring.md"
python3 - "$WORK/documented.yml" "$WORK/prometheus.yml" "127.0.0.1:$http_port" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"targets: \[[^]]*\]", "targets: ['%s']" % sys.argv[3], text, count=1)
text = re.sub(r"scrape_interval: \S+", "scrape_interval: 1s", text)
open(sys.argv[2], "w").write(text)
PY
promtool check config "$WORK/prometheus.yml" >/dev/null || die "promtool rejects the scrape config of Docs/monitoring.md"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
    --web.listen-address="127.0.0.1:$prometheus_port" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
pids+=($!)

# Modbus traffic, so that the request and exception counters have series: a read of block A
# (answered) and a read of an unmapped address (exception 0x02), raw Modbus TCP.
modbus_reads() {
    python3 - "$modbus_port" <<'PY'
import socket, struct, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
    for tid, address in ((1, 0), (2, 9000)):
        s.sendall(struct.pack(">HHHBBHH", tid, 0, 6, 1, 3, address, 2))
        s.recv(260)
PY
}

deadline=$((SECONDS + 90))
echo "== waiting for Prometheus to hold 5 scrapes of the bridge (bounded, 90 s)"
until python3 - "$prometheus_port" <<'PY'
import json, sys, urllib.request, urllib.parse
q = urllib.parse.quote("count_over_time(sec1000_device_up[1m]) >= 5")
try:
    answer = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v1/query?query={q}", timeout=2))
    sys.exit(0 if answer["data"]["result"] else 1)
except Exception:
    sys.exit(1)
PY
do
    modbus_reads 2>/dev/null || true
    ((SECONDS < deadline)) || die "Prometheus has not scraped the bridge 5 times (logs in $WORK)"
    sleep 1
done

python3 - "$DASHBOARD" "$prometheus_port" <<'PY'
import json, sys, urllib.request, urllib.parse
path, port = sys.argv[1], sys.argv[2]
failures = []
def check(ok, what):
    print(("ok: " if ok else "FAILED: ") + what)
    if not ok: failures.append(what)
def query(url):
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}{url}", timeout=10))

dashboard = json.load(open(path))
check(isinstance(dashboard.get("schemaVersion"), int), f"schemaVersion is an integer ({dashboard.get('schemaVersion')})")
check(bool(dashboard.get("title")) and bool(dashboard.get("uid")), "title and uid")
check(any(i.get("name") == "DS_PROMETHEUS" and i.get("pluginId") == "prometheus" for i in dashboard.get("__inputs", [])),
      "__inputs asks for a Prometheus data source (DS_PROMETHEUS)")
panels = dashboard.get("panels", [])
ids = [p.get("id") for p in panels]
check(len(panels) > 0 and len(set(ids)) == len(ids), f"{len(panels)} panels with distinct ids")
for p in panels:
    grid = p.get("gridPos", {})
    check(p.get("type") in ("timeseries", "stat", "state-timeline", "gauge", "bargauge", "table")
          and all(isinstance(grid.get(k), int) for k in "xywh") and grid["x"] + grid["w"] <= 24
          and p.get("targets") and all(t.get("refId") and t.get("expr") for t in p["targets"]),
          f"panel {p.get('id')} '{p.get('title')}': type, gridPos within 24 columns, targets with refId and expr")

# Grafana's variables as Grafana fills them: the whole range, its rate interval, every unit.
def grafana(expr):
    return expr.replace("$__rate_interval", "1m").replace("$__range", "5m").replace("$unit", ".*")
for p in panels:
    for t in p["targets"]:
        expr = grafana(t["expr"])
        try:
            answer = query("/api/v1/query?query=" + urllib.parse.quote(expr))
            ok = answer.get("status") == "success" and len(answer["data"]["result"]) > 0
            detail = f"{len(answer['data']['result'])} series"
        except urllib.error.HTTPError as error:
            ok, detail = False, error.read().decode()[:200]
        check(ok, f"{p['title']} / {t['refId']}: {expr} -> {detail}")

for variable in dashboard.get("templating", {}).get("list", []):
    definition = variable.get("definition", "")
    if definition.startswith("label_values("):
        metric, label = [part.strip() for part in definition[len("label_values("):-1].split(",")]
        values = query(f"/api/v1/label/{label}/values?match[]=" + urllib.parse.quote(metric))["data"]
        check(len(values) > 0, f"variable ${variable['name']}: {definition} -> {values}")

print(f"\n{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
PY
