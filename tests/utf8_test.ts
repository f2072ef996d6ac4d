import assert from "node:assert/strict";
import { decodeAscii, encodeAscii, Utf8Validator } from "../lib/ws/utf8.ts";
import { prng } from "./helpers/prng.ts";
import { hex } from "./helpers/raw.ts";

/** Validates `bytes` pushed in pieces of `step` bytes. */
function valid(bytes: Uint8Array, step = bytes.length): boolean {
  const v = new Utf8Validator();
  for (let i = 0; i < bytes.length; i += Math.max(step, 1)) {
    if (!v.push(bytes, i, Math.min(i + step, bytes.length))) return false;
  }
  return v.complete;
}

const fatal = new TextDecoder("utf-8", { fatal: true });
function decoderSays(bytes: Uint8Array): boolean {
  try {
    fatal.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

Deno.test("Utf8Validator accepts every well-formed sequence of RFC 3629, however it is split", () => {
  const text = "a é € 𝄞 \u{10FFFF} \uFEFF end";
  const bytes = new TextEncoder().encode(text);
  for (const step of [1, 2, 3, 5, bytes.length]) assert.ok(valid(bytes, step), `step ${step}`);
  assert.ok(valid(new Uint8Array(0)));
});

Deno.test("Utf8Validator refuses overlongs, surrogates, code points past U+10FFFF, stray and missing tails", () => {
  for (
    const bad of [
      "c0 af", // overlong '/'
      "e0 80 af", // overlong
      "f0 80 80 af", // overlong
      "ed a0 80", // U+D800, a surrogate
      "f4 90 80 80", // U+110000
      "f5 80 80 80",
      "ff",
      "80", // a tail with no lead
      "e2 82", // truncated at the end
      "e2 28 a1", // a lead without its tail
    ]
  ) {
    assert.equal(valid(hex(bad)), false, bad);
    assert.equal(valid(hex(bad), 1), false, `${bad} byte by byte`);
  }
});

Deno.test("Utf8Validator agrees with a fatal TextDecoder on 20,000 random byte strings", () => {
  const rand = prng(1779033703);
  for (let n = 0; n < 20_000; n++) {
    const len = Math.floor(rand() * 12);
    // Mostly bytes around the interesting boundaries.
    const pool = [
      0x00,
      0x41,
      0x7f,
      0x80,
      0x9f,
      0xa0,
      0xbf,
      0xc0,
      0xc2,
      0xdf,
      0xe0,
      0xed,
      0xef,
      0xf0,
      0xf4,
      0xf5,
      0xff,
    ];
    const bytes = Uint8Array.from({ length: len }, () => pool[Math.floor(rand() * pool.length)]);
    const step = 1 + Math.floor(rand() * 4);
    assert.equal(
      valid(bytes, step),
      decoderSays(bytes),
      [...bytes].map((b) => b.toString(16)).join(" "),
    );
  }
});

Deno.test("decodeAscii() and encodeAscii() take ASCII only, and agree with TextDecoder/TextEncoder on it", () => {
  const ascii = "Hello, world! ~\x00\x7f";
  const bytes = new TextEncoder().encode(ascii);
  assert.equal(decodeAscii(bytes, 0, bytes.length), ascii);
  assert.equal(decodeAscii(bytes, 7, 12), "world");
  assert.equal(decodeAscii(new TextEncoder().encode("héllo"), 0, 6), null);
  const out = new Uint8Array(40);
  assert.equal(encodeAscii(ascii, out, 3), ascii.length);
  assert.deepEqual(out.subarray(3, 3 + bytes.length), bytes);
  assert.equal(encodeAscii("née", out, 0), -1);
  assert.equal(encodeAscii("", out, 0), 0);
});
