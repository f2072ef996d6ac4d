/**
 * `/metrics` against the Prometheus text format (0.0.4) and Prometheus'
 * naming guide (https://prometheus.io/docs/practices/naming/), on the real
 * server program after real traffic:
 *
 * - the text is read twice: by `parse-prometheus-text-format` (a port of
 *   Prometheus' prom2json, from npm) and by a line-by-line check of the
 *   format's grammar below, which the npm parser is too lenient to be;
 * - every family: the one prefix `keepalive_ws_`, snake case, base units as a
 *   suffix (`_seconds`, `_bytes`), `_total` on counters and only on them,
 *   a HELP line, labels only from a short list of dimensions (none holds a
 *   state such as `verified="true"`);
 * - `keepalive_ws_build_info` carries deno.json's version;
 * - open = accepted − closed (all causes) after a mix of traffic, with a
 *   handshake timeout counted as a dropped request, not a closed WebSocket;
 * - the duration histogram, the memory budget, `/favicon.ico` and `/info`.
 *
 * When Prometheus' own linter (`promtool`, Debian package `prometheus`) is
 * installed, it checks the same text; without it that test is reported as
 * ignored, with the reason in its name.
 */

import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { needs, pathOf } from "./helpers/needs.ts";
import { runClient, startServer } from "./helpers/process.ts";

const CONFIG = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
const PREFIX = "keepalive_ws_";

/**
 * The only label names allowed, each a dimension to sum or filter over, never a
 * state of the thing measured (a state is a gauge of its own).
 */
const LABELS: Record<string, string> = {
  cause: "why a WebSocket closed",
  status: "the HTTP status of a refusal",
  reason: "why a request was dropped",
  le: "a histogram bucket's upper bound",
  version: "build_info: this program's version",
  deno: "build_info: Deno's version",
};

/** Units that are not Prometheus' base units (seconds, bytes), as words of a metric name. */
const NON_BASE_UNITS = new Set([
  "milliseconds",
  "microseconds",
  "nanoseconds",
  "ms",
  "us",
  "ns",
  "millis",
  "second",
  "minute",
  "minutes",
  "hour",
  "hours",
  "day",
  "days",
  "byte",
  "kilobytes",
  "megabytes",
  "gigabytes",
  "kb",
  "mb",
  "gb",
  "kib",
  "mib",
  "gib",
  "bit",
  "bits",
]);

/** One sample line, as the grammar check reads it. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A family: its HELP, TYPE and samples, in the order of the text. */
interface Family {
  name: string;
  help: string | null;
  type: string | null;
  samples: Sample[];
}

