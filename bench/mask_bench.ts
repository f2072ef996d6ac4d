/**
 * Micro-benchmark of payload masking (RFC 6455 §5.3): GB/s of every
 * implementation at every payload size, side by side, from one process.
 *
 * ```sh
 * deno run -A bench/mask_bench.ts                      # 64 B, 1 KiB, 16 KiB, 64 KiB, 1 MiB
 * deno run -A bench/mask_bench.ts --sizes 16,32,64,128,256 --runs 9
 * ```
 *
 * Each run times every implementation at every size in turn (interleaved, so
 * that a burst of load from elsewhere hits all of them alike), for
 * `--bytes` bytes per measurement; the table shows the median of `--runs`
 * runs after one warm-up run. GB/s is 10⁹ payload bytes per second.
 *
 * The payload sits after a frame header in a larger buffer, as in the
 * reader's buffer: at offset 6 (2-byte header and key) up to 125 bytes, 8 up
 * to 65535, 14 beyond (6 and 14 are not 8-byte aligned).
 *
 * `unmask` rows XOR in place, as the server does with every frame it reads.
 * `maskInto` rows copy and mask, as a client does with every frame it sends,
 * twice: with the destination right after the header, and 2 KiB further on.
 * Both buffers here are large, so each starts 16 bytes past a page boundary,
 * and right after the header the copy's destination is a few bytes ahead of
 * its source modulo 4096, where glibc's memcpy (`rep movsb`) is ~20× slower
 * on AMD Zen 3 (see `lib/ws/mask/simd.ts`); 2 KiB further on it is not.
 * The `simd` rows include copying into and out of the module's memory; the
 * `wasm xor only` row leaves out the copies, a bound no caller can reach.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { maskInto, unmask } from "../lib/ws/mask.ts";
import { xorBytes, xorWords64x2Cached } from "../lib/ws/mask/kernels.ts";
import {
  xorWords32,
  xorWords32x2,
  xorWords32x4,
  xorWords32x8,
  xorWords64,
  xorWords64x2,
} from "./mask_kernels.ts";
import { loadSimd } from "../lib/ws/mask/simd.ts";
import { MASK_WASM } from "../lib/ws/mask/wasm.ts";

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "64,1024,16384,65536,1048576" },
    runs: { type: "string", default: "7" },
    bytes: { type: "string", default: String(8 << 20) },
  },
});
const SIZES = values.sizes.split(",").map(Number);
const RUNS = Number(values.runs);
const BYTES = Number(values.bytes);

/** How much further on a second maskInto table puts the destination. */
const SHIFT = 2048;

const K0 = 0x37, K1 = 0xfa, K2 = 0x21, K3 = 0x3d;
const KEY = Uint8Array.of(K0, K1, K2, K3);

/** Where the payload starts after its frame header (RFC 6455 §5.2). */
function headerLength(n: number): number {
  return n <= 125 ? 6 : n <= 65535 ? 8 : 14;
}

/** One way to mask, run on `n` bytes at `at` in `buf`, `times` times. */
type Case = (buf: Uint8Array, at: number, n: number, times: number) => void;

const simd = loadSimd();
if (simd === null) console.log("WebAssembly SIMD unavailable here: no simd rows.");

/** The module's bare XOR on its own memory: what no copy would cost. */
function wasmXorOnly(): Case | null {
  if (!WebAssembly.validate(MASK_WASM)) return null;
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(MASK_WASM));
  const run = exports.xor as (p: number, n: number, k: number) => void;
  const limit = (exports.memory as WebAssembly.Memory).buffer.byteLength;
  const k = K0 | (K1 << 8) | (K2 << 16) | (K3 << 24);
  return (_buf, at, n, times) => {
    for (let t = 0; t < times; t++) {
      for (let i = 0; i < n; i += 32768) run(at, Math.min(32768, n - i, limit - at), k);
    }
  };
}

