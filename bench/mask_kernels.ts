/**
 * The plain-JavaScript masking kernels that `lib/ws/mask/kernels.ts` was
 * measured against and did not choose (`bench/mask_bench.ts` runs them side
 * by side, `tests/mask_test.ts` checks they are correct, so that the
 * comparison means something). Each has the
 * {@linkcode XorKernel} shape and is a separate function so that V8
 * optimizes each on its own.
 *
 * @module
 */

import { keyLane, xorBytes, type XorKernel } from "../lib/ws/mask/kernels.ts";

export type { XorKernel };

/** Scratch space to assemble a (rotated) key in native byte order. */
const keyBytes = new Uint8Array(4);
const keyWord = new Uint32Array(keyBytes.buffer);

/** The key as one native-order 32-bit word, `k0` in the lowest address. */
function word(k0: number, k1: number, k2: number, k3: number): number {
  keyBytes[0] = k0;
  keyBytes[1] = k1;
  keyBytes[2] = k2;
  keyBytes[3] = k3;
  return keyWord[0];
}

// --- 32-bit words -----------------------------------------------------------

/** Below this many bytes {@linkcode xorWords32} uses the byte loop (its own measure). */
const WORDS32_THRESHOLD = 64;
/** {@linkcode xorWords32}'s word view over the whole of each buffer it has worked on. */
const wordViews = new WeakMap<ArrayBufferLike, Uint32Array>();

/**
 * The implementation before issue 14: a byte loop up to 4-byte alignment,
 * then one 32-bit word at a time through a `Uint32Array` view of the whole
 * buffer, cached per buffer in a `WeakMap`; a byte loop below 64 bytes.
 */
export function xorWords32(
  buf: Uint8Array,
  start: number,
  end: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
): void {
  let i = start;
  if (end - start >= WORDS32_THRESHOLD) {
    for (let abs = buf.byteOffset + i; (abs & 3) !== 0; abs++) {
      buf[i++] ^= k0;
      const t = k0;
      k0 = k1;
      k1 = k2;
      k2 = k3;
      k3 = t;
    }
    const key = word(k0, k1, k2, k3);
    const buffer = buf.buffer;
    const count = buffer.byteLength >>> 2;
    let words = wordViews.get(buffer);
    if (words === undefined || words.length !== count) {
      words = new Uint32Array(buffer, 0, count);
      wordViews.set(buffer, words);
    }
    let w = (buf.byteOffset + i) >>> 2;
    const wordEnd = w + ((end - i) >>> 2);
    for (; w < wordEnd; w++) words[w] ^= key;
    i = w * 4 - buf.byteOffset;
  }
  xorBytes(buf, i, end, k0, k1, k2, k3);
}

/**
 * 32-bit words two per step (a view made per call over just the aligned
 * words, which measured faster than a cached view of the whole buffer).
 */
export function xorWords32x2(
  buf: Uint8Array,
  start: number,
  end: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
): void {
  let i = start;
  for (let abs = buf.byteOffset + i; (abs & 3) !== 0 && i < end; abs++) {
    buf[i++] ^= k0;
    const t = k0;
    k0 = k1;
    k1 = k2;
    k2 = k3;
    k3 = t;
  }
  const key = word(k0, k1, k2, k3);
  const n = (end - i) >>> 2;
  // (When the payload ends before a word boundary, n is 0 and the view empty.)
  const words = new Uint32Array(buf.buffer, n === 0 ? 0 : buf.byteOffset + i, n);
  let w = 0;
  for (const last = n - 1; w < last; w += 2) {
    words[w] ^= key;
    words[w + 1] ^= key;
  }
  if (w < n) words[w] ^= key;
  xorBytes(buf, i + n * 4, end, k0, k1, k2, k3);
}

