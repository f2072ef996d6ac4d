/**
 * The client through real proxies (issue 21): Debian's tinyproxy for HTTP
 * CONNECT and Dante's danted for SOCKS5, each started per test on a free
 * loopback port with its own configuration, in front of `deno task
 * server`'s echo. `--proxy`, curl's proxy variables, credentials, refusals,
 * wss:// inside the tunnel, keepalive on the socket to the proxy, and the
 * idle timeout of a proxy found by `--probe-idle` and beaten by the heartbeat.
 */

import assert from "node:assert/strict";
import { hasStackTrace, type LogEvent, Program, startServer } from "./helpers/process.ts";
import { missing, notRun, withPrograms } from "./helpers/needs.ts";
import { startDanted, startTinyproxy, systemUser } from "./helpers/proxies.ts";
import { makeCerts } from "./helpers/certs.ts";
import { keepAliveTimer } from "./helpers/tcp_timers.ts";
import { ALL_PROXY_ENV } from "../lib/client/proxy_env.ts";

const withTinyproxy = withPrograms("tinyproxy");
const withDanted = withPrograms("danted");
const withTinyproxyAndOpenssl = withPrograms("tinyproxy", "openssl");
const withDantedAndOpenssl = withPrograms("danted", "openssl");

/** Our server with its heartbeat off, so that nothing but the client moves on a connection. */
const QUIET_SERVER = ["--ping-interval", "0", "--pong-timeout", "0"];
/** Bound on a client run that waits 12 s. */
const LONG_RUN_MS = 30_000;

/** Every proxy variable empty (which counts as unset), so the machine's own cannot leak in. */
const NO_PROXY_ENV = Object.fromEntries(ALL_PROXY_ENV.map((name) => [name, ""]));

/** Runs the client with `args` and extra environment `env` (over a proxy-free one) to its end. */
async function client(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs?: number,
): Promise<{ code: number; stdout: string; stderr: string; events: LogEvent[] }> {
  await using proc = Program.start("client.ts", args, { env: { ...NO_PROXY_ENV, ...env } });
  const exit = await proc.wait(timeoutMs);
  assert.ok(!hasStackTrace(exit.stderr), exit.stderr);
  return { ...exit, events: proc.events };
}

/** The `open` event of a run. */
function openEvent(events: LogEvent[]): LogEvent {
  const open = events.find((e) => e.event === "open");
  assert.ok(open, `no open event: ${JSON.stringify(events)}`);
  return open;
}

/** The non-empty stderr lines that are errors (text log format) or the program's own. */
function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => /level=error|^client: /.test(l));
}

withTinyproxy.test("--proxy http:// goes through tinyproxy's CONNECT: the echo comes back, the proxy logs the CONNECT, and the open event names the proxy", async () => {
  await using server = await startServer(QUIET_SERVER);
  await using proxy = await startTinyproxy();
  const run = await client([
    "--proxy",
    proxy.url,
    "--log-format",
    "json",
    "--send",
    "through the tunnel",
    server.echoUrl,
  ]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, "through the tunnel\n");
  const open = openEvent(run.events);
  assert.equal(open.proxy, proxy.url);
  assert.equal(open.remote, `127.0.0.1:${proxy.port}`, "the TCP connection is to the proxy");
  assert.match(await proxy.log(), new RegExp(`CONNECT 127\\.0\\.0\\.1:${server.port} HTTP/1\\.1`));
});

withTinyproxy.test("http_proxy and HTTP_PROXY are used for ws://, no_proxy bypasses it, --no-proxy ignores them all", async () => {
  await using server = await startServer(QUIET_SERVER);
  await using proxy = await startTinyproxy();
  const args = ["--log-format", "json", "--send", "x", server.echoUrl];
  const lower = await client(args, { http_proxy: proxy.url });
  assert.equal(lower.code, 0, lower.stderr);
  assert.equal(openEvent(lower.events).proxy, proxy.url);
  const upper = await client(args, { HTTP_PROXY: proxy.url });
  assert.equal(upper.code, 0, upper.stderr);
  assert.equal(upper.stdout, "x\n");
  assert.equal(openEvent(upper.events).proxy, proxy.url, "HTTP_PROXY in upper case too");
  const all = await client(args, { ALL_PROXY: proxy.url.replace("http://", "") });
  assert.equal(openEvent(all.events).proxy, proxy.url, "ALL_PROXY, no scheme: http://");
  const bypassed = await client(args, { http_proxy: proxy.url, NO_PROXY: `example.com,127.0.0.1` });
  assert.equal(bypassed.code, 0, bypassed.stderr);
  assert.equal(openEvent(bypassed.events).proxy, undefined);
  assert.equal(openEvent(bypassed.events).remote, `127.0.0.1:${server.port}`);
  const ignored = await client(["--no-proxy", ...args], { http_proxy: proxy.url });
  assert.equal(ignored.code, 0, ignored.stderr);
  assert.equal(openEvent(ignored.events).remote, `127.0.0.1:${server.port}`);
  const connects = (await proxy.log()).match(/Request \(file descriptor \d+\): CONNECT/g) ?? [];
  assert.equal(connects.length, 3, "the http_proxy, HTTP_PROXY and ALL_PROXY runs went through it");
});

