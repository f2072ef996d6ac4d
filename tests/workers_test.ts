/**
 * `server.ts --workers N`: N processes share one port through SO_REUSEPORT,
 * `/metrics` answers for all of them, SIGTERM drains them all, a worker that
 * dies is restarted, and workers never outlive their supervisor. Every test
 * drives the real program (with `deno task server`'s permissions) and reads
 * its JSON log; the WebSocket clients are Deno's built-in ones, an
 * independent peer.
 */

import assert from "node:assert/strict";
import { type LogEvent, Program, type ServerProcess, startServer } from "./helpers/process.ts";
import { waitFor } from "./helpers/wait.ts";

/**
 * Connections opened per test. SO_REUSEPORT picks the worker by a hash of the
 * 4-tuple, so each lands on a given one of 2 workers with probability 1/2: all
 * 24 on one worker happens once in 2^23 runs.
 */
const CONNECTIONS = 24;

/** A server with workers; dispose also kills any worker still running, so none outlives a failed test. */
interface WorkerServer extends AsyncDisposable {
  server: ServerProcess;
  /** The supervisor's `workers` event: count, port, pids. */
  started: LogEvent;
}

async function startWorkers(count: number, args: string[] = []): Promise<WorkerServer> {
  const server = await startServer(["--workers", String(count), ...args]);
  const dispose = async () => {
    for (const e of server.proc.events) {
      if (e.event === "listening" && typeof e.pid === "number") killQuietly(e.pid);
    }
    await server[Symbol.asyncDispose]();
  };
  try {
    const started = await server.proc.waitForEvent("workers");
    return { server, started, [Symbol.asyncDispose]: dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}

function killQuietly(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  } catch {
    return false;
  }
}

/** A built-in WebSocket client that remembers how it was closed. */
interface Client extends Disposable {
  ws: WebSocket;
  closed: Promise<CloseEvent>;
  /** Sends `text` and resolves with the next message. */
  echo(text: string): Promise<string>;
}

async function connect(url: string): Promise<Client> {
  const ws = new WebSocket(url);
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve));
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve(), { once: true });
    ws.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)), {
      once: true,
    });
  });
  return {
    ws,
    closed,
    echo(text) {
      const reply = new Promise<string>((resolve) =>
        ws.addEventListener("message", (e) => resolve(String(e.data)), { once: true })
      );
      ws.send(text);
      return reply;
    },
    [Symbol.dispose]() {
      if (ws.readyState !== WebSocket.CLOSED) ws.close();
    },
  };
}

/** Opens `n` connections at once and checks each echoes. */
async function connectMany(url: string, n: number): Promise<Client[] & Disposable> {
  const settled = await waitFor(
    Promise.allSettled(Array.from({ length: n }, () => connect(url))),
    `${n} connections`,
  );
  const clients = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
  const all = Object.assign(clients, {
    [Symbol.dispose]() {
      for (const c of clients) c[Symbol.dispose]();
    },
  });
  const failed = settled.find((s) => s.status === "rejected");
  if (failed) {
    all[Symbol.dispose]();
    throw (failed as PromiseRejectedResult).reason;
  }
  const replies = await waitFor(
    Promise.all(clients.map((c, i) => c.echo(`hello ${i}`))),
    "echo on every connection",
  ).catch((err) => {
    all[Symbol.dispose]();
    throw err;
  });
  assert.deepEqual(replies, clients.map((_, i) => `hello ${i}`));
  return all;
}

/** How many `open` events each pid logged. */
function opensByPid(proc: Program): Map<number, number> {
  const by = new Map<number, number>();
  for (const e of proc.events) {
    if (e.event === "open") by.set(Number(e.pid), (by.get(Number(e.pid)) ?? 0) + 1);
  }
  return by;
}

/** Fetches /metrics and returns one unlabelled sample's value. */
async function metric(httpUrl: string, name: string): Promise<number> {
  const res = await fetch(`${httpUrl}/metrics`);
  assert.equal(res.status, 200);
  const line = (await res.text()).split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `no ${name} in /metrics`);
  return Number(line.split(" ")[1]);
}

