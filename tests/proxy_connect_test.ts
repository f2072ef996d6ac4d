/**
 * `dial({ proxy })` against hand-made proxies that misbehave: what the
 * client sends (CONNECT in authority form, Basic credentials; the SOCKS5
 * greeting, RFC 1929, the address type of socks5 and socks5h), and what a
 * hostile or broken answer does (an endless or oversized head, not HTTP, a
 * bad reason phrase, every SOCKS reply): a clear `ProxyError`, never a hang
 * or a crash, and never the password.
 */

import assert from "node:assert/strict";
import { dial } from "../mod.ts";
import {
  connectRequest,
  MAX_CONNECT_HEAD,
  parseProxy,
  ProxyError,
  redactProxy,
} from "../lib/client/proxy.ts";
import { ipv6Bytes, SocksReply, socksReplyText } from "../lib/client/socks.ts";
import { makeCerts } from "./helpers/certs.ts";
import { withPrograms } from "./helpers/needs.ts";
import { startTestServer } from "./helpers/server.ts";

/** Tests that make certificates with openssl. */
const withOpenssl = withPrograms("openssl");

/** A one-shot fake proxy: `answer` gets each accepted conn and what it read first. */
function fakeProxy(answer: (conn: Deno.Conn, first: Uint8Array) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const received: Uint8Array[] = [];
  const served = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      (async () => {
        const buf = new Uint8Array(4096);
        const n = await conn.read(buf).catch(() => null);
        const first = buf.slice(0, n ?? 0);
        received.push(first);
        await answer(conn, first).catch(() => {});
      })();
    }
  })();
  return {
    port: listener.addr.port,
    received,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // Closed by the client already.
        }
      }
      await served.catch(() => {});
    },
  };
}

/** Writes `text` (a string or bytes) to `conn`. */
async function send(conn: Deno.Conn, data: string | Uint8Array): Promise<void> {
  let bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
}

/** What `dial` rejects with. */
async function dialError(url: string, proxy: string, timeoutMs = 3_000): Promise<unknown> {
  try {
    const ws = await dial(url, { proxy, handshakeTimeout: timeoutMs });
    ws.terminate("unexpected");
  } catch (err) {
    return err;
  }
  assert.fail("dial succeeded");
}

Deno.test("CONNECT is in authority form (RFC 9110 §9.3.6), IPv6 in brackets, with Basic credentials URL-decoded", () => {
  const proxy = parseProxy("http://al%40ice:p%3Ass%20w@127.0.0.1:3128");
  assert.deepEqual([proxy.username, proxy.password, proxy.shown], [
    "al@ice",
    "p:ss w",
    "http://127.0.0.1:3128",
  ]);
  const request = connectRequest(proxy, { hostname: "::1", port: 8443 });
  assert.equal(
    request,
    "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n" +
      `Proxy-Authorization: Basic ${btoa("al@ice:p:ss w")}\r\n\r\n`,
  );
  assert.doesNotMatch(
    connectRequest(parseProxy("http://h:1"), { hostname: "a", port: 1 }),
    /Authorization/,
  );
});

Deno.test("parseProxy(): default ports as curl's, schemes checked, and neither errors nor redactProxy() show credentials", () => {
  assert.equal(parseProxy("http://p").port, 1080);
  assert.equal(parseProxy("https://p").port, 443);
  assert.equal(parseProxy("socks5h://[::1]").shown, "socks5h://[::1]:1080");
  assert.equal(redactProxy("socks5://u:hunter2@10.0.0.1:9050"), "socks5://10.0.0.1:9050");
  assert.equal(redactProxy("::u:hunter2@"), "(invalid)");
  for (const bad of ["socks4://u:hunter2@h:1", "http://u:hunter2@", "u:hunter2@h:1"]) {
    assert.throws(() => parseProxy(bad), (err) => {
      assert.ok(err instanceof TypeError, String(err));
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    });
  }
});

Deno.test("dial() through a proxy whose CONNECT answer never ends within the head limit fails at once with a ProxyError, status 0", async () => {
  await using proxy = fakeProxy(async (conn) => {
    await send(conn, "HTTP/1.1 200 OK\r\nX-Junk: " + "a".repeat(MAX_CONNECT_HEAD * 4));
  });
  const err = await dialError("ws://127.0.0.1:9/echo", `http://127.0.0.1:${proxy.port}`, 30_000);
  assert.ok(err instanceof ProxyError, String(err));
  assert.equal(err.status, 0);
  assert.match(err.message, /gave no valid answer to CONNECT: .*longer than 8192 bytes/);
});

