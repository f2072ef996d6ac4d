/**
 * The listener of a server that asks every client for a certificate and
 * checks it against the CAs of `ServeOptions.tls.clientCa` (mutual TLS).
 *
 * ```
 *   client ──TLS, CertificateRequest──▶ node:tls server (requestCert)
 *                                        │ Deno's verifier judges the chain
 *        authorized ─────────────────────┼──▶ the conn, its peer's subject known
 *        none, another CA, expired… ─────┴──▶ the conn, marked refused with a
 *                                             reason: serve() reads the head,
 *                                             answers 403 and reports the
 *                                             refusal (cause tls-handshake)
 * ```
 *
 * `Deno.listenTls` can neither ask for a client certificate nor show one,
 * so this listens through `node:tls`, whose verdict (`authorized`,
 * `authorizationError`) is read here rather than enforced by it: with
 * `rejectUnauthorized` Node hangs up on a certificate from another CA
 * without a word on either side, and the operator would not learn why. A
 * refused client has finished its TLS handshake (TLS 1.3 verifies the
 * client last), so it is told in HTTP: `403` and the reason.
 *
 * Node binds asynchronously, and `serve()` is synchronous: the address is
 * bound with `Deno.listen` (which throws at once for an address in use, and
 * picks the port for port 0), and `node:tls` takes over that very socket
 * through a duplicate of its file descriptor (`listen({ fd })`), so a
 * client that connects at once waits in the backlog rather than being
 * refused. Without FFI (no `--allow-ffi`) the fd cannot be found: the
 * address is then released and bound again by `node:tls`, and a connection
 * in the moment between is refused.
 *
 * @module
 */

import { X509Certificate } from "node:crypto";
import type { Socket } from "node:net";
import * as tls from "node:tls";
import { HandshakeError } from "../ws/errors.ts";
import { NodeTlsConn } from "../tcp/node_tls.ts";
import { dupListenerFd, releaseConn } from "../tcp/fd.ts";

/** What {@linkcode ClientCertListener} needs. */
export interface ClientCertListenOptions {
  /** Host to bind. */
  hostname: string;
  /** Port to bind (0: a free one). */
  port: number;
  /** The server's certificate chain (PEM). */
  cert: string;
  /** The server's private key (PEM). */
  key: string;
  /** The CA certificates (PEM, one or more) a client's certificate must be signed by. */
  clientCa: string;
  /** Bound on the TLS handshake (ms). */
  handshakeTimeout: number;
}

/** A client certificate the server refused: answered with 403 and reported with cause `tls-handshake`. */
export class CertificateRefused extends HandshakeError {
  /** A refusal saying `reason` ("no client certificate", …). */
  constructor(reason: string) {
    super(403, reason);
    this.name = "CertificateRefused";
  }
}

/** Why each refused conn was refused. */
const refusals = new WeakMap<object, string>();

/** Why the client certificate on `conn` was refused, or null when it was accepted (or none was asked for). */
export function certificateRefusal(conn: Deno.Conn): string | null {
  return refusals.get(conn) ?? null;
}

/**
 * Why a client certificate was refused, in words: "no client certificate",
 * "the client certificate CN=x has expired" (or "is not valid yet"), "… is
 * not signed by a trusted client CA", else with the check's own code. Deno's
 * `node:tls` reports every failed check as UNABLE_TO_VERIFY_LEAF_SIGNATURE,
 * so the reason is found here from the certificate itself; the verdict
 * stays Deno's verifier's.
 */
export function refusalReason(
  cert: X509Certificate | null,
  code: string | null,
  anchors: readonly X509Certificate[],
  now: number = Date.now(),
): string {
  if (cert === null) return "no client certificate";
  const it = `the client certificate ${cert.subject.split("\n").join(", ")}`;
  if (now > Date.parse(cert.validTo)) return `${it} has expired`;
  if (now < Date.parse(cert.validFrom)) return `${it} is not valid yet`;
  const signed = anchors.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));
  if (!signed) return `${it} is not signed by a trusted client CA`;
  return `${it} was refused (${code ?? "unknown reason"})`;
}

/** The certificates in a PEM text that Node can read. */
export function pemCertificates(pem: string): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (
    const block of pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []
  ) {
    try {
      out.push(new X509Certificate(block));
    } catch {
      // Not one Node can read: the TLS layer judges the file.
    }
  }
  return out;
}

