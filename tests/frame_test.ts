import assert from "node:assert/strict";
import { ProtocolViolation } from "../lib/ws/errors.ts";
import {
  encodeFrame,
  type FrameHeader,
  frameHeaderSize,
  isControl,
  MAX_CONTROL_PAYLOAD,
  MAX_HEADER_SIZE,
  Opcode,
  readFrameHeader,
  writeFrameHeader,
} from "../lib/ws/frame.ts";
import { maskInto, unmask } from "../lib/ws/mask.ts";
import { prng } from "./helpers/prng.ts";

/** "81 05 48" → bytes. */
function hex(s: string): Uint8Array {
  const digits = s.replace(/\s+/g, "");
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}

/** Reads a whole buffer as one frame header. */
function read(buf: Uint8Array, expectMasked: boolean): FrameHeader | null {
  return readFrameHeader(buf, 0, buf.length, expectMasked);
}

/** Asserts that reading `bytes` throws a ProtocolViolation with `code`. */
function assertViolation(
  bytes: string,
  expectMasked: boolean,
  code: number,
): void {
  assert.throws(
    () => read(hex(bytes), expectMasked),
    (e: unknown) => {
      assert.ok(e instanceof ProtocolViolation, `${bytes}: ${e}`);
      assert.equal(e.code, code, `${bytes}: ${e.message}`);
      assert.ok(new TextEncoder().encode(e.message).length <= 123);
      return true;
    },
  );
}

const HELLO = new TextEncoder().encode("Hello");
const KEY = hex("37 fa 21 3d");

Deno.test("Opcode and isControl() follow RFC 6455 §5.2", () => {
  assert.deepEqual(
    [Opcode.Continuation, Opcode.Text, Opcode.Binary],
    [0, 1, 2],
  );
  assert.deepEqual([Opcode.Close, Opcode.Ping, Opcode.Pong], [8, 9, 10]);
  for (let op = 0; op < 16; op++) assert.equal(isControl(op), op >= 8);
  assert.equal(MAX_CONTROL_PAYLOAD, 125);
  assert.equal(MAX_HEADER_SIZE, frameHeaderSize(2 ** 53 - 1, true));
});