// Every case is its own function literal: closures made by one helper would
// share V8's feedback, and the kernel call in them would not be inlined.
const unmaskCases: [string, Case | null][] = [
  ["bytes", (b, at, n, times) => {
    for (let t = 0; t < times; t++) xorBytes(b, at, at + n, K0, K1, K2, K3);
  }],
  ["words32 (old)", (b, at, n, times) => {
    for (let t = 0; t < times; t++) xorWords32(b, at, at + n, K0, K1, K2, K3);
  }],
  ["words32 x2", (b, at, n, times) => {
    for (let t = 0; t < times; t++) xorWords32x2(b, at, at + n, K0, K1, K2, K3);
  }],
  ["words32 x4", (b, at, n, times) => {
    for (let t = 0; t < times; t++) xorWords32x4(b, at, at + n, K0, K1, K2, K3);
  }],
  ["words32 x8", (b, at, n, times) => {
    for (let t = 0; t < times; t++) xorWords32x8(b, at, at + n, K0, K1, K2, K3);
  }],
  ["words64", (b, at, n, times) => {
    for (let t = 0; t < times; t++) xorWords64(b, at, at + n, K0, K1, K2, K3);
  }],
  ["words64 x2", (b, at, n, times) => {
    for (let t = 0; t < times; t++) xorWords64x2(b, at, at + n, K0, K1, K2, K3);
  }],
  ["words64 x2 cached", (b, at, n, times) => {
    for (let t = 0; t < times; t++) xorWords64x2Cached(b, at, at + n, K0, K1, K2, K3);
  }],
  [
    "simd + copies",
    simd && ((b, at, n, times) => {
      for (let t = 0; t < times; t++) simd.xor(b, at, at + n, K0, K1, K2, K3);
    }),
  ],
  ["wasm xor only", wasmXorOnly()],
  ["unmask() now", (b, at, n, times) => {
    for (let t = 0; t < times; t++) unmask(b, at, at + n, KEY);
  }],
];

const maskIntoCases: [string, Case | null][] = [
  ["set + words32 (old)", (b, at, n, times) => {
    const src = source.subarray(0, n);
    for (let t = 0; t < times; t++) {
      b.set(src, at);
      xorWords32(b, at, at + n, K0, K1, K2, K3);
    }
  }],
  ["set + words64 x2 cached", (b, at, n, times) => {
    const src = source.subarray(0, n);
    for (let t = 0; t < times; t++) {
      b.set(src, at);
      xorWords64x2Cached(b, at, at + n, K0, K1, K2, K3);
    }
  }],
  [
    "simd + copies",
    simd && ((b, at, n, times) => {
      const src = source.subarray(0, n);
      for (let t = 0; t < times; t++) simd.xorInto(src, b, at, K0, K1, K2, K3);
    }),
  ],
  ["maskInto() now", (b, at, n, times) => {
    const src = source.subarray(0, n);
    for (let t = 0; t < times; t++) maskInto(src, b, at, KEY);
  }],
];

const largest = Math.max(...SIZES);
const buffer = new Uint8Array(largest + SHIFT + 64);
const source = new Uint8Array(largest);
crypto.getRandomValues(source.subarray(0, Math.min(largest, 65536)));
buffer.set(source);

type Table = Map<string, number[][]>;

/** Times every case at every size once, adding GB/s to `table`. */
function runOnce(cases: [string, Case | null][], table: Table, shift = 0): void {
  for (const n of SIZES) {
    const at = headerLength(n) + shift;
    const times = Math.max(1, Math.round(BYTES / n));
    for (const [name, run] of cases) {
      if (run === null) continue;
      const t0 = performance.now();
      run(buffer, at, n, times);
      const ms = performance.now() - t0;
      if (!table.has(name)) table.set(name, SIZES.map(() => []));
      table.get(name)![SIZES.indexOf(n)].push((times * n) / (ms * 1e6));
    }
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function label(n: number): string {
  return n >= 1 << 20 && n % (1 << 20) === 0
    ? `${n >> 20} MiB`
    : n >= 1024 && n % 1024 === 0
    ? `${n >> 10} KiB`
    : `${n} B`;
}

function print(title: string, table: Table): void {
  const w = Math.max(...[...table.keys()].map((k) => k.length), title.length) + 2;
  console.log(`\n${title.padEnd(w)}${SIZES.map((n) => label(n).padStart(9)).join("")}`);
  for (const [name, cols] of table) {
    console.log(name.padEnd(w) + cols.map((c) => median(c).toFixed(2).padStart(9)).join(""));
  }
}

if (import.meta.main) {
  console.log(
    `Deno ${Deno.version.deno}, V8 ${Deno.version.v8}; GB/s, median of ${RUNS} runs ` +
      `of ${BYTES >> 20} MiB each (after one warm-up run)`,
  );
  const warm: Table = new Map();
  runOnce(unmaskCases, warm);
  runOnce(maskIntoCases, warm);
  const un: Table = new Map();
  const into: Table = new Map();
  const intoShifted: Table = new Map();
  for (let r = 0; r < RUNS; r++) {
    runOnce(unmaskCases, un);
    runOnce(maskIntoCases, into);
    runOnce(maskIntoCases, intoShifted, SHIFT);
  }
  print("unmask (in place)", un);
  print("maskInto, dst after header", into);
  print(`maskInto, dst ${SHIFT} B on`, intoShifted);
}
