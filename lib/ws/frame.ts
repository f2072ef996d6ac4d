/**
 * The RFC 6455 §5.2 base framing protocol: a pure frame header reader and
 * writer. Payloads are never copied here; the connection reads them from its
 * own buffer at `headerLength` and unmasks them in place with `unmask()`.
 *
 * ```text
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-------+-+-------------+-------------------------------+
 * |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 * |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 * |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 * | |1|2|3|       |K|             |                               |
 * +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 * |     Extended payload length continued, if payload len == 127  |
 * + - - - - - - - - - - - - - - - +-------------------------------+
 * |                               |Masking-key, if MASK set to 1  |
 * +-------------------------------+-------------------------------+
 * | Masking-key (continued)       |          Payload Data         |
 * +-------------------------------- - - - - - - - - - - - - - - - +
 * ```
 *
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-5.2
 * @module
 */

import { ProtocolViolation } from "./errors.ts";
import { maskInto } from "./mask.ts";
import { MessageTooBig, ProtocolError } from "./close.ts";

/** Frame opcodes, RFC 6455 §5.2 and §11.8, with the reserved gaps shown. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  // 0x3–0x7 are reserved for further non-control frames.
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xA,
  // 0xB–0xF are reserved for further control frames.
} as const;

/** Whether `opcode` is a control frame (Close, Ping, Pong), RFC 6455 §5.5. */
export function isControl(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

/** The largest payload of a control frame, RFC 6455 §5.5. */
export const MAX_CONTROL_PAYLOAD = 125;

/** The largest frame header: 2 + 8 (64-bit length) + 4 (masking key), §5.2. */
export const MAX_HEADER_SIZE = 14;

/** Bit masks and length markers of the first two header bytes, §5.2. */
const FIN = 0x80;
const RSV1 = 0x40;
const RSV2 = 0x20;
const RSV3 = 0x10;
const OPCODE = 0x0f;
const MASK = 0x80;
const LEN7 = 0x7f;
const LEN16_MARKER = 126;
const LEN64_MARKER = 127;
const TWO_POW_32 = 0x1_0000_0000;
/** The high 32 bits of Number.MAX_SAFE_INTEGER (2^53 − 1). */
const MAX_SAFE_HIGH = 0x1f_ffff;

/** A decoded frame header (RFC 6455 §5.2); the payload follows it in `buf`. */
export interface FrameHeader {
  /** FIN: this is the final fragment of a message. */
  fin: boolean;
  /** RSV1: set by an extension such as permessage-deflate (RFC 7692 §6). */
  rsv1: boolean;
  /** The opcode, one of {@linkcode Opcode}. */
  opcode: number;
  /** MASK: the payload is masked (client-to-server frames, §5.3). */
  masked: boolean;
  /** Index in `buf` of the 4-byte masking key, or -1 when not masked. */
  maskOffset: number;
  /** Payload length in bytes. */
  payloadLength: number;
  /** Header length in bytes: the payload starts at `start + headerLength`. */
  headerLength: number;
}

/** A header to be filled by {@linkcode parseFrameHeader}; reuse one per reader. */
export function emptyFrameHeader(): FrameHeader {
  return {
    fin: false,
    rsv1: false,
    opcode: 0,
    masked: false,
    maskOffset: -1,
    payloadLength: 0,
    headerLength: 0,
  };
}

/**
 * Reads the frame header at `buf[start..end)` (RFC 6455 §5.2), or returns
 * `null` when those bytes are not yet the whole header, so a frame split
 * across reads needs no special case: read more and call again.
 *
 * `expectMasked` is true on a server (client frames MUST be masked, §5.1)
 * and false on a client (server frames MUST NOT be). Throws
 * `ProtocolViolation(1002)` for a frame the RFC forbids and
 * `ProtocolViolation(1009)` for a length JavaScript cannot index.
 *
 * Non-minimal lengths (§5.2: "the minimal number of bytes MUST be used") are
 * rejected with 1002; ws and gorilla accept them, Autobahn does not test it.
 */
export function readFrameHeader(
  buf: Uint8Array,
  start: number,
  end: number,
  expectMasked: boolean,
  allowRsv1 = false,
): FrameHeader | null {
  const out = emptyFrameHeader();
  return parseFrameHeader(buf, start, end, expectMasked, allowRsv1, out) ? out : null;
}

/**
 * {@linkcode readFrameHeader} without allocating: fills `out` and returns
 * true, or returns false when the header is not complete yet. RSV1 is
 * allowed only when `allowRsv1` (an extension that uses it was agreed, §5.2).
 */
export function parseFrameHeader(
  buf: Uint8Array,
  start: number,
  end: number,
  expectMasked: boolean,
  allowRsv1: boolean,
  out: FrameHeader,
): boolean {
  // 1. The two fixed bytes, and what they alone may break (steps 2–4).
  if (end - start < 2) return false;
  const b0 = buf[start];
  const b1 = buf[start + 1];
  checkFixedBytes(b0, b1, expectMasked, allowRsv1);

  // 5. The extended payload length, in network byte order, minimal form.
  let length = b1 & LEN7;
  let pos = start + 2;
  if (length === LEN16_MARKER) {
    if (end - pos < 2) return false;
    length = (buf[pos] << 8) | buf[pos + 1];
    pos += 2;
    if (length < LEN16_MARKER) {
      throw new ProtocolViolation(ProtocolError, "non-minimal 16-bit payload length");
    }
  } else if (length === LEN64_MARKER) {
    if (end - pos < 8) return false;
    length = readLength64(buf, pos);
    pos += 8;
  }

  // 6. The masking key.
  const masked = (b1 & MASK) !== 0;
  let maskOffset = -1;
  if (masked) {
    if (end - pos < 4) return false;
    maskOffset = pos;
    pos += 4;
  }

  out.fin = (b0 & FIN) !== 0;
  out.rsv1 = (b0 & RSV1) !== 0;
  out.opcode = b0 & OPCODE;
  out.masked = masked;
  out.maskOffset = maskOffset;
  out.payloadLength = length;
  out.headerLength = pos - start;
  return true;
}

/**
 * Steps 2–4 of {@linkcode parseFrameHeader}: what the first two header
 * bytes alone may break. Throws `ProtocolViolation(1002)`.
 */
function checkFixedBytes(b0: number, b1: number, expectMasked: boolean, allowRsv1: boolean): void {
  // 2. FIN, RSV1–3 and the opcode. Without an extension any RSV bit is an
  //    error (§5.2); RSV1 on a control frame is one in any case (RFC 7692 §6).
  const opcode = b0 & OPCODE;
  const rsv1 = (b0 & RSV1) !== 0;
  if ((b0 & (RSV2 | RSV3)) !== 0 || (rsv1 && (!allowRsv1 || isControl(opcode)))) {
    throw new ProtocolViolation(ProtocolError, "reserved bits set without an extension");
  }
  if (
    opcode > Opcode.Pong || (opcode > Opcode.Binary && opcode < Opcode.Close)
  ) {
    throw new ProtocolViolation(
      ProtocolError,
      `reserved opcode 0x${opcode.toString(16)}`,
    );
  }

  // 3. MASK: a server needs masked frames, a client unmasked ones (§5.1).
  if (((b1 & MASK) !== 0) !== expectMasked) {
    throw new ProtocolViolation(
      ProtocolError,
      expectMasked ? "client frame not masked" : "server frame masked",
    );
  }

  // 4. Control frames: at most 125 bytes and never fragmented (§5.5).
  if (isControl(opcode)) {
    if ((b1 & LEN7) > MAX_CONTROL_PAYLOAD) {
      throw new ProtocolViolation(ProtocolError, "control frame payload over 125 bytes");
    }
    if ((b0 & FIN) === 0) throw new ProtocolViolation(ProtocolError, "fragmented control frame");
  }
}

/**
 * The 64-bit payload length at `buf[pos]` (§5.2): its top bit must be 0
 * (1002), it must fit a JavaScript index (1009 otherwise), and it must
 * need 64 bits (1002 for a non-minimal one).
 */
function readLength64(buf: Uint8Array, pos: number): number {
  const high = ((buf[pos] << 24) | (buf[pos + 1] << 16) |
    (buf[pos + 2] << 8) | buf[pos + 3]) >>> 0;
  const low = ((buf[pos + 4] << 24) | (buf[pos + 5] << 16) |
    (buf[pos + 6] << 8) | buf[pos + 7]) >>> 0;
  if (high >= 0x8000_0000) {
    throw new ProtocolViolation(
      ProtocolError,
      "64-bit payload length has top bit set",
    );
  }
  if (high > MAX_SAFE_HIGH) {
    throw new ProtocolViolation(MessageTooBig, "message too big");
  }
  const length = high * TWO_POW_32 + low;
  if (length <= 0xffff) {
    throw new ProtocolViolation(ProtocolError, "non-minimal 64-bit payload length");
  }
  return length;
}

/** The header size of a frame with this payload length, RFC 6455 §5.2. */
export function frameHeaderSize(
  payloadLength: number,
  masked: boolean,
): number {
  const lengthSize = payloadLength < LEN16_MARKER ? 0 : payloadLength <= 0xffff ? 2 : 8;
  return 2 + lengthSize + (masked ? 4 : 0);
}

/**
 * Writes a frame header (RFC 6455 §5.2) at `out[offset]`, with the minimal
 * length form and, when `maskKey` is given, MASK set and the 4-byte key;
 * `rsv1` marks a compressed message's first frame (RFC 7692 §6).
 * Returns the number of bytes written. Throws a `RangeError` for arguments
 * no peer would accept or for `out` too small: the caller's bug.
 */
export function writeFrameHeader(
  out: Uint8Array,
  offset: number,
  fin: boolean,
  opcode: number,
  payloadLength: number,
  maskKey: Uint8Array | null,
  rsv1 = false,
): number {
  if (
    !Number.isSafeInteger(payloadLength) || payloadLength < 0 ||
    (opcode & ~OPCODE) !== 0
  ) {
    throw new RangeError(
      `invalid frame: opcode ${opcode}, ${payloadLength} bytes`,
    );
  }
  if (isControl(opcode) && (!fin || rsv1 || payloadLength > MAX_CONTROL_PAYLOAD)) {
    throw new RangeError("a control frame must be final, uncompressed and at most 125 bytes");
  }
  const size = frameHeaderSize(payloadLength, maskKey !== null);
  if (offset < 0 || offset + size > out.length) {
    throw new RangeError("no room for the frame header");
  }

  out[offset] = (fin ? FIN : 0) | (rsv1 ? RSV1 : 0) | opcode;
  const maskBit = maskKey !== null ? MASK : 0;
  let pos = offset + 2;
  if (payloadLength < LEN16_MARKER) {
    out[offset + 1] = maskBit | payloadLength;
  } else if (payloadLength <= 0xffff) {
    out[offset + 1] = maskBit | LEN16_MARKER;
    out[pos] = payloadLength >>> 8;
    out[pos + 1] = payloadLength & 0xff;
    pos += 2;
  } else {
    out[offset + 1] = maskBit | LEN64_MARKER;
    const high = Math.floor(payloadLength / TWO_POW_32);
    const low = payloadLength >>> 0;
    out[pos] = high >>> 24;
    out[pos + 1] = (high >>> 16) & 0xff;
    out[pos + 2] = (high >>> 8) & 0xff;
    out[pos + 3] = high & 0xff;
    out[pos + 4] = low >>> 24;
    out[pos + 5] = (low >>> 16) & 0xff;
    out[pos + 6] = (low >>> 8) & 0xff;
    out[pos + 7] = low & 0xff;
    pos += 8;
  }
  if (maskKey !== null) {
    out[pos] = maskKey[0];
    out[pos + 1] = maskKey[1];
    out[pos + 2] = maskKey[2];
    out[pos + 3] = maskKey[3];
    pos += 4;
  }
  return pos - offset;
}

/** Scratch masking key for {@linkcode encodeFrame}; copied into each frame. */
const scratchKey = new Uint8Array(4);

/**
 * Encodes one whole frame, header and payload, into a new buffer
 * (RFC 6455 §5.2). With `mask: true` (a client, §5.3) the payload is copied
 * masked with a fresh key from `crypto.getRandomValues`; `payload` itself is
 * never modified. `fin` defaults to true, `mask` to false.
 */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  opts: { fin?: boolean; mask?: boolean } = {},
): Uint8Array {
  const fin = opts.fin ?? true;
  const key = opts.mask ? crypto.getRandomValues(scratchKey) : null;
  const out = new Uint8Array(
    frameHeaderSize(payload.length, key !== null) + payload.length,
  );
  const headerLength = writeFrameHeader(
    out,
    0,
    fin,
    opcode,
    payload.length,
    key,
  );
  if (key !== null) maskInto(payload, out, headerLength, key);
  else out.set(payload, headerLength);
  return out;
}
