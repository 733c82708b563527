// BluPow status page. Relative URLs only: it works under Home Assistant's ingress prefix.
"use strict";

const $ = (id) => document.getElementById(id);
const api = (path, opts = {}) => fetch(path.replace(/^\//, ""),
  opts.body ? { ...opts, headers: { "Content-Type": "application/json" } } : opts).then(async (r) => {
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
  if (!r.ok) throw new Error((body && body.error && body.error.message) || r.statusText);
  return body;
});

const GROUPS = [
  ["Battery", /^(battery|cell_|remaining|full_cap|cycle|temperature|charge_|discharge_|heater|shunt|pack_)/],
  ["Solar", /^(pv_|solar_)/],
  ["AC / load", /^(load_|input_|output_|line_)/],
  ["Alternator", /^alternator_/],
  ["Energy", /(amp_hours|power_generation|power_consumption|operating_days|energy_)/],
];

// What a family's card leads with (the first four present), and the reading its chart shows.
const LEAD = {
  controller: ["pv_power", "battery_percentage", "battery_voltage", "load_power"],
  dcc: ["solar_power", "alternator_power", "battery_percentage", "battery_voltage", "output_power"],
  battery: ["battery_percentage", "battery_current", "cell_voltage_spread", "temperature_max"],
  battery_bank: ["battery_percentage", "battery_current", "cell_voltage_spread", "temperature_max"],
  inverter: ["load_active_power", "output_voltage", "battery_voltage", "battery_percentage"],
  shunt: ["shunt_soc", "shunt_current", "shunt_power", "shunt_voltage"],
};
const CHART = {
  controller: ["pv_power", "battery_voltage"],
  dcc: ["output_power", "alternator_power", "battery_voltage"],
  battery: ["battery_percentage", "battery_voltage"],
  battery_bank: ["battery_percentage", "battery_voltage"],
  inverter: ["load_active_power", "battery_voltage"],
  shunt: ["shunt_power", "shunt_voltage"],
};
const RANGES = { "6h": 6 * 3600, "24h": 24 * 3600, "7d": 7 * 86400 };

let range = "6h";
const openDetails = new Set(); // cards whose full table is open, kept across re-renders
const verifyRuns = {}; // device id -> the last Verify walk-through (or { running: true })
let lastDevices = {};

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function fmt(r) {
  if (Array.isArray(r.value)) return r.value.length ? r.value.join(", ") : "none";
  return r.unit ? `${r.value} ${r.unit}` : String(r.value);
}

/* A figure made here (a sum, a spread): one decimal at most, as the API rounds its own. */
function num(v, unit, digits = 1) {
  const p = 10 ** digits;
  return `${Math.round(v * p) / p}${unit ? " " + unit : ""}`;
}

const value = (d, k) => (d.readings[k] && typeof d.readings[k].value === "number" ? d.readings[k].value : null);

/* A battery's cell spread and warmest sensor, which the pack gives only cell by cell. */
function withDerived(d) {
  const r = { ...d.readings };
  const cells = Object.keys(r).filter((k) => /^cell_voltage_\d+$/.test(k)).map((k) => r[k].value).filter((v) => typeof v === "number");
  if (!r.cell_voltage_spread && cells.length > 1)
    r.cell_voltage_spread = { value: Math.round((Math.max(...cells) - Math.min(...cells)) * 1000) / 1000, unit: "V", label: "Cell spread", kind: "number" };
  const temps = Object.keys(r).filter((k) => /^temperature_\d+$/.test(k)).map((k) => r[k].value).filter((v) => typeof v === "number");
  if (!r.temperature_max && temps.length)
    r.temperature_max = { value: Math.max(...temps), unit: r.temperature_1 ? r.temperature_1.unit : "°C", label: "Warmest sensor", kind: "number" };
  return r;
}

/* ---- the overview: sources, battery, loads ---- */

/* The system at a glance, from every device's readings. */
function overview(devs) {
  const sum = (fam, key) => {
    const vs = devs.filter((d) => fam.includes(d.family)).map((d) => value(d, key)).filter((v) => v != null);
    return vs.length ? vs.reduce((a, b) => a + b, 0) : null;
  };
  const add = (...xs) => (xs.every((x) => x == null) ? null : xs.reduce((a, x) => a + (x || 0), 0));
  // DC-DC chargers: solar_power is the panels alone (solar_power_reported includes the alternator).
  const solar = add(sum(["controller"], "pv_power"), sum(["dcc"], "solar_power"), sum(["inverter"], "solar_power"));
  const alternator = sum(["dcc"], "alternator_power");
  const dcLoad = sum(["controller"], "load_power");
  const acOut = sum(["inverter"], "load_active_power");
  // The battery as the best-placed device sees it: a bank, a shunt, a pack, a charger.
  const order = ["battery_bank", "shunt", "battery", "controller", "dcc", "inverter"];
  const src = devs.filter((d) => order.includes(d.family) && Object.keys(d.readings).length)
    .sort((a, b) => order.indexOf(a.family) - order.indexOf(b.family))[0];
  let battery = null;
  if (src) {
    const soc = value(src, "battery_percentage") ?? value(src, "shunt_soc");
    const volts = value(src, "battery_voltage") ?? value(src, "shunt_voltage");
    const amps = value(src, "battery_current") ?? value(src, "shunt_current");
    const left = value(src, "remaining_capacity"), full = value(src, "full_capacity");
    let hours = null, towards = null;
    if (amps != null && Math.abs(amps) >= 0.05 && left != null && full != null) {
      towards = amps > 0 ? "full" : "empty";
      hours = amps > 0 ? (full - left) / amps : left / -amps;
    }
    battery = { device: src.id, name: src.name, soc, volts, amps, hours, towards };
  }
  const todayIn = add(sum(["controller", "dcc"], "power_generation_today"));
  const todayOut = add(sum(["controller"], "power_consumption_today"));
  return { solar, alternator, dcLoad, acOut, battery, todayIn, todayOut };
}

function duration(hours) {
  const m = Math.round(hours * 60);
  if (m >= 48 * 60) return `${Math.round(m / 1440)} d`;
  return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m} min`;
}

function node(cls, label, figure, fig, sub = "") {
  return `<div class="node ${cls}"><span class="k">${label}</span><span class="fig" data-figure="${figure}">${fig}</span>${sub}</div>`;
}

function overviewHtml(o) {
  const sources = [];
  if (o.solar != null) sources.push(node("src", "Solar", "solar", num(o.solar, "W", 0)));
  if (o.alternator != null) sources.push(node("src", "Alternator", "alternator", num(o.alternator, "W", 0)));
  const loads = [];
  if (o.dcLoad != null) loads.push(node("load", "DC load", "dc_load", num(o.dcLoad, "W", 0)));
  if (o.acOut != null) loads.push(node("load", "Inverter output", "ac_output", num(o.acOut, "W", 0)));
  let bat = "";
  if (o.battery) {
    const b = o.battery;
    const flow = b.amps == null ? "" : b.amps > 0.05 ? "charging" : b.amps < -0.05 ? "discharging" : "idle";
    const sub = [b.volts != null ? `<span data-figure="battery_voltage">${num(b.volts, "V", 2)}</span>` : "",
      b.amps != null ? `<span data-figure="battery_current">${num(b.amps, "A", 2)}</span> <span data-figure="battery_flow">${flow}</span>` : "",
      b.hours != null ? `<span data-figure="battery_eta">${duration(b.hours)} to ${b.towards}</span>` : ""].filter(Boolean).join(" · ");
    bat = node(`battery ${flow}`, `Battery <span class="from">(${esc(b.name)})</span>`, "battery_soc",
      b.soc != null ? num(b.soc, "%", 1) : "—", `<span class="sub">${sub}</span>`);
  }
  const today = [o.todayIn != null ? `<span data-figure="today_in">${num(o.todayIn, "kWh", 2)}</span> in` : "",
    o.todayOut != null ? `<span data-figure="today_out">${num(o.todayOut, "kWh", 2)}</span> out` : ""].filter(Boolean).join(" · ");
  return `<h2 class="sr">System overview</h2><div class="flow">
    <div class="col">${sources.join("") || '<div class="node none">No source read yet</div>'}</div>
    <div class="arrow" aria-hidden="true"></div>
    <div class="col">${bat || '<div class="node none">No battery read yet</div>'}</div>
    <div class="arrow" aria-hidden="true"></div>
    <div class="col">${loads.join("") || '<div class="node none">No load read yet</div>'}</div>
  </div>${today ? `<p class="today">Today: ${today}</p>` : ""}`;
}

/* ---- cards ---- */

function readingsHtml(readings) {
  const keys = Object.keys(readings);
  const used = new Set();
  const row = (k) => `<span>${esc(readings[k].label)}</span><span class="v" data-key="${k}">${esc(fmt(readings[k]))}</span>`;
  let html = "";
  for (const [name, re] of GROUPS) {
    const ks = keys.filter((k) => !used.has(k) && re.test(k));
    if (!ks.length) continue;
    html += `<div class="group">${name}</div>`;
    for (const k of ks) { used.add(k); html += row(k); }
  }
  const rest = keys.filter((k) => !used.has(k));
  if (rest.length) html += `<div class="group">Other</div>`;
  for (const k of rest) html += row(k);
  return html;
}

function leadHtml(d, readings) {
  const keys = (LEAD[d.family] || []).filter((k) => readings[k] && readings[k].value != null).slice(0, 4);
  if (!keys.length) return "";
  return `<div class="lead">${keys.map((k) => `<div class="fig-box"><span class="fig" data-key="${k}">${esc(fmt(readings[k]))}</span>
    <span class="k">${esc(readings[k].label)}</span></div>`).join("")}</div>`;
}

/* The load switch and the settings this model lets a user change; each change is written and read
 * back by the add-on before it answers. */
function controlsHtml(d) {
  let html = "";
  const load = d.family === "controller" && d.readings.load_status;
  if (load) {
    const on = load.value === "on";
    html += `<span>Load output</span><span><button class="secondary" data-act="load" data-on="${on ? "false" : "true"}">${on ? "Switch off" : "Switch on"}</button></span>`;
  }
  for (const s of d.settings || []) {
    const id = `set-${d.id}-${s.key}`;
    if (s.options) {
      html += `<label for="${id}">${esc(s.label)}</label><span><select id="${id}" data-setting="${esc(s.key)}">${s.options.map((o) =>
        `<option${o === s.value ? " selected" : ""}>${esc(o)}</option>`).join("")}${s.value == null ? "<option selected disabled>not read yet</option>" : ""}</select></span>`;
    } else {
      html += `<label for="${id}">${esc(s.label)}${s.unit ? " (" + esc(s.unit) + ")" : ""}</label><span><input id="${id}" type="number" min="${s.min}" max="${s.max}" step="${s.step}" value="${s.value ?? ""}">
        <button class="secondary" data-set="${esc(s.key)}">Set</button></span>`;
    }
  }
  return html ? `<div class="controls" aria-label="Controls">${html}</div>` : "";
}

function diagHtml(d) {
  if (!d) return "";
  return `<div class="diag-box ${esc(d.severity)}" data-code="${esc(d.code)}" role="status"><strong>${esc(d.message)}</strong><br>${esc(d.remedy)}</div>`;
}

/* Verify's walk-through in the card, each step with its time and ✓/✗, as `blupowd verify` prints. */
function verifyHtml(v) {
  if (!v) return "";
  if (v.running) return `<div class="verify" data-verify="running"><h3>Verify: running…</h3></div>`;
  if (v.error) return `<div class="verify" data-verify="error"><h3>Verify: ✗ ${esc(v.error)}</h3></div>`;
  return `<div class="verify" data-verify="${v.ok ? "ok" : "failed"}"><h3>Verify: ${v.ok ? "✓ reads end to end" : "✗ failed"}</h3>
    <ol>${v.steps.map((s) => `<li class="${s.ok ? "ok" : "fail"}"><span class="step">${esc(s.step)}</span> <span class="t">${s.seconds.toFixed(2)} s</span> ${esc(s.detail)}</li>`).join("")}</ol>
    ${v.verdict ? diagHtml(v.verdict) : ""}<button class="secondary" data-act="verify-close">Close</button></div>`;
}

/* ---- charts: the key reading over 6 h / 24 h / 7 d, min–max band and mean, with axes ---- */

const charts = {};

function ticksY(lo, hi) {
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.08;
  return [lo - pad, hi + pad];
}

function timeLabel(t, span) {
  const d = new Date(t * 1000);
  if (span > 2 * 86400) return d.toLocaleDateString(undefined, { weekday: "short" });
  const two = (n) => String(n).padStart(2, "0");
  const hm = `${two(d.getHours())}:${two(d.getMinutes())}`;
  // A young history's ticks lie seconds apart: minutes alone would repeat one label.
  return span > 0 && span < 10 * 60 ? `${hm}:${two(d.getSeconds())}` : hm;
}

function chartSvg(h, label, caption) {
  const pts = h.data.filter((p) => p[2] != null);
  if (!pts.length) return "";
  const W = 320, H = 140, L = 44, R = 14, T = 18, B = 22;
  const [y0, y1] = ticksY(Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[3])));
  const x = (t) => L + (t - h.since) / (h.until - h.since) * (W - L - R);
  const y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const unit = h.unit || "";
  const digits = y1 - y0 < 2 ? 2 : y1 - y0 < 20 ? 1 : 0;
  let axes = `<line class="axis" x1="${L}" y1="${T}" x2="${L}" y2="${H - B}"/><line class="axis" x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}"/>`;
  for (let i = 0; i <= 2; i++) {
    const v = y0 + (y1 - y0) * i / 2;
    axes += `<line class="grid" x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/>
      <text class="tick y" x="${L - 4}" y="${(y(v) + 3).toFixed(1)}">${num(v, "", digits)}</text>`;
  }
  const span = h.until - h.since;
  for (let i = 0; i <= 3; i++) {
    const t = h.since + span * i / 3;
    const anchor = i === 3 ? ' style="text-anchor: end"' : "";
    axes += `<text class="tick x" x="${x(t).toFixed(1)}" y="${H - 6}"${anchor}>${timeLabel(t, span)}</text>`;
  }
  axes += `<text class="unit" x="${L - 4}" y="10">${esc(unit)}</text>`;
  const band = pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[3]).toFixed(1)}`).concat(
    pts.slice().reverse().map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`)).join(" ");
  const mean = pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[2]).toFixed(1)}`).join(" ");
  const dots = pts.length < 3 ? pts.map((p) => `<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[2]).toFixed(1)}" r="2"/>`).join("") : "";
  const lo = Math.min(...pts.map((p) => p[1])), hi = Math.max(...pts.map((p) => p[3]));
  return `<figure class="chart"><figcaption>${esc(label)} (${esc(unit)}), ${caption}</figcaption>
    <svg viewBox="0 0 ${W} ${H}" role="img" data-points="${pts.length}" data-key="${esc(h.key)}" data-range="${range}"
      aria-label="${esc(label)}, ${caption}: ${num(lo, unit, 2)} to ${num(hi, unit, 2)}">
    ${axes}<polygon class="band" points="${band}"/><polyline class="mean" points="${mean}"/>${dots}</svg></figure>`;
}

