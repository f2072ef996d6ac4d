/**
 * The server's counters, rendered in the Prometheus text exposition format
 * (version 0.0.4) for `/metrics`, named by Prometheus' naming guide
 * (https://prometheus.io/docs/practices/naming/): one prefix,
 * `keepalive_ws_`; base units (seconds, bytes) named as a suffix; `_total`
 * on counters and only on counters; labels that are dimensions (a cause, a
 * status), never a state.
 *
 * The WebSocket counters obey **open = accepted − closed** (closed summed over
 * every cause): a connection is counted as accepted when it is upgraded and as
 * closed once, when it ends. A request that never became a WebSocket (its head
 * did not come in time, or could not be read) is a dropped request, not a
 * closed connection.
 *
 * @module
 */

import { CLOSE_CAUSES, type SocketOptions, type Traffic } from "../../mod.ts";
import { VERSION } from "../common/version.ts";
import { Exposition } from "./exposition.ts";

/** The one prefix of every metric name. */
export const METRIC_PREFIX = "keepalive_ws_";

/**
 * Upper bounds (seconds) of the connection-duration histogram's buckets: from
 * 0.1 s (a connection refused or cut at once) to a day (a long-lived client),
 * about ×3–5 apart, so a few buckets show the whole range.
 */
export const DURATION_BUCKETS_S: readonly number[] = [
  0.1,
  0.5,
  1,
  5,
  15,
  60,
  300,
  900,
  3_600,
  14_400,
  43_200,
  86_400,
];

/**
 * Upper bounds (seconds) of the ping round-trip histogram's buckets: from
 * 1 ms (the resolution of the connection's clock; a LAN or loopback answers
 * within it) to 10 s (a path about to time out), about ×2–2.5 apart.
 */
export const RTT_BUCKETS_S: readonly number[] = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/**
 * The close causes listed (at 0) from the start. `handshake-timeout` and
 * `tls-handshake` are not: on the server they end a request before any
 * WebSocket exists, and are counted in {@linkcode Metrics.dropped}.
 */
export const SERVER_CLOSE_CAUSES: readonly string[] = CLOSE_CAUSES.filter((c) =>
  c !== "handshake-timeout" && c !== "tls-handshake"
);

/**
 * The close cause a supervisor gives the connections that were open in a
 * worker when it died: the process is gone, and its sockets with it.
 */
export const WORKER_EXIT_CAUSE = "worker-exit";

/**
 * Why a request was dropped before the handler saw it: no head in time, a
 * head that could not be read (neither answered), or a client certificate
 * refused (`--tls-client-ca`; answered 403).
 */
export const DROP_REASONS = ["handshake-timeout", "read-error", "tls-handshake"] as const;

/** One of {@linkcode DROP_REASONS}. */
export type DropReason = typeof DROP_REASONS[number];

/** What `/metrics` shows of a memory budget (the library's `MemoryBudget` fits). */
export interface BudgetView {
  /** The most bytes the connections may hold together. */
  readonly limit: number;
  /** The bytes they hold now. */
  readonly used: number;
  /** Connections evicted so far. */
  readonly evictions: number;
}

/** A Prometheus histogram: counts per bucket (not cumulative; the last is +Inf), sum and count. */
export class Histogram {
  /** The buckets' upper bounds, without +Inf. */
  readonly bounds: readonly number[];
  /** Observations per bucket, one more than `bounds` (the last is above every bound). */
  readonly counts: number[];
  /** The sum of all observations. */
  sum = 0;
  /** How many observations. */
  count = 0;

  /** An empty histogram with these upper bounds (ascending). */
  constructor(bounds: readonly number[] = DURATION_BUCKETS_S) {
    this.bounds = bounds;
    this.counts = new Array(bounds.length + 1).fill(0);
  }

  /** Records one observation. */
  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }

  /** Adds another histogram's observations (same bounds) to this one. */
  add(other: { counts: number[]; sum: number; count: number }): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += other.counts[i] ?? 0;
    this.sum += other.sum;
    this.count += other.count;
  }
}

/** Everything `/metrics` reports; one instance per server process (or a sum of workers'). */
export class Metrics {
  /** WebSocket connections open now. */
  open = 0;
  /** WebSocket connections accepted (upgraded) since start. */
  accepted = 0;
  /** Traffic of the connections that have closed. */
  readonly closedTraffic: Traffic = { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0 };
  /** The traffic of the connections open now, added up on demand. */
  openTraffic: (() => Traffic) | null = null;
  /** WebSocket closes by cause. */
  readonly closes = new Map<string, number>(SERVER_CLOSE_CAUSES.map((c) => [c, 0]));
  /** How long the closed WebSocket connections lasted, in seconds. */
  readonly durations = new Histogram();
  /** Round trips of the pings the server sent that were answered, in seconds. */
  readonly pingRtts = new Histogram(RTT_BUCKETS_S);
  /** Refused upgrades and plain requests, by HTTP status. */
  readonly refusals = new Map<number, number>();
  /** Requests ended without an answer, by reason. */
  readonly drops = new Map<string, number>(DROP_REASONS.map((r) => [r, 0]));
  /** The keepalive policy in force, as read back from a socket (or the kernel's). */
  keepalive: SocketOptions | null = null;
  /** The server-wide memory budget, read when rendering. */
  budget: BudgetView | null = null;

  /** Adds `t` to the closed connections' traffic. */
  addTraffic(t: Traffic): void {
    const c = this.closedTraffic;
    c.messagesIn += t.messagesIn;
    c.bytesIn += t.bytesIn;
    c.messagesOut += t.messagesOut;
    c.bytesOut += t.bytesOut;
  }