Deno.test("dial() through a proxy that drips its answer forever is cut by the handshake timeout", async () => {
  await using proxy = fakeProxy(async (conn) => {
    await send(conn, "HTTP/1.1 2");
    // …and nothing more.
  });
  const err = await dialError("ws://127.0.0.1:9/echo", `http://127.0.0.1:${proxy.port}`, 500);
  assert.ok(err instanceof Deno.errors.TimedOut, String(err));
});

Deno.test("dial() through a proxy that answers what is not HTTP, closes, or sends bytes after its 200: ProxyError, status 0", async (t) => {
  const cases: [string, (conn: Deno.Conn) => Promise<void>, RegExp][] = [
    [
      "binary",
      (c) => send(c, Uint8Array.of(0x16, 3, 1, 0, 0, 0x0d, 0x0a, 0x0d, 0x0a)),
      /no valid answer/,
    ],
    ["close", (c) => Promise.resolve(c.close()), /closed the connection without answering/],
    ["extra", (c) => send(c, "HTTP/1.1 200 OK\r\n\r\nsurprise"), /sent bytes after its 200/],
  ];
  for (const [name, answer, pattern] of cases) {
    await t.step(name, async () => {
      await using proxy = fakeProxy(answer);
      const err = await dialError("ws://127.0.0.1:9/echo", `http://127.0.0.1:${proxy.port}`);
      assert.ok(err instanceof ProxyError, String(err));
      assert.equal(err.status, 0);
      assert.match(err.message, pattern);
    });
  }
});

Deno.test("a refusal carries the proxy's status and a reason cut to 100 characters; the password is sent, never shown", async () => {
  await using proxy = fakeProxy(async (conn) => {
    await send(
      conn,
      `HTTP/1.1 407 Go Away ${"x".repeat(300)}\r\nProxy-Authenticate: Basic\r\n\r\n`,
    );
  });
  const err = await dialError(
    "ws://example.invalid:81/echo",
    `http://bob:hunter2@127.0.0.1:${proxy.port}`,
  );
  const sent = new TextDecoder().decode(proxy.received[0]);
  assert.match(sent, /^CONNECT example\.invalid:81 HTTP\/1\.1\r\n/);
  assert.match(sent, new RegExp(`Proxy-Authorization: Basic ${btoa("bob:hunter2")}\r\n`));
  assert.ok(err instanceof ProxyError, String(err));
  assert.equal(err.status, 407);
  assert.equal(err.proxy, `http://127.0.0.1:${proxy.port}`);
  assert.match(err.message, /: 407 Go Away x+…$/);
  assert.doesNotMatch(err.message, /hunter2|bob/);
  assert.ok(err.message.length < 250, err.message);
});

Deno.test("a reason phrase with a control character is refused as no valid answer (status 0), not printed", async () => {
  await using proxy = fakeProxy(async (conn) => {
    await send(conn, "HTTP/1.1 403 \x1b[31mred\r\n\r\n");
  });
  const err = await dialError("ws://127.0.0.1:9/", `http://127.0.0.1:${proxy.port}`);
  assert.ok(err instanceof ProxyError, String(err));
  assert.equal(err.status, 0);
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(err.message, /[\x00-\x1f]/);
});

/** A fake SOCKS5 proxy that accepts no-auth and answers CONNECT with `reply`. */
function socksProxy(reply: number[], seen: number[][] = []) {
  return fakeProxy(async (conn, greeting) => {
    seen.push([...greeting]);
    await send(conn, Uint8Array.of(5, 0));
    const buf = new Uint8Array(512);
    const n = await conn.read(buf);
    seen.push([...buf.subarray(0, n ?? 0)]);
    await send(conn, Uint8Array.from(reply));
  });
}

