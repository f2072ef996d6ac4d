/**
 * Mutual TLS (issue 21): the server's `--tls-client-ca` (`tls.clientCa`)
 * and the client's `--cert`/`--key` (`cert`/`key`). A good client gets its
 * echo and both open events name the other side's certificate (`/info`
 * too); one without a certificate, with one from another CA, or with an
 * expired one is refused with one clear line, the server logs and counts
 * cause `tls-handshake` with the reason and keeps serving; keepalive is set
 * and read back on the server's `node:tls` sockets (and seen by the kernel's
 * timers); curl and Python's websockets, which we did not write, do mTLS
 * against it; the usage errors.
 */

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { dial, HandshakeError, serve } from "../mod.ts";
import { type Certs, makeCerts } from "./helpers/certs.ts";
import { hasStackTrace, Program, runClient } from "./helpers/process.ts";
import { startTestServer, type TestServer } from "./helpers/server.ts";
import { pathOf, withPrograms } from "./helpers/needs.ts";
import { keepAliveTimer } from "./helpers/tcp_timers.ts";
import { pemCertificates, refusalReason } from "../lib/server/client_cert.ts";

const withOpenssl = withPrograms("openssl");

/** An in-process echo server asking for client certificates signed by `certs.clientCa`. */
async function mtlsServer(certs: Certs): Promise<TestServer> {
  return startTestServer({
    tls: {
      cert: await Deno.readTextFile(certs.server.cert),
      key: await Deno.readTextFile(certs.server.key),
      clientCa: await Deno.readTextFile(certs.clientCa.cert),
    },
  });
}

/** The client's flags for a wss:// dial trusting `certs.ca`, with the client certificate `files`. */
function clientArgs(certs: Certs, files: { cert: string; key: string } | null): string[] {
  return [
    "--ca",
    certs.ca.cert,
    ...(files ? ["--cert", files.cert, "--key", files.key] : []),
    "--log-format",
    "json",
  ];
}

/** GETs `path` from the server over TLS with `files` as the client certificate. */
async function get(
  certs: Certs,
  port: number,
  path: string,
  files: { cert: string; key: string },
): Promise<{ status: number; body: string }> {
  using client = Deno.createHttpClient({
    caCerts: [await Deno.readTextFile(certs.ca.cert)],
    cert: await Deno.readTextFile(files.cert),
    key: await Deno.readTextFile(files.key),
  });
  const res = await fetch(`https://localhost:${port}${path}`, { client });
  return { status: res.status, body: await res.text() };
}

withOpenssl.test("client --cert/--key against server --tls-client-ca: the echo comes back, both open events and /info name the other side's certificate", async () => {
  await using certs = await makeCerts();
  await using server = await mtlsServer(certs);
  const url = `wss://localhost:${server.port}/echo`;
  const run = await runClient([...clientArgs(certs, certs.alice), "--send", "hello", url]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, "hello\n");
  const clientOpen = run.events.find((e) => e.event === "open");
  assert.equal(clientOpen?.peer_subject, "CN=server", "the client names the server's certificate");
  const serverOpen = await server.waitForEvent("open");
  assert.equal(serverOpen.peer_subject, "CN=alice");
  const info = await get(certs, server.port, "/info", certs.alice);
  assert.equal(info.status, 200);
  assert.equal(JSON.parse(info.body).peer_subject, "CN=alice");
});

