/**
 * `--origin null`: the pattern `null` allows exactly `Origin: null` (RFC 6454
 * §7.3, what a browser sends from a `file://` page or a sandboxed iframe),
 * and nothing else allows it: not the same-host rule, not `*`, not a host
 * named `null`. Checked on `checkUpgradeRequest()` and through the server
 * program with the client program as the peer. (A real browser's `file://`
 * page is in `browser_test.ts`.)
 */

import assert from "node:assert/strict";
import { HandshakeError } from "../mod.ts";
import { checkUpgradeRequest } from "../lib/ws/server_handshake.ts";
import { parseRequestHead } from "../lib/http/head.ts";
import { runClient, startServer } from "./helpers/process.ts";

/** A valid upgrade request head with this Origin (and Host localhost:8080). */
function head(origin: string) {
  return parseRequestHead(new TextEncoder().encode([
    "GET /echo HTTP/1.1",
    "Host: localhost:8080",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    `Origin: ${origin}`,
    "",
    "",
  ].join("\r\n")));
}

/** The refusal's status, or 0 when the request is allowed. */
function status(origin: string, origins: string[]): number {
  try {
    checkUpgradeRequest(head(origin), { origins });
    return 0;
  } catch (err) {
    if (!(err instanceof HandshakeError)) throw err;
    return err.status;
  }
}

Deno.test("checkUpgradeRequest(): the pattern null allows Origin: null and nothing else does", async (t) => {
  await t.step("Origin: null is refused with 403 by default and by every other pattern", () => {
    for (
      const origins of [[], ["*"], ["*.example.com"], ["http://*"], ["*null*"], ["localhost:*"]]
    ) {
      assert.equal(status("null", origins), 403, JSON.stringify(origins));
    }
  });
  await t.step("the pattern null allows Origin: null, alone or among others", () => {
    assert.equal(status("null", ["null"]), 0);
    assert.equal(status("null", ["*.example.com", "null"]), 0);
  });
  await t.step("the pattern null allows no other origin: not a host named null, not NULL", () => {
    for (const origin of ["http://null", "https://null:443", "NULL", "Null", "nul", "null:80"]) {
      assert.equal(status(origin, ["null"]), 403, origin);
    }
  });
  await t.step("the pattern null does not stop the same-host rule or other patterns", () => {
    assert.equal(status("http://localhost:8080", ["null"]), 0);
    assert.equal(status("https://app.example.com", ["null", "*.example.com"]), 0);
  });
  await t.step("the refusal says how to allow it", () => {
    assert.throws(
      () => checkUpgradeRequest(head("null"), {}),
      (err: unknown) =>
        err instanceof HandshakeError && err.status === 403 &&
        /origin null is not allowed.*pattern null/.test(err.message),
    );
  });
});

Deno.test("server --origin null lets a client with Origin: null connect; without it, or with --origin '*', it gets 403", async (t) => {
  await t.step("--origin null: allowed and echoed", async () => {
    await using server = await startServer(["--origin", "null"]);
    const client = await runClient([
      "--origin",
      "null",
      "--send",
      "from a file page",
      server.echoUrl,
    ]);
    assert.equal(client.code, 0, client.stderr);
    assert.equal(client.stdout, "from a file page\n");
    const open = await server.proc.waitForEvent("open");
    assert.ok(open.id);
    // Still only that: a host named null is another origin.
    const host = await runClient(["--origin", "http://null", server.echoUrl]);
    assert.equal(host.code, 1);
    const rejected = await server.proc.waitForEvent("rejected");
    assert.equal(rejected.status, 403);
  });
  for (const args of [[], ["--origin", "*"]]) {
    await t.step(`${args.join(" ") || "no --origin"}: 403`, async () => {
      await using server = await startServer(args);
      const client = await runClient(["--origin", "null", "--send", "x", server.echoUrl]);
      assert.equal(client.code, 1);
      assert.match(client.stderr, /403/);
      const rejected = await server.proc.waitForEvent("rejected");
      assert.equal(rejected.status, 403);
      assert.match(String(rejected.message), /origin null is not allowed/);
    });
  }
});