Deno.test("SOCKS5 refusals name RFC 1928 §6's reply; a reply of another version or a close mid-way is status 0", async (t) => {
  for (const code of [1, 2, 3, 4, 5, 6, 7, 8, 0x2a]) {
    await t.step(`reply ${code}`, async () => {
      await using proxy = socksProxy([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
      const err = await dialError("ws://127.0.0.1:9/", `socks5://127.0.0.1:${proxy.port}`);
      assert.ok(err instanceof ProxyError, String(err));
      assert.equal(err.status, code);
      assert.ok(err.message.endsWith(`: ${socksReplyText(code)}`), err.message);
    });
  }
  assert.equal(socksReplyText(SocksReply.ConnectionRefused), "connection refused by destination");
  await t.step("version 4", async () => {
    await using proxy = socksProxy([4, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    const err = await dialError("ws://127.0.0.1:9/", `socks5://127.0.0.1:${proxy.port}`);
    assert.ok(err instanceof ProxyError && err.status === 0, String(err));
  });
  await t.step("closed", async () => {
    await using proxy = fakeProxy((conn) => Promise.resolve(conn.close()));
    const err = await dialError("ws://127.0.0.1:9/", `socks5://127.0.0.1:${proxy.port}`);
    assert.ok(err instanceof ProxyError && err.status === 0, String(err));
    assert.match(err.message, /closed the connection in the middle/);
  });
});

Deno.test("socks5:// resolves the name here (ATYP 1), socks5h:// sends it (ATYP 3); a user offers method 2", async () => {
  const seen: number[][] = [];
  {
    await using proxy = socksProxy([5, 5, 0, 1, 0, 0, 0, 0, 0, 0], seen);
    await dialError("ws://localhost:4242/", `socks5://127.0.0.1:${proxy.port}`);
    await dialError("ws://localhost:4242/", `socks5h://127.0.0.1:${proxy.port}`);
  }
  assert.deepEqual(seen[0], [5, 1, 0], "greeting: no authentication only");
  const local = seen[1];
  assert.deepEqual(local.slice(0, 3), [5, 1, 0], "CONNECT");
  assert.ok(local[3] === 1 || local[3] === 4, `an address: ${local}`);
  assert.deepEqual(local.slice(-2), [4242 >> 8, 4242 & 0xff]);
  const named = seen[3];
  assert.deepEqual(named, [5, 1, 0, 3, 9, ...new TextEncoder().encode("localhost"), 16, 146]);
  const withUser: number[][] = [];
  await using proxy = fakeProxy(async (conn, greeting) => {
    withUser.push([...greeting]);
    await send(conn, Uint8Array.of(5, 2));
    const buf = new Uint8Array(512);
    const n = await conn.read(buf);
    withUser.push([...buf.subarray(0, n ?? 0)]);
    await send(conn, Uint8Array.of(1, 1));
  });
  const err = await dialError("ws://127.0.0.1:9/", `socks5://me:hunter2@127.0.0.1:${proxy.port}`);
  assert.deepEqual(withUser[0], [5, 2, 0, 2]);
  assert.deepEqual(withUser[1], [
    1,
    2,
    ...new TextEncoder().encode("me"),
    7,
    ...new TextEncoder().encode("hunter2"),
  ]);
  assert.ok(err instanceof ProxyError, String(err));
  assert.match(err.message, /authentication failed/);
  assert.doesNotMatch(err.message, /hunter2/);
});

Deno.test("ipv6Bytes() spells out :: and a dotted IPv4 tail", () => {
  assert.deepEqual(ipv6Bytes("::1"), [...Array(15).fill(0), 1]);
  assert.deepEqual(ipv6Bytes("2001:db8::ff00:42:8329").slice(0, 4), [0x20, 0x01, 0x0d, 0xb8]);
  assert.deepEqual(ipv6Bytes("::ffff:1.2.3.4").slice(10), [0xff, 0xff, 1, 2, 3, 4]);
});

Deno.test("dial() refuses a bad proxy URL with a TypeError before connecting; an unreachable proxy is a ProxyError without the password", async () => {
  await assert.rejects(dial("ws://example.invalid/", { proxy: "gopher://h:1" }), TypeError);
  const refused = await dialError("ws://example.invalid/", "http://u:hunter2@127.0.0.1:1");
  assert.ok(refused instanceof ProxyError, String(refused));
  assert.match(
    refused.message,
    /cannot reach the proxy http:\/\/127\.0\.0\.1:1: connection refused/,
  );
  assert.doesNotMatch(refused.message, /hunter2/);
});

/**
 * A CONNECT proxy reached over TLS (what `https://` proxies are), made here:
 * tinyproxy speaks no TLS. It answers each CONNECT with 200 and relays.
 */
function tlsConnectProxy(cert: string, key: string) {
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
  const open: Deno.Conn[] = [];
  const requests: string[] = [];
  const served = (async () => {
    for await (const conn of listener) {
      open.push(conn);
      (async () => {
        const buf = new Uint8Array(4096);
        const n = await conn.read(buf);
        const head = new TextDecoder().decode(buf.subarray(0, n ?? 0));
        requests.push(head);
        const [, host, port] = /^CONNECT (.+):(\d+) HTTP\/1\.1\r\n/.exec(head) ?? [];
        const upstream = await Deno.connect({ hostname: host, port: Number(port) });
        open.push(upstream);
        await send(conn, "HTTP/1.1 200 Connection established\r\n\r\n");
        await Promise.allSettled([
          conn.readable.pipeTo(upstream.writable),
          upstream.readable.pipeTo(conn.writable),
        ]);
      })().catch(() => {});
    }
  })();
  return {
    port: listener.addr.port,
    requests,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const c of open) {
        try {
          c.close();
        } catch {
          // Closed already.
        }
      }
      await served.catch(() => {});
    },
  };
}

withOpenssl.test("dial() through an https:// proxy: TLS to the proxy checked with caCerts, CONNECT inside it, keepalive on that socket", async () => {
  await using certs = await makeCerts();
  const [cert, key] = await Promise.all(
    [certs.selfSignedLeaf.cert, certs.selfSignedLeaf.key].map((f) => Deno.readTextFile(f)),
  );
  await using server = startTestServer();
  await using proxy = tlsConnectProxy(cert, key);
  const ws = await dial(server.url, {
    proxy: `https://u:pw@localhost:${proxy.port}`,
    caCerts: [cert],
    handshakeTimeout: 5_000,
  });
  try {
    await ws.send("over tls");
    for await (const m of ws) {
      assert.equal(m, "over tls");
      break;
    }
    assert.equal(
      (ws.remoteAddr as Deno.NetAddr).port,
      proxy.port,
      "the socket is the one to the proxy",
    );
    assert.equal(ws.keepalive.verified, true, JSON.stringify(ws.keepalive));
    assert.deepEqual([ws.keepalive.idle, ws.keepalive.interval, ws.keepalive.count], [
      15_000,
      15_000,
      9,
    ]);
  } finally {
    await ws.close(1000, "done");
  }
  assert.match(
    proxy.requests[0],
    new RegExp(`^CONNECT 127\\.0\\.0\\.1:${server.port} HTTP/1\\.1\\r\\n`),
  );
  assert.match(proxy.requests[0], new RegExp(`Proxy-Authorization: Basic ${btoa("u:pw")}`));
  // Without the proxy's CA, its certificate is refused before any CONNECT is sent.
  const refused = await dialError(server.url.href, `https://localhost:${proxy.port}`);
  assert.ok(refused instanceof ProxyError, String(refused));
  assert.match(refused.message, /^cannot reach the proxy https:\/\/localhost:\d+: .*UnknownIssuer/);
  assert.equal(proxy.requests.length, 1);
});

withOpenssl.test("dial() wss:// through an https:// proxy: TLS inside TLS through node:tls, checked against caCerts, a pinned CA:TRUE certificate too", async () => {
  await using certs = await makeCerts();
  const read = (f: string) => Deno.readTextFile(f);
  const [proxyCert, proxyKey] = await Promise.all(
    [certs.selfSignedLeaf.cert, certs.selfSignedLeaf.key].map(read),
  );
  await using proxy = tlsConnectProxy(proxyCert, proxyKey);
  for (const pair of [certs.selfSignedLeaf, certs.selfSignedCa]) {
    const [cert, key] = await Promise.all([pair.cert, pair.key].map(read));
    await using server = startTestServer({ tls: { cert, key } });
    const url = `wss://localhost:${server.port}/echo`;
    const ws = await dial(url, {
      proxy: `https://localhost:${proxy.port}`,
      caCerts: [proxyCert, cert],
      handshakeTimeout: 5_000,
    });
    try {
      await ws.send("tls in tls");
      for await (const m of ws) {
        assert.equal(m, "tls in tls");
        break;
      }
      assert.equal((ws.remoteAddr as Deno.NetAddr).port, proxy.port);
      assert.equal(ws.keepalive.verified, true, JSON.stringify(ws.keepalive));
    } finally {
      await ws.close(1000, "done");
    }
    if (pair === certs.selfSignedLeaf) continue; // The proxy's own certificate: trusted already.
    // The server's certificate is checked: without it in caCerts, or with another pinned, refused.
    const other = await read(certs.otherSelfSigned.cert);
    for (const caCerts of [[proxyCert], [proxyCert, other]]) {
      await assert.rejects(
        dial(url, { proxy: `https://localhost:${proxy.port}`, caCerts, handshakeTimeout: 5_000 }),
        (err: Error) => /certificate/i.test(err.message),
      );
    }
  }
});
