/**
 * A real browser against the real server: Debian's chromium, driven headless
 * by playwright-core, opens the echo page at `/` (which uses the browser's
 * own WebSocket) and is checked the way a person would look at it: the
 * settings in force, a live round-trip time, counts that match the server's
 * `/metrics`, long messages wrapped inside the box, a server close shown
 * with its code, reason and cause, reconnection on its own (also across a
 * server restart), and a clear word when sending while closed. Screenshots
 * go to `test-artifacts/` (kept out of git) for a person to look at.
 *
 * A second test opens a `file://` page, whose WebSocket carries
 * `Origin: null`: only `--origin null` lets it in.
 *
 * Without /usr/bin/chromium the tests are reported as ignored, with the
 * reason in their names, never as passed.
 */

import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { type ServerProcess, startServer } from "./helpers/process.ts";
import { needs } from "./helpers/needs.ts";
import { CHROMIUM } from "./helpers/peers.ts";

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
/** Where the screenshots go (gitignored). */
const ARTIFACTS = new URL("../test-artifacts/", import.meta.url);
/** Bound on each wait for the page. */
const WAIT = { timeout: 20_000 };

async function launch(): Promise<Browser> {
  const { chromium } = await import("playwright-core");
  return await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

async function screenshot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: new URL(name, ARTIFACTS).pathname, fullPage: true });
}

/** Polls `check` until it holds (bounded), for values that follow the page's own timers. */
async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs}ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One unlabelled sample of the server's /metrics. */
async function metric(server: ServerProcess, name: string): Promise<number> {
  const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `no ${name} in /metrics`);
  return Number(line.slice(name.length + 1));
}

const NAME =
  "chromium: the echo page shows the settings, round trip and counts, wraps long messages, shows a close's code, reason and cause, reconnects on its own, and says so when sending while closed";

