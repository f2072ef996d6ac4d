/**
 * The plain-JavaScript ways to XOR a payload with its masking key
 * (RFC 6455 §5.3), each a separate function so that V8 optimizes each on its
 * own. `mask.ts` uses {@linkcode xorBytes} and {@linkcode xorWords64x2Cached};
 * the others are the measured alternatives (`bench/mask_bench.ts`), kept so
 * that the comparison can be rerun on another machine or V8.
 *
 * Every kernel XORs `buf[start..end)` in place, byte `start + j` with
 * `[k0, k1, k2, k3][j % 4]`, and works for any length and any alignment.
 *
 * Measured on V8 15 (Deno 2.9), x86-64: 32-bit words run ~5 GB/s however
 * far the loop is unrolled (V8 does not vectorize it); 64-bit lanes through
 * a `BigUint64Array` run ~10–12 GB/s once TurboFan has the function, since
 * it keeps `BigInt` XOR of typed-array elements in 64-bit registers.
 * Before that (interpreter, Maglev) each element allocates a `BigInt`
 * and the 64-bit loop is ~10× slower than the 32-bit one, which matters only
 * for the first few large frames.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-5.3
 * @module
 */

/** XORs `buf[start..end)` in place with the key bytes, `k0` applying to `buf[start]`. */
export type XorKernel = (
  buf: Uint8Array,
  start: number,
  end: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
) => void;

/**
 * A pair of masking kernels: in place, and while copying. The JS masker and
 * the WebAssembly one both have this shape, so either can stand for the other.
 */
export interface MaskKernels {
  /** XORs `buf[start..end)` in place, `k0` applying to `buf[start]`. */
  xor: XorKernel;
  /** Writes `src` XORed with the key (`k0` applying to `src[0]`) into `dst` at `dstOffset`. */
  xorInto(
    src: Uint8Array,
    dst: Uint8Array,
    dstOffset: number,
    k0: number,
    k1: number,
    k2: number,
    k3: number,
  ): void;
}

/** Scratch space to assemble a (rotated, doubled) key in native byte order. */
const keyBytes = new Uint8Array(8);
const keyWord = new Uint32Array(keyBytes.buffer);
const keyLong = new BigUint64Array(keyBytes.buffer);

/** The key as one native-order 32-bit word, `k0` in the lowest address. */
function word(k0: number, k1: number, k2: number, k3: number): number {
  keyBytes[0] = k0;
  keyBytes[1] = k1;
  keyBytes[2] = k2;
  keyBytes[3] = k3;
  return keyWord[0];
}

/** The key twice as one native-order 64-bit lane, `k0` in the lowest address. */
function long(k0: number, k1: number, k2: number, k3: number): bigint {
  keyBytes[0] = keyBytes[4] = k0;
  keyBytes[1] = keyBytes[5] = k1;
  keyBytes[2] = keyBytes[6] = k2;
  keyBytes[3] = keyBytes[7] = k3;
  return keyLong[0];
}

/** Byte by byte, four per step: the reference speed, and the best below ~64 bytes. */
export function xorBytes(
  buf: Uint8Array,
  start: number,
  end: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
): void {
  let i = start;
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
  const key = long(k0, k1, k2, k3);
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
  const key = long(k0, k1, k2, k3);
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

/** {@linkcode xorWords64x2Cached}'s lane view over the whole of each buffer it has worked on. */
const laneViews = new WeakMap<ArrayBufferLike, BigUint64Array>();

/**
 * 64-bit lanes, two per step, through a `BigUint64Array` over the whole
 * buffer that is made once per buffer (and size) and cached in a `WeakMap`:
 * a lookup is cheaper than making a view, which shows below a few KiB. A
 * connection that reuses its buffers allocates nothing per frame, and a
 * dropped buffer is not kept alive. The fastest here from ~96 bytes up.
 */
export function xorWords64x2Cached(
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
  const key = long(k0, k1, k2, k3);
  const buffer = buf.buffer;
  const count = buffer.byteLength >>> 3;
  let lanes = laneViews.get(buffer);
  // A resizable buffer may have changed size since the view was made.
  if (lanes === undefined || lanes.length !== count) {
    lanes = new BigUint64Array(buffer, 0, count);
    laneViews.set(buffer, lanes);
  }
  const n = (end - i) >>> 3;
  let w = (buf.byteOffset + i) >>> 3;
  const laneEnd = w + n;
  for (const last = laneEnd - 1; w < last; w += 2) {
    lanes[w] ^= key;
    lanes[w + 1] ^= key;
  }
  if (w < laneEnd) lanes[w] ^= key;
  xorBytes(buf, i + n * 8, end, k0, k1, k2, k3);
}
