// The status page, in Debian's Chromium, showing one system diagnosis: the banner above the
// cards and every device's card carry the code's message and remedy as the API gives them.
// Usage: node diagnosis-page.mjs BASE_URL CODE SCREENSHOT  (run where the daemon is: the
// real-stack VM's AppArmor test uses it for a real D-Bus denial). Exits non-zero on a mismatch.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const [base, code, shot] = process.argv.slice(2);
const get = async (path) => (await fetch(new URL(path, base))).json();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
let status = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const health = await get("api/v1/health");
  const want = health.system.diagnosis;
  assert.ok(want, "the API has no system diagnosis");
  assert.equal(want.code, code);
  await page.goto(base);
  const banner = page.locator(`#system-diag .diag-box[data-code="${code}"]`);
  await banner.waitFor({ timeout: 120000 });
  const text = await banner.textContent();
  assert.ok(text.includes(want.message), `banner: ${text}`);
  assert.ok(text.includes(want.remedy), `banner lacks the remedy: ${text}`);
  const devices = (await get("api/v1/devices")).devices;
  for (const d of devices) {
    const box = page.locator(`article.card[data-id="${d.id}"] .diag-box`);
    await box.waitFor({ timeout: 30000 });
    assert.equal(await box.getAttribute("data-code"), code, d.id);
    assert.ok((await box.textContent()).includes(d.diagnosis.remedy), `${d.id}: no remedy on its card`);
  }
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`ok - the page shows ${code} above everything and on ${devices.length} cards, with the remedy`);
} catch (e) {
  console.log(`not ok - ${e.message}`);
  status = 1;
} finally {
  await browser.close();
}
process.exit(status);
