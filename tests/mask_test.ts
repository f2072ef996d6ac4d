import assert from "node:assert/strict";
import { maskInto, unmask } from "../lib/ws/mask.ts";
import { xorBytes, type XorKernel, xorWords64x2Cached } from "../lib/ws/mask/kernels.ts";
import {
  xorWords32,
  xorWords32x2,
  xorWords32x4,
  xorWords32x8,
  xorWords64,
  xorWords64x2,
} from "../bench/mask_kernels.ts";
import { CHUNK, loadSimd, type SimdKernels, type WasmApi } from "../lib/ws/mask/simd.ts";
import { LANES_FROM, type Masker, pickMasker, SIMD_INTO_FROM } from "../lib/ws/mask/pick.ts";
import { MASK_WASM } from "../lib/ws/mask/wasm.ts";
import { buildModule, render } from "../tools/mask_wasm.ts";

/** The RFC 6455 §5.3 definition, one byte at a time. */
function naiveMask(
  data: Uint8Array,
  key: ArrayLike<number>,
  phase = 0,
): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    out[i] = data[i] ^ key[(i + phase) % 4];
  }
  return out;
}

/** Deterministic bytes, so a failure can be reproduced. */
function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A seeded generator of integers in [0, n) (mulberry32), so runs repeat. */
function random(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** Where two byte arrays first differ, or -1 (quicker than deepEqual on 1 MiB). */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function assertBytes(actual: Uint8Array, expected: Uint8Array, where: string): void {
  const at = firstDifference(actual, expected);
  if (at !== -1) {
    assert.fail(
      `${where}: first difference at byte ${at} of ${expected.length} ` +
        `(got ${actual[at]}, expected ${expected[at]})`,
    );
  }
}

const KEY = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);
/** Guard bytes on both sides of every region, which must stay as they were. */
const GUARD = 8;
/** The sizes the issue names, measured by bench/mask_bench.ts. */
const SIZES = [64, 1024, 16 * 1024, 64 * 1024, 1024 * 1024];

const simd = loadSimd();

/** Every in-place implementation, each by its name in the bench. */
const KERNELS: [string, XorKernel][] = [
  ["bytes", xorBytes],
  ["words32 (old)", xorWords32],
  ["words32 x2", xorWords32x2],
  ["words32 x4", xorWords32x4],
  ["words32 x8", xorWords32x8],
  ["words64", xorWords64],
  ["words64 x2", xorWords64x2],
  ["words64 x2 cached", xorWords64x2Cached],
  ...(simd ? [["simd + copies", simd.xor] as [string, XorKernel]] : []),
  ["masker (JS only)", pickMasker(null).xor],
  ...(simd ? [["masker (with SIMD)", pickMasker(simd).xor] as [string, XorKernel]] : []),
];

/**
 * Runs `kernel` on `length` bytes whose absolute offset in their
 * ArrayBuffer is `align` mod 8, with the key turned by `phase`, and checks
 * the result against the definition and the guard bytes.
 */
function checkKernel(
  name: string,
  kernel: XorKernel,
  length: number,
  align: number,
  phase: number,
  seed: number,
): void {
  const backing = pattern(align + GUARD + length + GUARD, seed);
  const before = backing.slice();
  // A view that starts at `align`, as a subarray of a larger buffer does.
  const buf = backing.subarray(align);
  kernel(
    buf,
    GUARD,
    GUARD + length,
    KEY[phase],
    KEY[(phase + 1) & 3],
    KEY[(phase + 2) & 3],
    KEY[(phase + 3) & 3],
  );
  const expected = before.slice();
  const start = align + GUARD;
  expected.set(naiveMask(before.subarray(start, start + length), KEY, phase), start);
  assertBytes(backing, expected, `${name}: length ${length}, align ${align}, phase ${phase}`);
}

