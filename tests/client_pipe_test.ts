/**
 * The client as scripts use it (stdout a pipe), and what it says when a
 * connection cannot be made: the pipe rule and `--output`, slash commands
 * only with `--slash`, `--wait forever`, `host:port` URLs, `-H` conflicts,
 * a refused upgrade's body, TLS (`--ca` with a self-signed certificate,
 * `-k`, the wrong scheme for the server), and `--version`.
 */

import assert from "node:assert/strict";
import { serve } from "../mod.ts";
import { hasStackTrace, Program, runClient, startServer } from "./helpers/process.ts";
import { makeCerts } from "./helpers/certs.ts";
import { withPrograms } from "./helpers/needs.ts";

/** Tests that make certificates with openssl. */
const withOpenssl = withPrograms("openssl");

/** A server of this library that answers `multi` with a text of three lines and `bin` with bytes. */
function playServer(onOpen?: (ws: { close(code: number, reason: string): unknown }) => void) {
  const server = serve({ hostname: "127.0.0.1", port: 0 }, async (req) => {
    const ws = await req.upgrade();
    onOpen?.(ws);
    for await (const m of ws) {
      if (m === "multi") await ws.send("line one\nline two\r\nline three");
      else if (m === "bin") await ws.send(Uint8Array.of(0, 1, 254, 255));
      else await ws.send(m);
    }
  });
  return {
    hostPort: `127.0.0.1:${server.addr.port}`,
    url: `ws://127.0.0.1:${server.addr.port}/echo`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** The client's last error line (text log format). */
function errorLine(stderr: string): string {
  assert.ok(!hasStackTrace(stderr), stderr);
  return stderr.split("\n").filter((l) => /level=error|^client: /.test(l)).at(-1) ?? "";
}

Deno.test("client on a pipe writes one line per message: newlines escaped, binary as base64", async () => {
  await using server = playServer();
  const { code, stdout } = await runClient(["--send", "multi", "--send", "bin", server.url]);
  assert.equal(code, 0);
  assert.equal(stdout, "line one\\nline two\\r\\nline three\nAAH+/w==\n");
});

Deno.test("client --output json gives one object per message with type and data; raw gives the bytes", async () => {
  await using server = playServer();
  const json = await runClient([
    "--output",
    "json",
    "--send",
    "multi",
    "--send",
    "bin",
    server.url,
  ]);
  assert.equal(json.code, 0);
  assert.deepEqual(json.stdout.trim().split("\n").map((l) => JSON.parse(l)), [
    { type: "text", data: "line one\nline two\r\nline three" },
    { type: "binary", data: "AAH+/w==" },
  ]);
  const raw = await runClient(["--output", "raw", "--send", "multi", server.url]);
  assert.equal(raw.stdout, "line one\nline two\r\nline three\n");
  const bad = await runClient(["--output", "yaml", server.url]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--output must be text, json or raw/);
});

Deno.test("client on a pipe sends lines starting with / as they are; --slash makes them commands", async () => {
  await using server = playServer();
  const plain = await runClient([server.url], { input: "/ping\n" });
  assert.equal(plain.code, 0);
  assert.equal(plain.stdout, "/ping\n", "sent and echoed like any line");
  const slash = await runClient(["--slash", "--log-format", "json", server.url], {
    input: "/ping abc\n/bogus\n//x\nhi\n",
  });
  assert.equal(slash.code, 0, slash.stderr);
  assert.equal(slash.stdout, "/x\nhi\n", "only messages on stdout");
  const pong = slash.events.find((e) => e.event === "pong");
  assert.equal(pong?.dir, "received");
  assert.equal(typeof pong?.rtt_ms, "number");
  assert.match(String(slash.events.find((e) => e.event === "command")?.message), /\/bogus/);
  // /close closes at once, with its code and reason, and exits 0.
  const closed = await runClient(["--slash", "--log-format", "json", server.url], {
    input: "/close 4000 enough\nnever sent\n",
  });
  assert.equal(closed.code, 0, closed.stderr);
  const close = closed.events.find((e) => e.event === "close");
  assert.deepEqual([close?.code, close?.reason, close?.cause], [4000, "enough", "local-close"]);
  assert.deepEqual(close?.traffic, { messages_in: 0, bytes_in: 0, messages_out: 0, bytes_out: 0 });
  const both = await runClient(["--slash", "--no-slash", server.url]);
  assert.equal(both.code, 2);
});

Deno.test("client --wait forever stays connected after stdin ends until the server closes", async () => {
  await using server = playServer((ws) => setTimeout(() => ws.close(1000, "that is all"), 1_500));
  const started = Date.now();
  const { code, stdout, events } = await runClient(
    ["--wait", "forever", "--log-format", "json", server.url],
    { input: "a\n" },
  );
  assert.equal(code, 0);
  assert.equal(stdout, "a\n");
  assert.ok(Date.now() - started >= 1_400, "it did not leave when the reply came");
  const close = events.find((e) => e.event === "close");
  assert.deepEqual([close?.cause, close?.reason], ["peer-close", "that is all"]);
});

Deno.test("client --wait forever ends on Ctrl-C (SIGINT) with close 1000", async () => {
  await using server = playServer();
  await using proc = Program.start("client.ts", [
    "--wait",
    "forever",
    "--send",
    "x",
    "--log-format",
    "json",
    server.url,
  ]);
  await proc.waitForLines(1);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(proc.ended, false);
  proc.kill("SIGINT");
  const exit = await proc.wait();
  assert.equal(exit.code, 0);
  assert.equal(proc.events.find((e) => e.event === "close")?.code, 1000);
});

Deno.test("client takes host:port[/path] without a scheme as ws://", async () => {
  await using server = playServer();
  for (const url of [server.hostPort, `${server.hostPort}/echo`]) {
    const { code, stdout } = await runClient(["--send", "bare", url]);
    assert.equal(code, 0, url);
    assert.equal(stdout, "bare\n");
  }
});

Deno.test("client -H with a header the handshake sets is a usage error, exit 2, never retried by --reconnect", async () => {
  for (const header of ["Host: evil.example", "Origin: https://a", "Sec-WebSocket-Protocol: x"]) {
    const started = Date.now();
    const { code, stdout, stderr } = await runClient([
      "--reconnect",
      "-H",
      header,
      "ws://127.0.0.1:1/",
    ]);
    assert.equal(code, 2, stderr);
    assert.equal(stdout, "");
    assert.match(
      stderr,
      new RegExp(`^client: --header ${header.split(":")[0]}: the WebSocket handshake sets`),
    );
    assert.doesNotMatch(stderr, /reconnect/);
    assert.ok(Date.now() - started < 5_000);
  }
});

Deno.test("client prints a refused upgrade's body, cut to one line", async () => {
  await using server = await startServer(["--max-connections", "1"]);
  const foreign = await runClient([
    "--origin",
    "http://other.example",
    "--send",
    "x",
    server.echoUrl,
  ]);
  assert.equal(foreign.code, 1);
  assert.match(
    errorLine(foreign.stderr),
    /handshake with 127\.0\.0\.1:\d+ failed: server refused the upgrade: 403 Forbidden: the origin http:\/\/other\.example is not allowed/,
  );
  const notFound = await runClient(["--send", "x", server.echoUrl.replace("/echo", "/nope")]);
  assert.match(errorLine(notFound.stderr), /404 Not Found: no such path: \/nope"$/);
});

withOpenssl.test("client --ca with a self-signed CA:TRUE certificate (openssl req -x509) connects; without it the error names --ca and -k", async () => {
  await using certs = await makeCerts();
  await using server = await startServer([
    "--tls-cert",
    certs.selfSignedCa.cert,
    "--tls-key",
    certs.selfSignedCa.key,
  ]);
  const ok = await runClient(["--ca", certs.selfSignedCa.cert, "--send", "pinned", server.echoUrl]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, "pinned\n");
  const byName = server.echoUrl.replace("127.0.0.1", "localhost");
  assert.equal((await runClient(["--ca", certs.selfSignedCa.cert, "--send", "x", byName])).code, 0);

  const without = await runClient(["--send", "x", server.echoUrl]);
  assert.equal(without.code, 1);
  const line = errorLine(without.stderr);
  assert.match(line, /TLS: the server's certificate is a self-signed CA certificate \(CA:TRUE/);
  assert.match(line, /--ca/);
  assert.match(line, /-k connects without checking/);
  assert.doesNotMatch(line, /OtherError|CaUsedAsEndEntity/);

  const wrong = await runClient([
    "--ca",
    certs.otherSelfSigned.cert,
    "--send",
    "x",
    server.echoUrl,
  ]);
  assert.equal(wrong.code, 1);
  assert.match(
    errorLine(wrong.stderr),
    new RegExp(`not the certificate in --ca ${certs.otherSelfSigned.cert}`),
  );
});

withOpenssl.test("client -k connects to a server whose certificate is expired, and says it did not check", async () => {
  await using certs = await makeCerts();
  await using server = await startServer([
    "--tls-cert",
    certs.expired.cert,
    "--tls-key",
    certs.expired.key,
  ]);
  const refused = await runClient(["--ca", certs.ca.cert, "--send", "x", server.echoUrl]);
  assert.equal(refused.code, 1);
  assert.match(
    errorLine(refused.stderr),
    /TLS: the server's certificate expired at \S+Z; -k connects/,
  );
  const insecure = await runClient(["-k", "--log-format", "json", "--send", "x", server.echoUrl]);
  assert.equal(insecure.code, 0, insecure.stderr);
  assert.equal(insecure.stdout, "x\n");
  const warning = insecure.events.find((e) => e.event === "insecure");
  assert.equal(warning?.level, "warn");
  assert.match(String(warning?.message), /not checked/);
  // The keepalive policy is on the socket under node:tls too, read back.
  const open = insecure.events.find((e) => e.event === "open");
  assert.equal((open?.keepalive as { verified: boolean }).verified, true);
});

withOpenssl.test("client names a wrong scheme: wss:// to a plain server within 2 s, ws:// to a TLS server", async () => {
  await using plain = await startServer();
  const started = Date.now();
  const tlsToPlain = await runClient(["--send", "x", plain.echoUrl.replace("ws:", "wss:")]);
  const took = Date.now() - started;
  assert.equal(tlsToPlain.code, 1);
  assert.match(
    errorLine(tlsToPlain.stderr),
    /(speaks plain HTTP, not TLS|did not answer in TLS \(a plain ws:\/\/ server\?\)): use ws:\/\/ instead of wss:\/\//,
  );
  // The client process starts, probes after 1 s, and exits: well under the 10 s handshake timeout.
  assert.ok(took < 4_000, `took ${took}ms`);

  await using certs = await makeCerts();
  await using secure = await startServer([
    "--tls-cert",
    certs.selfSignedLeaf.cert,
    "--tls-key",
    certs.selfSignedLeaf.key,
  ]);
  const plainToTls = await runClient(["--send", "x", secure.echoUrl.replace("wss:", "ws:")]);
  assert.equal(plainToTls.code, 1);
  assert.match(
    errorLine(plainToTls.stderr),
    /speaks TLS, not plain HTTP: use wss:\/\/ instead of ws:\/\//,
  );
});

Deno.test("--version prints the version from deno.json on both programs", async () => {
  const { version } = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  for (const program of ["client.ts", "server.ts"]) {
    for (const flag of ["--version", "-V"]) {
      await using proc = Program.start(program, [flag]);
      const { code, stdout } = await proc.wait();
      assert.equal(code, 0);
      assert.equal(
        stdout,
        `keepalive-ws ${program.replace(".ts", "")} ${version} (Deno ${Deno.version.deno})\n`,
      );
    }
  }
});