Deno.test("server --workers 2: connections land on both workers, each with Go's keepalive, and one /metrics counts them all whichever worker answers", async () => {
  await using w = await startWorkers(2);
  const { server, started } = w;
  const pids = started.pids as number[];
  assert.equal(pids.length, 2);
  assert.notEqual(pids[0], pids[1]);
  assert.deepEqual(
    server.proc.events.filter((e) => e.event === "listening").map((e) => [e.worker, e.pid]),
    [[0, pids[0]], [1, pids[1]]],
  );

  using _clients = await connectMany(server.echoUrl, CONNECTIONS);
  await server.proc.waitForEvent("open", () => true, { nth: CONNECTIONS });
  const opens = opensByPid(server.proc);
  assert.deepEqual([...opens.keys()].sort(), [...pids].sort(), "every worker took connections");
  for (const e of server.proc.events.filter((e) => e.event === "open")) {
    assert.deepEqual(e.keepalive, {
      enabled: true,
      idle_s: 15,
      interval_s: 15,
      count: 9,
      verified: true,
    });
    assert.equal(e.worker, pids.indexOf(Number(e.pid)));
  }
  // Each worker alone holds fewer than all; so a total of all proves the answer adds them up.
  for (const n of opens.values()) assert.ok(n < CONNECTIONS);
  // Each scrape is a new TCP connection, hashed to either worker.
  for (let i = 0; i < 8; i++) {
    assert.equal(
      await metric(server.httpUrl, "keepalive_ws_connections_accepted_total"),
      CONNECTIONS,
    );
    assert.equal(await metric(server.httpUrl, "keepalive_ws_connections_open"), CONNECTIONS);
  }
});

Deno.test("server --workers 2 on SIGTERM closes every client of every worker with 1001 and exits 0", async () => {
  await using w = await startWorkers(2);
  const { server, started } = w;
  const pids = started.pids as number[];
  using clients = await connectMany(server.echoUrl, CONNECTIONS);
  await server.proc.waitForEvent("open", () => true, { nth: CONNECTIONS });
  assert.equal(opensByPid(server.proc).size, 2, "both workers had clients");

  server.proc.kill("SIGTERM");
  const codes = await waitFor(
    Promise.all(clients.map((c) => c.closed.then((e) => e.code))),
    "close of every client",
  );
  assert.deepEqual(codes, Array(CONNECTIONS).fill(1001));
  const exit = await server.proc.wait();
  assert.equal(exit.code, 0, exit.stderr);

  const events = server.proc.events;
  const closes = events.filter((e) => e.event === "close");
  assert.equal(closes.length, CONNECTIONS);
  for (const c of closes) {
    assert.equal(c.code, 1001);
    assert.equal(c.cause, "shutdown");
  }
  for (const [index, pid] of pids.entries()) {
    assert.ok(events.some((e) => e.event === "shutdown" && e.pid === pid && e.worker === index));
    assert.ok(events.some((e) => e.event === "stopped" && e.pid === pid && e.worker === index));
    assert.ok(!alive(pid), `worker ${pid} still runs`);
  }
  const shutdown = events.find((e) => e.event === "shutdown" && e.pid === undefined);
  assert.equal(shutdown?.signal, "SIGTERM");
  assert.equal(events.at(-1)?.event, "stopped", "the supervisor stops last");
});

Deno.test("server --workers 2 restarts a worker killed with SIGKILL, says so, and keeps serving on both", async () => {
  await using w = await startWorkers(2);
  const { server, started } = w;
  const [victim, survivor] = started.pids as number[];
  Deno.kill(victim, "SIGKILL");

  const error = await server.proc.waitForEvent("error", (e) => e.pid === victim);
  assert.equal(error.worker, 0);
  assert.match(String(error.message), /killed by SIGKILL; restarting it/);
  const again = await server.proc.waitForEvent("listening", (e) => e.worker === 0, { nth: 2 });
  const replacement = Number(again.pid);
  assert.ok(![victim, survivor].includes(replacement));
  assert.ok(!alive(victim));

  using _clients = await connectMany(server.echoUrl, CONNECTIONS);
  await server.proc.waitForEvent("open", () => true, { nth: CONNECTIONS });
  assert.deepEqual([...opensByPid(server.proc).keys()].sort(), [replacement, survivor].sort());
  // The killed worker accepted nothing; the total counts what the live ones accepted.
  assert.equal(
    await metric(server.httpUrl, "keepalive_ws_connections_accepted_total"),
    CONNECTIONS,
  );

  server.proc.kill("SIGTERM");
  const exit = await server.proc.wait();
  assert.equal(exit.code, 0, exit.stderr);
});

/** Every sample of /metrics by series (`name{labels}`), and the type of each family. */
async function scrapeAll(
  httpUrl: string,
): Promise<{ values: Map<string, number>; types: Map<string, string> }> {
  const res = await fetch(`${httpUrl}/metrics`);
  assert.equal(res.status, 200);
  const values = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of (await res.text()).split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1], type[2]);
    else if (line !== "" && !line.startsWith("#")) {
      const at = line.lastIndexOf(" ");
      values.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
  }
  return { values, types };
}

