/**
 * Payload masking, RFC 6455 §5.3: byte `i` of the payload is XORed with byte
 * `i % 4` of the 4-byte masking key. Masking and unmasking are the same
 * operation.
 *
 * The work is done by the implementation that `mask/pick.ts` chose for the
 * payload's size: a byte loop for short payloads, 64-bit lanes through a
 * `BigUint64Array` above that (`mask/kernels.ts`), and WebAssembly SIMD
 * (`mask/simd.ts`) where it measured faster, falling back to JavaScript when
 * WebAssembly or SIMD is unavailable. `bench/mask_bench.ts` measures them all.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-5.3
 * @module
 */

import { pickMasker } from "./mask/pick.ts";
import { loadSimd } from "./mask/simd.ts";

const masker = pickMasker(loadSimd());

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
  masker.xor(
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
 * `key` (RFC 6455 §5.3); `src` is left untouched. `src` and `dst` may have
 * any alignment relative to each other.
 */
export function maskInto(
  src: Uint8Array,
  dst: Uint8Array,
  dstOffset: number,
  key: Uint8Array,
): void {
  masker.xorInto(src, dst, dstOffset, key[0], key[1], key[2], key[3]);
}
