// The status page in Debian's Chromium, as a user sees it through Home Assistant's ingress:
// the page is served under a path prefix by a proxy, so every URL it uses must be relative.
// Usage: node status-page.mjs BASE_URL SCREENSHOT_DIR  (DBUS_SYSTEM_BUS_ADDRESS names the
// simulator's bus). Prints one line per check; exits non-zero on the first failure.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import assert from "node:assert/strict";
import path from "node:path";

const [base, shots] = process.argv.slice(2);
const prefix = new URL(base).pathname;
const ROVER = "60:98:66:ED:FC:11";

const sim = (method, sig, ...args) =>
  execFileSync("busctl", ["--system", "call", "org.blupow.Sim", "/", "org.blupow.Sim1", method, "--", sig, ...args.map(String)]);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const escaped = [];
const errors = [];
page.on("request", (r) => { const u = new URL(r.url()); if (!u.pathname.startsWith(prefix)) escaped.push(u.pathname); });
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
page.on("pageerror", (e) => errors.push(String(e)));
page.on("response", (r) => { if (r.status() >= 400) errors.push(`${r.request().method()} ${new URL(r.url()).pathname}${new URL(r.url()).search}: ${r.status()}`); });
page.on("dialog", (d) => { errors.push(`dialog: ${d.message()}`); d.dismiss(); });

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (e) {
    console.log(`not ok - ${name}: ${e.message}`);
    await page.screenshot({ path: path.join(shots, "failure.png"), fullPage: true }).catch(() => {});
    await browser.close();
    process.exit(1);
  }
}

const card = (id) => page.locator(`article.card[data-id="${id}"]`);
const get = async (p) => (await fetch(new URL(p, base))).json();
const value = (d, k) => (d.readings[k] && typeof d.readings[k].value === "number" ? d.readings[k].value : null);
const fmt = (r) => (r.unit ? `${r.value} ${r.unit}` : String(r.value));
const round = (v, digits) => Math.round(v * 10 ** digits) / 10 ** digits;
// What each family's card must lead with (the first four of these it has): the issue's list.
const LEAD = {
  controller: ["pv_power", "battery_percentage", "battery_voltage", "load_power"],
  dcc: ["solar_power", "alternator_power", "battery_percentage", "battery_voltage", "output_power"],
  battery: ["battery_percentage", "battery_current", "cell_voltage_spread", "temperature_max"],
  battery_bank: ["battery_percentage", "battery_current", "cell_voltage_spread", "temperature_max"],
  inverter: ["load_active_power", "output_voltage", "battery_voltage", "battery_percentage"],
  shunt: ["shunt_soc", "shunt_current", "shunt_power", "shunt_voltage"],
};

await check("the page loads under the ingress prefix and shows every device online", async () => {
  await page.goto(base);
  // Every device the API has (the hub's two batteries also as one bank), each online.
  const n = (await get("api/v1/devices")).devices.length;
  assert.ok(n >= 6, `${n} devices`);
  await page.waitForFunction((k) => document.querySelectorAll('article.card[data-state="online"]').length === k,
    n, { timeout: 30000 });
  assert.equal(await page.locator("#system").textContent(), "ok");
});

await check("the overview shows the system's figures, equal to the API's", async () => {
  // Polls move the simulator's values: the figures are computed here from the very answer the
  // page drew them from (its own request, caught on the way), then compared with what it shows.
  let last;
  for (let i = 0; i < 6; i++) {
    const resp = await page.waitForResponse((r) => new URL(r.url()).pathname.endsWith("/api/v1/devices"), { timeout: 15000 });
    const devs = (await resp.json()).devices;
    await page.waitForTimeout(300);
    const fam = (f) => devs.filter((d) => d.family === f);
    const sum = (ds, k) => ds.reduce((a, d) => a + (value(d, k) ?? 0), 0);
    const bank = fam("battery_bank")[0];
    const left = value(bank, "remaining_capacity"), full = value(bank, "full_capacity"), amps = value(bank, "battery_current");
    const eta = amps > 0 ? (full - left) / amps : left / -amps;
    const mins = Math.round(eta * 60);
    const want = {
      solar: `${round(sum(fam("controller"), "pv_power") + sum(fam("dcc"), "solar_power") + sum(fam("inverter"), "solar_power"), 0)} W`,
      alternator: `${round(sum(fam("dcc"), "alternator_power"), 0)} W`,
      dc_load: `${round(sum(fam("controller"), "load_power"), 0)} W`,
      ac_output: `${round(sum(fam("inverter"), "load_active_power"), 0)} W`,
      battery_soc: `${round(value(bank, "battery_percentage"), 1)} %`,
      battery_voltage: `${round(value(bank, "battery_voltage"), 2)} V`,
      battery_current: `${round(amps, 2)} A`,
      battery_flow: amps > 0.05 ? "charging" : amps < -0.05 ? "discharging" : "idle",
      battery_eta: `${mins >= 60 ? `${Math.floor(mins / 60)} h ${mins % 60} min` : `${mins} min`} to ${amps > 0 ? "full" : "empty"}`,
      today_in: `${round(sum(fam("controller"), "power_generation_today") + sum(fam("dcc"), "power_generation_today"), 2)} kWh`,
      today_out: `${round(sum(fam("controller"), "power_consumption_today"), 2)} kWh`,
    };
    const got = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll("#overview [data-figure]")]
      .map((e) => [e.dataset.figure, e.textContent])));
    last = { want, got };
    if (JSON.stringify(want) === JSON.stringify(got)) break;
  }
  assert.deepEqual(last.got, last.want);
  assert.match(await page.locator("#overview .node.battery .from").textContent(), /Battery bank/);
});

