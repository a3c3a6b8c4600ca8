// Drives Debian's Chromium, headless, at 1,400 px against `runbook serve` while a run
// waits in a long step. Called by tests/e2e/browser.rs with:
//   node tick_page.mjs <base-url> <run-id> <out-dir>
// Checks: every step is listed (the pending ones greyed), the elapsed times tick
// between updates, the running step shows its timeout, the summary is on top, and
// nothing scrolls sideways. Exits 0 when every check holds; prints what it saw.
import { launch } from "./chromium.mjs";
import { join } from "node:path";

const [base, run, outDir] = process.argv.slice(2);
const fail = (msg) => {
  console.error("FAIL: " + msg);
  process.exitCode = 1;
};
const browser = await launch({ viewport: { width: 1400, height: 900 } });
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(30000);
  await page.goto(`${base}/runs/${run}`);
  await page.waitForSelector("#current");
  const rows = await page.locator("#live table.steps tr").count() - 1;
  const pending = await page.locator("#live tr.is-pending").count();
  console.log(`steps listed: ${rows}, pending: ${pending}`);
  if (rows !== 4) fail(`expected the 4 steps listed, saw ${rows}`);
  if (pending !== 2) fail(`expected 2 pending steps greyed, saw ${pending}`);
  const current = (await page.textContent("#current")).trim();
  console.log(`current: ${current}`);
  if (!/running for .* of its timeout 2 min/.test(current)) fail(`no elapsed time and timeout: ${current}`);
  const summary = (await page.textContent("#summary")).trim();
  if (!summary.startsWith("running for")) fail(`summary: ${summary}`);
  // The page's own clock: the same element advances with no event from the server.
  const tick = page.locator("#current .tick");
  const before = (await tick.textContent()).trim();
  await page.waitForTimeout(2200);
  const after = (await tick.textContent()).trim();
  console.log(`elapsed ticks: ${before} -> ${after}`);
  // The page writes "950 ms", "3.1 s", "2 min" or "1 h 5 min": read it with its units.
  const secs = (t) => {
    let total = 0;
    for (const [, n, unit] of t.matchAll(/([\d.]+)\s*(ms|s|min|h)\b/g)) {
      total += parseFloat(n) * { ms: 0.001, s: 1, min: 60, h: 3600 }[unit];
    }
    return total;
  };
  if (!(secs(after) >= secs(before) + 1.5)) fail(`the elapsed time did not tick: ${before} -> ${after}`);
  const [scroll, client] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  console.log(`width: scroll ${scroll}, client ${client}`);
  if (scroll > client) fail(`the page scrolls sideways at 1,400 px: ${scroll} > ${client}`);
  await page.screenshot({ path: join(outDir, "running-page.png"), fullPage: true });
  await page.goto(`${base}/`);
  const direction = (await page.textContent("table tr:nth-child(2) td:nth-child(3)")).trim();
  const lease = (await page.textContent("table tr:nth-child(2) td:nth-child(6)")).trim();
  console.log(`index: direction "${direction}", driver "${lease}"`);
  if (direction !== "site-a") fail(`the index shows no direction: ${direction}`);
  if (!lease.includes("@")) fail(`the index shows no driver: ${lease}`);
  await page.screenshot({ path: join(outDir, "index-page.png"), fullPage: true });
} catch (e) {
  fail(String(e && e.stack || e));
} finally {
  await browser.close();
}
