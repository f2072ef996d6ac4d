/**
 * `server.ts` as people run it: flags, exit codes, the HTTP endpoints,
 * `/metrics` as Prometheus text, connection limits, origins, and graceful
 * shutdown on SIGTERM/SIGINT. Every test drives the real program as a
 * subprocess (with the permissions `deno task server` gives it).
 */

import assert from "node:assert/strict";
import { hasStackTrace, plainLines, Program, runClient, startServer } from "./helpers/process.ts";
import { missing } from "./helpers/needs.ts";
import { makePki } from "./helpers/tls.ts";
import { waitFor } from "./helpers/wait.ts";

/** Runs `server.ts` with `args`, expecting it to exit on its own. */
async function runServer(args: string[]) {
  await using proc = Program.start("server.ts", args);
  return await proc.wait();
}

/** Sends a raw HTTP/1.1 request and reads the whole response (the server closes after it). */
async function rawHttp(port: number, request: string): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(request));
  const decoder = new TextDecoder();
  const buf = new Uint8Array(64 * 1024);
  let text = "";
  while (true) {
    const n = await conn.read(buf);
    if (n === null) return text + decoder.decode();
    text += decoder.decode(buf.subarray(0, n), { stream: true });
  }
}

/** One sample of a Prometheus text exposition: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A tiny parser for the Prometheus text format (0.0.4): `# HELP`/`# TYPE`
 * lines, then `name{label="value",…} number`. It throws on any line it
 * cannot read, so a malformed exposition fails the test.
 */
function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/
      .exec(line);
    if (type) {
      types.set(type[1], type[2]);
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
      let match;
      while ((match = re.exec(m[2])) !== null) {
        labels[match[1]] = match[2].replace(/\\(.)/g, (_, c) => c === "n" ? "\n" : c);
        if (match[3] === "") break;
      }
      if (re.lastIndex !== m[2].length) throw new Error(`bad labels in ${JSON.stringify(line)}`);
    }
    // A histogram's samples are its family's name plus _bucket, _sum or _count.
    const family = types.has(m[1]) ? m[1] : m[1].replace(/_(bucket|sum|count)$/, "");
    if (!types.has(family) || (family !== m[1] && types.get(family) !== "histogram")) {
      throw new Error(`sample ${m[1]} has no # TYPE line before it`);
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { samples, types };
}

