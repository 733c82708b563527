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
  ["Battery", /^(battery|cell_|remaining|full_cap|cycle|temperature|charge_|discharge_|heater|shunt)/],
  ["Solar", /^(pv_|solar_)/],
  ["AC / load", /^(load_|input_|output_|line_)/],
  ["Alternator", /^alternator_/],
  ["Energy", /(amp_hours|power_generation|power_consumption|operating_days)/],
];
const CHART_KEYS = ["battery_voltage", "pv_power", "solar_power", "load_active_power", "shunt_current", "battery_current"];

function fmt(r) {
  if (Array.isArray(r.value)) return r.value.length ? r.value.join(", ") : "none";
  return r.unit ? `${r.value} ${r.unit}` : String(r.value);
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function readingsHtml(readings) {
  const keys = Object.keys(readings);
  const used = new Set();
  let html = "";
  for (const [name, re] of GROUPS) {
    const ks = keys.filter((k) => !used.has(k) && re.test(k));
    if (!ks.length) continue;
    html += `<div class="group">${name}</div>`;
    for (const k of ks) { used.add(k); html += `<span>${esc(readings[k].label)}</span><span class="v" data-key="${k}">${esc(fmt(readings[k]))}</span>`; }
  }
  const rest = keys.filter((k) => !used.has(k));
  if (rest.length) html += `<div class="group">Other</div>`;
  for (const k of rest) html += `<span>${esc(readings[k].label)}</span><span class="v" data-key="${k}">${esc(fmt(readings[k]))}</span>`;
  return html;
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
  return html ? `<div class="group">Controls</div><div class="controls">${html}</div>` : "";
}

async function change(id, key, value) {
  try {
    await api(`/api/v1/devices/${id}/settings`, { method: "POST", body: JSON.stringify({ key, value }) });
  } catch (e) { alert(e.message); }
  render();
}

function diagHtml(d) {
  if (!d) return "";
  return `<div class="diag-box ${d.severity}" data-code="${esc(d.code)}"><strong>${esc(d.message)}</strong><br>${esc(d.remedy)}</div>`;
}

const charts = {};
async function chart(dev) {
  const key = CHART_KEYS.find((k) => dev.readings[k] && typeof dev.readings[k].value === "number");
  if (!key) return "";
  const now = Date.now() / 1000;
  const cacheKey = dev.id + key;
  if (!charts[cacheKey] || now - charts[cacheKey].t > 30) {
    try {
      const h = await api(`/api/v1/devices/${dev.id}/history?key=${key}&since=${now - 6 * 3600}&points=120`);
      const pts = h.data;
      let svg = "";
      if (pts.length > 1) {
        const t0 = pts[0][0], t1 = pts[pts.length - 1][0] || t0 + 1;
        const lo = Math.min(...pts.map((p) => p[2])), hi = Math.max(...pts.map((p) => p[2]));
        const line = pts.map((p) => `${((p[0] - t0) / (t1 - t0 || 1) * 300).toFixed(1)},${(38 - (p[2] - lo) / ((hi - lo) || 1) * 36).toFixed(1)}`).join(" ");
        svg = `<div class="meta">${esc(dev.readings[key].label)}, last 6 h</div><svg class="spark" viewBox="0 0 300 40" preserveAspectRatio="none"><polyline points="${line}"/></svg>`;
      }
      charts[cacheKey] = { t: now, svg };
    } catch (e) { charts[cacheKey] = { t: now, svg: "" }; }
  }
  return charts[cacheKey].svg;
}

let lastDevices = {};

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
  const cards = [];
  lastDevices = Object.fromEntries(devs.devices.map((d) => [d.id, d]));
  for (const d of devs.devices) {
    const age = d.age_s == null ? "no data yet" : `${Math.round(d.age_s)} s old`;
    cards.push(`<article class="card" data-id="${esc(d.id)}" data-state="${esc(d.state)}">
      <h2>${esc(d.name)} <span class="pill ${esc(d.state)}">${esc(d.state)}</span></h2>
      <div class="meta"><span${d.variant ? ` title="${esc(d.variant.why)}"` : ""}>${esc(d.family_label)}</span>${d.model ? " · " + esc(d.model) : (d.not_reported || []).includes("model") ? " · model: not reported by this model" : ""} · ${esc(d.address)} via ${esc(d.adapter)}${d.rssi != null ? " · " + d.rssi + " dBm" : ""} · ${age}</div>
      ${diagHtml(d.diagnosis)}
      <div class="readings">${readingsHtml(Object.fromEntries(Object.entries(d.readings).filter(([k]) => !(d.settings || []).some((s) => s.key === k))))}</div>
      ${controlsHtml(d)}
      ${await chart(d)}
      <div class="actions"><button data-act="poll">Poll now</button>${d.source === "computed" ? "" : '<button class="secondary" data-act="verify">Verify</button>'}
      ${d.source === "api" ? '<button class="secondary" data-act="remove">Remove</button>' : ""}
      ${d.diagnosis && d.diagnosis.code === "adapter_off" ? '<button data-act="power">Power the adapter on</button>' : ""}</div>
    </article>`);
  }
  $("devices").innerHTML = cards.join("") || "<p>No devices yet: scan for modules and add one.</p>";
}

