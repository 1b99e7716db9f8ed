/// `/`: the status page for commissioning, one self-contained document.
///
/// No file, font, script or style from anywhere else (sites are often offline; the response's
/// Content-Security-Policy forbids it too). Its script asks `/api/status` every 2 s and
/// `/api/history` every 10 s, and draws the chart as inline SVG.
enum StatusPage {
    static let html = #"""
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SEC1000 bridge</title>
<style>
:root { --fg:#1a1a1a; --muted:#4a4a4a; --line:#c8c8c8; --bg:#ffffff; --card:#f6f7f9; --grid:#1f5fbf; --inv:#a34f00; }
* { box-sizing: border-box; }
body { margin:0; font:16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header, main, footer { max-width: 72rem; margin: 0 auto; padding: 0.75rem 1rem; }
header { display:flex; flex-wrap:wrap; gap:0.5rem 1rem; align-items:baseline; border-bottom:1px solid var(--line); }
h1 { font-size:1.35rem; margin:0; }
h2 { font-size:1.2rem; margin:0 0 0.5rem; }
h3 { font-size:1rem; margin:1rem 0 0.4rem; }
.muted { color:var(--muted); }
section.device { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:0.75rem 1rem; margin:1rem 0; }
.badge { display:inline-block; padding:0.1rem 0.55rem; border-radius:1rem; font-weight:600; font-size:0.9rem; }
.ok { background:#dff3e6; color:#0a5a26; border:1px solid #0a5a26; }
.bad { background:#fbe3e1; color:#8a1212; border:1px solid #8a1212; }
.tiles { display:grid; grid-template-columns:repeat(auto-fill, minmax(9.5rem, 1fr)); gap:0.5rem; margin:0.5rem 0; }
.tile { background:#fff; border:1px solid var(--line); border-radius:6px; padding:0.4rem 0.6rem; }
.tile .label { font-size:0.85rem; color:var(--muted); }
.tile .value { font-size:1.35rem; font-weight:600; font-variant-numeric: tabular-nums; }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; width:100%; background:#fff; font-variant-numeric: tabular-nums; }
th, td { border:1px solid var(--line); padding:0.25rem 0.5rem; text-align:left; }
td.num { text-align:right; }
caption { text-align:left; font-weight:600; padding:0.25rem 0; }
svg { width:100%; height:auto; background:#fff; border:1px solid var(--line); border-radius:6px; }
.legend span { margin-right:1rem; }
.sw { display:inline-block; width:1.2rem; height:0.25rem; vertical-align:middle; margin-right:0.3rem; }
details summary { cursor:pointer; font-weight:600; padding:0.3rem 0; }
a { color:#0b4fa8; }
</style>
</head>
<body>
<header>
  <h1>SEC1000 bridge</h1>
  <span id="version" class="muted"></span>
  <span id="overall" role="status">Loading…</span>
</header>
<main id="devices" aria-live="off"></main>
<footer>
  <p id="modbus" class="muted"></p>
  <p class="muted">Read-only. Machine-readable: <a href="/api/status">/api/status</a>, <a href="/metrics">/metrics</a>, <a href="/health">/health</a>. Refreshes every 2 s.</p>
</footer>
<script>
"use strict";
let powerHistory = null;
const esc = s => String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"})[c]);
const fmt = (v, digits) => v === null || v === undefined || !isFinite(v) ? "—" : Number(v).toLocaleString("en-US", {minimumFractionDigits: digits || 0, maximumFractionDigits: digits || 0});
const age = s => s === null || s === undefined ? "never" : s < 120 ? s.toFixed(1) + " s" : s < 7200 ? (s / 60).toFixed(1) + " min" : (s / 3600).toFixed(1) + " h";
const unixDate = t => t ? new Date(t * 1000).toLocaleString() : "never";

function tile(id, label, value, raw, unit) {
  return `<div class="tile"><div class="label" id="${id}-label">${esc(label)}</div>` +
    `<div class="value" id="${id}" data-raw="${raw === null || raw === undefined ? "" : esc(raw)}" aria-labelledby="${id}-label">${esc(value)} <small>${esc(unit)}</small></div></div>`;
}

function chart(unit) {
  const d = powerHistory && powerHistory.devices.find(x => x.unit === unit);
  const w = 640, h = 220, left = 56, right = 10, top = 12, bottom = 28;
  if (!d || d.unixTime.length < 2) {
    return `<svg viewBox="0 0 ${w} ${h}" role="img" aria-label="Power chart: not enough history yet"><text x="${w / 2}" y="${h / 2}" text-anchor="middle" fill="#4a4a4a">Collecting history…</text></svg>`;
  }
  const t1 = d.unixTime[d.unixTime.length - 1], t0 = t1 - 3600;
  const values = d.gridPower.concat(d.invertersPower, [0]);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 100) { hi += 50; lo -= 50; }
  const x = t => left + (t - t0) / 3600 * (w - left - right);
  const y = v => top + (hi - v) / (hi - lo) * (h - top - bottom);
  // A gap of more than 3 spacings (stale data) breaks the line.
  const path = series => {
    let p = "", prev = null;
    d.unixTime.forEach((t, i) => {
      if (t < t0) return;
      const gap = prev === null || t - prev > Math.max(3 * powerHistory.spacingSeconds, 30);
      p += (gap ? "M" : "L") + x(t).toFixed(1) + "," + y(series[i]).toFixed(1);
      prev = t;
    });
    return p;
  };
  let ticks = "";
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4;
    ticks += `<line x1="${left}" x2="${w - right}" y1="${y(v)}" y2="${y(v)}" stroke="#e2e2e2"/>` +
      `<text x="${left - 4}" y="${y(v) + 4}" text-anchor="end" font-size="11" fill="#4a4a4a">${fmt(v)}</text>`;
  }
  for (let m = 0; m <= 60; m += 15) {
    ticks += `<text x="${x(t0 + m * 60)}" y="${h - 8}" text-anchor="${m === 60 ? "end" : "middle"}" font-size="11" fill="#4a4a4a">${m === 60 ? "now" : "−" + (60 - m) + " min"}</text>`;
  }
  const last = d.gridPower.length - 1;
  const label = `Last hour of power: grid now ${d.gridPower[last]} W, inverters now ${d.invertersPower[last]} W, ${d.unixTime.length} points`;
  return `<svg viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(label)}">${ticks}` +
    `<line x1="${left}" x2="${w - right}" y1="${y(0)}" y2="${y(0)}" stroke="#888"/>` +
    `<path d="${path(d.gridPower)}" fill="none" stroke="var(--grid)" stroke-width="2"/>` +
    `<path d="${path(d.invertersPower)}" fill="none" stroke="var(--inv)" stroke-width="2" stroke-dasharray="6 3"/></svg>`;
}

function device(d) {
  const p = "d" + d.unit, v = d.values || {}, e = d.energy || {}, s = d.settings, c = d.control;
  const health = d.fresh ? `<span class="badge ok" id="${p}-health">Fresh</span>` : `<span class="badge bad" id="${p}-health">Stale</span>`;
  let out = `<section class="device" aria-labelledby="${p}-title"><h2 id="${p}-title">Unit ${d.unit} · ${esc(d.address)} <span class="muted">${esc(d.serialNumber)}</span></h2>`;
  out += `<p>${health} data age <strong id="${p}-age">${age(d.ageSeconds)}</strong> · good polls ${fmt(d.goodPolls)} · failed attempts ${fmt(d.failedPolls)} · last error <strong id="${p}-lastError">${d.lastError.code} (${esc(d.lastError.meaning)})</strong>` +
    `${d.flags.substituted ? " · inverters power substituted" : ""}${d.flags.lastPollFailed ? " · last poll failed" : ""}</p>`;
  out += `<h3>Live values${d.values ? "" : " (stale: not served)"}</h3><div class="tiles">` +
    tile(p + "-gridPower", "Grid (+ import)", fmt(v.gridPower), v.gridPower, "W") +
    tile(p + "-invertersPower", "Inverters", fmt(v.invertersPower), v.invertersPower, "W") +
    tile(p + "-loadPower", "House load", fmt(v.loadPower), v.loadPower, "W") +
    tile(p + "-importPower", "Import", fmt(v.importPower), v.importPower, "W") +
    tile(p + "-exportPower", "Export", fmt(v.exportPower), v.exportPower, "W") +
    tile(p + "-gridImportWh", "Imported", fmt(e.gridImportWh / 1000, 3), e.gridImportWh, "kWh") +
    tile(p + "-gridExportWh", "Exported", fmt(e.gridExportWh / 1000, 3), e.gridExportWh, "kWh") +
    tile(p + "-productionWh", "Produced", fmt(e.productionWh / 1000, 3), e.productionWh, "kWh") + `</div>`;
  out += `<div class="scroll"><table><caption>Phases</caption><thead><tr><th scope="col">Phase</th><th scope="col">Voltage (V)</th><th scope="col">Current (A)</th><th scope="col">Power (W)</th></tr></thead><tbody>`;
  ["L1", "L2", "L3"].forEach((ph, i) => {
    out += `<tr><th scope="row">${ph}</th><td class="num" id="${p}-v${i + 1}">${v.voltages ? fmt(v.voltages[i], 1) : "—"}</td>` +
      `<td class="num" id="${p}-i${i + 1}">${v.currents ? fmt(v.currents[i], 2) : "—"}</td><td class="num" id="${p}-p${i + 1}">${v.phasePowers ? fmt(v.phasePowers[i]) : "—"}</td></tr>`;
  });
  out += `</tbody></table></div>`;
  out += `<h3>Last hour</h3><p class="legend"><span><span class="sw" style="background:var(--grid)"></span>Grid power (W)</span><span><span class="sw" style="background:var(--inv)"></span>Inverters power (W, dashed)</span></p>${chart(d.unit)}`;
  const writes = Object.entries(c.writesByResult).map(([k, n]) => `${k}: ${n}`).join(", ") || "none";
  out += `<div class="scroll"><table><caption>Settings and control</caption><tbody>` +
    `<tr><th scope="row">Export limit</th><td id="${p}-exportLimit">${s ? fmt(s.exportLimitWatts) + " W" : "not read yet"}</td></tr>` +
    `<tr><th scope="row">Total PV capacity</th><td>${s ? fmt(s.totalCapacityWatts) + " W" : "—"}</td></tr>` +
    `<tr><th scope="row">Control mode</th><td>${s ? esc(s.mode.meaning) + " (" + s.mode.code + ")" : "—"}</td></tr>` +
    `<tr><th scope="row">CT ratio</th><td>${s ? fmt(s.ctRatio) : "—"}</td></tr>` +
    `<tr><th scope="row">Meter mode</th><td>${s && s.meterMode ? esc(s.meterMode) : "not known"}</td></tr>` +
    `<tr><th scope="row">Settings read</th><td>${s ? age(s.ageSeconds) + " ago" : "never"}</td></tr>` +
    `<tr><th scope="row">Last write</th><td id="${p}-lastWrite">${esc(c.lastWriteResult.meaning)} (${c.lastWriteResult.code})</td></tr>` +
    `<tr><th scope="row">Writes by result code</th><td>${esc(writes)}</td></tr>` +
    `<tr><th scope="row">Last clock sync</th><td>${unixDate(c.lastClockSync)}</td></tr></tbody></table></div>`;
  out += `<details id="${p}-map"><summary>Register map (${d.registers.length} values, as Modbus answers now)</summary><div class="scroll"><table>` +
    `<thead><tr><th scope="col">Address</th><th scope="col">Value</th><th scope="col">Type</th><th scope="col">Unit</th><th scope="col">Registers</th></tr></thead><tbody>`;
  d.registers.forEach(r => {
    const raw = r.registers ? r.registers.join(",") : "";
    const shown = r.exception ? `exception 0x${r.exception.toString(16).toUpperCase().padStart(2, "0")}` : (r.type === "float32" ? fmt(r.value, 3) : fmt(r.value));
    out += `<tr id="${p}-reg-${r.address}" data-registers="${raw}"><th scope="row">${r.address} <span class="muted">${esc(r.name)}</span></th>` +
      `<td class="num">${shown}</td><td>${r.type}</td><td>${esc(r.unit)}</td><td class="muted">${r.registers ? r.registers.map(x => x.toString(16).padStart(4, "0")).join(" ") : "—"}</td></tr>`;
  });
  out += `</tbody></table></div></details></section>`;
  return out;
}

async function refresh() {
  try {
    const response = await fetch("/api/status", {cache: "no-store"});
    const status = await response.json();
    const open = new Set([...document.querySelectorAll("details[open]")].map(x => x.id));
    document.getElementById("version").textContent = "version " + status.version;
    const overall = document.getElementById("overall");
    overall.innerHTML = status.healthy ? `<span class="badge ok">All devices fresh</span>` : `<span class="badge bad">Data stale</span>`;
    document.getElementById("devices").innerHTML = status.devices.map(device).join("");
    open.forEach(id => { const x = document.getElementById(id); if (x) x.open = true; });
    const m = status.modbus;
    document.getElementById("modbus").textContent = `Modbus TCP on port ${m.port}: ${m.openConnections} open connections, ${m.requests} requests, ${m.exceptions} exceptions.`;
    document.body.dataset.updated = String(status.unixTime);
  } catch (error) {
    document.getElementById("overall").innerHTML = `<span class="badge bad">Bridge not answering</span>`;
  }
}

async function refreshHistory() {
  try { powerHistory = await (await fetch("/api/history", {cache: "no-store"})).json(); } catch (error) {}
}

refreshHistory().then(refresh);
setInterval(refresh, 2000);
setInterval(refreshHistory, 10000);
</script>
</body>
</html>
"""#
}