async function chart(d) {
  const key = (CHART[d.family] || []).find((k) => value(d, k) != null);
  if (!key) return "";
  const now = Date.now() / 1000;
  const cacheKey = `${d.id} ${key} ${range}`;
  if (!charts[cacheKey] || now - charts[cacheKey].t > 30) {
    try {
      const ask = (since) => api(`/api/v1/devices/${d.id}/history?key=${key}&since=${since}&points=120`);
      let h = await ask(Math.floor(now - RANGES[range]));
      let caption = `last ${range.replace("h", " h").replace("d", " days")}`;
      // A young history fills a few buckets of the range at its end: drawn from its start instead,
      // so that a chart shows from the second poll on.
      if (h.data.length && h.data.length < 8 && now - h.data[0][0] > 30) {
        h = await ask(Math.floor(h.data[0][0]));
        // The axis starts at the first poll, not at the start of its coarse bucket.
        if (h.data.length) h.since = h.data[0][0];
        caption = `since ${timeLabel(h.since, 0)}`;
      }
      charts[cacheKey] = { t: now, svg: chartSvg(h, d.readings[key].label, caption) };
    } catch (e) { charts[cacheKey] = { t: now, svg: "" }; }
  }
  return charts[cacheKey].svg;
}

async function cardHtml(d) {
  const age = d.age_s == null ? "no data yet" : `${Math.round(d.age_s)} s old`;
  const readings = withDerived(d);
  const shown = Object.fromEntries(Object.entries(d.readings).filter(([k]) => !(d.settings || []).some((s) => s.key === k)));
  const model = d.model ? " · " + esc(d.model) : (d.not_reported || []).includes("model") ? " · model: not reported by this model" : "";
  return `<article class="card" data-id="${esc(d.id)}" data-state="${esc(d.state)}" data-family="${esc(d.family)}">
    <h2>${esc(d.name)} <span class="pill ${esc(d.state)}">${esc(d.state)}</span></h2>
    ${diagHtml(d.diagnosis)}
    ${verifyHtml(verifyRuns[d.id])}
    ${leadHtml(d, readings)}
    ${await chart(d)}
    ${controlsHtml(d)}
    <details data-details="${esc(d.id)}"${openDetails.has(d.id) ? " open" : ""}><summary>All readings (${Object.keys(shown).length})</summary>
      <div class="readings">${readingsHtml(shown)}</div></details>
    <div class="actions"><button data-act="poll">Poll now</button>${d.source === "computed" ? "" : '<button class="secondary" data-act="verify">Verify</button>'}
      ${d.source === "api" ? '<button class="secondary" data-act="remove">Remove</button>' : ""}
      ${d.diagnosis && d.diagnosis.code === "adapter_off" ? '<button data-act="power">Power the adapter on</button>' : ""}</div>
    <div class="meta"><span${d.variant ? ` title="${esc(d.variant.why)}"` : ""}>${esc(d.family_label)}</span>${model} · ${esc(d.address)}${d.adapter ? " via " + esc(d.adapter) : ""}${d.rssi != null ? " · " + d.rssi + " dBm" : ""} · ${age}</div>
  </article>`;
}

