/**
 * Behind a real HAProxy (Debian's, started by the test on loopback) with the
 * recipe of docs/deploy.md, read from the docs and changed only in its
 * addresses and `timeout tunnel 3s`. Once upgraded, HAProxy counts
 * `timeout tunnel` from the last byte either way; the client's heartbeat is
 * what keeps an idle WebSocket open through it. The server's own heartbeat
 * is off in every test, so only the client's settings decide.
 */

import assert from "node:assert/strict";
import { documentedRecipe, haproxyConfig, startHaproxy } from "./helpers/haproxy.ts";
import { needs } from "./helpers/needs.ts";
import { Program, startServer } from "./helpers/process.ts";
import { RawPeer, upgradeRequest } from "./helpers/raw.ts";
import { sleep } from "./helpers/wait.ts";

/** HAProxy's `timeout tunnel` in these tests. */
const TUNNEL_TIMEOUT_MS = 3_000;
const TUNNEL_TIMEOUT = `${TUNNEL_TIMEOUT_MS / 1000}s`;
/** How long a connection stays idle in the survival test: twice the tunnel timeout. */
const IDLE_MS = 2 * TUNNEL_TIMEOUT_MS;
/** The recipe's `timeout client` and `timeout server`: a cut before these is the tunnel's. */
const CLIENT_SERVER_TIMEOUT_MS = 30_000;
const HEARTBEAT_OFF = ["--ping-interval", "0", "--pong-timeout", "0"];

Deno.test("the documented HAProxy recipe has the lines the tests replace, and nothing else changes", () => {
  const recipe = documentedRecipe();
  const config = haproxyConfig(recipe, 4321, { upstreamPort: 8765, tunnelTimeout: "3s" });
  const replaced = /^\s+(bind|server|timeout\s+tunnel)\s/;
  const kept = (text: string) => text.split("\n").filter((l) => !replaced.test(l));
  assert.match(recipe, /^\s+mode http$/m, "the upgrade is seen in mode http");
  assert.deepEqual(kept(config), kept(recipe));
  const swapped = config.split("\n").filter((l) => replaced.test(l));
  assert.ok(swapped.length >= 3, swapped.join("\n"));
  for (const line of swapped) {
    assert.match(
      line,
      /^\s+(bind 127\.0\.0\.1:4321|server \S+ 127\.0\.0\.1:8765( .*)?|timeout\s+tunnel\s+3s( .*)?)$/,
    );
  }
  assert.throws(
    () => haproxyConfig("defaults\n    mode http\n", 1, { upstreamPort: 2, tunnelTimeout: "3s" }),
    /0 bind lines/,
  );
});

Deno.test({
  ...needs(
    `an idle WebSocket through HAProxy outlives timeout tunnel 3s when the client pings every ` +
      `1s, and still echoes`,
    "haproxy",
  ),
  async fn() {
    await using server = await startServer(HEARTBEAT_OFF);
    await using haproxy = await startHaproxy({
      upstreamPort: server.port,
      tunnelTimeout: TUNNEL_TIMEOUT,
    });
    await using client = Program.start("client.ts", [
      "--log-format",
      "json",
      "--ping-interval",
      "1s",
      haproxy.echoUrl,
    ], { stdin: true });
    await client.waitForEvent("open");
    await server.proc.waitForEvent("open");
    await sleep(IDLE_MS);
    assert.deepEqual(server.proc.events.filter((e) => e.event === "close"), [], haproxy.output());
    assert.deepEqual(client.events.filter((e) => e.event === "close"), []);
    await client.write("still here after 6s\n");
    assert.deepEqual(await client.waitForLines(1), ["still here after 6s"]);
    await client.closeStdin();
    const exit = await client.wait();
    assert.equal(exit.code, 0, exit.stderr);
    const clientClose = client.events.find((e) => e.event === "close");
    const pings = clientClose?.pings as { sent: number; answered: number } | undefined;
    assert.ok(pings && pings.answered >= 3, `the pongs came back through HAProxy: ${exit.stderr}`);
    const close = await server.proc.waitForEvent("close");
    assert.equal(close.code, 1000);
    assert.ok(Number(close.duration_ms) >= IDLE_MS, `closed after ${close.duration_ms}ms`);
  },
});

Deno.test({
  ...needs(
    `client.ts kept idle through HAProxy with the heartbeat off is cut after timeout tunnel 3s ` +
      `(not timeout client 30s): it logs cause eof, says so in its last line, and exits 1`,
    "haproxy",
  ),
  async fn() {
    await using server = await startServer(HEARTBEAT_OFF);
    await using haproxy = await startHaproxy({
      upstreamPort: server.port,
      tunnelTimeout: TUNNEL_TIMEOUT,
    });
    // The text log, as a person reads it; it waits 20 s for an echo that never comes.
    await using client = Program.start("client.ts", [
      ...HEARTBEAT_OFF,
      "--wait",
      "20s",
      haproxy.echoUrl,
    ]);
    const exit = await client.wait(CLIENT_SERVER_TIMEOUT_MS - 5_000);
    assert.equal(exit.code, 1, exit.stderr);
    const lines = exit.stderr.trimEnd().split("\n");
    const close = lines.find((l) => /\bevent=close\b/.test(l));
    assert.ok(close, exit.stderr);
    assert.match(
      close,
      / code=1006 cause=eof clean=false error="TCP ended without a close frame" /,
    );
    const duration = Number(/ duration_ms=(\d+) /.exec(close)?.[1]);
    assert.ok(
      duration >= TUNNEL_TIMEOUT_MS - 500,
      `cut after ${duration}ms, before timeout tunnel`,
    );
    assert.match(
      lines.at(-1)!,
      /level=error event=error message="connection closed: eof \(code 1006: TCP ended without a close frame\)"$/,
    );
    // HAProxy ends its side towards the server with a reset.
    const serverClose = await server.proc.waitForEvent("close");
    assert.deepEqual([serverClose.code, serverClose.cause, serverClose.clean], [
      1006,
      "reset",
      false,
    ]);
  },
});

Deno.test({
  ...needs(
    "a browser's same-origin upgrade through HAProxy passes the Origin check (HAProxy keeps Host); " +
      "a foreign origin still gets 403",
    "haproxy",
  ),
  async fn() {
    await using server = await startServer(HEARTBEAT_OFF);
    await using haproxy = await startHaproxy({
      upstreamPort: server.port,
      tunnelTimeout: TUNNEL_TIMEOUT,
    });
    const host = `127.0.0.1:${haproxy.port}`;
    for (
      const [origin, status] of [[`http://${host}`, 101], ["http://evil.example", 403]] as const
    ) {
      await using peer = await RawPeer.connect(haproxy.port);
      await peer.write(upgradeRequest("/echo", { host, extra: [`Origin: ${origin}`] }));
      assert.equal((await peer.readResponse()).status, status, origin);
    }
  },
});
