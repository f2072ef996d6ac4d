/**
 * Honest fast clients, written with libraries this project did not write,
 * against the real server program with default flags: each writes its
 * messages back to back while concurrently reading every echo, which is what
 * a pipelining client does. The server must push back through TCP (stop
 * reading while its send queue is high) rather than fail the client: every
 * echo comes back byte for byte (an 8-byte sequence number, then random or
 * PRNG bytes) and the connection closes cleanly with 1000.
 *
 * Clients (tests/attackers/):
 * - `gorilla/main.go pipeline`: gorilla/websocket from Debian, one writer
 *   goroutine and one reader;
 * - `websockets_pipeline.py`: Python websockets 10.4 from Debian (legacy
 *   asyncio API), with max_size=None (the default is 1 MiB), max_queue=None
 *   and a 4 MiB write_limit so that the client is not the bottleneck.
 *
 * A control test first runs both against gorilla's own echo server, to show
 * the clients themselves deliver every message.
 *
 * Checked for each: the server lives, /healthz answers 200 `ok` during and
 * after, the server's peak RSS stays under 256 MiB (it needs at most a
 * message of 1 MiB plus its send queue's high-water mark; the runtime is
 * about 50 MiB), and the connection ends as peer-close/1000.
 * `KEEPALIVE_WS_STRESS=1` (`deno task stress`) runs 16 times as many messages.
 */

import { type Need, needs } from "./helpers/needs.ts";
import { startServer } from "./helpers/process.ts";
import {
  Checks,
  checkServer,
  describeClose,
  HealthProbe,
  KiB,
  MemoryWatch,
  MiB,
  PeerProcess,
  scaled,
  waitCloseEvent,
} from "./helpers/attack.ts";

/** The server's bound: a message or two and the runtime. */
const RSS_BOUND = 256 * MiB;
/** Bound on one pipelining run (64 MiB takes about a second against gorilla). */
const RUN_TIMEOUT_MS = scaled(60_000, 300_000);

const sanitizers = { sanitizeOps: false, sanitizeResources: false };

/** The two workloads of the issue: large messages, and many small ones. */
const LOADS = [
  { count: scaled(64, 1_024), size: MiB, label: `${scaled(64, 1_024)} × 1 MiB` },
  { count: scaled(20_000, 320_000), size: 4 * KiB, label: `${scaled(20_000, 320_000)} × 4 KiB` },
];

/** Starts a pipelining client of `kind` on `url`. */
function client(
  kind: "gorilla" | "python",
  url: string,
  load: { count: number; size: number },
): Promise<PeerProcess> {
  if (kind === "gorilla") {
    return PeerProcess.gorilla("pipeline", [
      "-url",
      url,
      "-count",
      String(load.count),
      "-size",
      String(load.size),
      "-timeout",
      `${RUN_TIMEOUT_MS}ms`,
    ]);
  }
  return Promise.resolve(
    PeerProcess.python("websockets_pipeline.py", [url, String(load.count), String(load.size)]),
  );
}

/** Runs one client to its end and returns its `done` report (or a failure). */
async function run(peer: PeerProcess): Promise<Record<string, unknown>> {
  const [done] = await peer.waitFor("done", 1, RUN_TIMEOUT_MS + 15_000);
  await peer.wait(10_000);
  return done;
}

/** One line saying what a client saw. */
function describe(d: Record<string, unknown>): string {
  return `${d.received}/${d.sent} echoed, ${d.mismatches} differing (first ${d.first_bad}), ` +
    `closed with ${d.close_code} ${JSON.stringify(d.close_text)}, ` +
    `read error ${JSON.stringify(d.read_error)}, write error ${JSON.stringify(d.write_error)}, ` +
    `${d.ms}ms`;
}

/** What each pipelining client is built or run with. */
const NEEDS: Record<"gorilla" | "python", Need[]> = {
  gorilla: ["go", "gorilla"],
  python: ["python3Websockets"],
};

for (const kind of ["gorilla", "python"] as const) {
  const name = kind === "gorilla" ? "gorilla/websocket" : "Python websockets 10.4";
  for (const load of LOADS) {
    Deno.test({
      ...needs(
        `a ${name} client pipelining ${load.label} gets every echo back and closes with 1000`,
        ...NEEDS[kind],
      ),
      ...sanitizers,
      async fn() {
        await using server = await startServer();
        using watch = new MemoryWatch(server.proc.child.pid, RSS_BOUND);
        const probe = new HealthProbe(server.port);
        const checks = new Checks(`${name}, ${load.label}`);
        await using peer = await client(kind, `ws://127.0.0.1:${server.port}/echo`, load);
        let done: Record<string, unknown> | null = null;
        try {
          done = await run(peer);
        } catch (err) {
          checks.that(false, `the client did not finish: ${err}`);
        }
        if (done) {
          checks.that(
            done.sent === load.count && done.received === load.count && done.mismatches === 0 &&
              done.close_code === 1000,
            `expected all ${load.count} echoes, identical, then close 1000: ${describe(done)}`,
          );
          const ev = await waitCloseEvent(server, String(done.local), 5_000);
          checks.that(
            ev?.cause === "peer-close" && ev.code === 1000 && ev.clean === true,
            `the server should log a clean peer-close/1000, it logged ${describeClose(ev)}` +
              (ev?.reason ? ` "${ev.reason}"` : ""),
          );
          console.log(`  ${name}, ${load.label}: ${describe(done)}`);
        }
        await checkServer(checks, server, watch, RSS_BOUND, probe, `${name}, ${load.label}`);
        checks.done();
      },
    });
  }
}

Deno.test({
  ...needs(
    "control: both pipelining clients get every echo from gorilla's own echo server",
    ...NEEDS.gorilla,
    ...NEEDS.python,
  ),
  ...sanitizers,
  async fn() {
    await using echo = await PeerProcess.gorilla("serve", ["-addr", "127.0.0.1:0"]);
    const [listening] = await echo.waitFor("listening", 1, 15_000);
    const url = `ws://${listening.addr}/echo`;
    const checks = new Checks("control");
    for (const kind of ["gorilla", "python"] as const) {
      for (const load of LOADS) {
        await using peer = await client(kind, url, load);
        try {
          const done = await run(peer);
          checks.that(
            done.received === load.count && done.mismatches === 0 && done.close_code === 1000,
            `${kind}, ${load.label}, against gorilla: ${describe(done)}`,
          );
          console.log(`  ${kind}, ${load.label}, against gorilla: ${describe(done)}`);
        } catch (err) {
          checks.that(false, `${kind}, ${load.label}, against gorilla: ${err}`);
        }
      }
    }
    checks.done();
  },
});
