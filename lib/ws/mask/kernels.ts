/**
 * The plain-JavaScript ways to XOR a payload with its masking key
 * (RFC 6455 §5.3), each a separate function so that V8 optimizes each on its
 * own: {@linkcode xorBytes} and {@linkcode xorWords64x2Cached}, which
 * `pick.ts` chooses between by size. The alternatives they were measured
 * against live in `bench/mask_kernels.ts` (run `deno run -A bench/mask_bench.ts`).
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
const keyLong = new BigUint64Array(keyBytes.buffer);

/** The key twice as one native-order 64-bit lane, `k0` in the lowest address. */
export function keyLane(k0: number, k1: number, k2: number, k3: number): bigint {
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
  const key = keyLane(k0, k1, k2, k3);
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