Deno.test("every masking implementation matches the byte-wise definition", async (t) => {
  await t.step("lengths 0..80 (past LANES_FROM), every alignment 0..7, every phase", () => {
    assert.ok(LANES_FROM <= 80);
    for (const [name, kernel] of KERNELS) {
      for (let length = 0; length <= 80; length++) {
        for (let align = 0; align < 8; align++) {
          for (let phase = 0; phase < 4; phase++) {
            checkKernel(name, kernel, length, align, phase, length * 31 + align);
          }
        }
      }
    }
  });

  await t.step("300 random lengths 0..5000 at random alignments and phases", () => {
    const rand = random(14);
    for (let i = 0; i < 300; i++) {
      const length = rand(5001), align = rand(8), phase = rand(4);
      for (const [name, kernel] of KERNELS) checkKernel(name, kernel, length, align, phase, i);
    }
  });

  await t.step("64 B, 1 KiB, 16 KiB, 64 KiB, 1 MiB, and around the SIMD chunk", () => {
    const rand = random(5);
    const sizes = [...SIZES, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5];
    for (const length of sizes) {
      for (const [name, kernel] of KERNELS) {
        // Two of the 32 alignment and phase pairs each, to keep this quick.
        for (let k = 0; k < 2; k++) checkKernel(name, kernel, length, rand(8), rand(4), length + k);
      }
    }
  });

  await t.step("the cached views follow a resizable buffer that grew", () => {
    for (
      const [name, kernel] of [["words32 (old)", xorWords32], [
        "words64 x2 cached",
        xorWords64x2Cached,
      ]] as const
    ) {
      const ab = new ArrayBuffer(128, { maxByteLength: 1024 });
      kernel(new Uint8Array(ab, 0, 128), 0, 128, KEY[0], KEY[1], KEY[2], KEY[3]);
      ab.resize(1024);
      const buf = new Uint8Array(ab, 0, 1024);
      buf.fill(0);
      kernel(buf, 0, 1024, KEY[0], KEY[1], KEY[2], KEY[3]);
      assertBytes(buf, naiveMask(new Uint8Array(1024), KEY), name);
    }
  });
});

Deno.test("unmask() matches the byte-wise definition", async (t) => {
  await t.step("the masked 'Hello' of RFC 6455 §5.7, key inside the frame", () => {
    const frame = Uint8Array.of(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);
    unmask(frame, 6, 11, frame, 2);
    assert.equal(new TextDecoder().decode(frame.subarray(6)), "Hello");
  });

  await t.step("at every alignment and every length 0..70", () => {
    for (let align = 0; align < 8; align++) {
      for (let length = 0; length <= 70; length++) {
        const backing = new Uint8Array(align + length + 8);
        backing.set(pattern(backing.length, length * 31 + align));
        const before = backing.slice();
        const buf = backing.subarray(align, align + length + 8);
        unmask(buf, 4, 4 + length, KEY);
        const expected = before.slice();
        expected.set(
          naiveMask(before.subarray(align + 4, align + 4 + length), KEY),
          align + 4,
        );
        assert.deepEqual(backing, expected, `align ${align}, length ${length}`);
      }
    }
  });

  await t.step("with the key inside buf before the payload, as read.ts does, every phase", () => {
    const rand = random(6455);
    const lengths = [...SIZES, ...Array.from({ length: 200 }, () => rand(5001))];
    for (const length of lengths) {
      const align = rand(8), at = rand(8), phase = rand(4);
      // [guard][key at `at`][payload], in a view that starts at `align`.
      const backing = new Uint8Array(align + at + 4 + length + GUARD);
      const buf = backing.subarray(align);
      buf.set(KEY, at);
      const payload = pattern(length, length + at);
      buf.set(payload, at + 4);
      unmask(buf, at + 4, at + 4 + length, buf, at, phase);
      const where = `length ${length}, align ${align}, key at ${at}, phase ${phase}`;
      assertBytes(buf.subarray(at + 4, at + 4 + length), naiveMask(payload, KEY, phase), where);
      assert.deepEqual(buf.subarray(at, at + 4), KEY, `key untouched: ${where}`);
      assert.ok(buf.subarray(at + 4 + length).every((b) => b === 0), `guard: ${where}`);
    }
  });

  await t.step("piece by piece with phase, as one call would", () => {
    const payload = pattern(100_203, 7);
    const expected = naiveMask(payload, KEY);
    for (
      const pieces of [[1, 2, 3, 197], [5, 70, 100, 28], [67, 67, 69], [3, 50_000, 50_000, 200]]
    ) {
      const length = pieces.reduce((a, b) => a + b);
      const buf = payload.slice(0, length);
      let done = 0;
      for (const n of pieces) {
        unmask(buf, done, done + n, KEY, 0, done);
        done += n;
      }
      assert.deepEqual(buf, expected.subarray(0, length), `pieces ${pieces}`);
    }
  });

  await t.step("on 1 MiB at an odd offset", () => {
    const payload = pattern(1 << 20, 99);
    const buf = new Uint8Array(payload.length + 3);
    buf.set(payload, 3);
    unmask(buf, 3, buf.length, KEY);
    assertBytes(buf.subarray(3), naiveMask(payload, KEY), "1 MiB");
  });

  await t.step("after its resizable buffer grew", () => {
    const ab = new ArrayBuffer(128, { maxByteLength: 1024 });
    const small = new Uint8Array(ab, 0, 128);
    unmask(small, 0, 128, KEY);
    ab.resize(1024);
    const buf = new Uint8Array(ab, 0, 1024);
    buf.fill(0);
    unmask(buf, 0, 1024, KEY);
    assert.deepEqual(buf, naiveMask(new Uint8Array(1024), KEY));
  });
});