/** Fetches /metrics and returns a lookup: `get("name", {label: "v"})`, 0 when absent. */
async function scrape(httpUrl: string) {
  const res = await fetch(`${httpUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const { samples, types } = parsePrometheus(await res.text());
  const get = (name: string, labels: Record<string, string> = {}) => {
    const hit = samples.find((s) =>
      s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
    );
    return hit?.value;
  };
  return { samples, types, get };
}

Deno.test("server --help lists every flag and the endpoints, and exits 0", async () => {
  const { code, stdout, stderr } = await runServer(["--help"]);
  assert.equal(code, 0, stderr);
  for (
    const flag of [
      "--addr",
      "--max-connections",
      "--max-message-size",
      "--handshake-timeout",
      "--origin",
      "--subprotocol",
      "--tls-cert",
      "--tls-key",
      "--log-format",
      "--help",
      "--keepalive",
      "--keepalive-idle",
      "--keepalive-interval",
      "--keepalive-count",
      "--no-keepalive",
      "--print-keepalive",
      "--tcp-user-timeout",
      "--ping-interval",
      "--pong-timeout",
    ]
  ) {
    assert.match(stdout, new RegExp(`^\\s+(-\\w, )?${flag}\\b`, "m"), `${flag} is not in --help`);
  }
  for (const path of ["/echo", "/healthz", "/metrics", "SIGTERM"]) assert.ok(stdout.includes(path));
});

Deno.test("server usage errors exit 2 with one line naming the flag, never a stack trace", async (t) => {
  const cases: [string[], RegExp][] = [
    [["--bogus"], /--bogus/],
    [["--addr", "nonsense"], /--addr takes HOST:PORT/],
    [["--addr", "127.0.0.1:70000"], /--addr/],
    [["--handshake-timeout", "5x"], /--handshake-timeout: invalid duration "5x"/],
    [["--ping-interval", "-1s"], /--ping-interval must not be negative/],
    [["--max-connections", "many"], /--max-connections takes a whole number/],
    [["--max-message-size", "lots"], /--max-message-size takes a size/],
    [["--log-format", "xml"], /--log-format must be text or json/],
    [["--tls-cert", "/tmp/x.pem"], /--tls-cert and --tls-key go together/],
    [["extra"], /unexpected argument "extra"/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), async () => {
      const { code, stdout, stderr } = await runServer(args);
      assert.equal(code, 2, stderr);
      assert.equal(stdout, "");
      assert.ok(!hasStackTrace(stderr), stderr);
      const lines = plainLines(stderr);
      assert.match(lines[0], /^server: /);
      assert.match(lines[0], message);
      assert.deepEqual(lines.slice(1), ["Run 'deno task server --help' for usage."]);
    });
  }
});

Deno.test("server that cannot start exits 1 with one line: port in use, unreadable or bad certificate", async (t) => {
  await t.step("address in use", async () => {
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { code, stderr } = await runServer(["--addr", `127.0.0.1:${taken.addr.port}`]);
    assert.equal(code, 1, stderr);
    assert.ok(!hasStackTrace(stderr), stderr);
    assert.match(
      plainLines(stderr).join("\n"),
      new RegExp(`^server: cannot listen on 127\\.0\\.0\\.1:${taken.addr.port}: .*in use`),
    );
  });
  const noOpenssl = missing("openssl");
  if (noOpenssl) {
    await t.step({ name: `the certificate cases — NOT RUN: ${noOpenssl}`, ignore: true, fn() {} });
    return;
  }
  await using pki = await makePki();
  await t.step("--tls-cert file missing", async () => {
    const missing = `${pki.dir}/missing.pem`;
    const { code, stderr } = await runServer([
      "--addr",
      "127.0.0.1:0",
      "--tls-cert",
      missing,
      "--tls-key",
      pki.key,
    ]);
    assert.equal(code, 1, stderr);
    assert.ok(!hasStackTrace(stderr), stderr);
    assert.deepEqual(plainLines(stderr), [
      `server: --tls-cert: cannot read ${missing}: No such file or directory (os error 2)`,
    ]);
  });
  await t.step("--tls-key is not a key", async () => {
    const { code, stderr } = await runServer([
      "--addr",
      "127.0.0.1:0",
      "--tls-cert",
      pki.cert,
      "--tls-key",
      pki.cert,
    ]);
    assert.equal(code, 1, stderr);
    assert.ok(!hasStackTrace(stderr), stderr);
    const lines = plainLines(stderr);
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0], /^server: cannot listen on 127\.0\.0\.1:0: /);
  });
});

Deno.test("server answers /healthz, / and HEAD, and refuses unknown paths and methods", async (t) => {
  await using server = await startServer();
  await t.step("GET /healthz is 200 ok", async () => {
    const res = await fetch(`${server.httpUrl}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "ok\n");
  });
  await t.step("GET / is the HTML echo page that connects to /echo", async () => {
    const res = await fetch(`${server.httpUrl}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    const html = await res.text();
    assert.match(html, /<title>keepalive-ws echo<\/title>/);
    assert.match(html, /new WebSocket\(url\)/);
    assert.ok(html.includes('"/echo"'));
  });
  await t.step("HEAD /healthz gives the headers of GET and no body", async () => {
    const response = await rawHttp(
      server.port,
      "HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    assert.match(response, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(response, /\r\nContent-Length: 3\r\n/);
    assert.ok(response.endsWith("\r\n\r\n"), JSON.stringify(response));
  });
  await t.step(
    "an HTTP/1.0 health check without Host (HAProxy's `option httpchk`) is 200 ok, and closed",
    async () => {
      const response = await rawHttp(server.port, "GET /healthz HTTP/1.0\r\n\r\n");
      assert.match(response, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(response, /\r\nConnection: close\r\n/);
      assert.ok(response.endsWith("\r\n\r\nok\n"), JSON.stringify(response));
    },
  );
  await t.step("an HTTP/1.0 WebSocket upgrade is 505: RFC 6455 needs HTTP/1.1", async () => {
    const response = await rawHttp(
      server.port,
      "GET /echo HTTP/1.0\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert.match(response, /^HTTP\/1\.1 505 HTTP Version Not Supported\r\n/);
  });
  await t.step("GET /nope is 404", async () => {
    const res = await fetch(`${server.httpUrl}/nope`);
    assert.equal(res.status, 404);
    assert.equal(await res.text(), "no such path: /nope\n");
  });
  await t.step("POST / is 405 with Allow", async () => {
    const res = await fetch(`${server.httpUrl}/`, { method: "POST", body: "x" });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "GET, HEAD");
    await res.body?.cancel();
  });
  await t.step("each refusal is logged with its status", async () => {
    await server.proc.waitForEvent("rejected", (e) => e.status === 404);
    await server.proc.waitForEvent("rejected", (e) => e.status === 405);
  });
});

Deno.test("server refuses a foreign Origin with 403 unless --origin allows it", async () => {
  await using plain = await startServer();
  const foreign = await runClient([
    "--origin",
    "http://evil.example",
    "--send",
    "x",
    plain.echoUrl,
  ]);
  assert.equal(foreign.code, 1, foreign.stderr);
  assert.match(foreign.stderr, /handshake with 127\.0\.0\.1:\d+ failed: .*403 Forbidden/);
  const rejected = await plain.proc.waitForEvent("rejected");
  assert.equal(rejected.status, 403);
  assert.match(String(rejected.message), /evil\.example/);

  const same = await runClient(["--origin", `http://${plain.addr}`, "--send", "x", plain.echoUrl]);
  assert.equal(same.code, 0, same.stderr);
  assert.equal(same.stdout, "x\n");

  await using open = await startServer(["--origin", "*.example"]);
  const allowed = await runClient(["--origin", "http://evil.example", "--send", "y", open.echoUrl]);
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.equal(allowed.stdout, "y\n");
});

Deno.test("server gives 503 past --max-connections and takes the next one once a slot frees", async () => {
  await using server = await startServer(["--max-connections", "1"]);
  await using holder = Program.start("client.ts", ["--log-format", "json", server.echoUrl], {
    stdin: true,
  });
  await holder.waitForEvent("open");
  const refused = await runClient(["--send", "x", server.echoUrl]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /503 Service Unavailable/);
  const rejected = await server.proc.waitForEvent("rejected", (e) => e.status === 503);
  assert.match(String(rejected.message), /limit of 1 connections/);

  await holder.closeStdin();
  assert.equal((await holder.wait()).code, 0);
  await server.proc.waitForEvent("close");
  const after = await runClient(["--send", "x", server.echoUrl]);
  assert.equal(after.code, 0, after.stderr);
});

Deno.test("server /metrics is Prometheus text whose counters follow the traffic", async () => {
  await using server = await startServer(["--keepalive-idle", "30s", "--keepalive-count", "4"]);
  const before = await scrape(server.httpUrl);
  for (const s of before.samples) assert.ok(Number.isFinite(s.value), s.name);
  assert.equal(before.types.get("keepalive_ws_connections_accepted_total"), "counter");
  assert.equal(before.types.get("keepalive_ws_connections_open"), "gauge");
  assert.equal(before.get("keepalive_ws_connections_open"), 0);
  // The policy in force, as read back from the accepted socket.
  assert.equal(before.get("keepalive_ws_tcp_keepalive_enabled"), 1);
  assert.equal(before.get("keepalive_ws_tcp_keepalive_idle_seconds"), 30);
  assert.equal(before.get("keepalive_ws_tcp_keepalive_interval_seconds"), 15);
  assert.equal(before.get("keepalive_ws_tcp_keepalive_probes"), 4);

  // Traffic: one echo session of two messages (5 + 3 bytes), one 404, one 403.
  const echoed = await runClient(["--send", "hello", "--send", "abc", server.echoUrl]);
  assert.equal(echoed.code, 0, echoed.stderr);
  await (await fetch(`${server.httpUrl}/missing`)).body?.cancel();
  const foreign = await runClient(["--origin", "http://other.example", server.echoUrl]);
  assert.equal(foreign.code, 1);
  // And one connection still open.
  await using holder = Program.start("client.ts", ["--log-format", "json", server.echoUrl], {
    stdin: true,
  });
  await holder.waitForEvent("open");
  await server.proc.waitForEvent("close");

  const after = await scrape(server.httpUrl);
  const delta = (name: string, labels: Record<string, string> = {}) =>
    (after.get(name, labels) ?? 0) - (before.get(name, labels) ?? 0);
  assert.equal(delta("keepalive_ws_connections_accepted_total"), 2);
  assert.equal(after.get("keepalive_ws_connections_open"), 1);
  assert.equal(delta("keepalive_ws_received_messages_total"), 2);
  assert.equal(delta("keepalive_ws_sent_messages_total"), 2);
  assert.equal(delta("keepalive_ws_received_bytes_total"), 8);
  assert.equal(delta("keepalive_ws_sent_bytes_total"), 8);
  assert.equal(delta("keepalive_ws_connections_closed_total", { cause: "peer-close" }), 1);
  assert.equal(delta("keepalive_ws_connections_closed_total", { cause: "shutdown" }), 0);
  assert.equal(delta("keepalive_ws_http_requests_refused_total", { status: "404" }), 1);
  assert.equal(delta("keepalive_ws_http_requests_refused_total", { status: "403" }), 1);
  assert.equal(delta("keepalive_ws_http_requests_refused_total", { status: "503" }), 0);
});

Deno.test("server on SIGTERM sends close 1001 to every client, which exits 0, and exits 0 itself", async () => {
  await using server = await startServer();
  await using a = Program.start("client.ts", ["--log-format", "json", server.echoUrl], {
    stdin: true,
  });
  await using b = Program.start("client.ts", ["--log-format", "json", server.echoUrl], {
    stdin: true,
  });
  await a.waitForEvent("open");
  await b.waitForEvent("open");
  await a.write("before shutdown\n");
  assert.deepEqual(await a.waitForLines(1), ["before shutdown"]);

  server.proc.kill("SIGTERM");
  const stopped = await server.proc.wait();
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.ok(!hasStackTrace(stopped.stderr), stopped.stderr);
  const events = server.proc.events.map((e) => e.event);
  assert.ok(events.indexOf("shutdown") < events.indexOf("stopped"), events.join(","));
  const closes = server.proc.events.filter((e) => e.event === "close");
  assert.equal(closes.length, 2);
  for (const close of closes) {
    assert.equal(close.code, 1001);
    assert.equal(close.cause, "shutdown");
    assert.equal(close.clean, true);
  }
  for (const client of [a, b]) {
    const exit = await client.wait();
    assert.equal(exit.code, 0, exit.stderr);
    const close = client.events.find((e) => e.event === "close");
    assert.equal(close?.code, 1001);
    assert.equal(close?.cause, "peer-close");
    assert.equal(close?.clean, true);
  }
  // Nothing listens any more.
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: server.port }));
});