Deno.test("readFrameHeader() decodes the RFC 6455 §5.7 examples", async (t) => {
  await t.step("a single-frame unmasked text message", () => {
    const buf = hex("81 05 48 65 6c 6c 6f");
    assert.deepEqual(read(buf, false), {
      fin: true,
      rsv1: false,
      opcode: Opcode.Text,
      masked: false,
      maskOffset: -1,
      payloadLength: 5,
      headerLength: 2,
    });
    assert.deepEqual(encodeFrame(Opcode.Text, HELLO), buf);
  });

  await t.step("a single-frame masked text message", () => {
    const buf = hex("81 85 37 fa 21 3d 7f 9f 4d 51 58");
    const h = read(buf, true);
    assert.deepEqual(h, {
      fin: true,
      rsv1: false,
      opcode: Opcode.Text,
      masked: true,
      maskOffset: 2,
      payloadLength: 5,
      headerLength: 6,
    });
    const copy = buf.slice();
    unmask(copy, h!.headerLength, copy.length, copy, h!.maskOffset);
    assert.deepEqual(copy.subarray(6), HELLO);

    const out = new Uint8Array(buf.length);
    const n = writeFrameHeader(out, 0, true, Opcode.Text, 5, KEY);
    maskInto(HELLO, out, n, KEY);
    assert.deepEqual(out, buf);
  });

  await t.step("a fragmented unmasked text message", () => {
    const buf = hex("01 03 48 65 6c  80 02 6c 6f");
    const first = read(buf, false)!;
    assert.equal(first.fin, false);
    assert.equal(first.opcode, Opcode.Text);
    assert.equal(first.payloadLength, 3);
    const at = first.headerLength + first.payloadLength;
    const second = readFrameHeader(buf, at, buf.length, false)!;
    assert.equal(second.fin, true);
    assert.equal(second.opcode, Opcode.Continuation);
    assert.equal(second.payloadLength, 2);
    const text = new TextDecoder().decode(
      Uint8Array.of(
        ...buf.subarray(2, at),
        ...buf.subarray(at + second.headerLength),
      ),
    );
    assert.equal(text, "Hello");
    assert.deepEqual(
      encodeFrame(Opcode.Text, HELLO.subarray(0, 3), { fin: false }),
      buf.subarray(0, at),
    );
    assert.deepEqual(
      encodeFrame(Opcode.Continuation, HELLO.subarray(3)),
      buf.subarray(at),
    );
  });

  await t.step("an unmasked ping and a masked pong", () => {
    const ping = hex("89 05 48 65 6c 6c 6f");
    const h = read(ping, false)!;
    assert.equal(h.opcode, Opcode.Ping);
    assert.equal(h.payloadLength, 5);
    assert.deepEqual(encodeFrame(Opcode.Ping, HELLO), ping);

    const pong = hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58");
    const p = read(pong, true)!;
    assert.equal(p.opcode, Opcode.Pong);
    assert.equal(p.maskOffset, 2);
    unmask(pong, p.headerLength, pong.length, pong, p.maskOffset);
    assert.deepEqual(pong.subarray(p.headerLength), HELLO);
  });

  await t.step("256-byte and 64 KiB binary messages", () => {
    const h256 = read(hex("82 7e 01 00"), false)!;
    assert.equal(h256.opcode, Opcode.Binary);
    assert.equal(h256.payloadLength, 256);
    assert.equal(h256.headerLength, 4);
    assert.deepEqual(
      encodeFrame(Opcode.Binary, new Uint8Array(256)).subarray(0, 4),
      hex("82 7e 01 00"),
    );

    const h64k = read(hex("82 7f 00 00 00 00 00 01 00 00"), false)!;
    assert.equal(h64k.payloadLength, 65536);
    assert.equal(h64k.headerLength, 10);
    assert.deepEqual(
      encodeFrame(Opcode.Binary, new Uint8Array(65536)).subarray(0, 10),
      hex("82 7f 00 00 00 00 00 01 00 00"),
    );
  });
});

Deno.test("writeFrameHeader() and readFrameHeader() round-trip the length boundaries", () => {
  for (const length of [0, 125, 126, 127, 65535, 65536, 1 << 20]) {
    for (const key of [null, KEY]) {
      const out = new Uint8Array(MAX_HEADER_SIZE + 3);
      const n = writeFrameHeader(out, 3, true, Opcode.Binary, length, key);
      assert.equal(n, frameHeaderSize(length, key !== null));
      const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
      assert.equal(n, 2 + extended + (key ? 4 : 0), `minimal form ${length}`);
      const h = readFrameHeader(out, 3, 3 + n, key !== null);
      assert.deepEqual(h, {
        fin: true,
        rsv1: false,
        opcode: Opcode.Binary,
        masked: key !== null,
        maskOffset: key ? 3 + n - 4 : -1,
        payloadLength: length,
        headerLength: n,
      });
      if (key) assert.deepEqual(out.subarray(3 + n - 4, 3 + n), key);
    }
  }
});

Deno.test("readFrameHeader() accepts the largest safe 64-bit length", () => {
  const h = read(hex("82 7f 00 1f ff ff ff ff ff ff"), false)!;
  assert.equal(h.payloadLength, Number.MAX_SAFE_INTEGER);
  const out = new Uint8Array(MAX_HEADER_SIZE);
  const n = writeFrameHeader(out, 0, true, 2, Number.MAX_SAFE_INTEGER, null);
  assert.deepEqual(out.subarray(0, n), hex("82 7f 00 1f ff ff ff ff ff ff"));
});