Deno.test("unmask() twice restores the data", () => {
  const payload = pattern(1000, 3);
  const buf = payload.slice();
  unmask(buf, 0, buf.length, KEY);
  assert.notDeepEqual(buf, payload);
  unmask(buf, 0, buf.length, KEY);
  assert.deepEqual(buf, payload);
});

/** Every copy-and-mask implementation, with the key as bytes. */
const INTO: [string, (src: Uint8Array, dst: Uint8Array, dstOffset: number) => void][] = [
  ["maskInto()", (src, dst, off) => maskInto(src, dst, off, KEY)],
  ["masker (JS only)", (src, dst, off) => pickMasker(null).xorInto(src, dst, off, ...keyBytes())],
  ...(simd
    ? [
      ["simd + copies", (src, dst, off) => simd.xorInto(src, dst, off, ...keyBytes())],
      ["masker (with SIMD)", (src, dst, off) =>
        pickMasker(simd).xorInto(src, dst, off, ...keyBytes())],
    ] as typeof INTO
    : []),
];

function keyBytes(): [number, number, number, number] {
  return [KEY[0], KEY[1], KEY[2], KEY[3]];
}

/**
 * Copies and masks `length` bytes from a source at `srcAlign` (mod 8) in its
 * buffer into a destination view at `dstAlign`, at `dstOffset` in it, and
 * checks the copy, the untouched source and the guard bytes.
 */
function checkInto(
  name: string,
  into: (src: Uint8Array, dst: Uint8Array, dstOffset: number) => void,
  length: number,
  srcAlign: number,
  dstAlign: number,
  dstOffset: number,
): void {
  const src = pattern(srcAlign + length, length).subarray(srcAlign);
  const srcBefore = src.slice();
  const backing = new Uint8Array(dstAlign + dstOffset + length + GUARD).fill(0xee);
  const dst = backing.subarray(dstAlign);
  into(src, dst, dstOffset);
  const where = `${name}: length ${length}, src ${srcAlign}, dst ${dstAlign}+${dstOffset}`;
  assertBytes(src, srcBefore, `${where}, source`);
  assertBytes(dst.subarray(dstOffset, dstOffset + length), naiveMask(srcBefore, KEY), where);
  assert.ok(backing.subarray(0, dstAlign + dstOffset).every((b) => b === 0xee), where);
  assert.ok(backing.subarray(dstAlign + dstOffset + length).every((b) => b === 0xee), where);
}

Deno.test("maskInto() copies and masks, leaving src untouched", async (t) => {
  await t.step("src and dst misaligned to each other (0..7 each), lengths 0..80", () => {
    for (const [name, into] of INTO) {
      for (let length = 0; length <= 80; length++) {
        for (let srcAlign = 0; srcAlign < 8; srcAlign++) {
          for (let dstAlign = 0; dstAlign < 8; dstAlign += 3) {
            checkInto(name, into, length, srcAlign, dstAlign, length & 3);
          }
        }
      }
    }
  });

  await t.step("random lengths 0..5000 and the issue's sizes, random misalignment", () => {
    const rand = random(42);
    const lengths = [
      ...SIZES,
      SIMD_INTO_FROM - 1,
      SIMD_INTO_FROM,
      CHUNK + 3,
      ...Array.from({ length: 200 }, () => rand(5001)),
    ];
    for (const length of lengths) {
      const srcAlign = rand(8), dstAlign = rand(8), dstOffset = rand(16);
      for (const [name, into] of INTO) checkInto(name, into, length, srcAlign, dstAlign, dstOffset);
    }
  });
});