await check("each card leads with its family's key readings, the full table one click away", async () => {
  const devs = (await get("api/v1/devices")).devices;
  const families = new Set();
  for (const d of devs) {
    const lead = await card(d.id).locator(".lead .fig").evaluateAll((es) => es.map((e) => e.dataset.key));
    const have = (k) => d.readings[k] || (k === "cell_voltage_spread" && d.readings.cell_voltage_1) ||
      (k === "temperature_max" && d.readings.temperature_1);
    assert.deepEqual(lead, LEAD[d.family].filter(have).slice(0, 4), d.id);
    families.add(d.family);
    // The whole table is there, closed, and opens with a click.
    const details = card(d.id).locator("details");
    assert.equal(await details.getAttribute("open"), null, d.id);
  }
  assert.deepEqual([...families].sort(), ["battery", "battery_bank", "controller", "dcc", "inverter"]);
  // A battery's spread, made from its cells.
  const b = devs.find((d) => d.id === "battery-1");
  const cells = Object.keys(b.readings).filter((k) => /^cell_voltage_\d+$/.test(k)).map((k) => b.readings[k].value);
  const spread = round(Math.max(...cells) - Math.min(...cells), 3);
  assert.equal(await card("battery-1").locator('.lead .fig[data-key="cell_voltage_spread"]').textContent(), `${spread} V`);
  await card("rover").locator("details summary").click();
  const v = await card("rover").locator('details .v[data-key="pv_voltage"]');
  await v.waitFor({ state: "visible" });
  // Still open after the page's next refresh.
  await page.waitForTimeout(5500);
  assert.ok(await card("rover").locator('details .v[data-key="pv_voltage"]').isVisible());
  assert.match(await card("rover").locator('.lead .fig[data-key="pv_power"]').textContent(), /^\d+(\.\d+)? W$/);
});

await check("a chart with axes and units shows the key reading as soon as there are two points", async () => {
  const svg = card("rover").locator('figure.chart svg[data-key="pv_power"]');
  await page.waitForFunction(() => Number(document.querySelector('article.card[data-id="rover"] figure.chart svg')
    ?.dataset.points) >= 2, null, { timeout: 60000 });
  assert.equal(await svg.locator(".axis").count(), 2);
  assert.equal(await svg.locator(".tick.y").count(), 3);
  assert.equal(await svg.locator(".tick.x").count(), 4);
  assert.equal(await svg.locator(".unit").textContent(), "W");
  // Times of day; seconds too while the history spans minutes, so that no two ticks read alike.
  const xTicks = await svg.locator(".tick.x").allTextContents();
  for (const t of xTicks) assert.match(t, /^\d\d:\d\d(:\d\d)?$/);
  assert.equal(new Set(xTicks).size, xTicks.length, xTicks.join(" "));
  assert.ok((await svg.locator("polyline.mean").getAttribute("points")).split(" ").length >= 2);
  // A young history is drawn from its first poll; an older one over the range chosen.
  assert.match(await card("rover").locator("figure.chart figcaption").textContent(), /^PV power \(W\), (last 6 h|since \d\d:\d\d)$/);
  await page.locator('button[data-range="7d"]').click();
  await page.waitForFunction(() => document.querySelector('article.card[data-id="rover"] figure.chart svg')?.dataset.range === "7d",
    null, { timeout: 15000 });
  assert.equal(await page.locator('button[data-range="7d"]').getAttribute("aria-pressed"), "true");
  await page.locator('button[data-range="6h"]').click();
  await page.waitForTimeout(600);
  // The page as a user first sees it (DOCS.md shows this one).
  await page.screenshot({ path: path.join(shots, "status-page-overview.png") });
});

await check("readings are shown with their units", async () => {
  const v = await card("rover").locator('.v[data-key="battery_voltage"]').textContent();
  assert.match(v, /^\d+(\.\d+)? V$/);
  const soc = await card("battery-1").locator('.v[data-key="battery_percentage"]').textContent();
  assert.match(soc, /^\d+(\.\d+)? %$/);
  assert.ok(await card("inverter").locator(".v").count() >= 22, "the inverter's 22 sensors");
});