/** What parse-prometheus-text-format returns (it has no types of its own). */
interface ParsedFamily {
  name: string;
  help: string;
  type: string;
  metrics: {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const VALUE = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/;
const TYPES = ["counter", "gauge", "histogram", "summary", "untyped"];

/** The family a sample name belongs to: a histogram's `_bucket`, `_sum`, `_count` fold into it. */
function familyOf(name: string, types: Map<string, string>): string {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    const base = name.slice(0, -suffix.length);
    if (name.endsWith(suffix) && types.get(base) === "histogram") return base;
  }
  return name;
}

/**
 * Reads the text format line by line, strictly (Prometheus' "Exposition
 * formats", text format 0.0.4): `# HELP name text`, `# TYPE name type`, other
 * comments, and `name{label="value",…} value [timestamp]`; label values
 * escape only `\\`, `\"` and `\n`; HELP and TYPE at most once per family and
 * before its samples; a family's samples together; no series twice; the text
 * ends with a line feed. Throws naming the first line that breaks a rule.
 */
function readExposition(text: string): Family[] {
  assert.ok(text.endsWith("\n"), "the text ends with a line feed");
  const families: Family[] = [];
  const byName = new Map<string, Family>();
  const types = new Map<string, string>();
  const series = new Set<string>();
  let current: Family | null = null;
  const family = (name: string, line: string): Family => {
    const known = byName.get(name);
    if (known) {
      if (known !== current) throw new Error(`family ${name} is split: ${JSON.stringify(line)}`);
      return known;
    }
    const made: Family = { name, help: null, type: null, samples: [] };
    families.push(made);
    byName.set(name, made);
    current = made;
    return made;
  };
  for (const [i, line] of text.slice(0, -1).split("\n").entries()) {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, rest] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name, ${where}`);
      const f = family(name, line);
      if (kind === "HELP") {
        if (f.help !== null) throw new Error(`second HELP, ${where}`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ""))) throw new Error(`bad escape, ${where}`);
        f.help = rest;
      } else {
        if (f.type !== null) throw new Error(`second TYPE, ${where}`);
        if (f.samples.length) throw new Error(`TYPE after samples, ${where}`);
        if (!TYPES.includes(rest)) throw new Error(`unknown type, ${where}`);
        f.type = rest;
        types.set(name, rest);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!m) throw new Error(`not a sample, ${where}`);
    const [, name, labelText = "", value] = m;
    const labels: Record<string, string> = {};
    if (labelText) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|\})/y;
      re.lastIndex = 1;
      let end = false;
      while (!end) {
        const l = re.exec(labelText);
        if (!l) throw new Error(`bad labels, ${where}`);
        if (l[1].startsWith("__")) throw new Error(`reserved label name, ${where}`);
        if (l[1] in labels) throw new Error(`label twice, ${where}`);
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => c === "n" ? "\n" : c);
        end = l[3] === "}";
      }
      if (re.lastIndex !== labelText.length) throw new Error(`bad labels, ${where}`);
    }
    if (!VALUE.test(value)) throw new Error(`bad value, ${where}`);
    const f = family(familyOf(name, types), line);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (series.has(key)) throw new Error(`series twice, ${where}`);
    series.add(key);
    f.samples.push({
      name,
      labels,
      value: value.endsWith("Inf") ? (value.startsWith("-") ? -Infinity : Infinity) : Number(value),
    });
  }
  return families;
}

/** Checks every naming rule on every family; returns the list of broken rules (empty: all kept). */
function namingProblems(families: Family[]): string[] {
  const problems: string[] = [];
  const no = (f: Family, rule: string) => problems.push(`${f.name}: ${rule}`);
  for (const f of families) {
    const n = f.name;
    if (!n.startsWith(PREFIX)) no(f, `does not start with ${PREFIX}`);
    if (!/^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$/.test(n)) no(f, "is not snake_case");
    if (f.help === null || f.help.trim() === "") no(f, "has no HELP");
    if (f.type === null) no(f, "has no TYPE");
    if (f.type === "counter" && !n.endsWith("_total")) no(f, "is a counter without _total");
    if (f.type !== "counter" && /_total$/.test(n)) no(f, "ends with _total but is no counter");
    // Base units only, and the unit is the suffix (before _total on a counter).
    const words = n.replace(/_total$/, "").split("_");
    const other = words.find((w) => NON_BASE_UNITS.has(w.toLowerCase()));
    if (other) no(f, `names the unit ${other}, not seconds or bytes`);
    const unit = words.findIndex((w) => w === "seconds" || w === "bytes");
    if (unit !== -1 && unit !== words.length - 1) no(f, `has its unit ${words[unit]} mid-name`);
    if (n.endsWith("_info") && (f.type !== "gauge" || f.samples.some((s) => s.value !== 1))) {
      no(f, "is an info metric whose samples are not a gauge of 1");
    }
    for (const s of f.samples) {
      for (const [label, value] of Object.entries(s.labels)) {
        if (!(label in LABELS)) no(f, `has label ${label}, not one of ${Object.keys(LABELS)}`);
        if (/^(true|false)$/i.test(value)) no(f, `label ${label}="${value}" holds a state`);
      }
      if (!Number.isFinite(s.value)) no(f, `${s.name} is not a finite number`);
      if (f.type === "counter" && s.value < 0) no(f, `counter ${s.name} is negative`);
    }
    if (f.type === "histogram") problems.push(...histogramProblems(f));
  }
  return problems;
}

/** A histogram's buckets: sorted, cumulative, +Inf equal to _count, and a _sum. */
function histogramProblems(f: Family): string[] {
  const problems: string[] = [];
  const buckets = f.samples.filter((s) => s.name === `${f.name}_bucket`);
  const count = f.samples.find((s) => s.name === `${f.name}_count`);
  const sum = f.samples.find((s) => s.name === `${f.name}_sum`);
  if (!count || !sum) problems.push(`${f.name}: no _count or _sum`);
  const bounds = buckets.map((b) => b.labels.le === "+Inf" ? Infinity : Number(b.labels.le));
  if (bounds.at(-1) !== Infinity) problems.push(`${f.name}: the last bucket is not +Inf`);
  for (let i = 1; i < buckets.length; i++) {
    if (!(bounds[i] > bounds[i - 1])) problems.push(`${f.name}: bounds not ascending`);
    if (buckets[i].value < buckets[i - 1].value) problems.push(`${f.name}: not cumulative`);
  }
  if (count && buckets.at(-1)?.value !== count.value) {
    problems.push(`${f.name}: the +Inf bucket is not _count`);
  }
  return problems;
}

/** One scrape: the raw text, both readings, and a lookup of one sample's value. */
interface Scrape {
  text: string;
  families: Family[];
  parsed: ParsedFamily[];
  /** The value of the sample `name` with (at least) `labels`; undefined when absent. */
  get(name: string, labels?: Record<string, string>): number | undefined;
  /** The sum of every sample of `name`. */
  sum(name: string): number;
}

async function scrape(httpUrl: string): Promise<Scrape> {
  const res = await fetch(`${httpUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const text = await res.text();
  const families = readExposition(text);
  const parsed = parsePrometheusTextFormat(text) as ParsedFamily[];
  const samples = families.flatMap((f) => f.samples);
  return {
    text,
    families,
    parsed,
    get: (name, labels = {}) =>
      samples.find((s) =>
        s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
      )?.value,
    sum: (name) => samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0),
  };
}

/** Waits until `check()` holds, polling (bounded). */
async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs}ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Asserts open = accepted − closed (every cause), and returns open. */
function assertIdentity(s: Scrape): number {
  const open = s.get(`${PREFIX}connections_open`)!;
  const accepted = s.get(`${PREFIX}connections_accepted_total`)!;
  const closed = s.sum(`${PREFIX}connections_closed_total`);
  assert.equal(open, accepted - closed, `open ${open} ≠ accepted ${accepted} − closed ${closed}`);
  return open;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Sends raw bytes on a new TCP connection and reads until the server ends it. */
async function rawExchange(port: number, request: string): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  if (request) await conn.write(encoder.encode(request));
  let text = "";
  const buf = new Uint8Array(4096);
  for (let n; (n = await conn.read(buf)) !== null;) text += decoder.decode(buf.subarray(0, n));
  return text;
}

