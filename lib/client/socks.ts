/**
 * The client side of SOCKS5 (RFC 1928) for a CONNECT, with the
 * username/password method (RFC 1929):
 *
 * ```
 *   client                                   proxy
 *     VER 5, NMETHODS, METHODS  ───────────▶
 *                               ◀───────────  VER 5, METHOD (0xFF: none acceptable)
 *     [METHOD 2: VER 1, ULEN, UNAME, PLEN, PASSWD ──▶
 *                               ◀───────────  VER 1, STATUS (0: success)]
 *     VER 5, CMD 1, RSV, ATYP, DST.ADDR, DST.PORT ──▶
 *                               ◀───────────  VER 5, REP, RSV, ATYP, BND.ADDR, BND.PORT
 * ```
 *
 * `socks5://` resolves the target's name here and sends the address;
 * `socks5h://` sends the name (ATYP 3) for the proxy to resolve.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { abortable } from "../async.ts";
import { writeAll } from "../http/io.ts";
import { errorText } from "../errors.ts";
import { authority } from "../http/grammar.ts";
import { type Proxy, ProxyError, type TunnelTarget } from "./proxy_url.ts";

/** The protocol version of RFC 1928. */
export const SOCKS_VERSION = 0x05;
/** The sub-negotiation version of RFC 1929 §2. */
export const USERPASS_VERSION = 0x01;

/** Authentication methods (RFC 1928 §3). */
export const SocksMethod = {
  NoAuthenticationRequired: 0x00,
  UsernamePassword: 0x02,
  NoAcceptableMethods: 0xff,
} as const;

/** Commands (RFC 1928 §4); only CONNECT is used. */
export const SocksCommand = { Connect: 0x01, Bind: 0x02, UdpAssociate: 0x03 } as const;

/** Address types (RFC 1928 §5). */
export const SocksAddressType = { IPv4: 0x01, DomainName: 0x03, IPv6: 0x04 } as const;

/** Reply codes (RFC 1928 §6). */
export const SocksReply = {
  Succeeded: 0x00,
  GeneralFailure: 0x01,
  NotAllowedByRuleset: 0x02,
  NetworkUnreachable: 0x03,
  HostUnreachable: 0x04,
  ConnectionRefused: 0x05,
  TtlExpired: 0x06,
  CommandNotSupported: 0x07,
  AddressTypeNotSupported: 0x08,
} as const;

/** RFC 1928 §6's words for each reply code. */
const REPLY_TEXT: Record<number, string> = {
  [SocksReply.GeneralFailure]: "general SOCKS server failure",
  [SocksReply.NotAllowedByRuleset]: "connection not allowed by ruleset",
  [SocksReply.NetworkUnreachable]: "network unreachable",
  [SocksReply.HostUnreachable]: "host unreachable",
  [SocksReply.ConnectionRefused]: "connection refused by destination",
  [SocksReply.TtlExpired]: "TTL expired",
  [SocksReply.CommandNotSupported]: "command not supported",
  [SocksReply.AddressTypeNotSupported]: "address type not supported",
};

/** What RFC 1928 §6 calls reply `code`. */
export function socksReplyText(code: number): string {
  return REPLY_TEXT[code] ?? `unassigned reply 0x${code.toString(16).padStart(2, "0")}`;
}

/**
 * Runs the SOCKS5 exchange on `conn` (connected to the proxy) for a CONNECT
 * to `target`. A refusal is a {@linkcode ProxyError} naming the reply; a
 * reply that breaks RFC 1928 one with status 0.
 */
export async function socks5Connect(
  conn: Deno.Conn,
  proxy: Proxy,
  target: TunnelTarget,
  signal: AbortSignal,
): Promise<void> {
  const io = new Exchange(conn, proxy, signal);
  const withUser = proxy.username !== null || proxy.password !== null;
  const methods = withUser
    ? [SocksMethod.NoAuthenticationRequired, SocksMethod.UsernamePassword]
    : [SocksMethod.NoAuthenticationRequired];
  await io.send(Uint8Array.of(SOCKS_VERSION, methods.length, ...methods));
  const [version, method] = await io.read(2);
  if (version !== SOCKS_VERSION) io.fail(0, `answered with version ${version}, not SOCKS5`);
  if (method === SocksMethod.UsernamePassword && withUser) {
    await authenticate(io, proxy);
  } else if (method !== SocksMethod.NoAuthenticationRequired) {
    io.fail(
      SocksMethod.NoAcceptableMethods,
      withUser
        ? "accepts none of the offered authentication methods (none, user/password)"
        : "accepts none of the offered authentication methods (none); if it wants a user, " +
          "give one: socks5://USER:PASS@HOST:PORT",
    );
  }
  const address = await targetAddress(proxy, target, io);
  await io.send(Uint8Array.of(SOCKS_VERSION, SocksCommand.Connect, 0x00, ...address));
  await readReply(io, target);
}

