/**
 * The TLS side of {@linkcode dial} for `wss://` URLs.
 *
 * ```
 *   wss://host:port
 *     │
 *     ├─ insecure ───────────────────────────▶ node:tls, no verification
 *     │
 *     ├─ cert + key (mTLS) ──────────────────▶ node:tls, verified (chain, expiry,
 *     │                                        host name); it shows the server's
 *     │                                        certificate (peerSubject)
 *     │
 *     └─ Deno.connectTls (rustls, caCerts) ──▶ handshake done: the stream
 *          │  no handshake after 1 s: probe the port with plain HTTP;
 *          │  an "HTTP/" answer fails the dial ("use ws://")
 *          │
 *          └─ CaUsedAsEndEntity, and caCerts holds a self-signed
 *             certificate (what `openssl req -x509` makes: CA:TRUE)
 *               ──▶ node:tls again, accepted only if the server shows
 *                   exactly that certificate, valid for the host
 * ```
 *
 * Deno 2.9's `Deno.connectTls` verifies every certificate: it can skip the
 * host name check (`unsafelyDisableHostnameVerification`) but not the chain,
 * and only the runtime flag `--unsafely-ignore-certificate-errors` turns the
 * whole check off, for the whole process. Its `node:tls`, though, honours
 * `rejectUnauthorized: false` and shows the peer's certificate, so the two
 * cases that need it go through `node:tls`, wrapped as a `Deno.Conn`
 * ({@linkcode NodeTlsConn}). Everything else keeps Deno's own TLS.
 *
 * @module
 */

import { X509Certificate } from "node:crypto";
import * as tls from "node:tls";
import { isIP } from "node:net";
import { closeConn } from "../tcp/sockopt.ts";
import { sameBytes } from "../bytes.ts";
import { denoError, NodeTlsConn } from "../tcp/node_tls.ts";
import { errorText } from "../errors.ts";
import { connDuplex } from "./duplex.ts";

/** How long a TLS handshake may take before the port is probed for plain HTTP (ms). */
export const PLAIN_PROBE_DELAY_MS = 1_000;
/** How long the plain-HTTP probe waits for the first bytes of an answer (ms). */
export const PLAIN_PROBE_WAIT_MS = 800;

/** What {@linkcode openTls} needs. */
export interface OpenTlsOptions {
  /** The host name or IP address, without brackets. */
  hostname: string;
  /** The TCP port. */
  port: number;
  /** The URL's host (`host[:port]`), for the probe's Host header. */
  host: string;
  /** PEM certificates to trust besides the system's. */
  caCerts?: string[];
  /** Accept any certificate: no chain, expiry or name check. */
  insecure?: boolean;
  /** A client certificate (PEM) to show a server that asks for one; goes with `key`. */
  cert?: string;
  /** The private key (PEM) of `cert`. */
  key?: string;
  /** Aborts connecting and the TLS handshake. */
  signal: AbortSignal;
  /**
   * Through a proxy: opens a fresh tunnel to `hostname:port` (`proxy.ts`),
   * and TLS runs inside it instead of over a connection of its own; the
   * plain-HTTP probe is skipped (it would bypass the proxy). A tunnel that
   * is TLS itself (an `https://` proxy) takes the `node:tls` path, checked
   * as Deno's TLS checks (system CAs and `caCerts`): `Deno.startTls` takes
   * only TCP.
   */
  tunnel?: () => Promise<Deno.TcpConn | Deno.TlsConn>;
  /** Whether the tunnel is TLS itself (see `tunnel`). */
  nested?: boolean;
}

/**
 * Connects to `hostname:port` and completes the TLS handshake (see the
 * module's diagram). Throws Deno's TLS errors as they are
 * (`Deno.errors.InvalidData`, "invalid peer certificate: UnknownIssuer", …),
 * and `Deno.errors.InvalidData` saying so when the port speaks plain HTTP or
 * a pinned certificate does not match.
 */