await check("values refresh without reloading the page", async () => {
  const meta = () => card("rover").locator(".meta").textContent();
  const before = await meta();
  const polled = await card("rover").getAttribute("data-state");
  assert.equal(polled, "online");
  await page.waitForFunction((b) => document.querySelector('article.card[data-id="rover"] .meta').textContent !== b,
    before, { timeout: 20000 });
});

await check("Scan lists the modules nearby", async () => {
  await page.locator("#scan-btn").click();
  await page.waitForFunction(() => document.querySelectorAll("#scan-rows tr[data-address]").length >= 5, null,
    { timeout: 30000 });
  const rows = await page.locator("#scan-rows tr[data-address]").allTextContents();
  assert.ok(rows.some((r) => r.includes("BT-TH-66EDFC11") && r.includes("configured")), rows.join("|"));
});

await check("Verify walks through its steps inside the device's card", async () => {
  await card("inverter").locator('button[data-act="verify"]').click();
  const box = card("inverter").locator(".verify");
  await page.waitForFunction(() => /ok|failed|error/.test(document.querySelector('article.card[data-id="inverter"] .verify')?.dataset.verify),
    null, { timeout: 60000 });
  assert.match(await box.locator("h3").textContent(), /✓ reads end to end/);
  const steps = await box.locator("li.ok").allTextContents();
  assert.ok(steps.length >= 5, steps.join("|"));
  for (const st of steps) assert.match(st, /\d+\.\d\d s/);
  await box.locator('button[data-act="verify-close"]').click();
  await page.waitForFunction(() => !document.querySelector('article.card[data-id="inverter"] .verify'), null, { timeout: 10000 });
});

await check("Scan, then Add: the module becomes a device on the page; Remove takes it away", async () => {
  const row = page.locator('#scan-rows tr[data-address="C4:D3:6A:00:11:22"]');
  await row.locator("form.add").waitFor({ timeout: 30000 });
  await row.locator('select[name="type"]').selectOption("shunt");
  await row.locator('input[name="name"]').fill("Shunt");
  await row.locator('form.add button[type="submit"]').click();
  await row.locator(".added").waitFor({ timeout: 15000 });
  await card("shunt").waitFor({ timeout: 15000 });
  await page.waitForFunction(() => document.querySelector('article.card[data-id="shunt"]')?.dataset.state === "online",
    null, { timeout: 60000 });
  assert.equal((await get("api/v1/devices/shunt")).source, "api");
  await card("shunt").locator('button[data-act="remove"]').click();
  await page.waitForFunction(() => !document.querySelector('article.card[data-id="shunt"]'), null, { timeout: 15000 });
  const ids = (await get("api/v1/devices")).devices.map((d) => d.id);
  assert.ok(!ids.includes("shunt"), ids.join(","));
});

await check("outside Home Assistant the package leads; the integration is named", async () => {
  await page.locator("#ha-btn").click();
  await page.waitForFunction(() => document.getElementById("ha-yaml").textContent.includes("rest:"), null, { timeout: 10000 });
  assert.equal(await page.locator("#ha-package").getAttribute("open"), "");
  assert.ok(await page.locator("#ha-elsewhere").isVisible());
  assert.ok(!(await page.locator("#ha-here").isVisible()));
  await page.locator("#ha-btn").click();
});

await check("under Home Assistant the integration leads, one click away", async () => {
  // The health answer as under the Supervisor (the rest of it as this daemon gives it).
  const pattern = `**${prefix}api/v1/health`;
  // The page polls health on its own too: a request still in flight when the route goes is
  // the page's business, not a failure of this check.
  await page.route(pattern, async (route) => {
    try {
      const resp = await route.fetch();
      await route.fulfill({ response: resp, json: { ...(await resp.json()), supervisor: true } });
    } catch {
      /* unrouted meanwhile */
    }
  });
  await page.locator("#ha-btn").click();
  await page.locator("#ha-here").waitFor({ state: "visible", timeout: 10000 });
  assert.equal(await page.locator("#ha-add").getAttribute("href"), "/config/integrations/dashboard/add?domain=blupow");
  assert.equal(await page.locator("#ha-package").getAttribute("open"), null);
  assert.ok(!(await page.locator("#ha-elsewhere").isVisible()));
  await page.locator("#ha-btn").click();
  await page.unrouteAll({ behavior: "ignoreErrors" });
});