/** Upgrades a raw TCP connection to a WebSocket, then drops TCP without a close frame. */
async function upgradeThenDrop(port: number): Promise<void> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(
    "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  ));
  const buf = new Uint8Array(1024);
  const n = await conn.read(buf);
  assert.match(decoder.decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 101 /);
}

/** Opens a built-in WebSocket (an independent peer) and waits until it is open. */
async function openSocket(url: string): Promise<WebSocket & { ended: Promise<CloseEvent> }> {
  const ws = new WebSocket(url);
  const ended = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve));
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", () => reject(new Error(`cannot open ${url}`)), { once: true });
  });
  return Object.assign(ws, { ended });
}

Deno.test("/metrics reads as the Prometheus text format, to the npm parser and to the grammar, family by family", async () => {
  await using server = await startServer();
  // Some traffic first, so that labelled families and the histogram have samples.
  const echoed = await runClient(["--send", "hello", server.echoUrl]);
  assert.equal(echoed.code, 0, echoed.stderr);
  await (await fetch(`${server.httpUrl}/missing`)).body?.cancel();
  await server.proc.waitForEvent("close");

  const s = await scrape(server.httpUrl);
  // Both readings see the same families, with the same types and help, in the same order.
  assert.deepEqual(
    s.parsed.map((f) => [f.name, f.type.toLowerCase(), f.help]),
    s.families.map((f) => [f.name, f.type, f.help]),
  );
  for (const p of s.parsed) {
    const f = s.families.find((f) => f.name === p.name)!;
    if (f.type === "histogram") {
      const [h] = p.metrics;
      assert.equal(Number(h.count), f.samples.find((x) => x.name.endsWith("_count"))!.value);
      assert.deepEqual(
        h.buckets,
        Object.fromEntries(
          f.samples.filter((x) => x.name.endsWith("_bucket")).map((x) => [
            x.labels.le,
            String(x.value),
          ]),
        ),
      );
    } else {
      assert.deepEqual(
        p.metrics.map((m) => [m.labels ?? {}, Number(m.value)]),
        f.samples.map((x) => [x.labels, x.value]),
      );
    }
  }
  // The grammar check itself refuses what it should (so passing it means something).
  for (
    const bad of [
      "x 1",
      '# TYPE x counter\nx{a="1" 1\n',
      '# TYPE x counter\nx{a="\\q"} 1\n',
      "# TYPE x counter\nx one\n",
      "# TYPE x counter\nx 1\n# TYPE y gauge\ny 1\nx 2\n",
      "x 1\n# TYPE x counter\n",
      '# TYPE x counter\nx{__a="1"} 1\n',
      "# TYPE x counter\nx 1\nx 2\n",
    ]
  ) {
    assert.throws(() => readExposition(bad), Error, JSON.stringify(bad));
  }
});