Deno.test("readFrameHeader() returns null until the header is complete", () => {
  for (const length of [5, 300, 70000]) {
    for (const key of [null, KEY]) {
      const frame = encodeFrame(Opcode.Binary, new Uint8Array(length), {
        mask: key !== null,
      });
      const headerLength = frameHeaderSize(length, key !== null);
      // Place it at an offset, as in a connection's read buffer.
      const buf = new Uint8Array(7 + frame.length);
      buf.set(frame, 7);
      for (let end = 7; end < 7 + headerLength; end++) {
        assert.equal(
          readFrameHeader(buf, 7, end, key !== null),
          null,
          `${length} bytes, ${end - 7} of ${headerLength} header bytes`,
        );
      }
      const h = readFrameHeader(buf, 7, 7 + headerLength, key !== null);
      assert.equal(h?.headerLength, headerLength);
      assert.equal(h?.payloadLength, length);
    }
  }
});

Deno.test("readFrameHeader() walks several frames in one buffer", () => {
  const messages = ["a", "", "x".repeat(200), "last"].map((s) => new TextEncoder().encode(s));
  const frames = [
    encodeFrame(Opcode.Text, messages[0], { mask: true }),
    encodeFrame(Opcode.Ping, messages[1], { mask: true }),
    encodeFrame(Opcode.Binary, messages[2], { mask: true }),
    encodeFrame(Opcode.Close, messages[3], { mask: true }),
  ];
  const buf = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) {
    buf.set(f, at);
    at += f.length;
  }
  const seen: [number, string][] = [];
  let pos = 0;
  while (pos < buf.length) {
    const h = readFrameHeader(buf, pos, buf.length, true)!;
    const start = pos + h.headerLength;
    const end = start + h.payloadLength;
    unmask(buf, start, end, buf, h.maskOffset);
    seen.push([h.opcode, new TextDecoder().decode(buf.subarray(start, end))]);
    pos = end;
  }
  assert.equal(pos, buf.length);
  assert.deepEqual(seen, [
    [Opcode.Text, "a"],
    [Opcode.Ping, ""],
    [Opcode.Binary, "x".repeat(200)],
    [Opcode.Close, "last"],
  ]);
});

Deno.test("writeFrameHeader() and readFrameHeader() round-trip random headers", () => {
  const random = prng(0x5eed);
  const opcodes = [0, 1, 2, 8, 9, 10];
  const out = new Uint8Array(MAX_HEADER_SIZE + 16);
  for (let i = 0; i < 5000; i++) {
    const opcode = opcodes[Math.floor(random() * opcodes.length)];
    const control = isControl(opcode);
    const fin = control || random() < 0.5;
    const scale = [126, 65536, 2 ** 32, 2 ** 53][Math.floor(random() * 4)];
    const length = Math.floor(
      random() * (control ? MAX_CONTROL_PAYLOAD + 1 : scale),
    );
    const key = random() < 0.5
      ? null
      : Uint8Array.from({ length: 4 }, () => Math.floor(random() * 256));
    const offset = Math.floor(random() * 16);
    const n = writeFrameHeader(out, offset, fin, opcode, length, key);
    const h = readFrameHeader(out, offset, offset + n, key !== null);
    const where = `op ${opcode} fin ${fin} len ${length} key ${key}`;
    assert.ok(h, where);
    assert.equal(h.fin, fin, where);
    assert.equal(h.opcode, opcode, where);
    assert.equal(h.payloadLength, length, where);
    assert.equal(h.headerLength, n, where);
    if (key) {
      assert.deepEqual(out.subarray(h.maskOffset, h.maskOffset + 4), key);
    }
  }
});

