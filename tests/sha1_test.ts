import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { sha1, sha1Base64 } from "../lib/ws/sha1.ts";
import { computeAcceptKey } from "../lib/ws/server_handshake.ts";
import { prng } from "./helpers/prng.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("sha1() gives the FIPS 180 test vectors", () => {
  assert.equal(hex(sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
  assert.equal(hex(sha1("")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  assert.equal(
    hex(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
    "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
  );
});

Deno.test("sha1() agrees with node:crypto on every length from 0 to 200, across block edges", () => {
  const rand = prng(7);
  for (let n = 0; n <= 200; n++) {
    const s = Array.from({ length: n }, () => String.fromCharCode(Math.floor(rand() * 128))).join(
      "",
    );
    assert.equal(hex(sha1(s)), createHash("sha1").update(s).digest("hex"), `length ${n}`);
  }
});

Deno.test("computeAcceptKey() gives RFC 6455 §1.3's example", () => {
  assert.equal(computeAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("sha1Base64() is node:crypto's base64 digest, e.g. RFC 6455's accept key", () => {
  assert.equal(
    sha1Base64("dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  );
  for (let n = 0; n <= 130; n++) {
    const s = Array.from({ length: n }, (_, i) => String.fromCharCode(33 + (i * 7) % 90)).join("");
    assert.equal(sha1Base64(s), createHash("sha1").update(s).digest("base64"), `length ${n}`);
  }
});
