// The bridge acts from the page, in Debian's Chromium (headless): called by
// tests/e2e/bridge.rs with `node bridge.mjs <base-url> <out-dir>` against a journal
// where r-1 waits at a gate before a destructive step on site-b (four eyes) and r-2 at
// a plain gate, both started by `tester`. Exits 0 when every check holds.
import { launch } from "./chromium.mjs";
import { join } from "node:path";

const [base, outDir] = process.argv.slice(2);
const fail = (msg) => {
  console.error("FAIL: " + msg);
  process.exitCode = 1;
};

async function logIn(page, user, password) {
  await page.goto(`${base}/runs/r-1`);
  if (!page.url().endsWith("/login")) fail(`not sent to the login form: ${page.url()}`);
  await page.fill("input[name=user]", user);
  await page.fill("input[name=password]", password);
  await page.click("button[type=submit]");
  await page.waitForURL(`${base}/`);
  const me = await page.textContent(".whoami");
  console.log(`logged in: ${me.trim()}`);
  if (!me.includes(user)) fail(`the page does not say who is logged in: ${me}`);
}

async function logOut(page) {
  await page.click(".whoami button");
  await page.waitForURL(`${base}/login`);
}

const browser = await launch();
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(30000);

  // 1. The index shows the deployment's state above the runs (serve has --env), and
  // why each run stopped. Then the run's driver: four eyes, no approve button.
  await logIn(page, "tester", "tester-pw");
  const state = await page.textContent(".deployment h2");
  console.log(`deployment: ${state.trim()}`);
  if (!/The deployment now/.test(state)) fail(`no deployment state on the index: ${state}`);
  const why = await page.textContent("table .why");
  if (!/four eyes|waiting/.test(why)) fail(`the index does not say why a run waits: ${why}`);
  await page.goto(`${base}/runs/r-1`);
  const refusal = await page.textContent("#act .refusal");
  console.log(`tester at r-1: ${refusal.trim()}`);
  if (!/four eyes/.test(refusal)) fail(`no four-eyes refusal shown to the driver: ${refusal}`);
  if (await page.locator("#act form[action$='/step/approve']").count() !== 0) fail("the driver is offered the approval");
  await page.screenshot({ path: join(outDir, "bridge-driver.png"), fullPage: true });
  await logOut(page);

  // 2. Another approver: the site's name typed, the wrong one first.
  await logIn(page, "bob", "bob-pw");
  await page.goto(`${base}/runs/r-1`);
  const judged = await page.textContent("#act .guards-now");
  console.log(`guards now: ${judged.replace(/\s+/g, " ").trim()}`);
  if (!/health check: holds now/.test(judged)) fail(`the approval does not show the next step's guards judged now: ${judged}`);
  const ask = await page.textContent("#act form[action$='/step/approve']");
  console.log(`bob at r-1: ${ask.replace(/\s+/g, " ").trim().slice(0, 200)}`);
  if (!/site-b/.test(ask) || !/wipe/.test(ask)) fail(`the approval does not say what it lets through: ${ask}`);
  if (await page.locator("#act form[action$='/abort']").count() !== 0) fail("an approver without the operator role is offered abort");
  await page.fill("#act input[name=confirm]", "site-a");
  await page.click("#act form[action$='/step/approve'] button");
  const wrong = await page.textContent("body");
  if (!/type `site-b`/.test(wrong)) fail(`a wrong site typed was not refused: ${wrong.slice(0, 300)}`);
  await page.goto(`${base}/runs/r-1`);
  await page.fill("#act input[name=confirm]", "site-b");
  await page.click("#act form[action$='/step/approve'] button");
  await page.waitForURL(`${base}/runs/r-1`);
  const after = await page.textContent("#act");
  console.log(`after bob's approval: ${after.replace(/\s+/g, " ").trim()}`);
  if (!/is approved/.test(after)) fail(`the page does not show the approval: ${after}`);
  await page.screenshot({ path: join(outDir, "bridge-approved.png"), fullPage: true });
  await logOut(page);

  // 3. An operator aborts r-2 with a reason, while another tab shows the index: it
  // follows without a reload.
  await logIn(page, "tester", "tester-pw");
  const index = await browser.newPage();
  await index.goto(`${base}/`);
  await index.evaluate(() => { window.__sameDocument = true; });
  await page.goto(`${base}/runs/r-2`);
  await page.fill("#act form[action$='/abort'] input[name=reason]", "the bridge called it off");
  await page.click("#act form[action$='/abort'] button");
  await page.waitForURL(`${base}/runs/r-2`);
  await page.locator("#run-status", { hasText: /aborted/ }).waitFor();
  console.log(`r-2: ${(await page.textContent("#run-status")).trim()}`);
  await index.locator("#runs tr", { hasText: "r-2" }).locator(".status.aborted").waitFor();
  if (!(await index.evaluate(() => window.__sameDocument === true))) fail("the index was reloaded: the abort did not arrive live");
  console.log("the index showed r-2 aborted without a reload");
  if (await page.locator("#act form").count() !== 0) fail("a run that is over still offers actions");
} finally {
  await browser.close();
}