Deno.test("readFrameHeader() rejects what RFC 6455 forbids with 1002", async (t) => {
  await t.step("RSV1, RSV2 and RSV3 without an extension", () => {
    assertViolation("c1 00", false, 1002);
    assertViolation("a1 00", false, 1002);
    assertViolation("91 00", false, 1002);
    assertViolation("c1 80 00 00 00 00", true, 1002);
  });

  await t.step("reserved non-control opcodes 0x3-0x7", () => {
    for (const b0 of ["83", "84", "85", "86", "87", "03"]) {
      assertViolation(`${b0} 00`, false, 1002);
    }
  });

  await t.step("reserved control opcodes 0xB-0xF", () => {
    for (const b0 of ["8b", "8c", "8d", "8e", "8f"]) {
      assertViolation(`${b0} 00`, false, 1002);
    }
  });

  await t.step("a control frame with more than 125 bytes", () => {
    assertViolation("89 7e 00 7e", false, 1002);
    assertViolation("88 7e 00 7e", false, 1002);
    assertViolation("8a fe 00 7e 37 fa 21 3d", true, 1002);
    // The header alone is enough to know: no need to wait for the length.
    assertViolation("89 7e", false, 1002);
  });

  await t.step("a fragmented control frame", () => {
    assertViolation("09 00", false, 1002);
    assertViolation("08 00", false, 1002);
    assertViolation("0a 80 37 fa 21 3d", true, 1002);
  });

  await t.step("an unmasked frame at a server", () => {
    assertViolation("81 05 48 65 6c 6c 6f", true, 1002);
  });

  await t.step("a masked frame at a client", () => {
    assertViolation("81 85 37 fa 21 3d 7f 9f 4d 51 58", false, 1002);
  });

  await t.step("a 64-bit length with the most significant bit set", () => {
    assertViolation("82 7f 80 00 00 00 00 00 00 00", false, 1002);
    assertViolation("82 7f ff ff ff ff ff ff ff ff", false, 1002);
  });

  await t.step("a length not in its minimal form", () => {
    assertViolation("82 7e 00 00", false, 1002);
    assertViolation("82 7e 00 7d", false, 1002);
    assertViolation("82 7f 00 00 00 00 00 00 00 7d", false, 1002);
    assertViolation("82 7f 00 00 00 00 00 00 ff ff", false, 1002);
  });
});

Deno.test("readFrameHeader() rejects a length above MAX_SAFE_INTEGER with 1009", () => {
  assertViolation("82 7f 00 20 00 00 00 00 00 00", false, 1009);
  assertViolation("82 7f 7f ff ff ff ff ff ff ff", false, 1009);
  assertViolation("82 ff 00 20 00 00 00 00 00 00 37 fa 21 3d", true, 1009);
});

Deno.test("writeFrameHeader() refuses frames no peer would accept", () => {
  const out = new Uint8Array(MAX_HEADER_SIZE);
  assert.throws(() => writeFrameHeader(out, 0, true, 9, 126, null), RangeError);
  assert.throws(() => writeFrameHeader(out, 0, false, 8, 0, null), RangeError);
  assert.throws(() => writeFrameHeader(out, 0, true, 1, -1, null), RangeError);
  assert.throws(() => writeFrameHeader(out, 0, true, 1, 1.5, null), RangeError);
  assert.throws(() => writeFrameHeader(out, 0, true, 16, 0, null), RangeError);
  assert.throws(() => writeFrameHeader(out, 5, true, 2, 1e6, KEY), RangeError);
  assert.throws(
    () => writeFrameHeader(out, 0, true, 2, 2 ** 53, null),
    RangeError,
  );
});

Deno.test("encodeFrame() masks a copy with a key from the frame itself", () => {
  for (const length of [0, 5, 64, 200, 70000]) {
    const payload = Uint8Array.from({ length }, (_, i) => i * 7);
    const before = payload.slice();
    const frame = encodeFrame(Opcode.Binary, payload, { mask: true });
    assert.deepEqual(payload, before, "payload untouched");
    const h = read(frame, true)!;
    assert.equal(h.masked, true);
    assert.equal(frame.length, h.headerLength + length);
    unmask(frame, h.headerLength, frame.length, frame, h.maskOffset);
    assert.deepEqual(frame.subarray(h.headerLength), payload);
  }
});
