/**
 * The keepalive policy end to end: server.ts and client.ts as processes on a
 * loopback connection, each side's `open` event checked against the
 * keepalive timer the kernel runs for that side's socket, seen from outside
 * in /proc/net/tcp (what `ss -o` shows). That a negative count leaves the
 * kernel's value is shown in sockopt_test.ts, where the socket's count
 * differs from Go's 9.
 */

import assert from "node:assert/strict";
import { type LogEvent, Program, startServer } from "./helpers/process.ts";
import { keepAliveTimer } from "./helpers/tcp_timers.ts";

function keepalive(e: LogEvent) {
  return e.keepalive as {
    enabled: boolean;
    idle_s: number;
    interval_s: number;
    count: number;
    verified: boolean;
  };
}

/** Opens one client connection and returns both sides' open events and ports. */
async function connect(serverArgs: string[], clientArgs: string[]) {
  await using stack = new AsyncDisposableStack();
  const server = stack.use(await startServer(serverArgs));
  const args = ["--log-format", "json", "--wait", "30s", ...clientArgs, server.echoUrl];
  const client = stack.use(Program.start("client.ts", args, { stdin: true }));
  const clientOpen = await client.waitForEvent("open");
  const serverOpen = await server.proc.waitForEvent("open");
  const clientPort = Number(String(serverOpen.remote).split(":").pop());
  const processes = stack.move();
  return {
    server,
    client,
    clientOpen,
    serverOpen,
    clientPort,
    [Symbol.asyncDispose]: () => processes.disposeAsync(),
  };
}

Deno.test("by default both programs' sockets carry Go's 15/15/9, as their open events and the kernel's timers show", async () => {
  await using c = await connect([], []);
  for (const e of [c.serverOpen, c.clientOpen]) {
    assert.deepEqual(keepalive(e), {
      enabled: true,
      idle_s: 15,
      interval_s: 15,
      count: 9,
      verified: true,
    });
  }
  const serverTimer = await keepAliveTimer(c.server.port, c.clientPort);
  const clientTimer = await keepAliveTimer(c.clientPort, c.server.port);
  assert.ok(serverTimer !== null && serverTimer <= 15, `server timer ${serverTimer}`);
  assert.ok(clientTimer !== null && clientTimer <= 15, `client timer ${clientTimer}`);
});

Deno.test("--no-keepalive on the server leaves no keepalive on its side only", async () => {
  await using c = await connect(["--no-keepalive"], []);
  assert.equal(keepalive(c.serverOpen).enabled, false);
  assert.equal(keepalive(c.clientOpen).enabled, true);
  assert.equal(await keepAliveTimer(c.server.port, c.clientPort), null);
  const clientTimer = await keepAliveTimer(c.clientPort, c.server.port);
  assert.ok(clientTimer !== null && clientTimer <= 15, `client timer ${clientTimer}`);
});

Deno.test("client --keepalive 30s gives 30/15/9 on the client's socket, the server keeps 15", async () => {
  await using c = await connect([], ["--keepalive", "30s"]);
  assert.deepEqual(
    [
      keepalive(c.clientOpen).idle_s,
      keepalive(c.clientOpen).interval_s,
      keepalive(c.clientOpen).count,
    ],
    [30, 15, 9],
  );
  const clientTimer = await keepAliveTimer(c.clientPort, c.server.port);
  assert.ok(
    clientTimer !== null && clientTimer > 15 && clientTimer <= 30,
    `client timer ${clientTimer}`,
  );
  const serverTimer = await keepAliveTimer(c.server.port, c.clientPort);
  assert.ok(serverTimer !== null && serverTimer <= 15, `server timer ${serverTimer}`);
});
