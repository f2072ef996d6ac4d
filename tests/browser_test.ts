/**
 * A real browser against the real server: Debian's chromium, driven headless
 * by playwright-core, opens the echo page at `/`, waits for the connection to
 * open, types a message and sees the echo. A screenshot goes to
 * `test-artifacts/` (kept out of git) for a person to look at.
 *
 * Without /usr/bin/chromium the test is reported as ignored, with the reason
 * in its name, never as passed.
 */

import assert from "node:assert/strict";
import { startServer } from "./helpers/process.ts";

/** Debian's chromium package puts the browser here. */
const CHROMIUM = "/usr/bin/chromium";
/** Flags for a quiet headless run as root in a container. */
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** Where the screenshot goes (gitignored). */
const ARTIFACTS = new URL("../test-artifacts/", import.meta.url);

const missing = await Deno.stat(CHROMIUM).then(() => false, () => true);
const NAME = "chromium opens the echo page, sees it open, types a message and sees the echo";

Deno.test({
  name: missing ? `${NAME} (NOT RUN: ${CHROMIUM} is not installed)` : NAME,
  ignore: missing,
  // playwright keeps its pipe to the browser in ways the sanitizers cannot see as closed.
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { chromium } = await import("playwright-core");
    await using server = await startServer();
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
      await page.goto(`${server.httpUrl}/`);
      assert.equal(await page.title(), "keepalive-ws echo");
      const state = page.locator("#state");
      await page.locator("#state.open").waitFor({ timeout: 20_000 });
      assert.equal(await state.textContent(), "open");
      const open = await server.proc.waitForEvent("open");
      // The browser sent an Origin of the page's own host, which the server allows.
      assert.match(String(open.remote), /^127\.0\.0\.1:\d+$/);

      const message = `hello from chromium ${crypto.randomUUID().slice(0, 8)}`;
      await page.fill("#msg", message);
      await page.press("#msg", "Enter");
      await page.locator("#log .in").filter({ hasText: `< ${message}` }).waitFor({
        timeout: 20_000,
      });
      const lines = await page.locator("#log div").allTextContents();
      assert.deepEqual(lines.slice(-2), [`> ${message}`, `< ${message}`]);
      assert.equal(await page.inputValue("#msg"), "", "the input is cleared after sending");

      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: new URL("echo-page.png", ARTIFACTS).pathname });

      // The server counted the browser's message.
      const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
      assert.match(metrics, /^websocket_messages_received_total 1$/m);

      // Closing the tab ends the WebSocket; the server logs it.
      await page.close();
      const close = await server.proc.waitForEvent("close");
      assert.ok([1000, 1001, 1005, 1006].includes(Number(close.code)), `code ${close.code}`);
    } finally {
      await browser.close();
    }
  },
});
