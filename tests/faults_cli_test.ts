/**
 * Fault injection through the programs, so that users can test their own
 * peers: `--no-pong`, `--freeze-after D`, `--drop-after D` with
 * `--drop-mode fin|rst`, on the server and on the client. Each fault is
 * checked twice: its `fault` event where it fires, and what the other end
 * (our other program) makes of it.
 */

import assert from "node:assert/strict";
import { sleep } from "./helpers/wait.ts";
import {
  hasStackTrace,
  type LogEvent,
  plainLines,
  Program,
  startServer,
} from "./helpers/process.ts";

/** The server's heartbeat off, so only the fault decides. */
const QUIET = ["--ping-interval", "0", "--pong-timeout", "0"];
/** A heartbeat that notices a silent peer in about 1.5 s. */
const HEARTBEAT = ["--ping-interval", "300ms", "--pong-timeout", "1500ms"];

/** A client with stdin open (it stays until told), JSON logs, and `args`. */
function startClient(url: string, args: string[]): Program {
  return Program.start("client.ts", ["--log-format", "json", "--wait", "30s", ...args, url], {
    stdin: true,
  });
}

/** The one `fault` event of `kind`. */
function faultOf(events: LogEvent[], kind: string): LogEvent {
  const f = events.filter((e) => e.event === "fault" && e.fault === kind);
  assert.equal(f.length, 1, JSON.stringify(events));
  return f[0];
}

Deno.test("client --no-pong leaves the server's pings unanswered, logging each; the server's heartbeat ends it as pong-timeout", async () => {
  await using server = await startServer(HEARTBEAT);
  await using client = startClient(server.echoUrl, ["--no-pong"]);
  const close = await server.proc.waitForEvent("close");
  assert.equal(close.cause, "pong-timeout");
  const faults = client.events.filter((e) => e.event === "fault");
  assert.ok(faults.length >= 3, client.output());
  for (const f of faults) assert.equal(f.fault, "no-pong");
  assert.equal((close.pings as Record<string, number>).answered, 0);
});

Deno.test("server --freeze-after 1s: the frozen server keeps TCP open, and only the client's heartbeat notices, as pong-timeout", async () => {
  await using server = await startServer([...QUIET, "--freeze-after", "1s"]);
  await using client = startClient(server.echoUrl, HEARTBEAT);
  await client.write("before\n");
  await client.waitForLines(1);
  const fault = await server.proc.waitForEvent("fault");
  assert.deepEqual([fault.fault, fault.after_ms], ["freeze", 1_000]);
  await client.write("after the freeze\n");
  const exit = await client.wait();
  assert.equal(exit.code, 1);
  const close = client.events.find((e) => e.event === "close")!;
  assert.equal(close.cause, "pong-timeout", client.output());
  assert.equal(client.stdout, "before\n", "nothing echoed once frozen");
  // Frozen, the server reads nothing, not even the client's end: it still holds the socket.
  await sleep(300);
  assert.deepEqual(server.proc.events.filter((e) => e.event === "close"), []);
});

Deno.test("client --freeze-after 500ms: the server's heartbeat ends the connection as pong-timeout, though TCP stays up", async () => {
  await using server = await startServer(HEARTBEAT);
  await using client = startClient(server.echoUrl, ["--freeze-after", "500ms"]);
  const close = await server.proc.waitForEvent("close");
  assert.equal(close.cause, "pong-timeout");
  assert.deepEqual(faultOf(client.events, "freeze").after_ms, 500);
});

Deno.test("server --drop-after with --drop-mode fin or rst ends TCP without a close frame: the client names it eof or reset", async (t) => {
  for (const [mode, cause] of [["fin", "eof"], ["rst", "reset"]] as const) {
    await t.step(`--drop-mode ${mode}`, async () => {
      await using server = await startServer([
        ...QUIET,
        "--drop-after",
        "800ms",
        "--drop-mode",
        mode,
      ]);
      await using client = startClient(server.echoUrl, []);
      const exit = await client.wait();
      assert.equal(exit.code, 1);
      const close = client.events.find((e) => e.event === "close")!;
      assert.deepEqual(
        [close.code, close.cause, close.clean],
        [1006, cause, false],
        client.output(),
      );
      assert.match(String(client.events.at(-1)?.message), new RegExp(`\\b${cause}\\b`));
      // The client may see the RST and exit before the server's log line has come through its pipe.
      const own = await server.proc.waitForEvent("close");
      const fault = faultOf(server.proc.events, "drop");
      assert.deepEqual([fault.mode, fault.after_ms], [mode, 800]);
      assert.equal(own.cause, "local-close");
      assert.match(String(own.error), /dropped by --drop-after 800ms|reset by this side/);
      // The fault is logged before the close it causes.
      assert.ok(server.proc.events.indexOf(fault) < server.proc.events.indexOf(own));
    });
  }
});

Deno.test("client --drop-after 500ms --drop-mode rst resets the connection: the server names it reset, the client exits 1", async () => {
  await using server = await startServer(QUIET);
  await using client = startClient(server.echoUrl, ["--drop-after", "500ms", "--drop-mode", "rst"]);
  const close = await server.proc.waitForEvent("close");
  assert.deepEqual([close.code, close.cause], [1006, "reset"]);
  const exit = await client.wait();
  assert.equal(exit.code, 1);
  const fault = faultOf(client.events, "drop");
  assert.equal(fault.mode, "rst");
  assert.ok(!hasStackTrace(exit.stderr), exit.stderr);
});

Deno.test("fault flags: usage errors exit 2 with one line, on both programs", async (t) => {
  const cases: [string, string[], RegExp][] = [
    ["client", ["--drop-mode", "rst"], /--drop-mode says how --drop-after ends TCP/],
    ["server", ["--drop-after", "1s", "--drop-mode", "hard"], /--drop-mode must be fin or rst/],
    ["server", ["--freeze-after", "soon"], /--freeze-after: invalid duration/],
    ["client", ["--drop-after", "-1s"], /--drop-after must not be negative/],
  ];
  for (const [program, args, message] of cases) {
    await t.step(`${program} ${args.join(" ")}`, async () => {
      await using proc = Program.start(`${program}.ts`, args);
      const exit = await proc.wait();
      assert.equal(exit.code, 2, exit.stderr);
      assert.match(plainLines(exit.stderr)[0], message);
    });
  }
});