Deno.test({
  ...needs(NAME, "chromium"),
  // playwright keeps its pipe to the browser in ways the sanitizers cannot see as closed.
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const flags = [
      "--keepalive-idle",
      "30s",
      "--ping-interval",
      "20s",
      "--pong-timeout",
      "25s",
      "--max-message-size",
      "1KiB",
    ];
    const first = await startServer(flags);
    let second: ServerProcess | null = null;
    const browser = await launch();
    try {
      const page = await browser.newPage({ viewport: { width: 900, height: 760 } });
      const text = async (selector: string) => (await page.locator(selector).textContent()) ?? "";
      await page.goto(`${first.httpUrl}/`);
      assert.equal(await page.title(), "keepalive-ws echo");
      await page.locator("#state.open").waitFor(WAIT);
      const open = await first.proc.waitForEvent("open");
      // The browser sent an Origin of the page's own host, which the server allows.
      assert.match(String(open.remote), /^127\.0\.0\.1:\d+$/);
      assert.match(await text("#since"), /^since \d\d:\d\d:\d\d\.\d{3}$/);

      // The settings in force, from /info: the keepalive read back, the heartbeat, the limit.
      await page.locator("#keepalive", { hasText: "probes" }).waitFor(WAIT);
      assert.equal(
        await text("#keepalive"),
        "on: idle 30 s, interval 15 s, 9 probes (read back from the server's socket); " +
          "TCP_USER_TIMEOUT off",
      );
      assert.equal(await text("#heartbeat"), "ping every 20 s, close after 25 s of silence");
      assert.equal(await text("#max-size"), "1 KiB");

      // A live round trip: the probe sent on open is timed when its echo comes back.
      await eventually("a round-trip time", async () => /^\d+\.\d ms$/.test(await text("#rtt")));

      // Type a message and see the echo, each line with a timestamp.
      const message = `hello from chromium ${crypto.randomUUID().slice(0, 8)}`;
      await page.fill("#msg", message);
      await page.press("#msg", "Enter");
      await page.locator("#log .in .text", { hasText: message }).waitFor(WAIT);
      const lines = await page.locator("#log div").evaluateAll((divs) =>
        divs.map((d) => `${d.className} ${d.children[1].textContent} ${d.children[2].textContent}`)
      );
      assert.deepEqual(lines.slice(-2), [`out > ${message}`, `in < ${message}`]);
      for (const t of await page.locator("#log div time").allTextContents()) {
        assert.match(t, /^\d\d:\d\d:\d\d\.\d{3}$/);
      }
      assert.equal(await page.inputValue("#msg"), "", "the input is cleared after sending");

      // A 300-character message (no spaces) wraps inside the box instead of overflowing it.
      const long = "w".repeat(300);
      await page.fill("#msg", long);
      await page.press("#msg", "Enter");
      const echoed = page.locator("#log .in .text", { hasText: long });
      await echoed.waitFor(WAIT);
      const log = page.locator("#log");
      const box = (await log.boundingBox())!;
      const line = (await echoed.boundingBox())!;
      assert.ok(line.x + line.width <= box.x + box.width, "the long line stays inside the box");
      assert.ok(line.height > 30, `the long line wraps (it is ${line.height}px high)`);
      assert.equal(await echoed.textContent(), long, "all 300 characters are shown");
      assert.ok(
        await log.evaluate((el) => el.scrollWidth <= el.clientWidth),
        "the box does not scroll sideways",
      );

      // The page's counts match each other once every echo is in, and the server's.
      await eventually("counts that match the server's", async () => {
        const [sent, sentBytes, recv, recvBytes] = await Promise.all(
          ["#sent-count", "#sent-bytes", "#recv-count", "#recv-bytes"].map(async (s) =>
            Number(await text(s))
          ),
        );
        return sent >= 3 && sent === recv && sentBytes === recvBytes &&
          await metric(first, "keepalive_ws_received_messages_total") === sent &&
          await metric(first, "keepalive_ws_received_bytes_total") === sentBytes &&
          Number(await text("#sent-count")) === sent;
      });
      await screenshot(page, "echo-page.png");

      // A message over the server's 1 KiB limit: the server closes with 1009 and its reason;
      // the page shows it and reconnects by itself.
      await page.fill("#msg", "x".repeat(2000));
      await page.press("#msg", "Enter");
      await page.locator("#close-code", { hasText: "1009" }).waitFor(WAIT);
      assert.equal(await text("#close-name"), "(message too big)");
      assert.notEqual(await text("#close-reason"), "none", "the server's reason is shown");
      assert.equal(await text("#close-cause"), "a message was larger than the server accepts");
      assert.match(await text("#close-time"), /^\d\d:\d\d:\d\d\.\d{3}$/);
      await first.proc.waitForEvent("close", (e) => e.cause === "message-too-big");
      await first.proc.waitForEvent("open", () => true, { nth: 2 });
      await page.locator("#state.open").waitFor(WAIT);

      // Disconnect: no reconnecting; sending now tells the user and keeps the text.
      await page.click("#toggle");
      await page.locator("#state.closed").waitFor(WAIT);
      assert.equal(await text("#close-cause"), "you disconnected");
      assert.equal(await text("#close-code"), "1000");
      await page.fill("#msg", "are you there?");
      await page.press("#msg", "Enter");
      assert.match(await text("#notice"), /^Not sent: the connection is closed\./);
      assert.equal(await page.inputValue("#msg"), "are you there?", "the text is kept");
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(await text("#state"), "closed", "no reconnect after the user's own close");
      await screenshot(page, "echo-page-closed.png");

      // Connect again, then restart the server: the page sees 1001, waits with backoff,
      // and connects to the new server on the same port by itself.
      await page.click("#toggle");
      await page.locator("#state.open").waitFor(WAIT);
      assert.equal(await text("#notice"), "");
      await page.press("#msg", "Enter");
      await page.locator("#log .in .text", { hasText: "are you there?" }).waitFor(WAIT);
      first.proc.kill("SIGTERM");
      await page.locator("#close-code", { hasText: "1001" }).waitFor(WAIT);
      assert.equal(await text("#close-reason"), '"server shutting down"');
      assert.equal(
        await text("#close-cause"),
        "the server is going away (shutting down or restarting)",
      );
      await page.locator("#state", { hasText: "reconnecting" }).waitFor(WAIT);
      assert.match(await text("#retry-text"), /^next attempt \(\d+\) in \d+\.\d s$/);
      assert.equal((await first.proc.wait()).code, 0);
      second = await startServer(flags, { port: first.port });
      await second.proc.waitForEvent("open", () => true, { timeoutMs: 40_000 });
      await page.locator("#state.open").waitFor(WAIT);

      // The page's icon was served, so the browser caused no refusal.
      for (const server of [first, second]) {
        assert.deepEqual(server.proc.events.filter((e) => e.event === "rejected"), []);
      }

      // Closing the tab ends the WebSocket; the server logs it.
      await page.close();
      const close = await second.proc.waitForEvent("close");
      assert.ok([1000, 1001, 1005, 1006].includes(Number(close.code)), `code ${close.code}`);
    } catch (err) {
      // What the page showed when it failed, for a person to look at.
      for (const page of browser.contexts().flatMap((c) => c.pages())) {
        await screenshot(page, "echo-page-failed.png").catch(() => {});
      }
      throw err;
    } finally {
      await browser.close();
      await first[Symbol.asyncDispose]();
      await second?.[Symbol.asyncDispose]();
    }
  },
});

const FILE_NAME =
  "chromium: a file:// page (Origin: null) connects only to a server run with --origin null";

Deno.test({
  ...needs(FILE_NAME, "chromium"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using allowing = await startServer(["--origin", "null"]);
    await using refusing = await startServer();
    const dir = await Deno.makeTempDir({ prefix: "keepalive-ws-file-page-" });
    const browser = await launch();
    try {
      const page = await browser.newPage();
      for (
        const [server, expected] of [[allowing, "echo: from a file"], [refusing, "closed"]] as const
      ) {
        const html = `${dir}/page-${server.port}.html`;
        await Deno.writeTextFile(
          html,
          `<!doctype html><title>waiting</title><script>
const ws = new WebSocket("${server.echoUrl}");
ws.onopen = () => ws.send("from a file");
ws.onmessage = (e) => { document.title = "echo: " + e.data; };
ws.onclose = () => { if (document.title === "waiting") document.title = "closed"; };
</script>`,
        );
        await page.goto(`file://${html}`);
        await page.waitForFunction('document.title !== "waiting"', undefined, WAIT);
        assert.equal(await page.title(), expected);
      }
      await allowing.proc.waitForEvent("open");
      const rejected = await refusing.proc.waitForEvent("rejected");
      assert.equal(rejected.status, 403);
      assert.match(String(rejected.message), /origin null is not allowed/);
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
