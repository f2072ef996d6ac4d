/**
 * Test servers: an in-process echo server from `startServer` whose log events
 * are captured as objects, or the real `server.ts` program as a subprocess
 * with its JSON log parsed. Both listen on 127.0.0.1 with a free port and are
 * stopped on dispose (`await using`), even when the test fails.
 *
 * ```ts
 * await using server = startTestServer({ maxMessageSize: 1024 });
 * // …connect to server.port…
 * const close = await server.waitFor("close", (e) => e.id === 1);
 * ```
 *
 * @module
 */

import { resolveKeepAlive } from "../../lib/tcp/keepalive.ts";
import { createLogger } from "../../app/log.ts";
import { type EchoOptions, type EchoServer, startServer } from "../../app/echo.ts";

/** One captured log event: `event` plus its fields. */
export interface LogEvent {
  /** The event name: listening, open, close, rejected, error, shutdown, stopped. */
  event: string;
  /** The level: info, warn or error. */
  level: string;
  /** Every other field (id, remote, code, cause…). */
  [field: string]: unknown;
}

/** How long {@linkcode EventLog.waitFor} waits by default (ms). */
export const DEFAULT_EVENT_TIMEOUT_MS = 5_000;

/** Captured log events, with a way to wait for one. */
export class EventLog {
  /** Every event so far, in order. */
  readonly events: LogEvent[] = [];
  #waiters: { match: (e: LogEvent) => boolean; resolve: (e: LogEvent) => void }[] = [];

  /** Records one event and wakes whoever waits for it. */
  push(e: LogEvent): void {
    this.events.push(e);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.match(e)) return true;
      w.resolve(e);
      return false;
    });
  }

  /** Events named `event`, optionally filtered. */
  all(event: string, where: (e: LogEvent) => boolean = () => true): LogEvent[] {
    return this.events.filter((e) => e.event === event && where(e));
  }

  /**
   * Resolves with the first event named `event` that passes `where`, already
   * logged or still to come; rejects after `timeoutMs`.
   */
  waitFor(
    event: string,
    where: (e: LogEvent) => boolean = () => true,
    timeoutMs = DEFAULT_EVENT_TIMEOUT_MS,
  ): Promise<LogEvent> {
    const match = (e: LogEvent) => e.event === event && where(e);
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (e: LogEvent) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no "${event}" event within ${timeoutMs}ms; got: ${this.summary()}`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** The events as one short line each, for failure messages. */
  summary(): string {
    return this.events.map((e) => JSON.stringify(e)).join("\n");
  }
}

/** An in-process server started by {@linkcode startTestServer}. */
export interface TestServer extends AsyncDisposable {
  /** The running server. */
  readonly server: EchoServer;
  /** The bound port on 127.0.0.1. */
  readonly port: number;
  /** `ws://127.0.0.1:PORT/echo`. */
  readonly url: URL;
  /** The captured log events. */
  readonly log: EventLog;
  /** Shorthand for `log.waitFor`. */
  waitFor(
    event: string,
    where?: (e: LogEvent) => boolean,
    timeoutMs?: number,
  ): Promise<LogEvent>;
  /** Fetches `/metrics` and returns the value of one sample line, e.g. `websocket_connections_open`. */
  metric(sample: string): Promise<number>;
}

/**
 * Starts an echo server in this process on 127.0.0.1 and a free port, with
 * Go's keepalive defaults, heartbeat off and a 16 MiB message limit unless
 * `overrides` say otherwise. Its log events are captured in `log`.
 */
export function startTestServer(overrides: Partial<EchoOptions> = {}): TestServer {
  const log = new EventLog();
  const logger = createLogger("json", (line) => log.push(JSON.parse(line)));
  const server = startServer({
    hostname: "127.0.0.1",
    port: 0,
    keepAlive: resolveKeepAlive(),
    userTimeoutMs: 0,
    maxConnections: 0,
    maxMessageSize: 16 * 1024 * 1024,
    handshakeTimeoutMs: 10_000,
    origins: [],
    subprotocols: [],
    pingIntervalMs: 0,
    pongTimeoutMs: 0,
    ...overrides,
    logger,
  });
  const port = Number(server.addr.slice(server.addr.lastIndexOf(":") + 1));
  return {
    server,
    port,
    url: new URL(`ws://127.0.0.1:${port}/echo`),
    log,
    waitFor: (event, where, timeoutMs) => log.waitFor(event, where, timeoutMs),
    metric: (sample) => fetchMetric(port, sample),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** Fetches `/metrics` from 127.0.0.1:`port` and returns one sample's value (NaN if absent). */
export async function fetchMetric(port: number, sample: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  const text = await res.text();
  for (const line of text.split("\n")) {
    const [name, value] = line.split(" ");
    if (name === sample) return Number(value);
  }
  return NaN;
}

/** The `server.ts` program running as a subprocess, from {@linkcode spawnServer}. */
export interface SpawnedServer extends AsyncDisposable {
  /** The child process. */
  readonly child: Deno.ChildProcess;
  /** The bound port on 127.0.0.1. */
  readonly port: number;
  /** `ws://127.0.0.1:PORT/echo`. */
  readonly url: URL;
  /** The JSON log events read from its stderr. */
  readonly log: EventLog;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number>;
}

const SERVER_MAIN = new URL("../../server.ts", import.meta.url).pathname;

/**
 * Runs `server.ts --addr 127.0.0.1:0 --log-format json …args` and resolves
 * once it logs `listening`. Its stderr events are parsed into `log`; its
 * stdout is discarded. Dispose kills it if it still runs.
 */
export async function spawnServer(
  args: string[] = [],
  timeoutMs = 20_000,
): Promise<SpawnedServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-ffi",
      "--allow-read",
      SERVER_MAIN,
      "--addr",
      "127.0.0.1:0",
      "--log-format",
      "json",
      ...args,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = new EventLog();
  const pump = (async () => {
    let rest = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf("\n")) !== -1) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        try {
          log.push(JSON.parse(line));
        } catch {
          log.push({ event: "stderr", level: "info", text: line });
        }
      }
    }
  })();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s.code;
  });
  const kill = async () => {
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
    const code = await status;
    await pump;
    return code;
  };
  let listening: LogEvent;
  try {
    listening = await Promise.race([
      log.waitFor("listening", () => true, timeoutMs),
      status.then((code) => {
        throw new Error(`server.ts exited with ${code} before listening: ${log.summary()}`);
      }),
    ]);
  } catch (err) {
    await kill();
    throw err;
  }
  const addr = String(listening.addr);
  const port = Number(addr.slice(addr.lastIndexOf(":") + 1));
  return {
    child,
    port,
    url: new URL(`ws://127.0.0.1:${port}/echo`),
    log,
    async stop() {
      if (!exited) child.kill("SIGTERM");
      const code = await status;
      await pump;
      return code;
    },
    async [Symbol.asyncDispose]() {
      await kill();
    },
  };
}
