/**
 * The NAT lab: client, NAT router and server in three fresh network
 * namespaces (`helpers/natlab.ts`), the router forgetting an idle TCP flow
 * after 5 s and dropping what comes for a forgotten one. The server runs
 * with keepalive and heartbeat off, so only the client's settings decide
 * what happens to an idle connection:
 *
 * - TCP keepalive with an idle below the NAT's timeout keeps the flow;
 * - without it the NAT forgets the flow silently (the server never hears a
 *   thing), and only a later send notices: through `--tcp-user-timeout`, or
 *   through the heartbeat's pong timeout;
 * - `--probe-idle` finds the NAT's timeout inside its bracket.
 */

import assert from "node:assert/strict";
import { NatLab, natLabUnavailable } from "./helpers/natlab.ts";
import { notRun } from "./helpers/needs.ts";
import { IP, Program, startServer } from "./helpers/process.ts";
import { sleep, TimeoutError } from "./helpers/wait.ts";

const skip = await natLabUnavailable();

/** The NAT's idle timeout in these tests. */
const NAT_TIMEOUT_S = 5;
/** How long a connection idles: well past the NAT's timeout. */
const IDLE_MS = 8_000;
/** Starting a Deno program on a loaded 2-core machine can take a while. */
const START_MS = 30_000;
/** The server: nothing of its own crosses the NAT while the connection idles. */
const QUIET_SERVER = ["--no-keepalive", "--ping-interval", "0", "--pong-timeout", "0"];

/** Builds a lab, starts the quiet server in it and the client (stdin open) with `clientArgs`. */
async function labWithClient(lab: NatLab, clientArgs: string[]) {
  const server = await startServer(QUIET_SERVER, {
    ns: lab.server.ns,
    host: lab.server.addr,
    timeoutMs: START_MS,
  });
  const client = Program.start(
    "client.ts",
    ["--log-format", "json", "--wait", "60s", ...clientArgs, server.echoUrl],
    { stdin: true, ns: lab.client.ns },
  );
  await client.waitForEvent("open", undefined, { timeoutMs: START_MS });
  await server.proc.waitForEvent("open", undefined, { timeoutMs: START_MS });
  return { server, client };
}

/** The client sends `line`; resolves when the echo is printed. */
async function echo(client: Program, line: string, timeoutMs = 10_000): Promise<void> {
  await client.write(`${line}\n`);
  await client.until(`the echo of "${line}"`, () => client.stdout.includes(`${line}\n`), timeoutMs);
}

Deno.test({
  ...notRun(
    `the lab's router forgets idle TCP flows after ${NAT_TIMEOUT_S} s and adopts no mid-stream packet; ` +
      `the host keeps its own conntrack settings`,
    skip,
  ),
  async fn() {
    const hostTimeout = Deno.readTextFileSync(
      "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established",
    ).trim();
    await using lab = await NatLab.create({ natTimeoutS: NAT_TIMEOUT_S });
    assert.equal(
      await lab.routerSysctl("net.netfilter.nf_conntrack_tcp_timeout_established"),
      NAT_TIMEOUT_S,
    );
    assert.equal(await lab.routerSysctl("net.netfilter.nf_conntrack_tcp_loose"), 0);
    assert.equal(await lab.routerSysctl("net.ipv4.ip_forward"), 1);
    assert.equal(
      Deno.readTextFileSync("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established").trim(),
      hostTimeout,
    );
  },
});

Deno.test({
  ...notRun(
    `keepalive idle 2s (below the NAT's ${NAT_TIMEOUT_S} s) keeps an idle connection through the NAT: ` +
      `after ${IDLE_MS / 1000} s it still echoes`,
    skip,
  ),
  async fn() {
    await using lab = await NatLab.create({ natTimeoutS: NAT_TIMEOUT_S });
    const { server, client } = await labWithClient(lab, [
      "--keepalive-idle",
      "2s",
      "--keepalive-interval",
      "1s",
      "--keepalive-count",
      "3",
    ]);
    await using _server = server;
    await using _client = client;
    await echo(client, "before");
    await sleep(IDLE_MS);
    const flows = await lab.flows();
    if (!flows.startsWith("(conntrack -L")) {
      assert.match(flows, /ESTABLISHED/, "the NAT still tracks the flow");
    }
    await echo(client, "after the idle");
    assert.deepEqual(client.events.filter((e) => e.event === "close"), []);
    assert.deepEqual(server.proc.events.filter((e) => e.event === "close"), []);
  },
});

