import assert from "node:assert/strict";
import { ProtocolViolation } from "../lib/ws/errors.ts";
import {
  AbnormalClosure,
  BadGateway,
  buildClosePayload,
  CLOSE_CAUSES,
  closeCodeName,
  GoingAway,
  InvalidFramePayloadData,
  isValidWireCode,
  MAX_CLOSE_REASON,
  MessageTooBig,
  NormalClosure,
  NoStatusReceived,
  parseClosePayload,
  ProtocolError,
  TLSHandshake,
  UnsupportedData,
} from "../lib/ws/close.ts";

const utf8 = new TextEncoder();

/** Asserts that parsing `payload` throws a ProtocolViolation with `code`. */
function assertViolation(payload: Uint8Array, code: number): void {
  assert.throws(
    () => parseClosePayload(payload),
    (e: unknown) => {
      assert.ok(e instanceof ProtocolViolation, String(e));
      assert.equal(e.code, code, e.message);
      return true;
    },
  );
}

/** A close payload with `code` and raw reason bytes. */
function payload(code: number, ...reason: number[]): Uint8Array {
  return Uint8Array.of(code >> 8, code & 0xff, ...reason);
}

/** The wire-code boundaries of RFC 6455 §7.4, with whether each may be sent. */
const BOUNDARIES: [number, boolean][] = [
  [0, false],
  [999, false],
  [1000, true],
  [1003, true],
  [1004, false],
  [1005, false],
  [1006, false],
  [1007, true],
  [1014, true],
  [1015, false],
  [1016, false],
  [2999, false],
  [3000, true],
  [4999, true],
  [5000, false],
  [65535, false],
];

Deno.test("close codes have their RFC 6455 §7.4.1 values", () => {
  assert.deepEqual(
    [NormalClosure, GoingAway, ProtocolError, UnsupportedData],
    [1000, 1001, 1002, 1003],
  );
  assert.deepEqual(
    [NoStatusReceived, AbnormalClosure, InvalidFramePayloadData],
    [1005, 1006, 1007],
  );
  assert.deepEqual([MessageTooBig, BadGateway, TLSHandshake], [
    1009,
    1014,
    1015,
  ]);
  assert.equal(MAX_CLOSE_REASON, 125 - 2);
});

Deno.test("isValidWireCode() allows 1000-1003, 1007-1014 and 3000-4999 only", () => {
  for (const [code, valid] of BOUNDARIES) {
    assert.equal(isValidWireCode(code), valid, `code ${code}`);
  }
  for (const code of [NoStatusReceived, AbnormalClosure, TLSHandshake]) {
    assert.equal(isValidWireCode(code), false, `code ${code}`);
  }
});

Deno.test("parseClosePayload() reads an empty payload as 1005 No Status", () => {
  assert.deepEqual(parseClosePayload(new Uint8Array(0)), {
    code: NoStatusReceived,
    reason: "",
  });
});

Deno.test("parseClosePayload() reads a code and a UTF-8 reason", () => {
  assert.deepEqual(parseClosePayload(payload(1000)), {
    code: 1000,
    reason: "",
  });
  const reason = "bye ☃ 👋";
  assert.deepEqual(parseClosePayload(payload(4001, ...utf8.encode(reason))), {
    code: 4001,
    reason,
  });
  // A leading BOM is part of the reason, not a marker to strip.
  assert.equal(
    parseClosePayload(payload(1000, 0xef, 0xbb, 0xbf, 0x61)).reason,
    "\ufeffa",
  );
});

Deno.test("parseClosePayload() rejects a 1-byte payload with 1002", () => {
  assertViolation(Uint8Array.of(0x03), ProtocolError);
  // Read as a high byte alone, these would look like codes 3072 and 4096.
  assertViolation(Uint8Array.of(0x0c), ProtocolError);
  assertViolation(Uint8Array.of(0x10), ProtocolError);
});

Deno.test("parseClosePayload() rejects codes that may not be on the wire with 1002", () => {
  for (const [code, valid] of BOUNDARIES) {
    if (valid) assert.equal(parseClosePayload(payload(code)).code, code);
    else assertViolation(payload(code), ProtocolError);
  }
});

