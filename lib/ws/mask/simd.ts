/**
 * Masking (RFC 6455 §5.3) with WebAssembly SIMD: the module of
 * `wasm.ts` XORs 64 bytes a step with `v128.xor`.
 *
 * WebAssembly code sees only its own memory, and a payload lives in a
 * JavaScript buffer, so each piece of up to {@linkcode CHUNK} bytes is
 * copied into the module's memory, XORed there, and copied back (two native
 * `set()` calls, i.e. memcpy). There is no sound way around the copies from
 * here: the connection's buffers would have to live in the module's memory,
 * which cannot shrink or give a buffer back (`bytes.ts` frees buffers with
 * `ArrayBuffer.prototype.transfer()`), and whose `ArrayBuffer` is detached
 * whenever the memory grows.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-5.3
 * @module
 */

import type { MaskKernels } from "./kernels.ts";
import { MASK_WASM } from "./wasm.ts";

/**
 * Bytes copied through the module's memory at a time: small enough to stay
 * in L1/L2 between the copy in, the XOR and the copy out, large enough that
 * the three calls per piece cost little. A multiple of 4, so the key's phase
 * is the same at the start of every piece.
 */
export const CHUNK = 32 * 1024;

/** Masking through WebAssembly: in place, and while copying. */
export type SimdKernels = MaskKernels;

/** What is used of the `WebAssembly` namespace; tests pass one without SIMD. */
export type WasmApi = Pick<typeof WebAssembly, "validate" | "Module" | "Instance">;

/**
 * Where in the module's memory (0..4095, 16-byte aligned) to put a piece
 * whose source and destination start at the page offsets `a` and `b`: in the
 * middle of the larger gap between them, so at least 1 KiB from both.
 *
 * Only speed depends on this. glibc's memcpy (2.36 here) copies large blocks
 * with `rep movsb`, which on AMD Zen 3 runs ~20× slower (1.7 against
 * 30 GB/s, measured) when source and destination are within a few dozen
 * bytes of each other modulo 4096 (glibc bug 30994). The module's memory
 * starts on a page; where a JavaScript buffer starts is unknown, but a large
 * one is mapped on its own and starts near a page boundary, so offsets in
 * its `ArrayBuffer` stand in for page offsets.
 */
function scratchOffset(a: number, b: number): number {
  a &= 4095;
  b &= 4095;
  const gap = (b - a) & 4095;
  const mid = gap >= 2048 ? a + (gap >>> 1) : b + ((4096 - gap) >>> 1);
  return mid & 4080;
}

/**
 * Instantiates the module, or returns null when WebAssembly is unavailable
 * (`wasm` null, as under `--jitless`), when `validate()` refuses the bytes
 * (no SIMD), or when the module fails to start, so that the caller falls
 * back to JavaScript.
 */
export function loadSimd(
  wasm: WasmApi | null = globalThis.WebAssembly ?? null,
): SimdKernels | null {
  let run: (p: number, n: number, k: number) => void;
  let mem: Uint8Array;
  try {
    if (wasm === null || !wasm.validate(MASK_WASM)) return null;
    const { exports } = new wasm.Instance(new wasm.Module(MASK_WASM), {});
    run = exports.xor as typeof run;
    // One page (64 KiB) that never grows, so this view stays valid.
    mem = new Uint8Array((exports.memory as WebAssembly.Memory).buffer);
  } catch {
    return null;
  }
  if (mem.length < 4096 + CHUNK) return null;

  return {
    xor(buf, start, end, k0, k1, k2, k3) {
      // Module memory is little-endian whatever the host.
      const k = k0 | (k1 << 8) | (k2 << 16) | (k3 << 24);
      for (let i = start; i < end; i += CHUNK) {
        const n = Math.min(CHUNK, end - i);
        const off = buf.byteOffset + i;
        const at = scratchOffset(off, off);
        mem.set(buf.subarray(i, i + n), at);
        run(at, n, k);
        buf.set(mem.subarray(at, at + n), i);
      }
    },
    xorInto(src, dst, dstOffset, k0, k1, k2, k3) {
      const k = k0 | (k1 << 8) | (k2 << 16) | (k3 << 24);
      const total = src.length;
      for (let i = 0; i < total; i += CHUNK) {
        const n = Math.min(CHUNK, total - i);
        const at = scratchOffset(src.byteOffset + i, dst.byteOffset + dstOffset + i);
        mem.set(src.subarray(i, i + n), at);
        run(at, n, k);
        dst.set(mem.subarray(at, at + n), dstOffset + i);
      }
    },
  };
}