/** The type of the family a series belongs to (a histogram's `_bucket`, `_sum`, `_count` too). */
function typeOf(series: string, types: Map<string, string>): string | undefined {
  const name = series.replace(/\{.*$/, "");
  return types.get(name) ?? types.get(name.replace(/_(bucket|sum|count)$/, ""));
}

Deno.test("server --workers 2: a worker's restart does not make totals go backwards; its open connections count as closed (worker-exit)", async () => {
  await using w = await startWorkers(2);
  const { server, started } = w;
  const victim = (started.pids as number[])[0];
  using _clients = await connectMany(server.echoUrl, CONNECTIONS);
  await server.proc.waitForEvent("open", () => true, { nth: CONNECTIONS });
  const onVictim = opensByPid(server.proc).get(victim) ?? 0;
  assert.ok(onVictim > 0 && onVictim < CONNECTIONS, "both workers had clients");
  const P = "keepalive_ws_";
  const before = await scrapeAll(server.httpUrl);
  assert.equal(before.values.get(`${P}connections_accepted_total`), CONNECTIONS);
  assert.equal(before.values.get(`${P}received_messages_total`), CONNECTIONS);

  Deno.kill(victim, "SIGKILL");
  await server.proc.waitForEvent("listening", (e) => e.worker === 0, { nth: 2 });

  // Each scrape is a new TCP connection, hashed to either worker, the new one included.
  for (let i = 0; i < 8; i++) {
    const after = await scrapeAll(server.httpUrl);
    const get = (series: string) => after.values.get(P + series);
    for (const [series, was] of before.values) {
      const type = typeOf(series, before.types);
      if (type !== "counter" && type !== "histogram") continue;
      const now = after.values.get(series);
      assert.ok(now !== undefined && now >= was, `${series} went from ${was} to ${now}`);
    }
    assert.equal(get("connections_accepted_total"), CONNECTIONS);
    assert.equal(get("received_messages_total"), CONNECTIONS);
    assert.equal(get("sent_messages_total"), CONNECTIONS);
    assert.equal(get("received_bytes_total"), before.values.get(`${P}received_bytes_total`));
    // The dead worker's connections ended with it; open = accepted − closed still holds.
    assert.equal(get('connections_closed_total{cause="worker-exit"}'), onVictim);
    assert.equal(get("connections_open"), CONNECTIONS - onVictim);
    let closed = 0;
    for (const [series, n] of after.values) {
      if (series.startsWith(`${P}connections_closed_total{`)) closed += n;
    }
    assert.equal(get("connections_open"), CONNECTIONS - closed);
  }
});

Deno.test("server --workers 2: when the supervisor is killed with SIGKILL its workers close their clients with 1001 and exit", async () => {
  await using w = await startWorkers(2);
  const { server, started } = w;
  const pids = started.pids as number[];
  using clients = await connectMany(server.echoUrl, CONNECTIONS);
  await server.proc.waitForEvent("open", () => true, { nth: CONNECTIONS });

  server.proc.kill("SIGKILL");
  const codes = await waitFor(
    Promise.all(clients.map((c) => c.closed.then((e) => e.code))),
    "close of every client",
  );
  assert.deepEqual(codes, Array(CONNECTIONS).fill(1001));
  // The workers share the supervisor's stderr: it ends when the last of them exits.
  await server.proc.wait();
  for (const [index, pid] of pids.entries()) {
    const shutdown = server.proc.events.find((e) => e.event === "shutdown" && e.pid === pid);
    assert.equal(shutdown?.worker, index);
    assert.equal(shutdown?.signal, "supervisor-gone");
    assert.ok(!alive(pid), `worker ${pid} outlived its supervisor`);
  }
});

Deno.test("server --workers with 0, 257 or a word exits 2 with one line naming the flag", async (t) => {
  for (const value of ["0", "257", "x", "-1"]) {
    await t.step(`--workers ${value}`, async () => {
      await using proc = Program.start("server.ts", ["--workers", value, "--addr", "127.0.0.1:0"]);
      const exit = await proc.wait();
      assert.equal(exit.code, 2, exit.stderr);
      assert.match(exit.stderr, /^server: --workers takes a number from 1 to 256 or auto, got "/);
      assert.ok(exit.stderr.includes(`got "${value}"`));
    });
  }
});
