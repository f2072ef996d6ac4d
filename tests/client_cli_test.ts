/**
 * `client.ts` as people run it: stdin piping, `--send`/`--count`/`--wait`,
 * binary output, headers, every exit code with its one-line message,
 * `--reconnect` across server restarts, wss with a private CA, and the
 * interactive prompt on a terminal. Every test drives the real program as a
 * subprocess against the real `server.ts` (or a bare TCP listener that plays
 * a broken server).
 */

import assert from "node:assert/strict";
import { buildUpgradeResponse, checkUpgradeRequest } from "../lib/ws/server_handshake.ts";
import { DEFAULT_MAX_HEAD_SIZE, parseRequestHead } from "../lib/http/head.ts";
import { readHead } from "../lib/http/io.ts";
import {
  hasStackTrace,
  PERMISSIONS,
  plainLines,
  Program,
  ROOT,
  runClient,
  startServer,
} from "./helpers/process.ts";
import { makePki } from "./helpers/tls.ts";
import { fakeServer } from "./helpers/raw.ts";
import { needs, pathOf, withPrograms } from "./helpers/needs.ts";

/** Tests that make certificates with openssl. */
const withOpenssl = withPrograms("openssl");

/** The one error line a failed client prints (text log format), checked for shape. */
function failureLine(stderr: string): string {
  assert.ok(!hasStackTrace(stderr), stderr);
  const errors = stderr.split("\n").filter((l) => /level=error|^client: /.test(l));
  assert.equal(errors.length, 1, `expected one error line:\n${stderr}`);
  return errors[0];
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

/** Reads the upgrade request on `conn` and answers 101; returns the request head. */
async function acceptByHand(conn: Deno.Conn) {
  const got = await readHead(conn, { maxHeadSize: DEFAULT_MAX_HEAD_SIZE });
  const head = parseRequestHead(got!.head);
  const { key } = checkUpgradeRequest(head, { origins: ["*"] });
  await conn.write(new TextEncoder().encode(buildUpgradeResponse(key, null)));
  return head;
}

Deno.test("client --help documents every flag, the binary output and the exit codes", async () => {
  await using proc = Program.start("client.ts", ["--help"]);
  const { code, stdout } = await proc.wait();
  assert.equal(code, 0);
  for (
    const flag of [
      "--send",
      "--count",
      "--wait",
      "--binary",
      "--header",
      "--origin",
      "--subprotocol",
      "--reconnect",
      "--reconnect-max-delay",
      "--ca",
      "--insecure",
      "--output",
      "--slash",
      "--no-slash",
      "--log-format",
      "--help",
      "--version",
      "--keepalive",
      "--keepalive-idle",
      "--keepalive-interval",
      "--keepalive-count",
      "--no-keepalive",
      "--print-keepalive",
      "--tcp-user-timeout",
      "--ping-interval",
      "--pong-timeout",
      "--max-message-size",
      "--handshake-timeout",
    ]
  ) {
    assert.match(
      stdout,
      new RegExp(`^\\s+(-\\w, )?(--[\\w-]+(, | [^ ]+, ))?${flag}\\b`, "m"),
      `${flag} is not in --help`,
    );
  }
  assert.match(stdout, /-H, --header/);
  assert.match(stdout, /-k, --insecure/);
  assert.match(stdout, /-V, --version/);
  assert.match(stdout, /--wait D\|forever/);
  assert.match(stdout, /binary messages as base64/);
  assert.match(stdout, /"\[binary 5 B\] aGVsbG8="/);
  assert.match(stdout, /ws:\/\/localhost:8080\/echo/);
  assert.match(stdout, /Exit codes: 0 .*1000 or 1001; 1 .*; 2 usage error/s);
});

Deno.test("client pipes stdin lines to the server and prints each reply as one clean line", async () => {
  await using server = await startServer();
  const lines = ["hello", "", "with spaces and ünïcödé ✓", "last line without newline"];
  const { code, stdout, stderr } = await runClient([server.echoUrl], { input: lines.join("\n") });
  assert.equal(code, 0, stderr);
  assert.equal(stdout, lines.map((l) => l + "\n").join(""));
  assert.ok(!stdout.includes("\x1b"), "no colour or prompt on a pipe");
  assert.match(stderr, /event=close .*code=1000 .*clean=true/);
  // CRLF input is read as lines too.
  const crlf = await runClient([server.echoUrl], { input: "a\r\nb\r\n" });
  assert.equal(crlf.stdout, "a\nb\n");
});

Deno.test("client --send sends each message in order and exits 0 once the replies are in", async () => {
  await using server = await startServer();
  const { code, stdout, events } = await runClient([
    "--log-format",
    "json",
    "--send",
    "one",
    "--send",
    "two",
    "--send",
    "three",
    server.echoUrl,
  ]);
  assert.equal(code, 0);
  assert.equal(stdout, "one\ntwo\nthree\n");
  const close = events.find((e) => e.event === "close")!;
  assert.equal(close.code, 1000);
  assert.equal(close.cause, "local-close");
  // Without --wait it leaves as soon as the replies due are in, well before the 10s bound.
  assert.ok(Number(close.duration_ms) < 5_000, `stayed ${close.duration_ms}ms`);
});

Deno.test("client --count N exits after N messages; fewer within --wait is a timeout, exit 1", async () => {
  await using server = await startServer();
  const enough = await runClient([
    "--send",
    "a",
    "--send",
    "b",
    "--send",
    "c",
    "--count",
    "2",
    server.echoUrl,
  ]);
  assert.equal(enough.code, 0, enough.stderr);
  assert.equal(enough.stdout, "a\nb\n");

  const short = await runClient(["--send", "a", "--count", "2", "--wait", "300ms", server.echoUrl]);
  assert.equal(short.code, 1, short.stderr);
  assert.equal(short.stdout, "a\n");
  assert.match(
    failureLine(short.stderr),
    /timed out: received 1 of 2 messages within 300ms of the last send/,
  );
});

Deno.test("client --wait D stays connected D after the last send, even with the replies in", async () => {
  await using server = await startServer();
  const { code, stdout, events } = await runClient([
    "--log-format",
    "json",
    "--send",
    "x",
    "--wait",
    "1200ms",
    server.echoUrl,
  ]);
  assert.equal(code, 0);
  assert.equal(stdout, "x\n");
  const close = events.find((e) => e.event === "close")!;
  assert.ok(Number(close.duration_ms) >= 1_100, `left after ${close.duration_ms}ms`);
  assert.equal(close.code, 1000);
});

Deno.test("client --binary sends binary messages and prints binary replies as base64", async () => {
  await using server = await startServer();
  const text = "binary ✓";
  const { code, stdout } = await runClient(["--binary", "--send", text, server.echoUrl]);
  assert.equal(code, 0);
  const bytes = new TextEncoder().encode(text);
  assert.equal(stdout, btoa(String.fromCharCode(...bytes)) + "\n");
});

Deno.test("client sends -H headers and --origin in its upgrade request", async () => {
  const seen = Promise.withResolvers<Headers>();
  await using fake = fakeServer(async (conn) => {
    const head = await acceptByHand(conn);
    seen.resolve(head.headers.toHeaders());
    // Close 1000 at once: the client should exit 0.
    await conn.write(Uint8Array.of(0x88, 0x02, 0x03, 0xe8));
    await conn.read(new Uint8Array(64));
    conn.close();
  });
  const { code, stderr } = await runClient([
    "-H",
    "X-Api-Key: secret 1",
    "--header",
    "X-Trace:abc",
    "--origin",
    "https://app.example",
    fake.url,
  ], { input: "" });
  assert.equal(code, 0, stderr);
  const headers = await seen.promise;
  assert.equal(headers.get("x-api-key"), "secret 1");
  assert.equal(headers.get("x-trace"), "abc");
  assert.equal(headers.get("origin"), "https://app.example");
});

Deno.test("client usage errors exit 2 with one line and a hint, never a stack trace", async (t) => {
  const cases: [string[], RegExp][] = [
    [["--bogus"], /^client: Unknown option '--bogus'$/],
    [["--wait", "5x"], /^client: --wait: invalid duration "5x"/],
    [["--count", "0"], /^client: --count must be at least 1, got 0$/],
    [["--count", "x"], /^client: --count takes a whole number, got "x"$/],
    [["http://localhost/"], /^client: invalid URL "http:\/\/localhost\/": the scheme must be ws/],
    [["not a url"], /^client: invalid URL "not a url"/],
    [["ws://a/", "ws://b/"], /^client: expected one URL, got 2$/],
    [["-H", "NoColon"], /^client: --header takes "Name: value", got "NoColon"$/],
    [["--log-format", "yaml"], /^client: --log-format must be text or json/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), async () => {
      const { code, stdout, stderr } = await runClient(args);
      assert.equal(code, 2, stderr);
      assert.equal(stdout, "");
      assert.ok(!hasStackTrace(stderr), stderr);
      assert.deepEqual(plainLines(stderr).slice(1), ["Run 'deno task client --help' for usage."]);
      assert.match(plainLines(stderr)[0], message);
    });
  }
});