/** RFC 1929: the user name and password, each 1 to 255 bytes. */
async function authenticate(io: Exchange, proxy: Proxy): Promise<void> {
  const user = new TextEncoder().encode(proxy.username ?? "");
  const pass = new TextEncoder().encode(proxy.password ?? "");
  if (user.length > 255 || pass.length > 255) {
    throw new TypeError("a SOCKS5 user name and password are at most 255 bytes each (RFC 1929)");
  }
  await io.send(Uint8Array.of(USERPASS_VERSION, user.length, ...user, pass.length, ...pass));
  const [, status] = await io.read(2);
  if (status !== 0x00) io.fail(SocksReply.GeneralFailure, "authentication failed (RFC 1929)");
}

/** ATYP, DST.ADDR and DST.PORT for `target` (RFC 1928 §4). */
async function targetAddress(proxy: Proxy, target: TunnelTarget, io: Exchange): Promise<number[]> {
  let host = target.hostname;
  if (isIP(host) === 0 && proxy.scheme === "socks5:") {
    try {
      host = (await abortable(lookup(host), io.signal)).address;
    } catch (err) {
      if (io.signal.aborted) throw err;
      throw new Deno.errors.NotFound(`cannot resolve ${host}: ${errorText(err)}`);
    }
  }
  const port = [target.port >> 8, target.port & 0xff];
  if (isIP(host) === 4) return [SocksAddressType.IPv4, ...host.split(".").map(Number), ...port];
  if (isIP(host) === 6) return [SocksAddressType.IPv6, ...ipv6Bytes(host), ...port];
  const name = new TextEncoder().encode(host);
  if (name.length > 255) throw new TypeError(`the host name ${host} is longer than 255 bytes`);
  return [SocksAddressType.DomainName, name.length, ...name, ...port];
}

/** The 16 bytes of an IPv6 address. */
export function ipv6Bytes(address: string): number[] {
  let text = address;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number);
    text = text.slice(0, v4.index) +
      `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, null];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

/** The proxy's reply to CONNECT (RFC 1928 §6), its bound address read and dropped. */
async function readReply(io: Exchange, target: TunnelTarget): Promise<void> {
  const [version, reply, , atyp] = await io.read(4);
  if (version !== SOCKS_VERSION) io.fail(0, `replied with version ${version}, not SOCKS5`);
  if (reply !== SocksReply.Succeeded) {
    io.fail(reply, `refused the tunnel to ${authority(target)}: ${socksReplyText(reply)}`);
  }
  if (atyp === SocksAddressType.IPv4) await io.read(4 + 2);
  else if (atyp === SocksAddressType.IPv6) await io.read(16 + 2);
  else if (atyp === SocksAddressType.DomainName) await io.read((await io.read(1))[0] + 2);
  else io.fail(0, `replied with address type ${atyp}, which RFC 1928 does not define`);
}

/** Exact reads and writes on the proxy connection, bounded by the dial's signal. */
class Exchange {
  readonly #conn: Deno.Conn;
  readonly #proxy: Proxy;
  /** The dial's signal. */
  readonly signal: AbortSignal;

  constructor(conn: Deno.Conn, proxy: Proxy, signal: AbortSignal) {
    this.#conn = conn;
    this.#proxy = proxy;
    this.signal = signal;
  }

  /** Writes all of `bytes`. */
  send(bytes: Uint8Array): Promise<void> {
    return abortable(writeAll(this.#conn, bytes), this.signal);
  }

  /** Reads exactly `n` bytes; the proxy closing first is a {@linkcode ProxyError}. */
  async read(n: number): Promise<Uint8Array> {
    const buf = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const got = await abortable(this.#conn.read(buf.subarray(filled)), this.signal);
      if (got === null) this.fail(0, "closed the connection in the middle of the SOCKS5 exchange");
      filled += got;
    }
    return buf;
  }

  /** Throws the {@linkcode ProxyError} for `status` and what the proxy did. */
  fail(status: number, what: string): never {
    throw new ProxyError(this.#proxy.shown, status, `SOCKS5 proxy ${this.#proxy.shown} ${what}`);
  }
}