withTinyproxy.test("tinyproxy with BasicAuth: the right credentials pass; none is a one-line 407 error, exit 1, the password nowhere", async () => {
  await using server = await startServer(QUIET_SERVER);
  await using proxy = await startTinyproxy({ basicAuth: { user: "alice", pass: "s3cret-Pw" } });
  const withUser = proxy.url.replace("//", "//alice:s3cret-Pw@");
  const ok = await client([
    "--proxy",
    withUser,
    "--log-format",
    "json",
    "--send",
    "a",
    server.echoUrl,
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, "a\n");
  assert.equal(openEvent(ok.events).proxy, proxy.url, "no credentials in the open event");
  assert.doesNotMatch(ok.stderr, /s3cret/);
  const none = await client(["--proxy", proxy.url, "--send", "a", server.echoUrl]);
  assert.equal(none.code, 1);
  const lines = errorLines(none.stderr);
  assert.equal(lines.length, 1, none.stderr);
  assert.match(
    lines[0],
    /refused the tunnel to 127\.0\.0\.1:\d+: 407 Proxy Authentication Required/,
  );
  const wrong = await client(["--proxy", withUser.replace("s3cret", "wrong"), server.echoUrl]);
  assert.equal(wrong.code, 1);
  assert.match(errorLines(wrong.stderr).join("\n"), /refused the tunnel .*: 40[17] /);
  assert.doesNotMatch(wrong.stderr + wrong.stdout, /wrong-Pw|alice/);
  const bad = await client(["--proxy", withUser.replace("http:", "ftp:"), server.echoUrl]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^client: --proxy: .*ftp:\/\/ is not one of/m);
  assert.doesNotMatch(bad.stderr, /s3cret|alice/);
});

withTinyproxy.test("a proxy that refuses (ConnectPort elsewhere: 403) or cannot reach the target (500) is one error line and exit 1", async () => {
  await using server = await startServer(QUIET_SERVER);
  await using strict = await startTinyproxy({ connectPorts: [443] });
  const refused = await client(["--proxy", strict.url, "--send", "a", server.echoUrl]);
  assert.equal(refused.code, 1);
  assert.equal(errorLines(refused.stderr).length, 1, refused.stderr);
  assert.match(
    errorLines(refused.stderr)[0],
    /proxy http:\/\/127\.0\.0\.1:\d+ refused the tunnel to .*: 403 /,
  );
  await using open = await startTinyproxy();
  const down = await client(["--proxy", open.url, "--send", "a", "ws://127.0.0.1:1/echo"]);
  assert.equal(down.code, 1);
  assert.equal(errorLines(down.stderr).length, 1, down.stderr);
  assert.match(errorLines(down.stderr)[0], /refused the tunnel to 127\.0\.0\.1:1: 5\d\d /);
});

withDanted.test("socks5:// and socks5h:// through danted: the echo comes back, and a dead target is named by its SOCKS reply", async () => {
  await using server = await startServer(QUIET_SERVER);
  await using proxy = await startDanted();
  for (const scheme of ["socks5", "socks5h"]) {
    const url = proxy.url.replace("socks5", scheme);
    const run = await client([
      "--proxy",
      url,
      "--log-format",
      "json",
      "--send",
      scheme,
      server.echoUrl.replace("127.0.0.1", "localhost"),
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${scheme}\n`);
    assert.equal(openEvent(run.events).proxy, url);
    assert.equal(openEvent(run.events).remote, `127.0.0.1:${proxy.port}`);
  }
  const down = await client(["--proxy", proxy.url, "--send", "a", "ws://127.0.0.1:1/echo"]);
  assert.equal(down.code, 1);
  assert.equal(errorLines(down.stderr).length, 1, down.stderr);
  assert.match(
    errorLines(down.stderr)[0],
    /SOCKS5 proxy .* refused the tunnel to 127\.0\.0\.1:1: connection refused by destination/,
  );
});

Deno.test({
  ...notRun(
    "socks5:// with a user and password (RFC 1929, a throwaway system user): the right ones pass, a wrong one says authentication failed",
    missing("danted") ??
      (Deno.uid() === 0 ? null : "needs root: danted checks system users, added by useradd"),
  ),
  fn: socksUserTest,
});

/** danted's username method with a system user made for the test. */
async function socksUserTest(t: Deno.TestContext): Promise<void> {
  await using server = await startServer(QUIET_SERVER);
  await using proxy = await startDanted({ username: true });
  const name = `kaws${Date.now() % 1_000_000}`;
  await using _user = await systemUser(name, "Sock-Pass-9");
  await t.step("the right password", async () => {
    const url = proxy.url.replace("//", `//${name}:Sock-Pass-9@`);
    const run = await client([
      "--proxy",
      url,
      "--log-format",
      "json",
      "--send",
      "u",
      server.echoUrl,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "u\n");
    assert.equal(openEvent(run.events).proxy, proxy.url);
  });
  await t.step("a wrong one", async () => {
    const url = proxy.url.replace("//", `//${name}:Not-It@`);
    const run = await client(["--proxy", url, "--send", "u", server.echoUrl]);
    assert.equal(run.code, 1);
    assert.equal(errorLines(run.stderr).length, 1, run.stderr);
    assert.match(errorLines(run.stderr)[0], /SOCKS5 proxy .* authentication failed/);
    assert.doesNotMatch(run.stderr, /Not-It/);
  });
  await t.step("none at all", async () => {
    const run = await client(["--proxy", proxy.url, "--send", "u", server.echoUrl]);
    assert.equal(run.code, 1);
    assert.match(errorLines(run.stderr)[0], /accepts none of the offered authentication methods/);
  });
}

withDantedAndOpenssl.test("wss:// through danted (socks5h://): the TLS to the server inside the SOCKS tunnel, keepalive on the proxy socket", async () => {
  await using certs = await makeCerts();
  await using proxy = await startDanted();
  await using server = await startServer([
    ...QUIET_SERVER,
    "--tls-cert",
    certs.selfSignedLeaf.cert,
    "--tls-key",
    certs.selfSignedLeaf.key,
  ]);
  const url = proxy.url.replace("socks5:", "socks5h:");
  const run = await client([
    "--proxy",
    url,
    "--ca",
    certs.selfSignedLeaf.cert,
    "--log-format",
    "json",
    "--send",
    "socks+tls",
    server.echoUrl.replace("127.0.0.1", "localhost"),
  ]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, "socks+tls\n");
  const open = openEvent(run.events);
  assert.equal(open.remote, `127.0.0.1:${proxy.port}`);
  assert.equal(open.proxy, url);
  assert.equal((open.keepalive as Record<string, unknown>).verified, true, JSON.stringify(open));
});

withTinyproxyAndOpenssl.test("wss:// through the HTTP proxy: TLS to the server inside the tunnel, by Deno's TLS (--ca), and by node:tls (a pinned CA:TRUE self-signed certificate, -k)", async () => {
  await using certs = await makeCerts();
  await using proxy = await startTinyproxy();
  for (
    const [pair, clientArgs] of [
      [certs.selfSignedLeaf, ["--ca", certs.selfSignedLeaf.cert]],
      [certs.selfSignedCa, ["--ca", certs.selfSignedCa.cert]],
      [certs.selfSignedCa, ["-k"]],
    ] as const
  ) {
    await using server = await startServer([
      ...QUIET_SERVER,
      "--tls-cert",
      pair.cert,
      "--tls-key",
      pair.key,
    ]);
    const run = await client([
      "--proxy",
      proxy.url,
      ...clientArgs,
      "--log-format",
      "json",
      "--send",
      "secret",
      server.echoUrl.replace("127.0.0.1", "localhost"),
    ]);
    assert.equal(run.code, 0, `${clientArgs.join(" ")}: ${run.stderr}`);
    assert.equal(run.stdout, "secret\n");
    const open = openEvent(run.events);
    assert.equal(open.remote, `127.0.0.1:${proxy.port}`);
    assert.equal((open.keepalive as Record<string, unknown>).verified, true, JSON.stringify(open));
  }
  assert.match(await proxy.log(), /CONNECT localhost:\d+ HTTP\/1\.1/);
});

withTinyproxy.test("keepalive is set and read back on the socket to the proxy: the open event says verified, and the kernel runs its timer", async () => {
  await using server = await startServer(QUIET_SERVER);
  await using proxy = await startTinyproxy();
  await using proc = Program.start("client.ts", [
    "--proxy",
    proxy.url,
    "--log-format",
    "json",
    "--wait",
    "forever",
    "--send",
    "k",
    server.echoUrl,
  ], { env: NO_PROXY_ENV });
  const open = await proc.waitForEvent("open");
  assert.deepEqual(open.keepalive, {
    enabled: true,
    idle_s: 15,
    interval_s: 15,
    count: 9,
    verified: true,
  });
  const local = Number(String(open.local ?? "").split(":").pop()) || await localPortTo(proxy.port);
  const timer = await keepAliveTimer(local, proxy.port);
  assert.ok(
    timer !== null && timer > 0 && timer <= 15,
    `keepalive timer ${timer}s on ${local}→${proxy.port}`,
  );
});

/** The local port of the one established socket to 127.0.0.1:`port` opened by a client (read from /proc). */
async function localPortTo(port: number): Promise<number> {
  const { procTcpSockets } = await import("./helpers/tcp_timers.ts");
  const ours = (await procTcpSockets()).filter((s) => s.state === 1 && s.remotePort === port);
  assert.equal(ours.length, 1, `one client socket to the proxy: ${JSON.stringify(ours)}`);
  return ours[0].localPort;
}

withTinyproxy.test("through tinyproxy with Timeout 5: --probe-idle --no-keepalive finds the timeout between 4s and 8s; --ping-interval 2s keeps a 12 s wait alive, none loses it", async (t) => {
  await using server = await startServer(QUIET_SERVER);
  await using proxy = await startTinyproxy({ timeoutS: 5 });
  await t.step("the probe", async () => {
    const run = await client(
      [
        "--proxy",
        proxy.url,
        "--probe-idle",
        "--no-keepalive",
        "--probe-min",
        "1s",
        "--probe-max",
        "16s",
        "--log-format",
        "json",
        server.echoUrl,
      ],
      {},
      LONG_RUN_MS,
    );
    assert.equal(run.code, 0, run.stderr);
    const last = run.stdout.trimEnd().split("\n").at(-1) ?? "";
    assert.match(last, /^idle timeout between 4s and \d+(\.\d+)?s \(eof\)$/, run.stdout);
    const result = run.events.find((e) => e.event === "probe") as Record<string, number>;
    assert.equal(result.lower_s, 4);
    assert.ok(result.upper_s > 4 && result.upper_s <= 8, `upper ${result.upper_s}s`);
    console.log(run.stdout.trimEnd());
  });
  await t.step(
    "--ping-interval 2s --wait 12s exits 0, --show-pings shows the pongs coming back",
    async () => {
      const run = await client(
        [
          "--proxy",
          proxy.url,
          "--ping-interval",
          "2s",
          "--wait",
          "12s",
          "--show-pings",
          "--log-format",
          "json",
          "--send",
          "hb",
          server.echoUrl,
        ],
        {},
        LONG_RUN_MS,
      );
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, "hb\n");
      const pongs = run.events.filter((e) => e.event === "pong" && e.dir === "received");
      assert.ok(pongs.length >= 3, `pongs through the proxy: ${JSON.stringify(pongs)}`);
      assert.ok(pongs.every((p) => typeof p.rtt_ms === "number"), JSON.stringify(pongs));
      const close = run.events.find((e) => e.event === "close");
      assert.equal(close?.cause, "local-close", JSON.stringify(close));
    },
  );
  await t.step("--wait 12s without a heartbeat: the proxy cuts it, exit 1", async () => {
    const run = await client(
      ["--proxy", proxy.url, "--wait", "12s", "--send", "idle", server.echoUrl],
      {},
      LONG_RUN_MS,
    );
    assert.equal(run.code, 1, run.stderr);
    assert.match(errorLines(run.stderr).at(-1) ?? "", /connection closed: eof \(code 1006/);
  });
});
