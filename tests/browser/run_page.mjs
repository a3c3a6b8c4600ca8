// Drives Debian's Chromium, headless, against `runbook serve` and a report file.
// Called by tests/e2e/browser.rs with:
//   node run_page.mjs <base-url> <running-run-id> <halted-run-id> <report.html to write> <out-dir>
// Exits 0 when every check holds; prints what it saw either way.
import { launch } from "./chromium.mjs";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const [base, running, halted, reportFile, outDir] = process.argv.slice(2);
const fail = (msg) => {
  console.error("FAIL: " + msg);
  process.exitCode = 1;
};

const browser = await launch();
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(60000);

  // 1. The run in progress: steps appear and complete without a reload.
  await page.goto(`${base}/runs/${running}`);
  await page.evaluate(() => { window.__sameDocument = true; });
  const first = await page.textContent("#run-status");
  console.log(`first look: ${first}, steps shown: ${await page.locator("#live tr").count()}`);
  if (first.trim() !== "running") fail(`the run was not running when the page opened: ${first}`);
  // Locator waits, not waitForFunction: the page's Content-Security-Policy forbids
  // evaluating strings, and the test must see the page as a bridge member's browser does.
  await page.waitForSelector("#current");
  const seenCurrent = await page.textContent("#current");
  console.log(`current: ${seenCurrent.trim().slice(0, 120)}`);
  await page.locator("#run-status", { hasText: /^\s*completed\s*$/ }).waitFor({ timeout: 120000 });
  const same = await page.evaluate(() => window.__sameDocument === true);
  if (!same) fail("the page was reloaded: the update did not come live");
  const done = await page.locator("#live .status.succeeded").count();
  const rects = await page.locator("#live svg rect").count();
  console.log(`completed live: ${done} succeeded marks, ${rects} bars in the chart`);
  if (done < 3) fail(`expected the steps to show succeeded, saw ${done}`);
  if (rects < 3) fail(`expected bars in the chart, saw ${rects}`);
  await page.screenshot({ path: join(outDir, "run-page.png"), fullPage: true });

  // 2. A halted run: its reason and the command that resumes it.
  await page.goto(`${base}/runs/${halted}`);
  const reason = await page.textContent("#halt");
  const resume = await page.textContent("#resume");
  console.log(`halted: ${reason.trim().slice(0, 160)} | ${resume}`);
  if (!reason.includes("waiting for approval")) fail(`no halt reason: ${reason}`);
  if (resume.trim() !== `runbook resume ${halted} --approve gate`) fail(`resume command: ${resume}`);
  await page.screenshot({ path: join(outDir, "halted-page.png"), fullPage: true });

  // 3. Without JavaScript, the page is complete as served: a reload shows the state.
  const served = await (await fetch(`${base}/runs/${running}`)).text();
  if (!served.includes('id="run-status">completed<')) fail("the page as served does not show the state");

  // 4. The report file: it parses, draws its chart, and asks for nothing else.
  const reportHtml = await (await fetch(`${base}/runs/${running}/report.html`)).text();
  writeFileSync(reportFile, reportHtml);
  const requests = [];
  const rp = await browser.newPage();
  rp.on("request", (r) => requests.push(r.url()));
  await rp.goto("file://" + reportFile);
  const title = await rp.title();
  const bars = await rp.locator("svg rect").count();
  const others = requests.filter((u) => !u.startsWith("file://"));
  console.log(`report: "${title}", ${bars} bars, ${requests.length} requests`);
  if (!title.startsWith("Run ")) fail(`report title: ${title}`);
  if (bars < 3) fail(`report chart: ${bars} bars`);
  if (others.length) fail(`the report asked for ${others.join(", ")}`);
  await rp.emulateMedia({ media: "print" });
  await rp.pdf({ path: join(outDir, "report.pdf") }).catch(() => {});
} catch (e) {
  fail(String(e && e.stack || e));
} finally {
  await browser.close();
}