Deno.test("client failures exit 1 with one line naming the cause", async (t) => {
  await t.step("connection refused", async () => {
    const port = freePort();
    const { code, stderr } = await runClient(["--send", "x", `ws://127.0.0.1:${port}/echo`]);
    assert.equal(code, 1);
    assert.match(
      failureLine(stderr),
      new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}: connection refused`),
    );
  });
  await t.step("handshake refused (404)", async () => {
    await using server = await startServer();
    const url = server.echoUrl.replace("/echo", "/nowhere");
    const { code, stderr } = await runClient(["--send", "x", url]);
    assert.equal(code, 1);
    assert.match(failureLine(stderr), /handshake with 127\.0\.0\.1:\d+ failed: .*404 Not Found/);
  });
  await t.step("handshake timeout", async () => {
    await using fake = fakeServer(async (conn) => {
      await conn.read(new Uint8Array(4096)); // read the request, never answer
    });
    const started = Date.now();
    const { code, stderr } = await runClient([
      "--handshake-timeout",
      "400ms",
      "--send",
      "x",
      fake.url,
    ]);
    assert.equal(code, 1);
    assert.ok(Date.now() - started >= 350);
    assert.match(
      failureLine(stderr),
      /cannot connect to 127\.0\.0\.1:\d+: no handshake within 400ms/,
    );
  });
  await t.step("abnormal close: the server drops TCP without a close frame", async () => {
    await using fake = fakeServer(async (conn) => {
      await acceptByHand(conn);
      conn.close();
    });
    const { code, stderr } = await runClient([fake.url], { input: "x\n" });
    assert.equal(code, 1);
    assert.match(failureLine(stderr), /connection closed: eof \(code 1006/);
  });
  await t.step("close with an error code (1011) is not success", async () => {
    await using fake = fakeServer(async (conn) => {
      await acceptByHand(conn);
      await conn.read(new Uint8Array(64)); // the client's message
      await conn.write(Uint8Array.of(0x88, 0x02, 0x03, 0xf3)); // close 1011
      await conn.read(new Uint8Array(64));
      conn.close();
    });
    const { code, stderr } = await runClient([fake.url], { input: "x\n" });
    assert.equal(code, 1);
    assert.match(failureLine(stderr), /connection closed: peer-close \(code 1011/);
  });
  await t.step("--ca file missing", async () => {
    const { code, stderr } = await runClient(["--ca", "/nonexistent/ca.pem", "ws://127.0.0.1:1/"]);
    assert.equal(code, 1);
    assert.equal(
      failureLine(stderr),
      "client: --ca: cannot read /nonexistent/ca.pem: No such file or directory (os error 2)",
    );
  });
});

withOpenssl.test("client over wss:// trusts a private CA given with --ca, and names the TLS failure without it", async () => {
  await using pki = await makePki();
  await using server = await startServer(["--tls-cert", pki.cert, "--tls-key", pki.key]);
  assert.match(server.echoUrl, /^wss:/);
  const ok = await runClient([
    "--ca",
    pki.caCert,
    "--log-format",
    "json",
    "--keepalive-idle",
    "20s",
    "--send",
    "secure",
    server.echoUrl,
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, "secure\n");
  // The keepalive policy is on the TCP socket under TLS too, read back on both ends.
  const clientOpen = ok.events.find((e) => e.event === "open");
  assert.deepEqual(clientOpen?.keepalive, {
    enabled: true,
    idle_s: 20,
    interval_s: 15,
    count: 9,
    verified: true,
  });
  const serverOpen = await server.proc.waitForEvent("open");
  assert.deepEqual(serverOpen.keepalive, {
    enabled: true,
    idle_s: 15,
    interval_s: 15,
    count: 9,
    verified: true,
  });
  const byName = await runClient([
    "--ca",
    pki.caCert,
    "--send",
    "by name",
    server.echoUrl.replace("127.0.0.1", "localhost"),
  ]);
  assert.equal(byName.code, 0, byName.stderr);

  const untrusted = await runClient(["--send", "secure", server.echoUrl]);
  assert.equal(untrusted.code, 1);
  assert.match(failureLine(untrusted.stderr), /TLS: .*certificate.*--ca FILE/);
  // The server logs the failed TLS handshake, not as an HTTP refusal.
  const error = await server.proc.waitForEvent("error");
  assert.match(String(error.message), /reading the request failed/);
  assert.ok(!server.proc.events.some((e) => e.event === "rejected"));
});

Deno.test("client --reconnect rides out a graceful restart and a crash of the server on the same port", async () => {
  const server1 = await startServer();
  const port = server1.port;
  await using client = Program.start("client.ts", [
    "--log-format",
    "json",
    "--reconnect",
    "--reconnect-max-delay",
    "1s",
    server1.echoUrl,
  ], { stdin: true });
  try {
    await client.waitForEvent("open");
    await client.write("first\n");
    await client.waitForLines(1);

    // 1. Graceful restart: close 1001 is the server going away, so reconnect.
    server1.proc.kill("SIGTERM");
    assert.equal((await server1.proc.wait()).code, 0);
  } finally {
    await server1[Symbol.asyncDispose]();
  }
  await client.waitForEvent("close", (e) => e.code === 1001);
  await client.waitForEvent("reconnect");
  // While the port is closed, attempts fail and back off, each logged.
  const failed = await client.waitForEvent("reconnect", () => true, { nth: 2 });
  assert.equal(failed.attempt, 2);
  for (const e of client.events.filter((e) => e.event === "reconnect")) {
    assert.ok(Number(e.delay_ms) >= 250 && Number(e.delay_ms) <= 1000, `delay ${e.delay_ms}`);
  }
  {
    await using server2 = await startServer([], { port });
    await client.waitForEvent("open", () => true, { nth: 2 });
    await client.write("second\n");
    assert.deepEqual(await client.waitForLines(2), ["first", "second"]);

    // 2. Crash: no close frame at all.
    server2.proc.kill("SIGKILL");
    await server2.proc.wait();
  }
  const crash = await client.waitForEvent("close", (e) => e.code === 1006);
  // A connection that lived less than 30 s does not reset the backoff: the count goes on.
  const afterCrash = await client.until(
    "a reconnect after the crash",
    () => client.events.slice(client.events.indexOf(crash)).find((e) => e.event === "reconnect"),
  );
  const before = client.events.slice(0, client.events.indexOf(crash))
    .filter((e) => e.event === "reconnect").map((e) => Number(e.attempt));
  assert.equal(afterCrash.attempt, Math.max(...before) + 1);
  {
    await using server3 = await startServer([], { port });
    await client.waitForEvent("open", () => true, { nth: 3 });
    await client.write("third\n");
    assert.deepEqual(await client.waitForLines(3), ["first", "second", "third"]);
    // stdin EOF: the client closes 1000 itself, which ends the reconnecting.
    await client.closeStdin();
    const exit = await client.wait();
    assert.equal(exit.code, 0, exit.stderr);
    assert.ok(!hasStackTrace(exit.stderr));
    assert.equal((await server3.proc.waitForEvent("close")).code, 1000);
  }
});

Deno.test("client --reconnect stops on Ctrl-C (SIGINT) while waiting to retry", async () => {
  const port = freePort();
  await using client = Program.start("client.ts", [
    "--log-format",
    "json",
    "--reconnect",
    "--reconnect-max-delay",
    "30s",
    `ws://127.0.0.1:${port}/echo`,
  ], { stdin: true });
  await client.waitForEvent("reconnect", () => true, { nth: 2 });
  client.kill("SIGINT");
  const exit = await client.wait(5_000);
  assert.equal(exit.code, 1);
  assert.ok(!hasStackTrace(exit.stderr), exit.stderr);
});

