/**
 * An in-process echo server for tests, built the way `server.ts` builds its
 * own, whose log events are captured as {@linkcode LogEvent}s. It listens on
 * 127.0.0.1 and a free port and is shut down on dispose (`await using`), even
 * when the test fails. For the `server.ts` program itself, see
 * {@linkcode ./process.ts}'s `startServer`.
 *
 * ```ts
 * await using server = startTestServer({ maxMessageSize: 1024 });
 * // …connect to server.port…
 * const close = await server.waitForEvent("close", (e) => e.id === 1);
 * ```
 *
 * @module
 */

import { resolveKeepAlive } from "../../lib/tcp/keepalive.ts";
import { createLogger } from "../../app/common/log.ts";
import { type EchoOptions, type EchoServer, startServer } from "../../app/server/echo.ts";
import { EventLog, type LogEvent, type WaitForEventOptions } from "./log.ts";

export type { LogEvent } from "./log.ts";

/** How long a wait for an event of the in-process server lasts by default (ms). */
export const DEFAULT_EVENT_TIMEOUT_MS = 5_000;

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
  /** The captured events so far (`log.events`). */
  readonly events: LogEvent[];
  /** Waits for the `nth` event named `event` that passes `where`, as {@linkcode EventLog.waitForEvent}. */
  waitForEvent(
    event: string,
    where?: (e: LogEvent) => boolean,
    options?: WaitForEventOptions,
  ): Promise<LogEvent>;
  /** Fetches `/metrics` and returns the value of one sample line, e.g. `keepalive_ws_connections_open`. */
  metric(sample: string): Promise<number>;
}

/**
 * Starts an echo server in this process on 127.0.0.1 and a free port, with
 * Go's keepalive defaults, heartbeat off and a 16 MiB message limit unless
 * `overrides` say otherwise (`serve()`'s option names). Its log events are
 * captured in `log`.
 */
export function startTestServer(overrides: Partial<EchoOptions> = {}): TestServer {
  const log = new EventLog({ timeoutMs: DEFAULT_EVENT_TIMEOUT_MS });
  const logger = createLogger("json", (line) => log.push(JSON.parse(line)));
  const server = startServer({
    hostname: "127.0.0.1",
    port: 0,
    keepAlive: resolveKeepAlive(),
    maxConnections: 0,
    maxMessageSize: 16 * 1024 * 1024,
    handshakeTimeout: 10_000,
    origins: [],
    protocols: [],
    pingInterval: 0,
    pongTimeout: 0,
    ...overrides,
    logger,
  });
  const port = Number(server.addr.slice(server.addr.lastIndexOf(":") + 1));
  return {
    server,
    port,
    url: new URL(`ws://127.0.0.1:${port}/echo`),
    log,
    events: log.events,
    waitForEvent: (event, where, options) => log.waitForEvent(event, where, options),
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