Deno.test("server on SIGINT stops the same way and exits 0", async () => {
  await using server = await startServer();
  server.proc.kill("SIGINT");
  const stopped = await server.proc.wait();
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.equal(server.proc.events.find((e) => e.event === "shutdown")?.signal, "SIGINT");
});

Deno.test("server negotiates a --subprotocol and closes 1009 past --max-message-size", async () => {
  await using server = await startServer([
    "--subprotocol",
    "chat.v2",
    "--subprotocol",
    "chat.v1",
    "--max-message-size",
    "16",
  ]);
  const chat = await runClient([
    "--log-format",
    "json",
    "--subprotocol",
    "chat.v1",
    "--send",
    "short",
    server.echoUrl,
  ]);
  assert.equal(chat.code, 0, chat.stderr);
  assert.equal(chat.events.find((e) => e.event === "open")?.protocol, "chat.v1");
  assert.equal((await server.proc.waitForEvent("open")).protocol, "chat.v1");

  const big = await runClient(["--send", "x".repeat(17), server.echoUrl]);
  assert.equal(big.code, 1, big.stderr);
  assert.equal(big.stdout, "");
  assert.match(big.stderr, /connection closed: peer-close \(code 1009/);
  const close = await server.proc.waitForEvent("close", (e) => e.cause === "message-too-big");
  assert.equal(close.code, 1009);
});

Deno.test("server drops a connection that sends no request within --handshake-timeout", async () => {
  await using server = await startServer(["--handshake-timeout", "300ms"]);
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  const started = Date.now();
  const n = await conn.read(new Uint8Array(16));
  assert.equal(n, null, "the server should end the connection");
  assert.ok(Date.now() - started >= 250, `closed after ${Date.now() - started}ms`);
  const close = await server.proc.waitForEvent("close");
  assert.equal(close.cause, "handshake-timeout");
  const { get } = await scrape(server.httpUrl);
  assert.equal(get("keepalive_ws_http_requests_dropped_total", { reason: "handshake-timeout" }), 1);
});

Deno.test("server keeps count: /metrics needs no traffic before it and eventually shows the open gauge at 0", async () => {
  await using server = await startServer();
  await using holder = Program.start("client.ts", [server.echoUrl], { stdin: true });
  await server.proc.waitForEvent("open");
  assert.equal((await scrape(server.httpUrl)).get("keepalive_ws_connections_open"), 1);
  await holder.closeStdin();
  await holder.wait();
  await waitFor(
    async () => (await scrape(server.httpUrl)).get("keepalive_ws_connections_open") === 0,
    "the open gauge back at 0",
    10_000,
  );
});

Deno.test("server --help lists the fault-injection flags; --print-keepalive weighs in the default heartbeat", async () => {
  const help = await runServer(["--help"]);
  for (const flag of ["--no-pong", "--freeze-after", "--drop-after", "--drop-mode"]) {
    assert.match(help.stdout, new RegExp(`^\\s+${flag}\\b`, "m"), `${flag} is not in --help`);
  }
  const text = await runServer(["--print-keepalive"]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(
    text.stdout,
    /^worst case to notice a dead idle peer: 60s, by the heartbeat .*TCP keepalive alone: 150s/m,
  );
  const json = await runServer([
    "--print-keepalive",
    "--log-format",
    "json",
    "--pong-timeout",
    "0",
  ]);
  const report = JSON.parse(json.stdout);
  assert.deepEqual(report.heartbeat, { ping_interval_s: 54, pong_timeout_s: 0 });
  assert.equal(report.worst_case_notice_s, 150);
  assert.equal(report.worst_case_hung_peer_s, null);
});