Deno.test("/metrics follows Prometheus' naming guide: one prefix, base units as suffix, _total on counters only, no state in labels", async () => {
  await using server = await startServer(["--tcp-user-timeout", "20s"]);
  const echoed = await runClient(["--send", "hello", server.echoUrl]);
  assert.equal(echoed.code, 0, echoed.stderr);
  await (await fetch(`${server.httpUrl}/missing`)).body?.cancel();
  await server.proc.waitForEvent("close");
  const s = await scrape(server.httpUrl);
  assert.deepEqual(namingProblems(s.families), []);

  // The rules check catches what they should.
  const family = (name: string, type: string, samples: Sample[] = []): Family => ({
    name,
    type,
    help: "h",
    samples,
  });
  const sample = (name: string, labels: Record<string, string> = {}, value = 1) => ({
    name,
    labels,
    value,
  });
  assert.deepEqual(
    namingProblems([
      family("websocket_connections_open", "gauge"),
      family("keepalive_ws_messages", "counter"),
      family("keepalive_ws_open_total", "gauge"),
      family("keepalive_ws_tcp_user_timeout_milliseconds", "gauge"),
      family("keepalive_ws_bytes_received_total", "counter"),
      family("keepalive_ws_tcp_keepalive_enabled", "gauge", [
        sample("keepalive_ws_tcp_keepalive_enabled", { verified: "true" }),
      ]),
      family("keepalive_ws_connectionsOpen", "gauge"),
    ]).map((p) => p.split(":")[0]),
    [
      "websocket_connections_open",
      "keepalive_ws_messages",
      "keepalive_ws_open_total",
      "keepalive_ws_tcp_user_timeout_milliseconds",
      "keepalive_ws_bytes_received_total",
      "keepalive_ws_tcp_keepalive_enabled",
      "keepalive_ws_tcp_keepalive_enabled",
      "keepalive_ws_connectionsOpen",
    ],
  );

  // Every family the server must show, with its type.
  const types = Object.fromEntries(s.families.map((f) => [f.name.slice(PREFIX.length), f.type]));
  assert.deepEqual(types, {
    build_info: "gauge",
    connections_open: "gauge",
    connections_accepted_total: "counter",
    connections_closed_total: "counter",
    connection_duration_seconds: "histogram",
    ping_rtt_seconds: "histogram",
    received_messages_total: "counter",
    sent_messages_total: "counter",
    received_bytes_total: "counter",
    sent_bytes_total: "counter",
    http_requests_refused_total: "counter",
    http_requests_dropped_total: "counter",
    memory_budget_bytes: "gauge",
    memory_held_bytes: "gauge",
    memory_evictions_total: "counter",
    tcp_keepalive_enabled: "gauge",
    tcp_keepalive_verified: "gauge",
    tcp_keepalive_idle_seconds: "gauge",
    tcp_keepalive_interval_seconds: "gauge",
    tcp_keepalive_probes: "gauge",
    tcp_user_timeout_seconds: "gauge",
  });
  // The keepalive in force, verified as a gauge of its own; the user timeout in seconds.
  assert.equal(s.get(`${PREFIX}tcp_keepalive_enabled`), 1);
  assert.equal(s.get(`${PREFIX}tcp_keepalive_verified`), 1);
  assert.equal(s.get(`${PREFIX}tcp_keepalive_idle_seconds`), 15);
  assert.equal(s.get(`${PREFIX}tcp_keepalive_interval_seconds`), 15);
  assert.equal(s.get(`${PREFIX}tcp_keepalive_probes`), 9);
  assert.equal(s.get(`${PREFIX}tcp_user_timeout_seconds`), 20);
  // build_info: deno.json's version and the Deno running it.
  assert.equal(
    s.get(`${PREFIX}build_info`, { version: CONFIG.version, deno: Deno.version.deno }),
    1,
  );
});