Deno.test("client on SIGINT or SIGTERM closes 1000 and exits 0", async (t) => {
  await using server = await startServer();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    await t.step(signal, async () => {
      await using client = Program.start("client.ts", ["--log-format", "json", server.echoUrl], {
        stdin: true,
      });
      await client.waitForEvent("open");
      const opened = await server.proc.waitForEvent("open", () => true, {
        nth: signal === "SIGINT" ? 1 : 2,
      });
      client.kill(signal);
      const exit = await client.wait();
      assert.equal(exit.code, 0, exit.stderr);
      assert.equal(client.events.find((e) => e.event === "close")?.code, 1000);
      const close = await server.proc.waitForEvent("close", (e) => e.id === opened.id);
      assert.equal(close.code, 1000);
      assert.equal(close.cause, "peer-close");
    });
  }
});

Deno.test(
  needs("client on a terminal shows a prompt and colour, and Ctrl-D closes 1000", "script"),
  async () => {
    const script = pathOf("script");
    await using server = await startServer();
    const command = [
      Deno.execPath(),
      "run",
      ...PERMISSIONS,
      new URL("client.ts", ROOT).pathname,
      "--no-history", // not this machine's history file
      server.echoUrl,
    ].join(" ");
    // script(1) gives the client a pseudo-terminal for stdin and stdout.
    await using terminal = Program.spawn(script, ["-qefc", command, "/dev/null"], {
      stdin: true,
      // A clean environment: an inherited NO_COLOR would turn the colour off.
      clearEnv: true,
      env: Object.fromEntries(
        ["PATH", "HOME", "DENO_DIR"].flatMap((k) => {
          const v = Deno.env.get(k);
          return v === undefined ? [] : [[k, v]];
        }).concat([["TERM", "xterm-256color"]]),
      ),
    });
    // The terminal turns each "\n" into "\r\n" (output processing stays on in raw mode).
    const screen = () => terminal.stdout.replaceAll("\r\r\n", "\r\n");
    const shown = (what: string, done: (out: string) => boolean) =>
      terminal.until(what, () => done(screen()));
    // The line editor draws the prompt and the line, then puts the cursor after them.
    const prompt = "\r\x1b[1;36m>\x1b[0m \x1b[K\r\x1b[2C";
    await shown("the prompt", (o) => /event=open/.test(o) && o.endsWith(prompt));
    await terminal.write("hi there\n");
    await shown(
      "the echo and a prompt after it",
      (o) => o.includes("\x1b[32m< hi there\x1b[0m\r\n") && o.endsWith(prompt),
    );
    // The reply erased the fresh prompt, printed itself in green, and re-drew the prompt.
    assert.ok(
      screen().includes(`${prompt}\r\x1b[2K\x1b[32m< hi there\x1b[0m\r\n${prompt}`),
      JSON.stringify(screen()),
    );
    await terminal.write("\x04"); // Ctrl-D: EOF
    await shown("the close", (o) => /event=close [^\n]*code=1000/.test(o));
    const exit = await terminal.wait();
    assert.equal(exit.code, 0);
  },
);

Deno.test("client --help documents the diagnosing and fault-injection flags", async () => {
  await using proc = Program.start("client.ts", ["--help"]);
  const { code, stdout } = await proc.wait();
  assert.equal(code, 0);
  for (
    const flag of [
      "--show-pings",
      "--probe-idle",
      "--probe-min",
      "--probe-max",
      "--no-pong",
      "--freeze-after",
      "--drop-after",
      "--drop-mode",
    ]
  ) {
    assert.match(stdout, new RegExp(`^\\s+${flag}\\b`, "m"), `${flag} is not in --help`);
  }
  assert.match(stdout, /idle timeout between Ns and Ms \(cause\)/);
});
