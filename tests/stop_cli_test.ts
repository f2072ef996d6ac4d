/**
 * Stopping the programs the way an operator does, through the README's own
 * commands: SIGTERM to `npx -y deno@X task server` alone (what `docker
 * stop`, systemd and `kill PID` send; npm passes it to its shell, which
 * never passes it on), Ctrl-C (SIGINT to the whole process group) through
 * `deno task` and through npx, and a server detached on purpose under npm
 * (`nohup … &`), which must keep running after npm is gone. Each program
 * leads a process group of its own, so the test sees whether anything is
 * left.
 */

import assert from "node:assert/strict";
import { type CloseInfo, dial } from "../mod.ts";
import { GoingAway, NormalClosure } from "../lib/ws/mod.ts";
import { Group, groupGone, groupMembers, NPX_DENO, runs } from "./helpers/group.ts";
import { type Program, startServer } from "./helpers/process.ts";
import { sleep, waitFor } from "./helpers/wait.ts";

/** What the README promises: a stop within 10 s, 1001 to every client. */
const STOP_MS = 10_000;
/** npx may have to unpack Deno first. */
const START_MS = 90_000;

const NPX = runs("npx");
const NOT_RUN = "NOT RUN: npx is not installed (apt-get install npm): ";

/** `deno task PROGRAM ARGS` through the README's npx, or through this Deno. */
function taskCommand(via: "npx" | "deno task", program: string, args: string[]) {
  return via === "npx"
    ? { command: "npx", args: ["-y", NPX_DENO, "task", program, ...args] }
    : { command: Deno.execPath(), args: ["task", program, ...args] };
}

/** Starts the server through `via` in a group of its own; resolves once it listens. */
async function serverGroup(
  via: "npx" | "deno task",
): Promise<{ group: Group; port: number } & AsyncDisposable> {
  const { command, args } = taskCommand(via, "server", [
    "--addr",
    "127.0.0.1:0",
    "--log-format",
    "json",
  ]);
  const group = Group.start(command, args, { env: { NO_COLOR: "1" } });
  try {
    const listening = await group.proc.waitForEvent("listening", undefined, {
      timeoutMs: START_MS,
    });
    return {
      group,
      port: Number(String(listening.addr).split(":").pop()),
      [Symbol.asyncDispose]: () => group[Symbol.asyncDispose](),
    };
  } catch (err) {
    await group[Symbol.asyncDispose]();
    throw err;
  }
}

/** Opens `n` WebSocket clients to the echo server on `port`; resolves with their close infos' promises. */
async function holdClients(port: number, n: number): Promise<Promise<CloseInfo>[]> {
  const clients = await Promise.all(
    Array.from({ length: n }, () => dial(`ws://127.0.0.1:${port}/echo`)),
  );
  return clients.map((ws) => ws.closed);
}

/** The leader's exit code, and when it came. */
async function leaderExit(proc: Program): Promise<{ code: number; at: number }> {
  const status = await proc.child.status;
  return { code: status.code, at: Date.now() };
}

function npxTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name: NPX ? name : NOT_RUN + name, ignore: !NPX, fn });
}

npxTest(
  "SIGTERM to the npx server process alone stops the server within 10 s: every client gets 1001 and nothing is left",
  async () => {
    await using server = await serverGroup("npx");
    const { group } = server;
    const before = groupMembers(group.pgid).map((m) => m.cmd);
    assert.ok(before.some((c) => c.startsWith("npm exec")), JSON.stringify(before));
    assert.ok(before.some((c) => /server\.ts/.test(c)), JSON.stringify(before));
    const closes = await holdClients(server.port, 2);
    const sent = Date.now();
    group.killLeader("SIGTERM");
    const infos = await waitFor(Promise.all(closes), "both clients' close", STOP_MS);
    for (const info of infos) {
      assert.equal(info.code, GoingAway, JSON.stringify(info));
      assert.ok(info.clean, JSON.stringify(info));
    }
    await groupGone(group.pgid, STOP_MS - (Date.now() - sent));
    const shutdown = await group.proc.waitForEvent("shutdown");
    assert.equal(shutdown.signal, "launcher-gone");
    assert.match(
      String(shutdown.message),
      /npm exec .*\(pid \d+\), which started this program, is gone/,
    );
    await group.proc.waitForEvent("stopped");
  },
);