Deno.test("/metrics keeps open = accepted − closed after a mix of traffic; a handshake timeout is a dropped request, not a closed WebSocket", async () => {
  await using server = await startServer([
    "--handshake-timeout",
    "300ms",
    "--max-message-size",
    "1KiB",
  ]);
  const start = await scrape(server.httpUrl);
  assert.equal(assertIdentity(start), 0);

  // One echo session the client closes (peer-close): 2 messages, 8 bytes each way.
  const echoed = await runClient(["--send", "hello", "--send", "abc", server.echoUrl]);
  assert.equal(echoed.code, 0, echoed.stderr);
  // One message over the limit: the server closes with 1009 (message-too-big).
  const big = await openSocket(server.echoUrl);
  big.send("x".repeat(2000));
  assert.equal((await big.ended).code, 1009);
  // One upgrade whose TCP ends without a close frame (eof).
  await upgradeThenDrop(server.port);
  // One connection that never sends a head: dropped at the handshake timeout.
  assert.equal(await rawExchange(server.port, ""), "");
  // Refusals: a 404, a 403 (foreign origin) and a 400 (no Host).
  await (await fetch(`${server.httpUrl}/missing`)).body?.cancel();
  const foreign = await runClient(["--origin", "http://other.example", server.echoUrl]);
  assert.equal(foreign.code, 1);
  assert.match(await rawExchange(server.port, "GET /echo HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 400 /);
  // And one connection still open.
  const held = await openSocket(server.echoUrl);
  for (const cause of ["peer-close", "message-too-big", "eof", "handshake-timeout"]) {
    await server.proc.waitForEvent("close", (e) => e.cause === cause);
  }

  const mid = await scrape(server.httpUrl);
  assert.equal(assertIdentity(mid), 1);
  const get = (name: string, labels?: Record<string, string>) => mid.get(PREFIX + name, labels);
  assert.equal(get("connections_accepted_total"), 4);
  assert.equal(get("connections_closed_total", { cause: "peer-close" }), 1);
  assert.equal(get("connections_closed_total", { cause: "message-too-big" }), 1);
  assert.equal(get("connections_closed_total", { cause: "eof" }), 1);
  assert.equal(get("connections_closed_total", { cause: "handshake-timeout" }), undefined);
  assert.equal(get("http_requests_dropped_total", { reason: "handshake-timeout" }), 1);
  assert.equal(get("http_requests_dropped_total", { reason: "read-error" }), 0);
  assert.equal(get("http_requests_refused_total", { status: "400" }), 1);
  assert.equal(get("http_requests_refused_total", { status: "403" }), 1);
  assert.equal(get("http_requests_refused_total", { status: "404" }), 1);
  assert.equal(get("received_messages_total"), 2);
  assert.equal(get("sent_messages_total"), 2);
  assert.equal(get("received_bytes_total"), 8);
  assert.equal(get("sent_bytes_total"), 8);
  // The histogram saw each closed WebSocket once; each lasted well under 15 s.
  assert.equal(get("connection_duration_seconds_count"), 3);
  assert.equal(get("connection_duration_seconds_bucket", { le: "15" }), 3);
  assert.ok(get("connection_duration_seconds_sum")! > 0);
  assert.deepEqual(namingProblems(mid.families), []);

  held.close();
  await held.ended;
  await eventually("open back to 0", async () => {
    const s = await scrape(server.httpUrl);
    return assertIdentity(s) === 0 &&
      s.get(`${PREFIX}connections_closed_total`, { cause: "peer-close" }) === 2;
  });
});

Deno.test("/metrics shows the memory budget: its limit, the bytes held, and evictions", async () => {
  await using server = await startServer([
    "--memory-budget",
    "128KiB",
    "--max-message-size",
    "1MiB",
  ]);
  const before = await scrape(server.httpUrl);
  assert.equal(before.get(`${PREFIX}memory_budget_bytes`), 128 * 1024);
  assert.equal(before.get(`${PREFIX}memory_held_bytes`), 0);
  assert.equal(before.get(`${PREFIX}memory_evictions_total`), 0);

  // A message within the message limit but past the whole budget: the connection is evicted.
  const ws = await openSocket(server.echoUrl);
  ws.send("x".repeat(600 * 1024));
  const closed = await ws.ended;
  assert.equal(closed.code, 1013, `closed with ${closed.code} ${closed.reason}`);
  await server.proc.waitForEvent("close", (e) => e.cause === "memory-budget");
  const after = await scrape(server.httpUrl);
  assert.equal(after.get(`${PREFIX}memory_evictions_total`), 1);
  assert.equal(after.get(`${PREFIX}connections_closed_total`, { cause: "memory-budget" }), 1);
  assert.equal(after.get(`${PREFIX}memory_held_bytes`), 0);
  assertIdentity(after);
});

Deno.test("/favicon.ico is a 200 icon, so browsers cause no 404 refusal and no rejected line", async () => {
  await using server = await startServer();
  const res = await fetch(`${server.httpUrl}/favicon.ico`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "image/x-icon");
  const icon = new Uint8Array(await res.arrayBuffer());
  // ICONDIR: reserved 0, type 1 (icon), one image of 16×16 at 32 bits.
  assert.deepEqual([...icon.subarray(0, 8)], [0, 0, 1, 0, 1, 0, 16, 16]);
  assert.equal(icon.length, 6 + 16 + 40 + 16 * 16 * 4 + 16 * 4);
  const head = await fetch(`${server.httpUrl}/favicon.ico`, { method: "HEAD" });
  assert.equal(head.status, 200);
  await head.body?.cancel();

  const s = await scrape(server.httpUrl);
  assert.equal(s.sum(`${PREFIX}http_requests_refused_total`), 0);
  assert.deepEqual(server.proc.events.filter((e) => e.event === "rejected"), []);
});

Deno.test("/info is JSON with the keepalive read back, the heartbeat, the limits and the version", async () => {
  await using server = await startServer([
    "--keepalive-idle",
    "30s",
    "--keepalive-count",
    "4",
    "--ping-interval",
    "20s",
    "--pong-timeout",
    "25s",
    "--max-message-size",
    "1MiB",
    "--handshake-timeout",
    "3s",
    "--tcp-user-timeout",
    "40s",
  ]);
  const res = await fetch(`${server.httpUrl}/info`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.deepEqual(await res.json(), {
    version: CONFIG.version,
    keepalive: { enabled: true, idle_s: 30, interval_s: 15, count: 4, verified: true },
    user_timeout_ms: 40_000,
    ping_interval_ms: 20_000,
    pong_timeout_ms: 25_000,
    max_message_size: 1024 * 1024,
    handshake_timeout_ms: 3_000,
  });
});

Deno.test({
  ...needs("promtool check metrics (Prometheus' own linter) finds nothing in /metrics", "promtool"),
  async fn() {
    await using server = await startServer();
    const echoed = await runClient(["--send", "hello", server.echoUrl]);
    assert.equal(echoed.code, 0, echoed.stderr);
    await (await fetch(`${server.httpUrl}/missing`)).body?.cancel();
    const { text } = await scrape(server.httpUrl);
    const child = new Deno.Command(pathOf("promtool"), {
      args: ["check", "metrics"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode(text));
    await writer.close();
    const out = await child.output();
    const said = decoder.decode(out.stdout) + decoder.decode(out.stderr);
    assert.equal(out.code, 0, said);
    assert.equal(said.trim(), "");
  },
});
