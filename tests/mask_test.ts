import assert from "node:assert/strict";
import { maskInto, unmask } from "../lib/ws/mask.ts";

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

const KEY = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);

Deno.test("unmask() matches the byte-wise definition", async (t) => {
  await t.step("at every alignment and every length 0..70", () => {
    for (let align = 0; align < 8; align++) {
      for (let length = 0; length <= 70; length++) {
        // Guard bytes on both sides must stay as they were.
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

  await t.step("with the key inside the same buffer at keyStart", () => {
    for (let length = 0; length <= 70; length++) {
      for (let at = 0; at < 4; at++) {
        const buf = new Uint8Array(at + 4 + length);
        buf.set(KEY, at);
        const payload = pattern(length, length + at);
        buf.set(payload, at + 4);
        unmask(buf, at + 4, at + 4 + length, buf, at);
        assert.deepEqual(buf.subarray(at + 4), naiveMask(payload, KEY));
        assert.deepEqual(buf.subarray(at, at + 4), KEY, "key untouched");
      }
    }
  });

  await t.step("piece by piece with phase, as one call would", () => {
    const payload = pattern(203, 7);
    const expected = naiveMask(payload, KEY);
    for (const pieces of [[1, 2, 3, 197], [5, 70, 100, 28], [67, 67, 69]]) {
      const buf = payload.slice();
      let done = 0;
      for (const n of pieces) {
        unmask(buf, done, done + n, KEY, 0, done);
        done += n;
      }
      assert.equal(done, payload.length);
      assert.deepEqual(buf, expected, `pieces ${pieces}`);
    }
  });

  await t.step("on 1 MiB at an odd offset", () => {
    const payload = pattern(1 << 20, 99);
    const buf = new Uint8Array(payload.length + 3);
    buf.set(payload, 3);
    unmask(buf, 3, buf.length, KEY);
    assert.deepEqual(buf.subarray(3), naiveMask(payload, KEY));
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

Deno.test("maskInto() copies and masks, leaving src untouched", async (t) => {
  await t.step("at every src and dst alignment, lengths 0..70", () => {
    for (let srcAlign = 0; srcAlign < 4; srcAlign++) {
      for (let dstOffset = 0; dstOffset < 4; dstOffset++) {
        for (let length = 0; length <= 70; length++) {
          const srcBacking = pattern(srcAlign + length, length);
          const src = srcBacking.subarray(srcAlign);
          const srcBefore = src.slice();
          const dst = new Uint8Array(dstOffset + length + 4).fill(0xee);
          maskInto(src, dst, dstOffset, KEY);
          const where = `src ${srcAlign}, dst ${dstOffset}, length ${length}`;
          assert.deepEqual(src, srcBefore, where);
          assert.deepEqual(
            dst.subarray(dstOffset, dstOffset + length),
            naiveMask(src, KEY),
            where,
          );
          assert.ok(dst.subarray(0, dstOffset).every((b) => b === 0xee));
          assert.ok(dst.subarray(dstOffset + length).every((b) => b === 0xee));
        }
      }
    }
  });

  await t.step("on 1 MiB into an unaligned destination", () => {
    const src = pattern(1 << 20, 5);
    const dst = new Uint8Array(src.length + 14);
    maskInto(src, dst, 14, KEY);
    assert.deepEqual(dst.subarray(14), naiveMask(src, KEY));
  });
});