await check("a module held by the phone app is named on its card with the remedy", async () => {
  sim("SetFault", "ssi", ROVER, "held_by_other_central", -1);
  const box = card("rover").locator('.diag-box[data-code="held_by_other_central"]');
  await box.waitFor({ timeout: 45000 });
  // At the top of the card, right under its name: before the figures, the chart and the table.
  assert.equal(await card("rover").locator("h2 + .diag-box").getAttribute("data-code"), "held_by_other_central");
  const text = await box.textContent();
  assert.match(text, /Another central holds the module's only connection/);
  assert.match(text, /app/i);
  await page.screenshot({ path: path.join(shots, "status-page-held.png"), fullPage: true });
  sim("SetFault", "ssi", ROVER, "held_by_other_central", 0);
  await page.waitForFunction(() => document.querySelector('article.card[data-id="rover"]')?.dataset.state === "online",
    null, { timeout: 45000 });
});

await check("a powered-off adapter is explained and powered on from the page", async () => {
  sim("SetPowered", "sb", "hci0", "false");
  const box = page.locator('#system-diag .diag-box[data-code="adapter_off"]');
  await box.waitFor({ timeout: 30000 });
  const button = page.locator('button[data-act="power"]').first();
  await button.waitFor({ timeout: 10000 });
  await button.click();
  await page.waitForFunction(() => document.getElementById("system-diag").hidden, null, { timeout: 30000 });
});

await check("the load switch and a setting change the controller's registers", async () => {
  const regs = () => JSON.parse(JSON.parse(execFileSync("busctl", ["--system", "--json=short", "call", "org.blupow.Sim", "/",
    "org.blupow.Sim1", "GetReadings", "sy", ROVER, "255"]).toString()).data[0]);
  const load = card("rover").locator('button[data-act="load"]');
  const was = regs().load_status.value;
  await load.click();
  const want = was === "on" ? "off" : "on";
  await page.waitForFunction((w) => document.querySelector('article.card[data-id="rover"] button[data-act="load"]')
    ?.textContent === (w === "on" ? "Switch off" : "Switch on"), want, { timeout: 30000 });
  assert.equal(regs().load_status.value, want);
  await card("rover").locator('button[data-act="load"]').click();
  await page.waitForFunction((w) => document.querySelector('article.card[data-id="rover"] button[data-act="load"]')
    ?.textContent === (w === "on" ? "Switch off" : "Switch on"), was, { timeout: 30000 });
  const mode = card("rover").locator('select[data-setting="load_mode"]');
  await mode.selectOption("dusk_plus_6h");
  // Written and read back by the add-on: the simulator's register, then the page, show it.
  for (let i = 0; i < 60 && regs().load_mode.value !== "dusk_plus_6h"; i++) await page.waitForTimeout(500);
  assert.equal(regs().load_mode.value, "dusk_plus_6h");
  await page.waitForFunction(() => document.querySelector('article.card[data-id="rover"] select[data-setting="load_mode"]')
    ?.value === "dusk_plus_6h", null, { timeout: 30000 });
});

// axe-core in the page: WCAG 2 A and AA rules; serious and critical findings fail.
const axeSource = path.join(path.dirname(new URL(import.meta.url).pathname), "node_modules/axe-core/axe.min.js");
async function axe(what) {
  await page.addScriptTag({ path: axeSource });
  const r = await page.evaluate(() => window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21aa"] }));
  const bad = r.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join("; ")}`), [], what);
}

await check("light and dark, phone and desktop: Home Assistant's theme, no sideways scrolling, no serious accessibility finding", async () => {
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const [r, g, b] = bg.match(/\d+/g).map(Number);
    assert.ok(scheme === "dark" ? r + g + b < 200 : r + g + b > 600, `${scheme} background, got ${bg}`);
    for (const [name, width, height] of [["desktop", 1280, 900], ["phone", 390, 844]]) {
      await page.setViewportSize({ width, height });
      await page.waitForTimeout(400);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${scheme} ${name}: page is ${overflow}px wider than the screen`);
      await axe(`${scheme} ${name}`);
      await page.screenshot({ path: path.join(shots, `status-page-${name}-${scheme}.png`), fullPage: true });
    }
  }
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 1280, height: 900 });
});

await check("keyboard only: Tab reaches Poll now and Enter polls", async () => {
  const before = (await get("api/v1/devices/rover")).last_attempt;
  await page.locator('article.card[data-id="rover"] button[data-act="poll"]').focus();
  await page.keyboard.press("Enter");
  for (let i = 0; i < 40 && (await get("api/v1/devices/rover")).last_attempt === before; i++) await page.waitForTimeout(500);
  assert.notEqual((await get("api/v1/devices/rover")).last_attempt, before);
  // A re-render keeps the focus where it was.
  await page.waitForTimeout(5500);
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.act), "poll");
});

await check("the page made no request outside the ingress prefix and logged no error", async () => {
  assert.deepEqual(escaped, []);
  assert.deepEqual(errors, []);
});

await page.screenshot({ path: path.join(shots, "status-page.png"), fullPage: true });
await browser.close();