npxTest(
  "SIGTERM to an npx client process alone closes its connection with 1000, and nothing is left",
  async () => {
    await using server = await startServer(["--ping-interval", "0", "--pong-timeout", "0"]);
    const { command, args } = taskCommand("npx", "client", [
      "--wait",
      "forever",
      "--log-format",
      "json",
      server.echoUrl,
    ]);
    await using group = Group.start(command, args, { env: { NO_COLOR: "1" } });
    await group.proc.waitForEvent("open", undefined, { timeoutMs: START_MS });
    await server.proc.waitForEvent("open");
    const sent = Date.now();
    group.killLeader("SIGTERM");
    const close = await server.proc.waitForEvent("close", undefined, { timeoutMs: STOP_MS });
    assert.equal(close.code, NormalClosure, JSON.stringify(close));
    assert.equal(close.clean, true);
    await groupGone(group.pgid, STOP_MS - (Date.now() - sent));
  },
);

/** How Ctrl-C ends each way of starting a program, as the docs state it. */
const CTRL_C = [
  { via: "deno task", code: 0 },
  { via: "npx", code: 130 },
] as const;

for (const { via, code } of CTRL_C) {
  const name = `Ctrl-C (SIGINT to the process group) drains the server started by ${via}, which ` +
    `exits ${code}${via === "npx" ? " (128 + SIGINT, from the shell npm runs)" : ""} once done`;
  const fn = async () => {
    await using server = await serverGroup(via);
    const { group } = server;
    const closes = await holdClients(server.port, 1);
    group.killGroup("SIGINT");
    const [info] = await waitFor(Promise.all(closes), "the client's close", STOP_MS);
    assert.equal(info.code, GoingAway);
    const exit = await waitFor(leaderExit(group.proc), `${via} to exit`, STOP_MS);
    assert.equal(exit.code, code, group.proc.output());
    const stopped = await group.proc.waitForEvent("stopped");
    assert.ok(group.proc.arrivedAt(stopped) <= exit.at, "exited before the server had drained");
    await groupGone(group.pgid, STOP_MS);
  };
  if (via === "npx") npxTest(name, fn);
  else Deno.test(name, fn);
}

for (const { via, code } of CTRL_C) {
  const name =
    `Ctrl-C to a client on a pipe started by ${via} closes with 1000; ${via} exits ${code}`;
  const fn = async () => {
    await using server = await startServer(["--ping-interval", "0", "--pong-timeout", "0"]);
    const { command, args } = taskCommand(via, "client", [
      "--wait",
      "forever",
      "--log-format",
      "json",
      server.echoUrl,
    ]);
    await using group = Group.start(command, args, { env: { NO_COLOR: "1" } });
    await group.proc.waitForEvent("open", undefined, { timeoutMs: START_MS });
    group.killGroup("SIGINT");
    const close = await server.proc.waitForEvent("close", undefined, { timeoutMs: STOP_MS });
    assert.equal(close.code, NormalClosure, JSON.stringify(close));
    const exit = await waitFor(leaderExit(group.proc), `${via} to exit`, STOP_MS);
    assert.equal(exit.code, code, group.proc.output());
    await groupGone(group.pgid, STOP_MS);
  };
  if (via === "npx") npxTest(name, fn);
  else Deno.test(name, fn);
}

npxTest(
  "a server detached on purpose under npm (nohup … &) keeps serving after npm is gone",
  async () => {
    const log = await Deno.makeTempFile({ suffix: ".log" });
    const deno = Deno.execPath();
    const script =
      // What nohup does (SIGHUP ignored, inherited across exec), in the shell itself: a machine
      // with only Node.js and npm may have no nohup.
      `(trap '' HUP; exec '${deno}' task server --addr 127.0.0.1:0 --log-format json) > '${log}' 2>&1 &`;
    await using group = Group.start("npm", ["exec", "-c", script]);
    try {
      const exit = await waitFor(leaderExit(group.proc), "npm exec -c to return", START_MS);
      assert.equal(exit.code, 0, group.proc.output());
      const listening = await waitFor(
        () =>
          Deno.readTextFileSync(log).split("\n").filter((l) => l.startsWith("{"))
            .map((l) => JSON.parse(l)).find((e) => e.event === "listening"),
        "the detached server's listening event",
        START_MS,
      );
      // Three of the launcher watch's polls.
      await sleep(3_000);
      const res = await fetch(`http://${listening.addr}/healthz`);
      assert.equal(await res.text(), "ok\n");
      assert.doesNotMatch(Deno.readTextFileSync(log), /"event":"shutdown"/);
      group.killGroup("SIGTERM");
      await groupGone(group.pgid, STOP_MS);
      assert.match(Deno.readTextFileSync(log), /"event":"shutdown","signal":"SIGTERM"/);
    } finally {
      await Deno.remove(log);
    }
  },
);