withOpenssl.test("server --tls-client-ca refuses no certificate, another CA's and an expired one (tls-handshake, with the reason) and keeps serving", async () => {
  await using certs = await makeCerts();
  await using server = await mtlsServer(certs);
  const url = `wss://localhost:${server.port}/echo`;
  const cases: [string, { cert: string; key: string } | null, string][] = [
    ["none", null, "no client certificate"],
    [
      "another CA",
      certs.otherAlice,
      "the client certificate CN=alice is not signed by a trusted client CA",
    ],
    ["expired", certs.expiredAlice, "the client certificate CN=alice has expired"],
  ];
  for (const [what, files, reason] of cases) {
    const run = await runClient([...clientArgs(certs, files), "--send", "x", url]);
    assert.equal(run.code, 1, `${what}: ${run.stderr}`);
    assert.ok(!hasStackTrace(run.stderr), run.stderr);
    const errors = run.events.filter((e) => e.event === "error");
    assert.equal(errors.length, 1, `${what}: one error line: ${run.stderr}`);
    assert.match(String(errors[0].message), /403/);
    assert.match(String(errors[0].message), /403 Forbidden: /, what);
    const hint = files === null
      ? "; the server asks for a client certificate: pass one with --cert FILE --key FILE"
      : "";
    assert.ok(
      String(errors[0].message).endsWith(`403 Forbidden: ${reason}${hint}`),
      `${what}: ${errors[0].message}`,
    );
    assert.equal(run.stdout, "", "nothing was echoed");
    const close = await server.waitForEvent(
      "close",
      (e) => e.cause === "tls-handshake" && e.reason === reason,
    );
    assert.equal(close.code, 1015, what);
    assert.equal(close.clean, false);
  }
  assert.equal(server.events.filter((e) => e.event === "open").length, 0, "none opened");
  // The server keeps serving: a good client still gets its echo.
  const good = await runClient([...clientArgs(certs, certs.alice), "--send", "after", url]);
  assert.equal(good.code, 0, good.stderr);
  assert.equal(good.stdout, "after\n");
  const metrics = await get(certs, server.port, "/metrics", certs.alice);
  assert.match(
    metrics.body,
    /^keepalive_ws_http_requests_dropped_total\{reason="tls-handshake"\} 3$/m,
  );
});

withOpenssl.test("keepalive is set and read back on the server's node:tls sockets, and the kernel runs its timer", async () => {
  await using certs = await makeCerts();
  await using server = await mtlsServer(certs);
  const ws = await dial(`wss://localhost:${server.port}/echo`, {
    caCerts: [await Deno.readTextFile(certs.ca.cert)],
    cert: await Deno.readTextFile(certs.alice.cert),
    key: await Deno.readTextFile(certs.alice.key),
  });
  try {
    const open = await server.waitForEvent("open");
    assert.deepEqual(open.keepalive, {
      enabled: true,
      idle_s: 15,
      interval_s: 15,
      count: 9,
      verified: true,
    });
    const clientPort = Number(String(open.remote).split(":").pop());
    const timer = await keepAliveTimer(server.port, clientPort);
    assert.ok(timer !== null && timer <= 15, `the server socket's keepalive timer: ${timer}`);
  } finally {
    await ws.close(1000, "done");
  }
});

withOpenssl.test("dial() with cert/key and serve() with tls.clientCa: peerSubject on both sides and on the request; onRefused says tls-handshake", async () => {
  await using certs = await makeCerts();
  const pem = async (f: string) => await Deno.readTextFile(f);
  const refusals: { cause: string | null; status: number; message: string }[] = [];
  const seen: (string | null)[] = [];
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: {
      cert: await pem(certs.server.cert),
      key: await pem(certs.server.key),
      clientCa: await pem(certs.clientCa.cert),
    },
    onRefused: ({ cause, status, message }) => refusals.push({ cause, status, message }),
  }, async (req) => {
    seen.push(req.peerSubject);
    const ws = await req.upgrade();
    seen.push(ws.peerSubject);
    for await (const m of ws) await ws.send(m);
  });
  try {
    const url = `wss://localhost:${server.addr.port}/echo`;
    const caCerts = [await pem(certs.ca.cert)];
    const ws = await dial(url, {
      caCerts,
      cert: await pem(certs.alice.cert),
      key: await pem(certs.alice.key),
    });
    assert.equal(ws.peerSubject, "CN=server");
    await ws.send("ping");
    for await (const m of ws) {
      assert.equal(m, "ping");
      break;
    }
    await ws.close(1000, "bye");
    assert.deepEqual(seen, ["CN=alice", "CN=alice"]);
    await assert.rejects(dial(url, { caCerts }), (err) => {
      assert.ok(err instanceof HandshakeError);
      assert.equal(err.status, 403);
      assert.match(err.body, /no client certificate/);
      return true;
    });
    assert.deepEqual(refusals, [
      { cause: "tls-handshake", status: 403, message: "no client certificate" },
    ]);
    await assert.rejects(
      dial(url, { caCerts, cert: await pem(certs.alice.cert) }),
      /cert and key go together/,
    );
    // A server certificate from a CA the client does not trust is still refused on this path.
    await assert.rejects(
      dial(url, { cert: await pem(certs.alice.cert), key: await pem(certs.alice.key) }),
      /UnknownIssuer/,
    );
  } finally {
    await server.shutdown();
  }
  // Without clientCa the request has no certificate subject.
  const plainSeen: (string | null)[] = [];
  const plain = serve({ hostname: "127.0.0.1", port: 0 }, async (req) => {
    plainSeen.push(req.peerSubject);
    await req.respond(200, "ok");
  });
  try {
    await (await fetch(`http://127.0.0.1:${plain.addr.port}/`)).text();
    assert.deepEqual(plainSeen, [null]);
  } finally {
    await plain.shutdown();
  }
  assert.throws(
    () => serve({ port: 0, reusePort: true, tls: { cert: "", key: "", clientCa: "" } }, () => {}),
    /reusePort/,
  );
});

