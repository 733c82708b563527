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

await check("the page loads under the ingress prefix and shows every device online", async () => {
  await page.goto(base);
  // Six devices, and the hub's two batteries as one bank.
  await page.waitForFunction(() => document.querySelectorAll('article.card[data-state="online"]').length === 7,
    null, { timeout: 30000 });
  assert.equal(await page.locator("#system").textContent(), "ok");
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

await check("Verify reads a device end to end", async () => {
  await card("inverter").locator('button[data-act="verify"]').click();
  await page.waitForFunction(() => /reads end to end|failed/.test(document.getElementById("verify-title").textContent),
    null, { timeout: 30000 });
  assert.match(await page.locator("#verify-title").textContent(), /✓ reads end to end/);
  assert.ok(await page.locator("#verify-steps li.ok").count() >= 5);
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

await check("dark mode follows the system, and a phone screen needs no sideways scrolling", async () => {
  await page.emulateMedia({ colorScheme: "dark" });
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = bg.match(/\d+/g).map(Number);
  assert.ok(r + g + b < 200, `dark background expected, got ${bg}`);
  await page.screenshot({ path: path.join(shots, "status-page-dark.png") });
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than a phone`);
  await page.screenshot({ path: path.join(shots, "status-page-phone.png") });
  await page.setViewportSize({ width: 1280, height: 900 });
});

await check("the page made no request outside the ingress prefix and logged no error", async () => {
  assert.deepEqual(escaped, []);
  assert.deepEqual(errors, []);
});

await page.screenshot({ path: path.join(shots, "status-page.png"), fullPage: true });
await browser.close();