export async function openTls(opts: OpenTlsOptions): Promise<Deno.Conn> {
  if (opts.insecure) return await nodeTls(opts, null);
  if (opts.nested) return await nestedTls(opts);
  if (opts.cert !== undefined) return await nodeTls(opts, "verify");
  const conn = opts.tunnel
    ? await startTlsInTunnel(await opts.tunnel() as Deno.TcpConn, opts)
    : await Deno.connectTls({ hostname: opts.hostname, port: opts.port, caCerts: opts.caCerts });
  try {
    await untilHandshake(conn.handshake(), opts);
    return conn;
  } catch (err) {
    closeConn(conn);
    const pins = selfSigned(opts.caCerts ?? []);
    if (/CaUsedAsEndEntity/.test(String(err)) && pins.length > 0 && !opts.signal.aborted) {
      return await nodeTls(opts, pins);
    }
    throw err;
  }
}

/**
 * `Deno.startTls` on a tunnel. Deno 2.9's conn from it gives its addresses
 * without `transport: "tcp"`, so the tunnel's own are put on it: the
 * keepalive code finds the socket by them.
 */
async function startTlsInTunnel(tcp: Deno.TcpConn, opts: OpenTlsOptions): Promise<Deno.TlsConn> {
  let conn: Deno.TlsConn;
  try {
    conn = await Deno.startTls(tcp, { hostname: opts.hostname, caCerts: opts.caCerts });
  } catch (err) {
    closeConn(tcp);
    throw err;
  }
  Object.defineProperty(conn, "localAddr", { value: tcp.localAddr });
  Object.defineProperty(conn, "remoteAddr", { value: tcp.remoteAddr });
  return conn;
}

/** The certificates among `pems` whose issuer is their subject, each as DER with its parsed form. */
export function selfSigned(pems: string[]): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const pem of pems) {
    for (
      const block of pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []
    ) {
      try {
        const cert = new X509Certificate(block);
        if (cert.subject === cert.issuer) out.push(cert);
      } catch {
        // Not a certificate Node can read: Deno's own TLS judged it already.
      }
    }
  }
  return out;
}

/**
 * Resolves when `handshake` does. If it has not after
 * {@linkcode PLAIN_PROBE_DELAY_MS}, a second connection asks the port for
 * `HEAD /` in plain HTTP: an answer starting `HTTP/` means the server does
 * not speak TLS at all, and this rejects at once rather than waiting for the
 * dial's timeout. Any other outcome leaves the handshake to finish or time out.
 */
async function untilHandshake(handshake: Promise<unknown>, opts: OpenTlsOptions): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const probe = new Promise<never>((_, reject) => {
    if (opts.tunnel) return;
    timer = setTimeout(async () => {
      if (await speaksPlainHttp(opts)) {
        reject(
          new Deno.errors.InvalidData(
            `the server at ${opts.host} speaks plain HTTP, not TLS: use ws:// instead of wss://`,
          ),
        );
      }
    }, PLAIN_PROBE_DELAY_MS);
  });
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(opts.signal.reason);
    if (opts.signal.aborted) onAbort();
    opts.signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    await Promise.race([handshake, probe, aborted]);
  } finally {
    clearTimeout(timer);
    opts.signal.removeEventListener("abort", onAbort);
  }
}

