/**
 * SHA-1 (RFC 3174, FIPS 180-4) of a short ASCII string, for the one place
 * RFC 6455 needs it: `Sec-WebSocket-Accept` = base64(SHA-1(key + GUID))
 * (§4.2.2). A plain loop over 64 bytes beats a `node:crypto` hash object,
 * whose every call is an op into the runtime (measured in the accept path).
 * SHA-1 is no security measure here, only the protocol's checksum.
 *
 * The message schedule, the padded block and the state are typed arrays
 * made once: making one costs about 0.8 µs in Deno, more than the hash.
 *
 * @module
 */

/** The round constants (FIPS 180-4 §4.2.1), as int32. */
const K0 = 0x5a827999 | 0, K1 = 0x6ed9eba1 | 0, K2 = 0x8f1bbcdc | 0, K3 = 0xca62c1d6 | 0;
/** The message schedule (FIPS 180-4 §6.1.2), reused by every call. */
const W = new Int32Array(80);
/** The padded message, grown when a longer text comes. */
let block = new Uint8Array(128);

/** The state of the last digest: five 32-bit words, big-endian when written out. */
const H = new Int32Array(5);

/** Hashes `text` into {@linkcode H}. */
function digest(text: string): void {
  H[0] = 0x67452301;
  H[1] = 0xefcdab89 | 0;
  H[2] = 0x98badcfe | 0;
  H[3] = 0x10325476;
  H[4] = 0xc3d2e1f0 | 0;
  const n = text.length;
  // Padding: 0x80, zeros, then the bit length as a 64-bit big-endian number.
  const size = (((n + 8) >> 6) + 1) * 64;
  if (block.length < size) block = new Uint8Array(size);
  const m = block;
  for (let i = 0; i < n; i++) m[i] = text.charCodeAt(i);
  m.fill(0, n, size);
  m[n] = 0x80;
  const bits = n * 8;
  m[size - 4] = bits >>> 24;
  m[size - 3] = bits >>> 16;
  m[size - 2] = bits >>> 8;
  m[size - 1] = bits;
  for (let b = 0; b < size; b += 64) compress(H, m, b);
}

/** The digest's byte `i` (0 to 19). */
function digestByte(i: number): number {
  return (H[i >> 2] >>> (24 - 8 * (i & 3))) & 0xff;
}

/** The 20-byte SHA-1 digest of `text`'s characters taken as bytes (ASCII/Latin-1). */
export function sha1(text: string): Uint8Array {
  digest(text);
  const out = new Uint8Array(20);
  for (let i = 0; i < 20; i++) out[i] = digestByte(i);
  return out;
}

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/**
 * base64(SHA-1(text)) (RFC 4648 §4), as `Sec-WebSocket-Accept` wants it:
 * 28 characters, one `=` of padding. Allocates no buffer (a typed array
 * costs about 0.8 µs to make in Deno, more than the hash).
 */
export function sha1Base64(text: string): string {
  digest(text);
  let out = "";
  for (let i = 0; i < 18; i += 3) {
    const v = (digestByte(i) << 16) | (digestByte(i + 1) << 8) | digestByte(i + 2);
    out += BASE64[v >> 18] + BASE64[(v >> 12) & 63] + BASE64[(v >> 6) & 63] + BASE64[v & 63];
  }
  const v = (digestByte(18) << 16) | (digestByte(19) << 8);
  return out + BASE64[v >> 18] + BASE64[(v >> 12) & 63] + BASE64[(v >> 6) & 63] + "=";
}

/** One 64-byte block at `m[b…]` into the state `h` (FIPS 180-4 §6.1.2). */
function compress(h: Int32Array, m: Uint8Array, b: number): void {
  for (let t = 0; t < 16; t++) {
    const i = b + t * 4;
    W[t] = (m[i] << 24) | (m[i + 1] << 16) | (m[i + 2] << 8) | m[i + 3];
  }
  for (let t = 16; t < 80; t++) {
    const x = W[t - 3] ^ W[t - 8] ^ W[t - 14] ^ W[t - 16];
    W[t] = (x << 1) | (x >>> 31);
  }
  let a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
  for (let t = 0; t < 80; t++) {
    const f = t < 20
      ? ((bb & c) | (~bb & d)) + K0
      : t < 40
      ? (bb ^ c ^ d) + K1
      : t < 60
      ? ((bb & c) | (bb & d) | (c & d)) + K2
      : (bb ^ c ^ d) + K3;
    const temp = (((a << 5) | (a >>> 27)) + f + e + W[t]) | 0;
    e = d;
    d = c;
    c = (bb << 30) | (bb >>> 2);
    bb = a;
    a = temp;
  }
  h[0] = (h[0] + a) | 0;
  h[1] = (h[1] + bb) | 0;
  h[2] = (h[2] + c) | 0;
  h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0;
}
