/**
 * Which masking implementation runs at which payload size (RFC 6455 §5.3),
 * as measured by `bench/mask_bench.ts`; `../mask.ts` wires the choice in.
 *
 * @module
 */

import { type MaskKernels, xorBytes, xorWords64x2Cached } from "./kernels.ts";
import type { SimdKernels } from "./simd.ts";

/**
 * Below this many bytes the byte loop beats finding the 64-bit view and
 * building the key lane (measured: bytes still win at 64, lanes at 96).
 */
export const LANES_FROM = 80;
/**
 * From this many bytes `maskInto()` copies and masks through WebAssembly
 * SIMD instead of `set()` then 64-bit lanes. In place (`unmask()`), SIMD
 * never wins: its two copies cost more than the lanes it saves.
 */
export const SIMD_INTO_FROM = 8192;

/** Masking as `mask.ts` does it, with the key already split into bytes. */
export type Masker = MaskKernels;

/** In place: bytes, then 64-bit lanes. */
function xor(
  buf: Uint8Array,
  start: number,
  end: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
): void {
  if (end - start < LANES_FROM) xorBytes(buf, start, end, k0, k1, k2, k3);
  else xorWords64x2Cached(buf, start, end, k0, k1, k2, k3);
}

/** Copy and mask in JavaScript: one fused byte loop when short, else `set()` and lanes. */
function xorIntoJs(
  src: Uint8Array,
  dst: Uint8Array,
  dstOffset: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
): void {
  const n = src.length;
  if (n >= LANES_FROM) {
    dst.set(src, dstOffset);
    xorWords64x2Cached(dst, dstOffset, dstOffset + n, k0, k1, k2, k3);
    return;
  }
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    dst[dstOffset + i] = src[i] ^ k0;
    dst[dstOffset + i + 1] = src[i + 1] ^ k1;
    dst[dstOffset + i + 2] = src[i + 2] ^ k2;
    dst[dstOffset + i + 3] = src[i + 3] ^ k3;
  }
  if (i < n) dst[dstOffset + i] = src[i++] ^ k0;
  if (i < n) dst[dstOffset + i] = src[i++] ^ k1;
  if (i < n) dst[dstOffset + i] = src[i] ^ k2;
}

/**
 * The masker for this machine: JavaScript in place at every size; for
 * copy-and-mask, `simd` from {@linkcode SIMD_INTO_FROM} bytes, JavaScript
 * below that and whenever `simd` is null (WebAssembly or SIMD unavailable).
 */
export function pickMasker(simd: SimdKernels | null): Masker {
  if (simd === null) return { xor, xorInto: xorIntoJs };
  const simdInto = simd.xorInto;
  return {
    xor,
    xorInto(src, dst, dstOffset, k0, k1, k2, k3) {
      if (src.length < SIMD_INTO_FROM) xorIntoJs(src, dst, dstOffset, k0, k1, k2, k3);
      else simdInto(src, dst, dstOffset, k0, k1, k2, k3);
    },
  };
}
