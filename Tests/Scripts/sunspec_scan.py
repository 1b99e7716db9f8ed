#!/usr/bin/env python3
"""Scans a SunSpec device over Modbus TCP with pysunspec2 and prints what it found as JSON.

Usage: sunspec_scan.py PORT [UNIT]

Run by the Swift test suite (SunSpecClientTests) against a bridge it starts on 127.0.0.1: the
output holds every point of models 1, 103 and 203 as pysunspec2 decodes it (scale factors applied,
None for "not implemented"), the errors pysunspec2 reported, and the point layouts of its own
bundled model definitions.
"""
import json
import sys

from sunspec2 import device
import sunspec2.modbus.client as client


def main():
    port = int(sys.argv[1])
    unit = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    d = client.SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr='127.0.0.1', ipport=port, timeout=5)
    try:
        d.scan()
        out = {
            'base_address': d.base_addr,
            'models': [m.model_id for m in d.model_list],
            'points': {},
            'errors': {},
            'definitions': {},
        }
        for model in d.model_list:
            key = str(model.model_id)
            out['points'][key] = {name: point.cvalue for name, point in model.points.items()}
            out['errors'][key] = model.error_info
            group = device.get_model_def(model.model_id)['group']
            out['definitions'][key] = [[p['name'], p['type'], p['size']] for p in group['points']]
    finally:
        d.disconnect()
    print(json.dumps(out))


if __name__ == '__main__':
    main()