/**
 * The part of `Deno.Listener` that `serve()` uses (addr, accept, close),
 * over a `node:tls` server that asks for client certificates. Every conn it
 * hands out is a {@linkcode NodeTlsConn}; a refused one carries its reason
 * ({@linkcode certificateRefusal}).
 */
export class ClientCertListener {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  #server: tls.Server;
  #anchors: X509Certificate[];
  #queue: NodeTlsConn[] = [];
  #waiting: PromiseWithResolvers<NodeTlsConn> | null = null;
  #error: unknown = null;
  #closed = false;
  #handshakeTimeout: number;
  /** The deadline of each TCP connection whose TLS handshake is not done, by its peer's address. */
  #pending = new Map<string, { socket: Socket; timer: ReturnType<typeof setTimeout> }>();

  /** Binds (see the module's notes); throws what `Deno.listen` throws. */
  constructor(opts: ClientCertListenOptions) {
    const bound = Deno.listen({ hostname: opts.hostname, port: opts.port });
    this.addr = bound.addr;
    const fd = dupListenerFd(bound);
    bound.close();
    releaseConn(bound);
    this.#anchors = pemCertificates(opts.clientCa);
    this.#handshakeTimeout = opts.handshakeTimeout;
    this.#server = tls.createServer({
      cert: opts.cert,
      key: opts.key,
      ca: opts.clientCa,
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: opts.handshakeTimeout,
    });
    this.#server.on("connection", (socket: Socket) => this.#connected(socket));
    this.#server.on("secureConnection", (socket: tls.TLSSocket) => this.#secured(socket));
    this.#server.on("tlsClientError", () => {
      // The client gave up on the handshake (it refused our certificate…): nothing to serve.
    });
    this.#server.on("error", (err: unknown) => this.#fail(err));
    if (fd !== null) this.#server.listen({ fd });
    else this.#server.listen(this.addr.port, this.addr.hostname);
  }

  /** The next connection whose TLS handshake is done; rejects with BadResource once closed. */
  accept(): Promise<Deno.Conn> {
    const next = this.#queue.shift();
    if (next) return Promise.resolve(next as unknown as Deno.Conn);
    if (this.#error !== null) {
      const err = this.#error;
      this.#error = null;
      this.#closed = true;
      return Promise.reject(err);
    }
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("listener closed"));
    this.#waiting = Promise.withResolvers<NodeTlsConn>();
    return this.#waiting.promise as unknown as Promise<Deno.Conn>;
  }

  /** Stops listening; connections already handed out live on. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    for (const { socket, timer } of this.#pending.values()) {
      clearTimeout(timer);
      socket.destroy();
    }
    this.#pending.clear();
    for (const conn of this.#queue.splice(0)) conn.close();
    this.#waiting?.reject(new Deno.errors.BadResource("listener closed"));
    this.#waiting = null;
  }

  /**
   * A TCP connection before its TLS handshake: ended unless the handshake is
   * done within the handshake timeout (Deno's `node:tls` does not honour
   * `handshakeTimeout`, and a peer that sends nothing would hold its socket).
   */
  #connected(socket: Socket): void {
    const key = peerKey(socket);
    const timer = setTimeout(() => {
      this.#pending.delete(key);
      socket.destroy();
    }, this.#handshakeTimeout);
    this.#pending.set(key, { socket, timer });
    socket.once("close", () => {
      if (this.#pending.get(key)?.timer === timer) this.#pending.delete(key);
      clearTimeout(timer);
    });
  }

  #secured(socket: tls.TLSSocket): void {
    const key = peerKey(socket);
    clearTimeout(this.#pending.get(key)?.timer);
    this.#pending.delete(key);
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const conn = new NodeTlsConn(socket);
    if (!socket.authorized) {
      const code = socket.authorizationError;
      const raw: Uint8Array | undefined = socket.getPeerCertificate()?.raw;
      const cert = raw?.length ? new X509Certificate(raw) : null;
      refusals.set(conn, refusalReason(cert, code ? String(code) : null, this.#anchors));
    }
    const waiting = this.#waiting;
    this.#waiting = null;
    if (waiting) waiting.resolve(conn);
    else this.#queue.push(conn);
  }

  /** Listening failed (the address was taken between the two binds): the next accept says so. */
  #fail(err: unknown): void {
    const waiting = this.#waiting;
    this.#waiting = null;
    if (waiting) {
      this.#closed = true;
      waiting.reject(err);
    } else this.#error = err;
  }
}

/** A socket's peer as `address port`: the key of its handshake deadline. */
function peerKey(socket: Socket): string {
  return `${socket.remoteAddress} ${socket.remotePort}`;
}
