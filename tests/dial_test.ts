/**
 * dial() where a connection does not go as planned: the body of a refused
 * upgrade, the wrong scheme for the server (wss:// to plain HTTP, ws:// to
 * TLS), a self-signed certificate given in caCerts, and `insecure`.
 */

import assert from "node:assert/strict";
import { dial, HandshakeError, serve } from "../mod.ts";
import { MAX_REFUSAL_BODY } from "../lib/client/response.ts";
import { PLAIN_PROBE_DELAY_MS } from "../lib/client/tls.ts";
import { makeCerts } from "./helpers/certs.ts";
import { fakeServer } from "./helpers/raw.ts";
import { withPrograms } from "./helpers/needs.ts";

/** Tests that make certificates with openssl. */
const withOpenssl = withPrograms("openssl");

/** A fake server whose every connection is answered by `answer` (after the request head). */
function rawServer(answer: (conn: Deno.Conn) => Promise<void>) {
  return fakeServer(async (conn) => {
    await conn.read(new Uint8Array(8192));
    await answer(conn);
  });
}

const enc = new TextEncoder();

/** An echo server of this library, on a free port. */
function echoServer(tls?: { cert: string; key: string }) {
  const server = serve({ hostname: "127.0.0.1", port: 0, tls }, async (req) => {
    if (req.url.pathname !== "/echo") return await req.reject(404, "no such path: try /echo");
    const ws = await req.upgrade();
    for await (const m of ws) await ws.send(m);
  });
  return server;
}

async function refusal(p: Promise<unknown>): Promise<HandshakeError> {
  const err = await p.then(() => null, (e) => e);
  assert.ok(err instanceof HandshakeError, `expected a HandshakeError, got ${err}`);
  return err;
}

Deno.test("dial() puts the start of a refused upgrade's body in HandshakeError.body", async (t) => {
  await t.step("our own server's 404 and 403 say why", async () => {
    const server = echoServer();
    const base = `ws://127.0.0.1:${server.addr.port}`;
    try {
      const notFound = await refusal(dial(`${base}/nope`));
      assert.equal(notFound.status, 404);
      assert.equal(notFound.message, "server refused the upgrade: 404 Not Found");
      assert.equal(notFound.body, "no such path: try /echo\n");
      const forbidden = await refusal(dial(`${base}/echo`, { origin: "https://evil.example" }));
      assert.equal(forbidden.status, 403);
      assert.match(forbidden.body, /origin https:\/\/evil\.example is not allowed/);
    } finally {
      await server.shutdown();
    }
  });
  await t.step("a chunked body is unchunked; a long one is cut at 1 KiB", async () => {
    await using chunked = rawServer(async (conn) => {
      await conn.write(enc.encode(
        "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n" +
          "5\r\nbusy,\r\na\r\n try later\r\n0\r\n\r\n",
      ));
      conn.close();
    });
    assert.equal((await refusal(dial(chunked.url))).body, "busy, try later");
    await using long = rawServer(async (conn) => {
      await conn.write(enc.encode(
        `HTTP/1.1 400 Bad Request\r\nContent-Length: 5000\r\n\r\n${"x".repeat(5000)}`,
      ));
    });
    assert.equal((await refusal(dial(long.url))).body.length, MAX_REFUSAL_BODY);
  });
  await t.step("a body that stalls is waited for about a second, then cut", async () => {
    await using stalled = rawServer(async (conn) => {
      await conn.write(enc.encode("HTTP/1.1 429 Too Many\r\nContent-Length: 100\r\n\r\nslow"));
      // …and the other 96 bytes never come.
    });
    const started = Date.now();
    const err = await refusal(dial(stalled.url));
    const took = Date.now() - started;
    assert.equal(err.status, 429);
    assert.equal(err.body, "slow");
    assert.ok(took >= 900 && took < 3_000, `took ${took}ms`);
  });
  await t.step("a 101 that breaks RFC 6455 has no body", async () => {
    await using bad = rawServer(async (conn) => {
      await conn.write(enc.encode("HTTP/1.1 101 Switching Protocols\r\n\r\n"));
    });
    const err = await refusal(dial(bad.url));
    assert.equal(err.status, 0);
    assert.equal(err.body, "");
  });
});

