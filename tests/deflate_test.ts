/**
 * permessage-deflate (RFC 7692) without sockets: the header grammar, the
 * server's choice among offers, the client's check of the answer, the
 * compression itself, and its bounds inside the protocol core. Peers this
 * project did not write are in tests/deflate_interop_test.ts.
 */

import assert from "node:assert/strict";
import zlib from "node:zlib";
import {
  acceptDeflateResponse,
  type DeflateParams,
  negotiateDeflate,
  parseExtensions,
} from "../lib/ws/deflate.ts";
import { PerMessageDeflate } from "../lib/ws/compression.ts";
import { HandshakeError } from "../lib/ws/errors.ts";
import { type Message, Progress, Protocol } from "../lib/ws/protocol.ts";
import { concat, frame } from "./helpers/raw.ts";

const TEXT = 0x1;
const BINARY = 0x2;
const CONT = 0x0;
const CLOSE = 0x8;
const m = { mask: true } as const;

const FULL: DeflateParams = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};

Deno.test("parseExtensions() reads RFC 6455 §9.1 lists, quoted values included, and refuses what breaks the grammar", () => {
  assert.deepEqual(parseExtensions("permessage-deflate; client_max_window_bits, x-foo"), [
    { name: "permessage-deflate", params: [["client_max_window_bits", null]] },
    { name: "x-foo", params: [] },
  ]);
  assert.deepEqual(parseExtensions('permessage-deflate;server_max_window_bits="10" ,,'), [
    { name: "permessage-deflate", params: [["server_max_window_bits", "10"]] },
  ]);
  for (const bad of ["; x", "a;", 'a; b="1 2"', 'a; b="unterminated', "a b", "a; =1", "a, ;"]) {
    assert.equal(parseExtensions(bad), null, bad);
  }
});

Deno.test("negotiateDeflate() takes the first acceptable offer in the client's order and declines broken ones", async (t) => {
  const choose = (h: string, policy = {}) => negotiateDeflate(parseExtensions(h)!, policy);
  await t.step("Chromium's offer", () => {
    assert.equal(
      choose("permessage-deflate; client_max_window_bits")?.response,
      "permessage-deflate",
    );
  });
  await t.step("a duplicate parameter declines that offer; the next one is taken", () => {
    const r = choose(
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover, permessage-deflate; client_max_window_bits=10",
    );
    assert.equal(r?.response, "permessage-deflate; client_max_window_bits=10");
    assert.equal(r?.params.clientMaxWindowBits, 10);
  });
  await t.step("unknown parameters and bad values are declined", () => {
    for (
      const h of [
        "permessage-deflate; x=1",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; server_no_context_takeover=1",
      ]
    ) assert.equal(choose(h), null, h);
  });
  await t.step(
    "server_max_window_bits=8 is declined (zlib cannot deflate with it); 9 is echoed",
    () => {
      assert.equal(choose("permessage-deflate; server_max_window_bits=8"), null);
      assert.equal(
        choose("permessage-deflate; server_max_window_bits=9")?.response,
        "permessage-deflate; server_max_window_bits=9",
      );
    },
  );
  await t.step("a tight budget (the policy) drops context takeover both ways", () => {
    const r = choose("permessage-deflate", {
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
    });
    assert.equal(
      r?.response,
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    );
  });
  await t.step("other extensions are passed over", () => {
    assert.equal(choose("x-webkit-deflate-frame"), null);
  });
});

Deno.test("acceptDeflateResponse() takes a valid answer and fails the handshake on one that breaks RFC 7692", () => {
  assert.equal(acceptDeflateResponse(null), null);
  assert.deepEqual(
    acceptDeflateResponse(
      "permessage-deflate; server_no_context_takeover; client_max_window_bits=12",
    ),
    { ...FULL, serverNoContextTakeover: true, clientMaxWindowBits: 12 },
  );
  for (
    const bad of [
      "x-other",
      "permessage-deflate, permessage-deflate",
      "permessage-deflate; client_max_window_bits",
      "permessage-deflate; server_max_window_bits=16",
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
      "permessage-deflate; client_max_window_bits=8",
      "permessage-deflate; a",
    ]
  ) assert.throws(() => acceptDeflateResponse(bad), HandshakeError, bad);
});

Deno.test("PerMessageDeflate round-trips messages, keeps context when agreed, and strips the sync flush tail", () => {
  const json = new TextEncoder().encode(JSON.stringify({ user: "ada", text: "hello ".repeat(20) }));
  const kept = new PerMessageDeflate(FULL, "client");
  const receiver = new PerMessageDeflate(FULL, "server");
  const first = kept.compress(json);
  const second = kept.compress(json);
  assert.ok(
    second.length < first.length / 2,
    `context makes the repeat small: ${first.length} then ${second.length}`,
  );
  assert.deepEqual(receiver.decompress(first, 1 << 20), json);
  assert.deepEqual(receiver.decompress(second, 1 << 20), json);
  // The peer's zlib reads the payload with the tail put back (RFC 7692 §7.2.2).
  assert.deepEqual(
    new Uint8Array(
      zlib.inflateRawSync(concat(first, Uint8Array.of(0, 0, 0xff, 0xff)), {
        finishFlush: zlib.constants.Z_SYNC_FLUSH,
      }),
    ),
    json,
  );
  const fresh = new PerMessageDeflate({ ...FULL, clientNoContextTakeover: true }, "client");
  assert.equal(
    fresh.compress(json).length,
    fresh.compress(json).length,
    "no context: same size every time",
  );
  assert.ok(kept.held > 200 * 1024, `a kept deflate context is counted: ${kept.held}`);
  assert.equal(fresh.held, 0, "a shared engine costs this connection nothing");
});