async function render() {
  // Not while a number is being typed into a setting: the new cards would take it away. (A
  // select changes the setting the moment it is chosen.)
  const focus = document.activeElement;
  if (focus && focus.tagName === "INPUT" && focus.closest("#devices") && focus.value !== focus.defaultValue) return;
  let devs, health;
  try {
    [devs, health] = await Promise.all([api("/api/v1/devices"), api("/api/v1/health")]);
  } catch (e) {
    $("system").textContent = "unreachable"; $("system").className = "pill error";
    return;
  }
  $("system").textContent = health.status;
  $("system").className = `pill ${health.status}`;
  const sd = health.system.diagnosis;
  $("system-diag").hidden = !sd;
  $("system-diag").innerHTML = sd ? diagHtml(sd) : "";
  lastDevices = Object.fromEntries(devs.devices.map((d) => [d.id, d]));
  $("overview").innerHTML = overviewHtml(overview(devs.devices));
  const cards = await Promise.all(devs.devices.map(cardHtml));
  // Keyboard focus survives the re-render: the same control in the same card gets it back.
  const f = document.activeElement;
  const card = f && f.closest && f.closest("article.card");
  const again = card && (f.dataset.act ? `[data-act="${f.dataset.act}"]` : f.id ? `#${CSS.escape(f.id)}` : f.tagName === "SUMMARY" ? "summary" : null);
  $("devices").innerHTML = cards.join("") || "<p>No devices yet: scan for modules and add one.</p>";
  if (again) document.querySelector(`article.card[data-id="${CSS.escape(card.dataset.id)}"] ${again}`)?.focus();
}

