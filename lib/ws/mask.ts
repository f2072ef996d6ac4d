/**
 * Payload masking, RFC 6455 §5.3: byte `i` of the payload is XORed with byte
 * `i % 4` of the 4-byte masking key. Masking and unmasking are the same
 * operation.
 *
 * Both functions work a 32-bit word at a time through a `Uint32Array` view of
 * the underlying buffer once the address is 4-byte aligned, and byte by byte
 * only for the unaligned head and the tail. The views are cached per
 * `ArrayBuffer` in a `WeakMap`, so a connection that reuses its buffers
 * allocates nothing per frame, and a dropped buffer is not kept alive.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-5.3
 * @module
 */

/**
 * Below this many bytes a plain byte loop beats looking up a word view and
 * building the key word (measured: the word path breaks even near 64 bytes).
 */
const WORD_THRESHOLD = 64;

/** A word view over the whole of each buffer we have worked on. */
const wordViews = new WeakMap<ArrayBufferLike, Uint32Array>();

/** Scratch space to assemble a rotated key in native byte order. */
const keyBytes = new Uint8Array(4);
const keyWord = new Uint32Array(keyBytes.buffer);

/** The `Uint32Array` over all of `buffer`, made once per buffer (and size). */
function wordsOf(buffer: ArrayBufferLike): Uint32Array {
  const words = buffer.byteLength >>> 2;
  let view = wordViews.get(buffer);
  // A resizable buffer may have changed size since the view was made.
  if (view === undefined || view.length !== words) {
    view = new Uint32Array(buffer, 0, words);
    wordViews.set(buffer, view);
  }
  return view;
}

/**
 * XORs `buf[start..end)` in place with a key already split into bytes, the
 * first of which applies to `buf[start]`.
 */
function xorInPlace(
  buf: Uint8Array,
  start: number,
  end: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
): void {
  let i = start;
  if (end - start >= WORD_THRESHOLD) {
    // 1. Unaligned head, byte by byte, rotating the key so that k0 always
    //    applies to buf[i].
    for (let abs = buf.byteOffset + i; (abs & 3) !== 0; abs++) {
      buf[i++] ^= k0;
      const t = k0;
      k0 = k1;
      k1 = k2;
      k2 = k3;
      k3 = t;
    }
    // 2. Aligned body, a word at a time.
    keyBytes[0] = k0;
    keyBytes[1] = k1;
    keyBytes[2] = k2;
    keyBytes[3] = k3;
    const key = keyWord[0];
    const words = wordsOf(buf.buffer);
    let w = (buf.byteOffset + i) >>> 2;
    const wordEnd = w + ((end - i) >>> 2);
    for (; w < wordEnd; w++) words[w] ^= key;
    i = w * 4 - buf.byteOffset;
  }
  // 3. Tail (or a short run), byte by byte.
  while (i + 4 <= end) {
    buf[i] ^= k0;
    buf[i + 1] ^= k1;
    buf[i + 2] ^= k2;
    buf[i + 3] ^= k3;
    i += 4;
  }
  if (i < end) buf[i++] ^= k0;
  if (i < end) buf[i++] ^= k1;
  if (i < end) buf[i] ^= k2;
}

/**
 * Unmasks (or masks) `buf[start..end)` in place with the 4-byte key at
 * `key[keyStart..keyStart+4)` (RFC 6455 §5.3). `key` may be `buf` itself, so
 * a frame is unmasked with the key where `readFrameHeader()` found it
 * (`FrameHeader.maskOffset`), without copying it. `phase` is how many bytes
 * of this payload were unmasked before (only its value mod 4 matters), for a
 * payload that arrives in pieces.
 */
export function unmask(
  buf: Uint8Array,
  start: number,
  end: number,
  key: Uint8Array,
  keyStart = 0,
  phase = 0,
): void {
  const p = phase & 3;
  xorInPlace(
    buf,
    start,
    end,
    key[keyStart + p],
    key[keyStart + ((p + 1) & 3)],
    key[keyStart + ((p + 2) & 3)],
    key[keyStart + ((p + 3) & 3)],
  );
}

/**
 * Copies `src` into `dst` at `dstOffset` and masks the copy with the 4-byte
 * `key` (RFC 6455 §5.3); `src` is left untouched. The copy is a native
 * `set()` (memcpy) and the mask one word-wise pass over `dst`, which is
 * faster than a fused JavaScript loop and works whatever the relative
 * alignment of `src` and `dst`.
 */
export function maskInto(
  src: Uint8Array,
  dst: Uint8Array,
  dstOffset: number,
  key: Uint8Array,
): void {
  const n = src.length;
  if (n < WORD_THRESHOLD) {
    // Too short for set() and a word view to pay off: copy and mask at once.
    for (let i = 0; i < n; i++) dst[dstOffset + i] = src[i] ^ key[i & 3];
    return;
  }
  dst.set(src, dstOffset);
  xorInPlace(dst, dstOffset, dstOffset + n, key[0], key[1], key[2], key[3]);
}