Deno.test("masking falls back to JavaScript without WebAssembly SIMD", async (t) => {
  const real: WasmApi = WebAssembly;

  await t.step("this Deno has SIMD, so the chosen masker can use it", () => {
    assert.ok(WebAssembly.validate(MASK_WASM));
    assert.notEqual(simd, null);
  });

  await t.step("loadSimd() is null without WebAssembly", () => {
    assert.equal(loadSimd(null), null);
  });

  await t.step("loadSimd() is null when validate() refuses SIMD, and builds nothing", () => {
    let built = 0;
    const noSimd: WasmApi = {
      validate: () => false,
      Module: class extends real.Module {
        constructor(bytes: BufferSource) {
          built++;
          super(bytes);
        }
      },
      Instance: real.Instance,
    };
    assert.equal(loadSimd(noSimd), null);
    assert.equal(built, 0);
  });

  await t.step("loadSimd() is null when instantiating throws", () => {
    const broken: WasmApi = {
      validate: () => true,
      Module: class {
        constructor() {
          throw new WebAssembly.CompileError("no");
        }
      } as unknown as WasmApi["Module"],
      Instance: real.Instance,
    };
    assert.equal(loadSimd(broken), null);
  });

  /** A stand-in for the SIMD kernels that counts its calls and does the work in JS. */
  function spy(): SimdKernels & { calls: number } {
    const js = pickMasker(null);
    const s = {
      calls: 0,
      xor: (...a: Parameters<XorKernel>) => {
        s.calls++;
        js.xor(...a);
      },
      xorInto: (...a: Parameters<Masker["xorInto"]>) => {
        s.calls++;
        js.xorInto(...a);
      },
    };
    return s;
  }

  await t.step(
    "with SIMD, copy-and-mask takes it from SIMD_INTO_FROM bytes, in place never",
    () => {
      const s = spy();
      const m = pickMasker(s);
      m.xorInto(new Uint8Array(SIMD_INTO_FROM - 1), new Uint8Array(SIMD_INTO_FROM), 0, 1, 2, 3, 4);
      assert.equal(s.calls, 0);
      m.xor(new Uint8Array(1 << 20), 0, 1 << 20, 1, 2, 3, 4);
      assert.equal(s.calls, 0);
      const src = pattern(SIMD_INTO_FROM, 1);
      const dst = new Uint8Array(SIMD_INTO_FROM);
      m.xorInto(src, dst, 0, ...keyBytes());
      assert.equal(s.calls, 1);
      assertBytes(dst, naiveMask(src, KEY), "through the spy");
    },
  );

  await t.step("without SIMD (the injected choice), every size is masked right in JS", () => {
    const m = pickMasker(loadSimd(null));
    for (const length of [0, 5, SIMD_INTO_FROM, 1 << 20]) {
      checkInto(
        "no SIMD",
        (src, dst, off) => m.xorInto(src, dst, off, ...keyBytes()),
        length,
        3,
        5,
        1,
      );
      checkKernel("no SIMD", m.xor, length, 3, 1, length);
    }
  });

  await t.step("mask.ts works in a V8 without WebAssembly (--jitless)", async () => {
    const script = `
      import { maskInto, unmask } from ${
      JSON.stringify(new URL("../lib/ws/mask.ts", import.meta.url).href)
    };
      import { loadSimd } from ${
      JSON.stringify(new URL("../lib/ws/mask/simd.ts", import.meta.url).href)
    };
      if (typeof WebAssembly !== "undefined" || loadSimd() !== null) throw new Error("WebAssembly is here");
      const key = Uint8Array.of(1, 2, 3, 4);
      const src = new Uint8Array(65536 + 3).map((_, i) => i * 7);
      const dst = new Uint8Array(src.length + 1);
      maskInto(src, dst, 1, key);
      unmask(dst, 1, dst.length, key);
      for (let i = 0; i < src.length; i++) if (dst[i + 1] !== src[i]) throw new Error("at " + i);
      console.log("ok");
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--v8-flags=--jitless", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.equal(text.trim(), "ok");
  });
});

Deno.test("lib/ws/mask/wasm.ts is what tools/mask_wasm.ts generates", async () => {
  const bytes = buildModule();
  assert.deepEqual(bytes, MASK_WASM);
  const file = await Deno.readTextFile(new URL("../lib/ws/mask/wasm.ts", import.meta.url));
  assert.equal(file, render(bytes), "stale: run deno run --allow-write tools/mask_wasm.ts");
});
