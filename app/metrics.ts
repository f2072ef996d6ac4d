/**
 * The server's counters, rendered in the Prometheus text exposition format
 * (version 0.0.4) for `/metrics`.
 *
 * @module
 */

import { CLOSE_CAUSES, type CloseCause, type SocketOptions, type Traffic } from "../mod.ts";

/** Everything `/metrics` reports; one instance per server process. */
export class Metrics {
  /** WebSocket connections open now. */
  open = 0;
  /** WebSocket connections accepted (upgraded) since start. */
  accepted = 0;
  /** Traffic of the connections that have closed. */
  readonly closedTraffic: Traffic = { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0 };
  /** The traffic of the connections open now, added up on demand. */
  openTraffic: (() => Traffic) | null = null;
  /** Closes by cause. */
  readonly closes = new Map<CloseCause, number>(
    CLOSE_CAUSES.map((c) => [c, 0]),
  );
  /** Refused upgrades and plain requests, by HTTP status. */
  readonly refusals = new Map<number, number>();
  /** The keepalive policy in force, as read back from a socket (or the kernel's). */
  keepalive: SocketOptions | null = null;

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

  /** Counts a close with `cause`. */
  closed(cause: CloseCause): void {
    this.closes.set(cause, (this.closes.get(cause) ?? 0) + 1);
  }

  /** Counts a refusal with HTTP `status`. */
  refused(status: number): void {
    this.refusals.set(status, (this.refusals.get(status) ?? 0) + 1);
  }

  /** Renders every metric as Prometheus text; `labels` go on every sample. */
  render(labels: Record<string, string> = {}): string {
    const out: string[] = [];
    const traffic = this.totalTraffic();
    const lbl = (extra: Record<string, string | number> = {}) => {
      const all = { ...labels, ...extra };
      const parts = Object.entries(all).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`);
      return parts.length ? `{${parts.join(",")}}` : "";
    };
    const metric = (
      name: string,
      type: string,
      help: string,
      samples: [string, number][],
    ) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [l, v] of samples) out.push(`${name}${l} ${v}`);
    };
    metric(
      "websocket_connections_open",
      "gauge",
      "WebSocket connections open now.",
      [[lbl(), this.open]],
    );
    metric(
      "websocket_connections_accepted_total",
      "counter",
      "WebSocket upgrades accepted.",
      [[
        lbl(),
        this.accepted,
      ]],
    );
    metric(
      "websocket_connections_closed_total",
      "counter",
      "WebSocket connections closed, by cause.",
      [...this.closes].map(([cause, n]) => [lbl({ cause }), n]),
    );
    metric(
      "websocket_messages_received_total",
      "counter",
      "Messages received.",
      [[lbl(), traffic.messagesIn]],
    );
    metric("websocket_messages_sent_total", "counter", "Messages sent.", [[
      lbl(),
      traffic.messagesOut,
    ]]);
    metric(
      "websocket_bytes_received_total",
      "counter",
      "Payload bytes received.",
      [[lbl(), traffic.bytesIn]],
    );
    metric("websocket_bytes_sent_total", "counter", "Payload bytes sent.", [[
      lbl(),
      traffic.bytesOut,
    ]]);
    metric(
      "http_requests_refused_total",
      "counter",
      "Upgrades and requests refused, by HTTP status.",
      [...this.refusals].sort((a, b) => a[0] - b[0]).map((
        [status, n],
      ) => [lbl({ status }), n]),
    );
    const ka = this.keepalive;
    if (ka) {
      metric(
        "tcp_keepalive_enabled",
        "gauge",
        "1 when SO_KEEPALIVE is on for accepted connections.",
        [[lbl({ verified: String(ka.verified) }), ka.keepAlive ? 1 : 0]],
      );
      const secs = (ms: number | null) => ms === null ? null : ms / 1000;
      const gauge = (name: string, help: string, value: number | null) => {
        if (value !== null) metric(name, "gauge", help, [[lbl(), value]]);
      };
      gauge("tcp_keepalive_idle_seconds", "TCP_KEEPIDLE in force.", secs(ka.idle));
      gauge(
        "tcp_keepalive_interval_seconds",
        "TCP_KEEPINTVL in force.",
        secs(ka.interval),
      );
      gauge("tcp_keepalive_probes", "TCP_KEEPCNT in force.", ka.count);
      gauge(
        "tcp_user_timeout_milliseconds",
        "TCP_USER_TIMEOUT in force (0 = the OS default).",
        ka.userTimeout,
      );
    }
    return out.join("\n") + "\n";
  }
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(
    /\n/g,
    "\\n",
  );
}