Deno.test("PerMessageDeflate stops inflating a bomb at the bound, without inflating it all", () => {
  const rss = () =>
    Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))![1]) * 1024;
  // 256 MiB of zeros deflate to about 250 KB.
  const bomb = new Uint8Array(zlib.deflateRawSync(new Uint8Array(256 * 1024 * 1024), { level: 9 }));
  const pmd = new PerMessageDeflate(FULL, "server");
  const before = rss();
  assert.equal(pmd.decompress(bomb, 1024 * 1024), null);
  const grew = rss() - before;
  assert.ok(grew < 32 * 1024 * 1024, `inflating grew RSS by ${grew} bytes, not by 256 MiB`);
});

/** A compressed client frame: RSV1 on the first, payload deflated with the tail stripped. */
function compressed(
  opcode: number,
  text: string,
  engine: PerMessageDeflate,
  fin = true,
): Uint8Array {
  return frame(opcode, engine.compress(new TextEncoder().encode(text)), { ...m, rsv: 4, fin });
}

function server(deflate: PerMessageDeflate | null, maxMessageSize?: number) {
  const got: Message[] = [];
  const p = new Protocol({ role: "server", deflate, maxMessageSize }, {
    message: (x) => void got.push(x),
  });
  return { p, got };
}

function run(p: Protocol, bytes: Uint8Array): void {
  p.receive(bytes);
  while (p.process() === Progress.Yield) { /* next turn */ }
}

Deno.test("Protocol with permessage-deflate: compressed and plain messages, fragmented ones, and what it sends", () => {
  const client = new PerMessageDeflate(FULL, "client");
  const { p, got } = server(new PerMessageDeflate(FULL, "server"));
  const long = "the same words again ".repeat(50);
  // In wire order: the client's context runs across its messages.
  const whole = compressed(TEXT, long, client);
  const parts = client.compress(new TextEncoder().encode(long));
  run(
    p,
    concat(
      whole,
      frame(TEXT, "plain", m),
      // One compressed message over three frames: RSV1 on the first only.
      frame(TEXT, parts.subarray(0, 5), { ...m, rsv: 4, fin: false }),
      frame(CONT, parts.subarray(5, 9), { ...m, fin: false }),
      frame(CONT, parts.subarray(9), m),
    ),
  );
  assert.deepEqual(got, [long, "plain", long]);
  assert.equal(p.extensions, "permessage-deflate");
  p.send(long);
  p.send("tiny");
  const out = p.takeOutput()!;
  const bytes = concat(...out);
  assert.equal(bytes[0] & 0x40, 0x40, "RSV1 on the compressed message");
  assert.ok(bytes.length < long.length / 2, `sent ${bytes.length} bytes for ${long.length}`);
});

Deno.test("Protocol with permessage-deflate fails RSV1 where RFC 7692 forbids it, bad data, and a bomb", async (t) => {
  const client = new PerMessageDeflate(FULL, "client");
  await t.step("RSV1 without the extension: 1002", () => {
    const { p } = server(null);
    run(p, compressed(TEXT, "x", client));
    assert.deepEqual([p.info?.code, p.info?.cause], [1002, "protocol-error"]);
  });
  await t.step("RSV1 on a continuation frame: 1002", () => {
    const { p } = server(new PerMessageDeflate(FULL, "server"));
    run(p, concat(frame(TEXT, "a", { ...m, fin: false }), frame(CONT, "b", { ...m, rsv: 4 })));
    assert.deepEqual([p.info?.code, p.info?.reason], [1002, "RSV1 set on a continuation frame"]);
  });
  await t.step("RSV1 on a control frame: 1002", () => {
    const { p } = server(new PerMessageDeflate(FULL, "server"));
    run(p, frame(CLOSE, Uint8Array.of(3, 232), { ...m, rsv: 4 }));
    assert.equal(p.info?.code, 1002);
  });
  await t.step("data that is not DEFLATE: 1007", () => {
    const { p } = server(new PerMessageDeflate(FULL, "server"));
    run(p, frame(BINARY, Uint8Array.of(0xff, 0xff, 0xff), { ...m, rsv: 4 }));
    assert.deepEqual([p.info?.code, p.info?.reason], [1007, "invalid compressed data"]);
  });
  await t.step("compressed invalid UTF-8 in a text message: 1007", () => {
    const { p } = server(new PerMessageDeflate(FULL, "server"));
    run(p, frame(TEXT, client.compress(Uint8Array.of(0x61, 0xff)), { ...m, rsv: 4 }));
    assert.deepEqual([p.info?.code, p.info?.reason], [1007, "invalid UTF-8 in a text message"]);
  });
  await t.step("a 10 MB bomb against a 1 MiB limit: 1009 from the inflated size", () => {
    const { p } = server(new PerMessageDeflate(FULL, "server"), 1024 * 1024);
    const bomb = zlib.deflateRawSync(new Uint8Array(10_000_000), { level: 9 });
    const payload = new Uint8Array(bomb.subarray(0, bomb.length - 4)); // sync-flush style: no final block
    run(p, frame(BINARY, new Uint8Array(bomb), { ...m, rsv: 4 }));
    assert.deepEqual([p.info?.code, p.info?.cause], [1009, "message-too-big"]);
    assert.match(p.info!.reason, /inflates past the limit of 1048576 bytes/);
    assert.ok(payload.length < 20_000, `the bomb is ${payload.length} bytes on the wire`);
  });
});
