/**
 * What a handler sees of a request: `path` is `url.pathname` whatever the
 * target (it is found without a URL only for plain targets), `url` and
 * `headers` are made when first asked for, and a Host that no URL takes is
 * still refused with 400 before the handler runs.
 */
import assert from "node:assert/strict";
import { serve, type ServerRequest } from "../mod.ts";
import { Fields } from "../lib/http/fields.ts";

/** Sends `head` on a fresh connection and returns the whole answer. */
async function raw(port: number, head: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(head));
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  for (let n; (n = await conn.read(buf)) !== null;) chunks.push(buf.slice(0, n));
  conn.close();
  return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
}

Deno.test("ServerRequest: path is url.pathname, url and headers as sent; a bad Host is 400", async (t) => {
  const seen: { path: string; pathname: string; search: string; headers: Headers }[] = [];
  const server = serve(
    { hostname: "127.0.0.1", port: 0, onRefused: () => {} },
    (req: ServerRequest) => {
      seen.push({
        path: req.path,
        pathname: req.url.pathname,
        search: req.url.search,
        headers: req.headers,
      });
      return req.respond(200, "ok");
    },
  );
  try {
    const port = server.addr.port;
    const targets = [
      "/echo",
      "/echo?x=1",
      "/a/b.c/d-e_f~g",
      "/a/./b",
      "/a/../b",
      "/a//b",
      "/.well-known/x",
      "/%41b",
      "/a..b/",
      "/",
      "/?q",
    ];
    for (const target of targets) {
      await t.step(target, async () => {
        const answer = await raw(port, `GET ${target} HTTP/1.1\r\nHost: h.example:81\r\n\r\n`);
        assert.match(answer, /^HTTP\/1\.1 200 /);
        const last = seen.at(-1)!;
        assert.equal(last.path, last.pathname, target);
        assert.equal(last.path, new URL(target, "http://h.example:81").pathname, target);
      });
    }
    await t.step("headers is a Headers with every field, lines of one name joined", async () => {
      await raw(port, "GET / HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nx-one: 2\r\nX-Two:  b \r\n\r\n");
      const { headers } = seen.at(-1)!;
      assert.ok(headers instanceof Headers);
      assert.equal(headers.get("x-one"), "1, 2");
      assert.equal(headers.get("X-TWO"), "b");
      assert.equal(headers.get("host"), "a");
    });
    await t.step("a Host that no URL takes is 400, and the handler never runs", async () => {
      const before = seen.length;
      for (const host of ["a:99999", "1.2.3.999", "%zz"]) {
        const answer = await raw(port, `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        assert.match(answer, /^HTTP\/1\.1 400 /, host);
      }
      assert.equal(seen.length, before);
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("Fields: names in any case, lines of one name joined with ', ', toHeaders()", () => {
  const f = new Fields();
  f.append("Sec-WebSocket-Protocol", "a");
  f.append("sec-websocket-protocol", "b");
  f.append("Host", "x");
  assert.equal(f.get("SEC-WEBSOCKET-PROTOCOL"), "a, b");
  assert.equal(f.has("host"), true);
  assert.equal(f.get("missing"), null);
  f.set("HOST", "y");
  assert.equal(f.get("host"), "y");
  assert.deepEqual([...f], [["sec-websocket-protocol", "a, b"], ["host", "y"]]);
  f.delete("Host");
  assert.equal(f.has("host"), false);
  const h = f.toHeaders();
  assert.equal(h.get("sec-websocket-protocol"), "a, b");
});
