/**
 * SHA-1 (RFC 3174, FIPS 180-4) of a short ASCII string, for the one place
 * RFC 6455 needs it: `Sec-WebSocket-Accept` = base64(SHA-1(key + GUID))
 * (§4.2.2). A plain loop over 64 bytes beats a `node:crypto` hash object,
 * whose every call is an op into the runtime (measured in the accept path).
 * SHA-1 is no security measure here, only the protocol's checksum.
 *
 * @module
 */

const W = new Int32Array(80);

/** The 20-byte SHA-1 digest of `text`'s characters taken as bytes (ASCII/Latin-1). */
export function sha1(text: string): Uint8Array {
  const n = text.length;
  // Padding: 0x80, zeros, then the bit length as a 64-bit big-endian number.
  const blocks = ((n + 8) >> 6) + 1;
  const m = new Uint8Array(blocks * 64);
  for (let i = 0; i < n; i++) m[i] = text.charCodeAt(i);
  m[n] = 0x80;
  const bits = n * 8;
  m[m.length - 4] = bits >>> 24;
  m[m.length - 3] = bits >>> 16;
  m[m.length - 2] = bits >>> 8;
  m[m.length - 1] = bits;
  let h0 = 0x67452301, h1 = 0xefcdab89, h2 = 0x98badcfe, h3 = 0x10325476, h4 = 0xc3d2e1f0;
  for (let b = 0; b < m.length; b += 64) {
    for (let t = 0; t < 16; t++) {
      const i = b + t * 4;
      W[t] = (m[i] << 24) | (m[i + 1] << 16) | (m[i + 2] << 8) | m[i + 3];
    }
    for (let t = 16; t < 80; t++) {
      const x = W[t - 3] ^ W[t - 8] ^ W[t - 14] ^ W[t - 16];
      W[t] = (x << 1) | (x >>> 31);
    }
    let a = h0, bb = h1, c = h2, d = h3, e = h4;
    for (let t = 0; t < 80; t++) {
      const f = t < 20
        ? ((bb & c) | (~bb & d)) + 0x5a827999
        : t < 40
        ? (bb ^ c ^ d) + 0x6ed9eba1
        : t < 60
        ? ((bb & c) | (bb & d) | (c & d)) + 0x8f1bbcdc
        : (bb ^ c ^ d) + 0xca62c1d6;
      const temp = (((a << 5) | (a >>> 27)) + f + e + W[t]) | 0;
      e = d;
      d = c;
      c = (bb << 30) | (bb >>> 2);
      bb = a;
      a = temp;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + bb) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
  }
  const out = new Uint8Array(20);
  const v = new DataView(out.buffer);
  v.setInt32(0, h0);
  v.setInt32(4, h1);
  v.setInt32(8, h2);
  v.setInt32(12, h3);
  v.setInt32(16, h4);
  return out;
}