Deno.test({
  ...notRun(
    `with keepalive off the NAT forgets an idle connection silently; a send after ${
      IDLE_MS / 1000
    } s never arrives and --tcp-user-timeout 3s ends it as user-timeout`,
    skip,
  ),
  async fn() {
    await using lab = await NatLab.create({ natTimeoutS: NAT_TIMEOUT_S });
    const { server, client } = await labWithClient(lab, [
      "--no-keepalive",
      "--tcp-user-timeout",
      "3s",
    ]);
    await using _server = server;
    await using _client = client;
    await echo(client, "before");
    await sleep(IDLE_MS);
    await client.write("into the forgotten flow\n");
    const sentAt = Date.now();
    const close = await client.waitForEvent("close", undefined, { timeoutMs: 20_000 });
    const took = client.arrivedAt(close) - sentAt;
    assert.equal(close.cause, "user-timeout", client.output());
    assert.ok(took >= 2_500 && took <= 10_000, `user-timeout ${took} ms after the send`);
    assert.doesNotMatch(client.stdout, /into the forgotten flow/);
    // Silently: nothing reached the server, which still holds the connection open.
    assert.deepEqual(server.proc.events.filter((e) => e.event === "close"), []);
    assert.equal((await client.wait()).code, 1);
    console.log(`user-timeout ${(took / 1000).toFixed(2)} s after the send`);
  },
});

Deno.test({
  ...notRun(
    `with keepalive off the heartbeat notices the forgotten flow: a ping every 7s (after the NAT's ` +
      `${NAT_TIMEOUT_S} s) gets no pong, and --pong-timeout 9s ends it as pong-timeout`,
    skip,
  ),
  async fn() {
    await using lab = await NatLab.create({ natTimeoutS: NAT_TIMEOUT_S });
    const { server, client } = await labWithClient(lab, [
      "--no-keepalive",
      "--ping-interval",
      "7s",
      "--pong-timeout",
      "9s",
      "--show-pings",
    ]);
    await using _server = server;
    await using _client = client;
    const close = await client.waitForEvent("close", undefined, { timeoutMs: 30_000 });
    assert.equal(close.cause, "pong-timeout", client.output());
    const pings = close.pings as Record<string, number>;
    assert.deepEqual([pings.sent, pings.answered], [1, 0], "the one ping went into the void");
    assert.ok(
      Number(close.duration_ms) >= 8_500 && Number(close.duration_ms) <= 13_000,
      `closed ${close.duration_ms} ms after opening`,
    );
    assert.ok(client.events.some((e) => e.event === "ping" && e.dir === "sent"));
    assert.equal(client.events.filter((e) => e.event === "pong").length, 0);
    // The client's close frame (1011) cannot cross the NAT either.
    assert.deepEqual(server.proc.events.filter((e) => e.event === "close"), []);
    console.log(`pong-timeout ${(Number(close.duration_ms) / 1000).toFixed(2)} s after opening`);
  },
});

/** Runs `client.ts --probe-idle` with `args` in the lab against the quiet server; returns its result. */
async function probeInLab(lab: NatLab, args: string[]) {
  await using server = await startServer(QUIET_SERVER, {
    ns: lab.server.ns,
    host: lab.server.addr,
    timeoutMs: START_MS,
  });
  await using client = Program.start("client.ts", [
    "--probe-idle",
    "--probe-min",
    "1s",
    "--probe-max",
    "16s",
    "--log-format",
    "json",
    ...args,
    server.echoUrl,
  ], { ns: lab.client.ns });
  const exit = await client.wait(90_000);
  assert.equal(exit.code, 0, client.output());
  const lines = exit.stdout.trimEnd().split("\n");
  const result = client.events.find((e) => e.event === "probe");
  assert.ok(result, client.output());
  console.log(lines.join("\n"));
  return {
    lines,
    last: lines.at(-1)!,
    result,
    checks: client.events.filter((e) => e.event === "check"),
  };
}