Deno.test("dial() wss:// to a plain-HTTP server fails within 2 s and says to use ws://", async () => {
  const server = echoServer();
  try {
    const started = Date.now();
    const err = await dial(`wss://127.0.0.1:${server.addr.port}/echo`).then(() => null, (e) => e);
    const took = Date.now() - started;
    assert.ok(err instanceof Deno.errors.InvalidData, String(err));
    assert.match(err.message, /speaks plain HTTP, not TLS: use ws:\/\/ instead of wss:\/\//);
    assert.ok(took >= PLAIN_PROBE_DELAY_MS - 50 && took < 2_000, `took ${took}ms`);
  } finally {
    await server.shutdown();
  }
});

withOpenssl.test("dial() ws:// to a TLS server says to use wss://", async () => {
  await using certs = await makeCerts();
  const tls = {
    cert: await Deno.readTextFile(certs.selfSignedLeaf.cert),
    key: await Deno.readTextFile(certs.selfSignedLeaf.key),
  };
  const server = echoServer(tls);
  try {
    const started = Date.now();
    const err = await refusal(dial(`ws://127.0.0.1:${server.addr.port}/echo`));
    assert.equal(err.status, 0);
    assert.match(err.message, /speaks TLS, not plain HTTP: use wss:\/\/ instead of ws:\/\//);
    assert.ok(Date.now() - started < 2_000);
  } finally {
    await server.shutdown();
  }
});

withOpenssl.test("dial() trusts a self-signed CA:TRUE certificate given in caCerts as that server's own, and only that one", async (t) => {
  await using certs = await makeCerts();
  const read = (f: string) => Deno.readTextFile(f);
  const server = echoServer({
    cert: await read(certs.selfSignedCa.cert),
    key: await read(certs.selfSignedCa.key),
  });
  const url = (host: string) => `wss://${host}:${server.addr.port}/echo`;
  try {
    await t.step("without it: rustls refuses a CA certificate as a server's", async () => {
      const err = await dial(url("127.0.0.1")).then(() => null, (e) => e);
      assert.ok(err instanceof Deno.errors.InvalidData);
      assert.match(err.message, /CaUsedAsEndEntity/);
    });
    for (const host of ["localhost", "127.0.0.1"]) {
      await t.step(`with it, by ${host}: connects, echoes, keepalive read back`, async () => {
        const ws = await dial(url(host), { caCerts: [await read(certs.selfSignedCa.cert)] });
        assert.equal(ws.keepalive.verified, true);
        assert.equal(ws.keepalive.idle, 15_000);
        await ws.send("pinned");
        for await (const m of ws) {
          assert.equal(m, "pinned");
          break;
        }
        const info = await ws.close(1000, "bye");
        assert.equal(info.clean, true);
      });
    }
    await t.step("another self-signed certificate in caCerts is refused", async () => {
      const err = await dial(url("127.0.0.1"), {
        caCerts: [await read(certs.otherSelfSigned.cert)],
      }).then(() => null, (e) => e);
      assert.ok(err instanceof Deno.errors.InvalidData);
      assert.match(err.message, /not the self-signed one given in caCerts/);
    });
  } finally {
    await server.shutdown();
  }
});

withOpenssl.test("dial() with a CA:FALSE self-signed certificate in caCerts needs no help from node:tls", async () => {
  await using certs = await makeCerts();
  const server = echoServer({
    cert: await Deno.readTextFile(certs.selfSignedLeaf.cert),
    key: await Deno.readTextFile(certs.selfSignedLeaf.key),
  });
  try {
    const ws = await dial(`wss://localhost:${server.addr.port}/echo`, {
      caCerts: [await Deno.readTextFile(certs.selfSignedLeaf.cert)],
    });
    assert.equal(ws.constructor.name, "Connection");
    await ws.close();
  } finally {
    await server.shutdown();
  }
});

withOpenssl.test("dial() with insecure accepts any certificate and keeps Go's keepalive on the socket", async (t) => {
  await using certs = await makeCerts();
  for (const kind of ["expired", "wrongName", "selfSignedCa"] as const) {
    await t.step(kind, async () => {
      const server = echoServer({
        cert: await Deno.readTextFile(certs[kind].cert),
        key: await Deno.readTextFile(certs[kind].key),
      });
      const url = `wss://127.0.0.1:${server.addr.port}/echo`;
      try {
        const refused = await dial(url).then(() => null, (e) => e);
        assert.ok(
          refused instanceof Deno.errors.InvalidData,
          `${kind} is refused without insecure`,
        );
        const ws = await dial(url, { insecure: true, keepAlive: { idle: 20_000 } });
        assert.deepEqual(
          [ws.keepalive.verified, ws.keepalive.idle, ws.keepalive.interval, ws.keepalive.count],
          [true, 20_000, 15_000, 9],
        );
        // Big enough to cross many TLS records and the adapter's read buffer both ways.
        const big = new Uint8Array(300_000).map((_, i) => i % 251);
        await ws.send(big);
        await ws.send("after");
        const got: unknown[] = [];
        for await (const m of ws) {
          got.push(m);
          if (got.length === 2) break;
        }
        assert.deepEqual(got, [big, "after"]);
        const info = await ws.close(1000, "bye");
        assert.deepEqual([info.code, info.clean], [1000, true]);
      } finally {
        await server.shutdown();
      }
    });
  }
});