/** Whether `hostname:port` answers a plain `HEAD /` with `HTTP/` within {@linkcode PLAIN_PROBE_WAIT_MS}. */
async function speaksPlainHttp(opts: OpenTlsOptions): Promise<boolean> {
  let conn: Deno.Conn | null = null;
  const timer = setTimeout(() => conn && closeConn(conn), PLAIN_PROBE_WAIT_MS);
  try {
    conn = await Deno.connect({ hostname: opts.hostname, port: opts.port });
    const request = `HEAD / HTTP/1.1\r\nHost: ${opts.host}\r\nConnection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(request));
    const got = new Uint8Array(5);
    let filled = 0;
    while (filled < got.length) {
      const n = await conn.read(got.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    return new TextDecoder().decode(got.subarray(0, filled)) === "HTTP/";
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    if (conn) closeConn(conn);
  }
}

/**
 * TLS inside a TLS tunnel (an `https://` proxy), through `node:tls` with
 * its own checks; a certificate it refuses, when `caCerts` holds
 * self-signed ones, is tried again pinned, as on the direct path.
 */
async function nestedTls(opts: OpenTlsOptions): Promise<Deno.Conn> {
  try {
    return await nodeTls(opts, "verify");
  } catch (err) {
    const pins = selfSigned(opts.caCerts ?? []);
    if (pins.length === 0 || opts.signal.aborted || !/certificate/i.test(String(err))) throw err;
    return await nodeTls(opts, pins);
  }
}

/**
 * TLS through `node:tls` (over `opts.tunnel` when there is one): `pins`
 * "verify" checks the server's certificate as Deno's own TLS does (its chain
 * to what {@linkcode trusted} names, its dates, the host name), for a client
 * certificate or inside an `https://` proxy; otherwise without its own
 * verification: `pins` null accepts any certificate, else the server's must
 * be one of `pins`, byte for byte, and valid for the host name or IP address.
 */
async function nodeTls(
  opts: OpenTlsOptions,
  pins: X509Certificate[] | null | "verify",
): Promise<Deno.Conn> {
  const verify = pins === "verify";
  const tunnel = opts.tunnel ? await opts.tunnel() : null;
  const socket = tls.connect({
    ...(tunnel ? { socket: connDuplex(tunnel) } : { host: opts.hostname, port: opts.port }),
    servername: isIP(opts.hostname) ? undefined : opts.hostname,
    rejectUnauthorized: verify,
    ca: verify ? trusted(opts.caCerts) : undefined,
    cert: opts.cert,
    key: opts.key,
  });
  const connected = new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", (err) => reject(verify ? certificateError(err) : denoError(err)));
  });
  try {
    await untilHandshake(connected, opts);
    if (pins && !verify) checkPinned(socket, pins, opts.hostname);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return new NodeTlsConn(socket, tunnel ?? undefined) as unknown as Deno.Conn;
}

/**
 * What `node:tls` trusts for a verified dial: its defaults (Deno's root
 * store) without `caCerts`; with them, `caCerts` and, where reading them is
 * allowed (`--allow-sys`), the system's roots, since a `ca` list replaces
 * the defaults in `node:tls` rather than adding to them. Asked without a
 * prompt: on a terminal Deno would otherwise stop to ask.
 */
function trusted(caCerts: string[] | undefined): string[] | undefined {
  if (!caCerts?.length) return undefined;
  const sys = Deno.permissions.querySync({ name: "sys", kind: "ca" } as Deno.PermissionDescriptor);
  return sys.state === "granted" ? [...tls.rootCertificates, ...caCerts] : caCerts;
}

/** Node's names for a certificate it refused, as the rustls names Deno's own TLS gives. */
const NODE_CERT_ERRORS: Readonly<Record<string, string>> = {
  SELF_SIGNED_CERT_IN_CHAIN: "UnknownIssuer",
  DEPTH_ZERO_SELF_SIGNED_CERT: "UnknownIssuer",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "UnknownIssuer",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "UnknownIssuer",
  CERT_HAS_EXPIRED: "Expired",
  CERT_NOT_YET_VALID: "NotValidYet",
  ERR_TLS_CERT_ALTNAME_INVALID: "NotValidForName",
};

/** A certificate `node:tls` refused as Deno's `InvalidData` ("invalid peer certificate: UnknownIssuer: …"). */
function certificateError(err: unknown): unknown {
  const name = NODE_CERT_ERRORS[(err as { code?: string })?.code ?? ""];
  if (name === undefined) return denoError(err);
  return new Deno.errors.InvalidData(`invalid peer certificate: ${name}: ${errorText(err)}`);
}

/** Throws unless the server's certificate is one of `pins` and valid for `hostname`. */
function checkPinned(socket: tls.TLSSocket, pins: X509Certificate[], hostname: string): void {
  const raw: Uint8Array | undefined = socket.getPeerCertificate()?.raw;
  const pin = raw && pins.find((p) => sameBytes(new Uint8Array(p.raw), raw));
  if (!pin) {
    throw new Deno.errors.InvalidData(
      "invalid peer certificate: the server's certificate is a CA certificate " +
        "(CaUsedAsEndEntity), and not the self-signed one given in caCerts",
    );
  }
  const valid = isIP(hostname) ? pin.checkIP(hostname) !== undefined : pin.checkHost(hostname);
  if (!valid) {
    throw new Deno.errors.InvalidData(
      `invalid peer certificate: NotValidForName: the self-signed certificate given in caCerts ` +
        `is not valid for ${hostname} (it names ${pin.subjectAltName ?? pin.subject})`,
    );
  }
}
