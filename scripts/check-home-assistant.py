"""Checks what a real Home Assistant made of the bridge's MQTT discovery (scripts/check-home-assistant.sh).

Reads Home Assistant's own files after it stopped: the device and entity registries, the states it
saved at shutdown (core.restore_state) and its log; and the bridge's log for the audit line.
Usage: check-home-assistant.py HA-CONFIG-DIR BRIDGE-LOG
"""
import json
import pathlib
import re
import sys

config = pathlib.Path(sys.argv[1])
bridge_log = pathlib.Path(sys.argv[2]).read_text()
failures: list[str] = []


def check(condition: bool, what: str) -> None:
    print(("ok    " if condition else "FAIL  ") + what)
    if not condition:
        failures.append(what)


def storage(name: str):
    return json.loads((config / ".storage" / name).read_text())["data"]


devices = storage("core.device_registry")["devices"]
entities = [e for e in storage("core.entity_registry")["entities"] if e["platform"] == "mqtt"]
states = {s["state"]["entity_id"]: s["state"] for s in storage("core.restore_state")}

sec1000 = [d for d in devices if d["manufacturer"] == "GoodWe" and d["model"] == "SEC1000"]
check(len(sec1000) == 1, f"one SEC1000 device (GoodWe, SEC1000): {[d['name'] for d in sec1000]}")
device = sec1000[0] if sec1000 else {"id": None, "via_device_id": None}
bridge = [d for d in devices if d["id"] == device["via_device_id"]]
check(len(bridge) == 1, "the SEC1000 is connected via the bridge's device")

# Every entity the issue names, by the end of its unique id.
expected = {
    "sensor": ["grid_power", "import_power", "export_power", "inverters_power", "load_power",
               "voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3",
               "power_l1", "power_l2", "power_l3", "energy_import", "energy_export", "energy_production",
               "data_age", "poll_failures"],
    "number": ["export_limit"],
    "select": ["control_mode", "meter_mode"],
}
for domain, objects in expected.items():
    for name in objects:
        matches = [e for e in entities if e["device_id"] == device["id"] and e["entity_id"].startswith(domain + ".")
                   and e["unique_id"].endswith("_" + name)]
        check(len(matches) == 1, f"{domain} {name} created")
        if matches:
            state = states.get(matches[0]["entity_id"], {}).get("state")
            live = state not in (None, "unknown", "unavailable")
            if name == "meter_mode":
                live = state == "sum_of_phases"
            check(live, f"  {matches[0]['entity_id']} has a value: {state}")

for name in ["energy_import", "energy_export", "energy_production"]:
    matches = [e for e in entities if e["device_id"] == device["id"] and e["unique_id"].endswith("_" + name)]
    attributes = states.get(matches[0]["entity_id"], {}).get("attributes", {}) if matches else {}
    check(attributes.get("device_class") == "energy" and attributes.get("state_class") == "total_increasing"
          and attributes.get("unit_of_measurement") == "Wh",
          f"{name}: device_class energy, state_class total_increasing, Wh (the Energy dashboard offers it)")

limit = [e for e in entities if e["device_id"] == device["id"] and e["entity_id"].startswith("number.")]
limit_state = states.get(limit[0]["entity_id"], {}).get("state") if limit else None
check(limit_state == "4321", f"the export limit Home Assistant set reads back: {limit_state}")
check(re.search(r"client=mqtt .*new=limit=4321W .*outcome=confirmed", bridge_log) is not None,
      "the bridge's audit line: the limit set from Home Assistant, confirmed by the device")

# Home Assistant's log: no warning or error, but for two about optional native libraries of this
# Python environment (nothing to do with MQTT).
environment = re.compile(r"\[aiohttp_fast_zlib\]|\[homeassistant\.components\.camera\.img_util\]")
log = (config / "home-assistant.log").read_text().splitlines()
problems = [line for line in log if re.search(r" (WARNING|ERROR|CRITICAL) ", line) and not environment.search(line)]
for line in problems:
    print("      " + line[:300])
check(not problems, f"no warning or error in Home Assistant's log ({len(problems)})")

sys.exit(1 if failures else 0)