const withCurl = withPrograms("openssl", "curl");

withCurl.test("curl --cert does mTLS with the server: /healthz answers alice, and 403 with the reason without a certificate", async () => {
  await using certs = await makeCerts();
  await using server = await mtlsServer(certs);
  const curl = async (extra: string[]) => {
    const out = await new Deno.Command(pathOf("curl"), {
      args: [
        "-sS",
        "--cacert",
        certs.ca.cert,
        ...extra,
        "-w",
        "\n%{http_code}",
        `https://localhost:${server.port}/healthz`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return new TextDecoder().decode(out.stdout);
  };
  assert.equal(await curl(["--cert", certs.alice.cert, "--key", certs.alice.key]), "ok\n\n200");
  assert.equal(await curl([]), "no client certificate\n\n403");
  await server.waitForEvent("close", (e) => e.cause === "tls-handshake");
});

const withPython = withPrograms("openssl", "python3Websockets");

/** Python's websockets over an ssl context with an optional client certificate: prints the echo or the error. */
const PYTHON_CLIENT = `
import asyncio, ssl, sys
import websockets
async def main(url, ca, cert, key):
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    try:
        async with websockets.connect(url, ssl=ctx) as ws:
            await ws.send("from python")
            print("echo:", await ws.recv())
    except Exception as e:
        print("refused:", e)
asyncio.run(main(*sys.argv[1:]))
`;

withPython.test("python3 websockets does mTLS with the server: its echo with a client certificate, a refusal without", async () => {
  await using certs = await makeCerts();
  await using server = await mtlsServer(certs);
  const url = `wss://localhost:${server.port}/echo`;
  const python = async (cert: string, key: string) => {
    const out = await new Deno.Command(pathOf("python3Websockets"), {
      args: ["-c", PYTHON_CLIENT, url, certs.ca.cert, cert, key],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return new TextDecoder().decode(out.stdout).trim();
  };
  assert.equal(await python(certs.alice.cert, certs.alice.key), "echo: from python");
  assert.equal((await server.waitForEvent("open")).peer_subject, "CN=alice");
  assert.match(await python("", ""), /^refused: .*403/);
  await server.waitForEvent("close", (e) => e.reason === "no client certificate");
});

Deno.test("client --cert without --key (and the reverse) is a usage error; an unreadable --cert is one line", async () => {
  for (const args of [["--cert", "a.pem"], ["--key", "a.key"]]) {
    const run = await runClient([...args, "wss://localhost:1/echo"]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--cert and --key go together/);
  }
  const missing = await runClient([
    "--cert",
    "/nonexistent/alice.pem",
    "--key",
    "/nonexistent/alice.key",
    "wss://localhost:1/echo",
  ]);
  assert.equal(missing.code, 1);
  assert.equal(
    missing.stderr.trim(),
    "client: --cert: cannot read /nonexistent/alice.pem: No such file or directory (os error 2)",
  );
});

Deno.test("server --tls-client-ca needs --tls-cert and --tls-key, not with --workers; an unreadable one is one line", async () => {
  const run = async (args: string[]) => {
    await using proc = Program.start("server.ts", ["--addr", "127.0.0.1:0", ...args]);
    return await proc.wait();
  };
  const alone = await run(["--tls-client-ca", "ca.pem"]);
  assert.equal(alone.code, 2, alone.stderr);
  assert.match(alone.stderr, /--tls-client-ca needs --tls-cert and --tls-key/);
  const tlsFlags = ["--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "ca.pem"];
  const workers = await run([...tlsFlags, "--workers", "2"]);
  assert.equal(workers.code, 2, workers.stderr);
  assert.match(workers.stderr, /--tls-client-ca cannot be combined with --workers/);
  // The certificate and key are read first; their content matters only once the server listens.
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/c.pem`, "");
    const missing = await run([
      "--tls-cert",
      `${dir}/c.pem`,
      "--tls-key",
      `${dir}/c.pem`,
      "--tls-client-ca",
      "/nonexistent/ca.pem",
    ]);
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr.trim(),
      "server: --tls-client-ca: cannot read /nonexistent/ca.pem: No such file or directory (os error 2)",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

withOpenssl.test("serve() with tls.clientCa takes a connection made right after it returns, and cuts one that never starts TLS at the handshake timeout", async () => {
  await using certs = await makeCerts();
  const tls = {
    cert: await Deno.readTextFile(certs.server.cert),
    key: await Deno.readTextFile(certs.server.key),
    clientCa: await Deno.readTextFile(certs.clientCa.cert),
  };
  const cert = await Deno.readTextFile(certs.alice.cert);
  const key = await Deno.readTextFile(certs.alice.key);
  const caCerts = [await Deno.readTextFile(certs.ca.cert)];
  const server = serve(
    { hostname: "127.0.0.1", port: 0, handshakeTimeout: 500, tls },
    async (req) => {
      const ws = await req.upgrade();
      for await (const m of ws) await ws.send(m);
    },
  );
  try {
    // No await between serve() and the connects: node:tls has taken over the socket Deno bound.
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    const ws = await dial(`wss://localhost:${server.addr.port}/echo`, { caCerts, cert, key });
    await ws.send("at once");
    for await (const m of ws) {
      assert.equal(m, "at once");
      break;
    }
    await ws.close(1000, "bye");
    // The silent one is ended by the server (a read that ends), not left open.
    let guarded = false;
    const guard = setTimeout(() => {
      guarded = true;
      silent.close();
    }, 10_000);
    try {
      const got = await silent.read(new Uint8Array(16)).catch(() => null);
      assert.equal(got, null);
      assert.ok(!guarded, "the server left open a connection that never started TLS");
    } finally {
      clearTimeout(guard);
      try {
        silent.close();
      } catch {
        // Closed by the guard.
      }
    }
  } finally {
    await server.shutdown();
  }
});

withOpenssl.test("refusalReason() says why from the certificate itself: none, not valid yet, expired, another CA, else the check's code", async () => {
  await using certs = await makeCerts();
  const read = async (f: string) => new X509Certificate(await Deno.readTextFile(f));
  const alice = await read(certs.alice.cert);
  const anchors = pemCertificates(await Deno.readTextFile(certs.clientCa.cert));
  assert.equal(anchors.length, 1);
  const code = "UNABLE_TO_VERIFY_LEAF_SIGNATURE";
  assert.equal(refusalReason(null, code, anchors), "no client certificate");
  const before = Date.parse(alice.validFrom) - 1_000;
  assert.equal(
    refusalReason(alice, code, anchors, before),
    "the client certificate CN=alice is not valid yet",
  );
  assert.equal(
    refusalReason(await read(certs.expiredAlice.cert), code, anchors),
    "the client certificate CN=alice has expired",
  );
  assert.equal(
    refusalReason(await read(certs.otherAlice.cert), code, anchors),
    "the client certificate CN=alice is not signed by a trusted client CA",
  );
  // Signed by a trusted CA and in date, yet refused (a purpose, say): the check's own code.
  assert.equal(
    refusalReason(alice, "INVALID_PURPOSE", anchors),
    "the client certificate CN=alice was refused (INVALID_PURPOSE)",
  );
});
