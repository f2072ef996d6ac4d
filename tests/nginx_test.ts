/**
 * Behind a real reverse proxy: nginx (Debian's, started by the test on
 * loopback with `proxy_read_timeout 3s`) in front of `server.ts`. TCP
 * keepalive only covers each hop to and from nginx; what keeps an idle
 * WebSocket alive across it is the heartbeat, because only WebSocket frames
 * cross the proxy and reset its idle timer.
 */

import assert from "node:assert/strict";
import { dial } from "../lib/client/dial.ts";
import { needs } from "./helpers/needs.ts";
import { startNginx } from "./helpers/nginx.ts";
import { Program, startServer } from "./helpers/process.ts";
import { sleep, waitFor } from "./helpers/wait.ts";

/** nginx's idle timeout in these tests (proxy_read_timeout and proxy_send_timeout). */
const PROXY_TIMEOUT_MS = 3_000;
/** How long a connection stays idle in the survival test: twice the proxy's timeout. */
const IDLE_MS = 2 * PROXY_TIMEOUT_MS;
/** Slack for a loaded 2-core machine when checking when nginx cut a connection. */
const CUT_TOLERANCE_MS = 5_000;

const HEARTBEAT_OFF = ["--ping-interval", "0", "--pong-timeout", "0"];

Deno.test({
  ...needs(
    `an idle WebSocket through nginx outlives proxy_read_timeout 3s when the server pings ` +
      `every 1s, and still echoes`,
    "nginx",
  ),
  async fn() {
    await using server = await startServer(["--ping-interval", "1s"]);
    await using nginx = await startNginx({
      upstreamPort: server.port,
      timeout: `${PROXY_TIMEOUT_MS / 1000}s`,
    });
    await using client = Program.start("client.ts", ["--log-format", "json", nginx.echoUrl], {
      stdin: true,
    });
    await client.waitForEvent("open");
    await server.proc.waitForEvent("open");
    await sleep(IDLE_MS);
    assert.deepEqual(server.proc.events.filter((e) => e.event === "close"), []);
    assert.deepEqual(client.events.filter((e) => e.event === "close"), []);
    await client.write("still here after 6s\n");
    assert.deepEqual(await client.waitForLines(1), ["still here after 6s"]);
    await client.closeStdin();
    const exit = await client.wait();
    assert.equal(exit.code, 0, exit.stderr);
    const close = await server.proc.waitForEvent("close");
    assert.equal(close.code, 1000);
    assert.ok(Number(close.duration_ms) >= IDLE_MS, `closed after ${close.duration_ms}ms`);
    assert.doesNotMatch(nginx.errorLog(), /upstream timed out/);
  },
});

Deno.test({
  ...needs(
    `an idle WebSocket through nginx is cut after proxy_read_timeout 3s when the heartbeat ` +
      `is off: both ends see TCP end without a close frame (eof)`,
    "nginx",
  ),
  async fn() {
    await using server = await startServer(HEARTBEAT_OFF);
    await using nginx = await startNginx({
      upstreamPort: server.port,
      timeout: `${PROXY_TIMEOUT_MS / 1000}s`,
    });
    const ws = await dial(nginx.echoUrl);
    try {
      const opened = Date.now();
      const info = await waitFor(
        ws.closed,
        "nginx to cut the idle connection",
        PROXY_TIMEOUT_MS + CUT_TOLERANCE_MS,
      );
      const after = Date.now() - opened;
      assert.equal(info.cause, "eof");
      assert.equal(info.code, 1006);
      assert.equal(info.clean, false);
      assert.ok(
        after >= PROXY_TIMEOUT_MS - 500 && after < PROXY_TIMEOUT_MS + CUT_TOLERANCE_MS,
        `cut after ${after}ms, expected about ${PROXY_TIMEOUT_MS}ms`,
      );
      const close = await server.proc.waitForEvent("close");
      assert.equal(close.cause, "eof");
      assert.equal(close.code, 1006);
      assert.equal(close.clean, false);
      assert.match(nginx.errorLog(), /upstream timed out .* while proxying upgraded connection/);
    } finally {
      await ws.close().catch(() => {});
    }
  },
});

Deno.test({
  ...needs(
    `client.ts kept idle through nginx with the heartbeat off reports nginx's cut as eof ` +
      `in its close event and exit line, and exits 1`,
    "nginx",
  ),
  async fn() {
    await using server = await startServer(HEARTBEAT_OFF);
    await using nginx = await startNginx({
      upstreamPort: server.port,
      timeout: `${PROXY_TIMEOUT_MS / 1000}s`,
    });
    await using client = Program.start("client.ts", [
      "--log-format",
      "json",
      "--wait",
      "10s",
      nginx.echoUrl,
    ]);
    const exit = await client.wait();
    assert.equal(exit.code, 1, exit.stderr);
    const close = client.events.find((e) => e.event === "close");
    assert.ok(close, exit.stderr);
    assert.equal(close.cause, "eof");
    assert.equal(close.code, 1006);
    assert.ok(
      Number(close.duration_ms) >= PROXY_TIMEOUT_MS - 500 &&
        Number(close.duration_ms) < PROXY_TIMEOUT_MS + CUT_TOLERANCE_MS,
      `cut after ${close.duration_ms}ms, expected about ${PROXY_TIMEOUT_MS}ms`,
    );
    const last = client.events.at(-1);
    assert.equal(last?.event, "error");
    assert.match(String(last?.message), /\beof\b/);
  },
});

/** Sends a browser's upgrade request (Origin = the page's own origin) and returns the status line. */
async function browserUpgrade(port: number): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const origin = `http://127.0.0.1:${port}`;
  await conn.write(
    new TextEncoder().encode(
      `GET /echo HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: ${origin}\r\n` +
        "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ),
  );
  const buf = new Uint8Array(4096);
  const n = await conn.read(buf);
  return new TextDecoder().decode(buf.subarray(0, n ?? 0)).split("\r\n")[0];
}

Deno.test({
  ...needs(
    `a browser's same-origin upgrade through nginx on a non-default port passes the Origin ` +
      `check with 'proxy_set_header Host $http_host', and gets 403 with $host (no port)`,
    "nginx",
  ),
  async fn() {
    await using server = await startServer(HEARTBEAT_OFF);
    for (const [host, status] of [["$http_host", 101], ["$host", 403]] as const) {
      await using nginx = await startNginx({
        upstreamPort: server.port,
        timeout: `${PROXY_TIMEOUT_MS / 1000}s`,
        host,
      });
      assert.match(await browserUpgrade(nginx.port), new RegExp(`^HTTP/1\\.1 ${status} `), host);
    }
  },
});