async function act(id, what, arg) {
  try {
    if (what === "poll") await api(`/api/v1/devices/${id}/poll`, { method: "POST" });
    if (what === "load") await api(`/api/v1/devices/${id}/load`, { method: "POST", body: JSON.stringify({ on: arg === "true" }) });
    if (what === "remove") { await api(`/api/v1/devices/${id}`, { method: "DELETE" }); delete verifyRuns[id]; }
    if (what === "power") await api(`/api/v1/adapter/power`, { method: "POST", body: JSON.stringify({ adapter: lastDevices[id].adapter }) });
    if (what === "verify-close") delete verifyRuns[id];
    if (what === "verify") {
      verifyRuns[id] = { running: true };
      render();
      try { verifyRuns[id] = await api(`/api/v1/devices/${id}/verify`, { method: "POST" }); }
      catch (e) { verifyRuns[id] = { error: e.message }; }
    }
  } catch (e) { notice(e.message); }
  render();
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

/* ---- scan and add ---- */

const TYPES = [["controller", "Charge controller"], ["dcc", "DC-DC charger"], ["battery", "Battery"], ["inverter", "Inverter"], ["shunt", "Smart shunt"]];

function addForm(address, family, name, modbusId) {
  return `<form class="add" data-address="${esc(address)}" data-modbus="${modbusId ?? ""}">
    <label>Type <select name="type">${TYPES.map(([t, l]) => `<option value="${t}"${t === family ? " selected" : ""}>${l}</option>`).join("")}</select></label>
    <label>Name <input name="name" value="${esc(name)}" required></label>
    <label title="Only for a unit whose firmware does not report its model, such as some RIV4835">Model <input name="model" placeholder="if not reported" pattern="[!-~]{1,31}" size="14"></label>
    <button type="submit">Add</button></form>`;
}

async function scan() {
  $("scan").hidden = false;
  $("scan-rows").innerHTML = "<tr><td colspan=4>Scanning for 10 s…</td></tr>";
  try { await api("/api/v1/scan", { method: "POST", body: JSON.stringify({ seconds: 10 }) }); } catch (e) { /* a scan may already run */ }
  for (let i = 0; i < 12; i++) {
    const s = await api("/api/v1/scan");
    // A form being filled in stays as it is.
    if (!document.activeElement || !document.activeElement.closest("#scan-rows form")) {
      $("scan-rows").innerHTML = s.modules.map((m) => `<tr data-address="${esc(m.address)}"><td>${esc(m.name)}<br><span class="sub">${esc(m.address)}</span></td><td>${m.rssi ?? ""}</td>
        <td>${esc(m.family || "?")}</td><td>${m.configured ? "configured" : addForm(m.address, m.family, m.name, m.modbus_id)}
        ${(m.family === "battery" || !m.family) && m.name.startsWith("BT-TH-") ? `<button class="secondary" data-hub="${esc(m.address)}" data-adapter="${esc(m.adapter)}">Find batteries</button>` : ""}</td></tr>`).join("");
    }
    if (!s.scanning && i > 0) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function add(form) {
  const body = { name: form.elements.name.value, address: form.dataset.address, type: form.elements.type.value };
  if (form.dataset.modbus) body.modbus_id = Number(form.dataset.modbus);
  if (form.elements.model.value.trim()) body.model = form.elements.model.value.trim();
  try {
    await api("/api/v1/devices", { method: "POST", body: JSON.stringify(body) });
    form.outerHTML = `<span class="added">added as ${esc(body.name)}</span>`;
  } catch (e) { notice(e.message); }
  render();
}

/* A battery hub: the ids 48-55 asked over one connection; each pack that answered can be added. */
async function findBatteries(address, adapter) {
  const row = document.querySelector(`tr[data-address="${CSS.escape(address)}"]`);
  const out = document.createElement("tr");
  out.innerHTML = `<td colspan=4>Asking ids 48–55 on ${esc(address)}…</td>`;
  row.after(out);
  try {
    const r = await api("/api/v1/scan/hub", { method: "POST", body: JSON.stringify({ address, adapter }) });
    out.innerHTML = `<td colspan=4>${r.packs.length ? r.packs.map((p) => `Battery at id ${p.modbus_id}${p.model ? " (" + esc(p.model) + ")" : ""}: ${p.configured ? "configured" : addForm(address, "battery", `Battery ${p.modbus_id - 47}`, p.modbus_id)}`).join("") : "No battery answered on ids 48–55."}</td>`;
  } catch (e) { out.innerHTML = `<td colspan=4>${esc(e.message)}</td>`; }
}

/* ---- wiring ---- */

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button");
  if (!b) return;
  if (b.dataset.act) act(b.closest("[data-id]").dataset.id, b.dataset.act, b.dataset.on);
  if (b.dataset.set) {
    const input = b.parentElement.querySelector("input");
    change(b.closest("[data-id]").dataset.id, b.dataset.set, Number(input.value));
  }
  if (b.dataset.hub) findBatteries(b.dataset.hub, b.dataset.adapter);
  if (b.dataset.range) {
    range = b.dataset.range;
    for (const r of document.querySelectorAll("[data-range]")) r.setAttribute("aria-pressed", String(r.dataset.range === range));
    render();
  }
});
document.addEventListener("submit", (ev) => {
  const f = ev.target.closest("form.add");
  if (f) { ev.preventDefault(); add(f); }
});
document.addEventListener("change", (ev) => {
  const s = ev.target.closest("select[data-setting]");
  if (s) { const id = s.closest("[data-id]").dataset.id; s.blur(); change(id, s.dataset.setting, s.value); }
});
document.addEventListener("toggle", (ev) => {
  const d = ev.target;
  if (d.dataset && d.dataset.details) d.open ? openDetails.add(d.dataset.details) : openDetails.delete(d.dataset.details);
}, true);

async function change(id, key, v) {
  try {
    await api(`/api/v1/devices/${id}/settings`, { method: "POST", body: JSON.stringify({ key, value: v }) });
  } catch (e) { notice(e.message); }
  render();
}

$("scan-btn").onclick = scan;
$("notice").onclick = () => notice("");
$("ha-btn").onclick = async () => {
  $("ha").hidden = !$("ha").hidden;
  // Under Home Assistant the integration is one click away; elsewhere the package leads.
  const health = await api("/api/v1/health");
  $("ha-here").hidden = !health.supervisor;
  // Home Assistant's own page, outside this add-on's ingress path: the one absolute URL.
  if (health.supervisor) $("ha-add").href = "/config/integrations/dashboard/add?domain=blupow";
  $("ha-elsewhere").hidden = health.supervisor;
  $("ha-package").open = !health.supervisor;
  $("ha-yaml").textContent = await fetch("api/v1/homeassistant/package.yaml").then((r) => r.text());
};
$("copy-btn").onclick = () => navigator.clipboard && navigator.clipboard.writeText($("ha-yaml").textContent);

render();
setInterval(render, 5000);