Deno.test("parseClosePayload() rejects a reason that is not UTF-8 with 1007", () => {
  const invalid = [
    [0xff], // never valid
    [0x61, 0xe2, 0x82], // truncated 3-byte sequence
    [0xc0, 0x80], // overlong NUL
    [0xed, 0xa0, 0x80], // UTF-16 surrogate
    [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
    [0x80], // lone continuation byte
  ];
  for (const bytes of invalid) {
    assertViolation(payload(1000, ...bytes), InvalidFramePayloadData);
  }
});

Deno.test("buildClosePayload() writes the code big-endian then the reason", () => {
  assert.deepEqual(buildClosePayload(1000), Uint8Array.of(0x03, 0xe8));
  assert.deepEqual(
    buildClosePayload(4999, "ok"),
    Uint8Array.of(0x13, 0x87, 0x6f, 0x6b),
  );
  for (const [code, valid] of BOUNDARIES) {
    if (!valid) continue;
    const reason = `closing with ${code} ☃`;
    assert.deepEqual(parseClosePayload(buildClosePayload(code, reason)), {
      code,
      reason,
    });
  }
});

Deno.test("buildClosePayload() throws RangeError for a code that may not be sent", () => {
  for (const [code, valid] of BOUNDARIES) {
    if (!valid) assert.throws(() => buildClosePayload(code), RangeError);
  }
  assert.throws(() => buildClosePayload(1000.5), RangeError);
  assert.throws(() => buildClosePayload(NaN), RangeError);
});

Deno.test("buildClosePayload() cuts the reason to 123 bytes on a character boundary", async (t) => {
  // [reason, bytes of reason kept]
  const cases: [string, number][] = [
    ["a".repeat(123), 123],
    ["a".repeat(124), 123],
    ["a".repeat(500), 123],
    ["a".repeat(121) + "é", 123], // 2-byte char ends exactly at 123
    ["a".repeat(122) + "é", 122], // 2-byte char would straddle 123
    ["a".repeat(120) + "€", 123], // 3-byte char ends exactly at 123
    ["a".repeat(121) + "€", 121],
    ["a".repeat(122) + "€", 122],
    ["a".repeat(119) + "😀", 123], // 4-byte char (a surrogate pair)
    ["a".repeat(120) + "😀", 120],
    ["a".repeat(122) + "😀", 122],
    ["€".repeat(50), 123],
    ["😀".repeat(40), 120],
  ];
  for (const [reason, kept] of cases) {
    await t.step(`${utf8.encode(reason).length} bytes keep ${kept}`, () => {
      const built = buildClosePayload(1000, reason);
      assert.equal(built.length, 2 + kept);
      assert.ok(built.length - 2 <= MAX_CLOSE_REASON);
      const parsed = parseClosePayload(built); // throws if a char was split
      assert.ok(reason.startsWith(parsed.reason));
      assert.equal(utf8.encode(parsed.reason).length, kept);
    });
  }
});

Deno.test("CLOSE_CAUSES lists each cause once", () => {
  assert.equal(new Set(CLOSE_CAUSES).size, CLOSE_CAUSES.length);
  for (
    const cause of [
      "peer-close",
      "keepalive-timeout",
      "user-timeout",
      "pong-timeout",
      "protocol-error",
      "message-too-big",
      "send-overflow",
      "memory-budget",
      "reset",
      "eof",
      "shutdown",
      "handshake-timeout",
      "tls-handshake",
      "local-close",
    ] as const
  ) {
    assert.ok(CLOSE_CAUSES.includes(cause), cause);
  }
  assert.equal(CLOSE_CAUSES.length, 14);
});

Deno.test("closeCodeName() names every code for logs", () => {
  assert.equal(closeCodeName(NormalClosure), "normal closure");
  assert.equal(closeCodeName(GoingAway), "going away");
  assert.equal(closeCodeName(AbnormalClosure), "abnormal closure");
  assert.equal(closeCodeName(3000), "registered code 3000");
  assert.equal(closeCodeName(4321), "private code 4321");
  assert.equal(closeCodeName(2000), "unknown code 2000");
  const names = new Set<string>();
  for (let code = 1000; code <= 1015; code++) {
    const name = closeCodeName(code);
    assert.doesNotMatch(name, /unknown|\d/, `code ${code}`);
    names.add(name);
  }
  assert.equal(names.size, 16, "each registered code has its own name");
});