  /** All traffic so far: the closed connections' and the open ones'. */
  totalTraffic(): Traffic {
    const total = { ...this.closedTraffic };
    const open = this.openTraffic?.();
    if (open) {
      total.messagesIn += open.messagesIn;
      total.bytesIn += open.bytesIn;
      total.messagesOut += open.messagesOut;
      total.bytesOut += open.bytesOut;
    }
    return total;
  }

  /** Counts an upgrade: one more accepted and one more open. */
  opened(): void {
    this.accepted++;
    this.open++;
  }

  /** Counts the end of an open WebSocket: one fewer open, one more closed with `cause`. */
  closed(cause: string, durationS?: number): void {
    this.open--;
    this.closes.set(cause, (this.closes.get(cause) ?? 0) + 1);
    if (durationS !== undefined) this.durations.observe(durationS);
  }

  /** Records the round trip of one answered ping, in ms. */
  pingAnswered(rttMs: number): void {
    this.pingRtts.observe(rttMs / 1000);
  }

  /** Counts a refusal with HTTP `status`. */
  refused(status: number): void {
    this.refusals.set(status, (this.refusals.get(status) ?? 0) + 1);
  }

  /** Counts a request dropped without an answer. */
  dropped(reason: DropReason): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  /** Renders every metric as Prometheus text. */
  render(): string {
    const x = new Exposition(METRIC_PREFIX);
    x.family("build_info", "gauge", "Always 1; the labels say which build runs.", [
      [{ version: VERSION, deno: Deno.version.deno }, 1],
    ]);
    this.#renderConnections(x);
    this.#renderTraffic(x);
    this.#renderRequests(x);
    if (this.budget) renderBudget(x, this.budget);
    if (this.keepalive) renderKeepAlive(x, this.keepalive);
    return x.text();
  }

  #renderConnections(x: Exposition): void {
    x.one("connections_open", "gauge", "WebSocket connections open now.", this.open);
    x.one(
      "connections_accepted_total",
      "counter",
      "WebSocket upgrades accepted. Open = accepted - closed (all causes).",
      this.accepted,
    );
    x.family(
      "connections_closed_total",
      "counter",
      "WebSocket connections closed, by cause.",
      [...this.closes].map(([cause, n]) => [{ cause }, n]),
    );
    x.histogram(
      "connection_duration_seconds",
      "How long closed WebSocket connections lasted, from upgrade to close.",
      this.durations,
    );
    x.histogram(
      "ping_rtt_seconds",
      "Round trip of the server's pings, from sending a ping to its pong (1 ms resolution).",
      this.pingRtts,
    );
  }

  #renderTraffic(x: Exposition): void {
    const t = this.totalTraffic();
    x.one("received_messages_total", "counter", "WebSocket messages received.", t.messagesIn);
    x.one("sent_messages_total", "counter", "WebSocket messages sent.", t.messagesOut);
    x.one(
      "received_bytes_total",
      "counter",
      "Payload bytes of the WebSocket messages received.",
      t.bytesIn,
    );
    x.one(
      "sent_bytes_total",
      "counter",
      "Payload bytes of the WebSocket messages sent.",
      t.bytesOut,
    );
  }

  #renderRequests(x: Exposition): void {
    x.family(
      "http_requests_refused_total",
      "counter",
      "Upgrades and plain requests refused, by HTTP status.",
      [...this.refusals].sort((a, b) => a[0] - b[0]).map(([status, n]) => [{ status }, n]),
    );
    x.family(
      "http_requests_dropped_total",
      "counter",
      "Requests closed without an answer, by reason: no head within the handshake timeout, " +
        "or the head could not be read.",
      [...this.drops].map(([reason, n]) => [{ reason }, n]),
    );
  }
}

/** The memory budget's gauges and its evictions. */
function renderBudget(x: Exposition, budget: BudgetView): void {
  x.one(
    "memory_budget_bytes",
    "gauge",
    "The memory budget: the most bytes all connections may hold together.",
    budget.limit,
  );
  x.one(
    "memory_held_bytes",
    "gauge",
    "Bytes the connections hold now in buffers, partial messages and send queues.",
    budget.used,
  );
  x.one(
    "memory_evictions_total",
    "counter",
    "Connections closed (1013) because the memory budget ran out.",
    budget.evictions,
  );
}

/** The keepalive in force on accepted sockets, as read back. */
function renderKeepAlive(x: Exposition, ka: SocketOptions): void {
  const secs = (ms: number | null) => ms === null ? null : ms / 1000;
  x.one(
    "tcp_keepalive_enabled",
    "gauge",
    "1 when SO_KEEPALIVE is on for accepted connections.",
    ka.keepAlive ? 1 : 0,
  );
  x.one(
    "tcp_keepalive_verified",
    "gauge",
    "1 when the keepalive values shown were read back from the socket; 0 when they are " +
      "what was asked for or unknown.",
    ka.verified ? 1 : 0,
  );
  x.one("tcp_keepalive_idle_seconds", "gauge", "TCP_KEEPIDLE in force.", secs(ka.idle));
  x.one("tcp_keepalive_interval_seconds", "gauge", "TCP_KEEPINTVL in force.", secs(ka.interval));
  x.one("tcp_keepalive_probes", "gauge", "TCP_KEEPCNT in force.", ka.count);
  x.one(
    "tcp_user_timeout_seconds",
    "gauge",
    "TCP_USER_TIMEOUT in force (0 = the kernel's default behaviour).",
    secs(ka.userTimeout),
  );
}
