// Debian's Chromium, headless, in a throwaway profile: the one launch both page
// scripts use (browsers that download themselves cannot work on this machine).
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function launch(options = {}) {
  return chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "rb-chromium-")), {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run",
    ],
    ...options,
  });
}