async function act(id, what, arg) {
  try {
    if (what === "poll") await api(`/api/v1/devices/${id}/poll`, { method: "POST" });
    if (what === "load") await api(`/api/v1/devices/${id}/load`, { method: "POST", body: JSON.stringify({ on: arg === "true" }) });
    if (what === "remove") await api(`/api/v1/devices/${id}`, { method: "DELETE" });
    if (what === "power") await api(`/api/v1/adapter/power`, { method: "POST", body: JSON.stringify({ adapter: lastDevices[id].adapter }) });
    if (what === "verify") {
      $("verify").hidden = false;
      $("verify-title").textContent = `Verify ${id}: running…`;
      $("verify-steps").innerHTML = "";
      $("verify-verdict").textContent = "";
      const v = await api(`/api/v1/devices/${id}/verify`, { method: "POST" });
      $("verify-title").textContent = `Verify ${id}: ${v.ok ? "✓ reads end to end" : "✗ failed"}`;
      $("verify-steps").innerHTML = v.steps.map((s) => `<li class="${s.ok ? "ok" : "fail"}">${esc(s.step)} (${s.seconds.toFixed(2)} s): ${esc(s.detail)}</li>`).join("");
      $("verify-verdict").innerHTML = v.verdict ? diagHtml(v.verdict) : "Everything works.";
    }
  } catch (e) { alert(e.message); }
  render();
}

async function scan() {
  $("scan").hidden = false;
  $("scan-rows").innerHTML = "<tr><td colspan=5>Scanning for 10 s…</td></tr>";
  try { await api("/api/v1/scan", { method: "POST", body: JSON.stringify({ seconds: 10 }) }); } catch (e) { /* a scan may already run */ }
  for (let i = 0; i < 12; i++) {
    const s = await api("/api/v1/scan");
    $("scan-rows").innerHTML = s.modules.map((m) => `<tr data-address="${esc(m.address)}"><td>${esc(m.name)}</td><td>${esc(m.address)}</td><td>${m.rssi ?? ""}</td>
      <td>${esc(m.family || "?")}</td><td>${m.configured ? "configured" : `<button data-add="${esc(m.address)}" data-family="${esc(m.family || "")}" data-name="${esc(m.name)}" data-modbus="${m.modbus_id ?? ""}">Add</button>`}
      ${(m.family === "battery" || !m.family) && m.name.startsWith("BT-TH-") ? `<button class="secondary" data-hub="${esc(m.address)}" data-adapter="${esc(m.adapter)}">Find batteries</button>` : ""}</td></tr>`).join("");
    if (!s.scanning && i > 0) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function add(address, family, name, modbusId) {
  const type = family || prompt("Device type (controller, dcc, battery, inverter, shunt):", "controller");
  if (!type) return;
  const label = prompt("Name for this device:", name);
  if (!label) return;
  const body = { name: label, address, type };
  if (modbusId) body.modbus_id = Number(modbusId);
  try { await api("/api/v1/devices", { method: "POST", body: JSON.stringify(body) }); }
  catch (e) { alert(e.message); }
  render();
}

/* A battery hub: the ids 48-55 asked over one connection; each pack that answered can be added. */
async function findBatteries(address, adapter) {
  const row = document.querySelector(`tr[data-address="${CSS.escape(address)}"]`);
  const out = document.createElement("tr");
  out.innerHTML = `<td colspan=5>Asking ids 48–55 on ${esc(address)}…</td>`;
  row.after(out);
  try {
    const r = await api("/api/v1/scan/hub", { method: "POST", body: JSON.stringify({ address, adapter }) });
    out.innerHTML = `<td colspan=5>${r.packs.length ? r.packs.map((p) => `Battery at id ${p.modbus_id}${p.model ? " (" + esc(p.model) + ")" : ""}: ${p.configured ? "configured" : `<button data-add="${esc(address)}" data-family="battery" data-name="Battery ${p.modbus_id - 47}" data-modbus="${p.modbus_id}">Add</button>`}`).join(" · ") : "No battery answered on ids 48–55."}</td>`;
  } catch (e) { out.innerHTML = `<td colspan=5>${esc(e.message)}</td>`; }
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button");
  if (!b) return;
  if (b.dataset.act) act(b.closest("[data-id]").dataset.id, b.dataset.act, b.dataset.on);
  if (b.dataset.set) {
    const input = b.parentElement.querySelector("input");
    change(b.closest("[data-id]").dataset.id, b.dataset.set, Number(input.value));
  }
  if (b.dataset.add) add(b.dataset.add, b.dataset.family, b.dataset.name, b.dataset.modbus);
  if (b.dataset.hub) findBatteries(b.dataset.hub, b.dataset.adapter);
});
document.addEventListener("change", (ev) => {
  const s = ev.target.closest("select[data-setting]");
  if (s) { const id = s.closest("[data-id]").dataset.id; s.blur(); change(id, s.dataset.setting, s.value); }
});
$("scan-btn").onclick = scan;
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