/** 32-bit words, the loop unrolled four times. */
export function xorWords32x4(
  buf: Uint8Array,
  start: number,
  end: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
): void {
  let i = start;
  for (let abs = buf.byteOffset + i; (abs & 3) !== 0 && i < end; abs++) {
    buf[i++] ^= k0;
    const t = k0;
    k0 = k1;
    k1 = k2;
    k2 = k3;
    k3 = t;
  }
  const key = word(k0, k1, k2, k3);
  const n = (end - i) >>> 2;
  // (When the payload ends before a word boundary, n is 0 and the view empty.)
  const words = new Uint32Array(buf.buffer, n === 0 ? 0 : buf.byteOffset + i, n);
  let w = 0;
  for (const last = n - 3; w < last; w += 4) {
    words[w] ^= key;
    words[w + 1] ^= key;
    words[w + 2] ^= key;
    words[w + 3] ^= key;
  }
  for (; w < n; w++) words[w] ^= key;
  xorBytes(buf, i + n * 4, end, k0, k1, k2, k3);
}

/** 32-bit words, the loop unrolled eight times. */
export function xorWords32x8(
  buf: Uint8Array,
  start: number,
  end: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
): void {
  let i = start;
  for (let abs = buf.byteOffset + i; (abs & 3) !== 0 && i < end; abs++) {
    buf[i++] ^= k0;
    const t = k0;
    k0 = k1;
    k1 = k2;
    k2 = k3;
    k3 = t;
  }
  const key = word(k0, k1, k2, k3);
  const n = (end - i) >>> 2;
  // (When the payload ends before a word boundary, n is 0 and the view empty.)
  const words = new Uint32Array(buf.buffer, n === 0 ? 0 : buf.byteOffset + i, n);
  let w = 0;
  for (const last = n - 7; w < last; w += 8) {
    words[w] ^= key;
    words[w + 1] ^= key;
    words[w + 2] ^= key;
    words[w + 3] ^= key;
    words[w + 4] ^= key;
    words[w + 5] ^= key;
    words[w + 6] ^= key;
    words[w + 7] ^= key;
  }
  for (; w < n; w++) words[w] ^= key;
  xorBytes(buf, i + n * 4, end, k0, k1, k2, k3);
}

// --- 64-bit lanes -----------------------------------------------------------

/**
 * 64-bit lanes: a byte loop up to 8-byte alignment, then a `BigUint64Array`
 * made per call over just the aligned lanes, one lane a step, then the tail
 * byte by byte.
 */
export function xorWords64(
  buf: Uint8Array,
  start: number,
  end: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
): void {
  let i = start;
  for (let abs = buf.byteOffset + i; (abs & 7) !== 0 && i < end; abs++) {
    buf[i++] ^= k0;
    const t = k0;
    k0 = k1;
    k1 = k2;
    k2 = k3;
    k3 = t;
  }
  const key = keyLane(k0, k1, k2, k3);
  const n = (end - i) >>> 3;
  // (When the payload ends before a lane boundary, n is 0 and the view empty.)
  const lanes = new BigUint64Array(buf.buffer, n === 0 ? 0 : buf.byteOffset + i, n);
  for (let w = 0; w < n; w++) lanes[w] ^= key;
  xorBytes(buf, i + n * 8, end, k0, k1, k2, k3);
}

/** 64-bit lanes, two per step. */
export function xorWords64x2(
  buf: Uint8Array,
  start: number,
  end: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
): void {
  let i = start;
  for (let abs = buf.byteOffset + i; (abs & 7) !== 0 && i < end; abs++) {
    buf[i++] ^= k0;
    const t = k0;
    k0 = k1;
    k1 = k2;
    k2 = k3;
    k3 = t;
  }
  const key = keyLane(k0, k1, k2, k3);
  const n = (end - i) >>> 3;
  // (When the payload ends before a lane boundary, n is 0 and the view empty.)
  const lanes = new BigUint64Array(buf.buffer, n === 0 ? 0 : buf.byteOffset + i, n);
  let w = 0;
  for (const last = n - 1; w < last; w += 2) {
    lanes[w] ^= key;
    lanes[w + 1] ^= key;
  }
  if (w < n) lanes[w] ^= key;
  xorBytes(buf, i + n * 8, end, k0, k1, k2, k3);
}