Deno.test({
  ...notRun(
    `--probe-idle --no-keepalive --probe-min 1s --probe-max 16s finds the NAT's ${NAT_TIMEOUT_S} s ` +
      `inside its bracket, as silence then timeout`,
    skip,
  ),
  async fn() {
    await using lab = await NatLab.create({ natTimeoutS: NAT_TIMEOUT_S });
    const p = await probeInLab(lab, ["--no-keepalive"]);
    assert.equal(p.last, "idle timeout between 4s and 8s (timeout)");
    const { lower_s, upper_s, cause } = p.result as Record<string, number | string>;
    assert.equal(cause, "timeout");
    assert.ok(
      Number(lower_s) < NAT_TIMEOUT_S && NAT_TIMEOUT_S <= Number(upper_s),
      `bracket ${lower_s}–${upper_s} s`,
    );
    assert.match(p.lines[0], /--ping-interval 2s or --keepalive-idle 2s/);
  },
});

Deno.test({
  ...notRun(
    `--probe-idle with keepalive idle 2s finds no idle timeout up to 16s: keepalive as given keeps the NAT's flows`,
    skip,
  ),
  async fn() {
    await using lab = await NatLab.create({ natTimeoutS: NAT_TIMEOUT_S });
    const p = await probeInLab(lab, [
      "--keepalive-idle",
      "2s",
      "--keepalive-interval",
      "1s",
      "--keepalive-count",
      "3",
    ]);
    assert.equal(p.last, "no idle timeout up to 16s");
    assert.match(
      p.lines[0],
      /TCP keepalive \(idle 2s\) was on.*--no-keepalive probes the path itself/,
    );
    assert.deepEqual(p.checks.map((c) => c.result), ["alive", "alive", "alive", "alive", "alive"]);
  },
});

Deno.test({
  ...notRun(`a lab is removed with everything in it, even while a program still runs inside`, skip),
  async fn() {
    const lab = await NatLab.create();
    const names = [lab.client.ns, lab.router.ns, lab.server.ns];
    const server = await startServer(QUIET_SERVER, {
      ns: lab.server.ns,
      host: lab.server.addr,
      timeoutMs: START_MS,
    });
    await lab[Symbol.asyncDispose]();
    const exit = await server.proc.wait(10_000).catch((err) => {
      if (err instanceof TimeoutError) return null;
      throw err;
    });
    assert.ok(exit !== null, "the server in the lab was killed");
    const left = new TextDecoder().decode(
      (await new Deno.Command(IP, { args: ["netns", "list"], stdout: "piped" }).output()).stdout,
    );
    for (const ns of names) assert.ok(!left.includes(ns), `${ns} is still there`);
  },
});

Deno.test({
  ...notRun(
    `deno task natlab runs the client through the lab with the flags after --, and removes the lab`,
    skip,
  ),
  async fn() {
    const before = await netnsList();
    await using tool = Program.spawn(Deno.execPath(), [
      "run",
      "--allow-all",
      "tools/natlab.ts",
      "--nat-timeout",
      "3s",
      "--",
      "--probe-idle",
      "--probe-min",
      "1s",
      "--probe-max",
      "8s",
      "--no-keepalive",
    ]);
    const exit = await tool.wait(60_000);
    assert.equal(exit.code, 0, tool.output());
    assert.equal(
      exit.stdout.trimEnd().split("\n").at(-1),
      "idle timeout between 2s and 4s (timeout)",
    );
    assert.match(exit.stderr, /forgets idle flows after 3s/);
    assert.match(exit.stderr, /^server\| .*event=listening/m);
    assert.deepEqual(await netnsList(), before, "the lab's namespaces are gone");
  },
});

/** The network namespaces that exist now. */
async function netnsList(): Promise<string[]> {
  const out = await new Deno.Command(IP, { args: ["netns", "list"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0])
    .filter((n) => n.startsWith("kwl")).sort();
}
