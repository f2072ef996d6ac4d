/**
 * A `node:tls` socket wrapped as the part of `Deno.Conn` that a WebSocket
 * connection and the socket-option code use ({@linkcode NodeTlsConn}), for
 * the TLS that Deno's own cannot do: the client's `-k`, pinned self-signed
 * certificates and client certificates, and the server's verification of
 * client certificates. Its two addresses are how the socket's file
 * descriptor is found, so keepalive is set and read back as on any conn.
 *
 * @module
 */

import { X509Certificate } from "node:crypto";
import type * as tls from "node:tls";
import { errorText } from "../errors.ts";

/** Node's socket errors as the Deno errors the connection's classifier knows. */
export function denoError(err: unknown): unknown {
  const code = (err as { code?: string })?.code;
  const message = errorText(err);
  switch (code) {
    case "ECONNRESET":
      return new Deno.errors.ConnectionReset(message);
    case "ECONNREFUSED":
      return new Deno.errors.ConnectionRefused(message);
    case "ETIMEDOUT":
      return new Deno.errors.TimedOut(message);
    case "EPIPE":
      return new Deno.errors.BrokenPipe(message);
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new Deno.errors.NotFound(message);
    default:
      return err;
  }
}

/** Bytes buffered from the socket before it is paused, so a slow reader holds TCP back. */
const READ_HIGH_WATER = 64 * 1024;

/**
 * A `node:tls` socket with the part of `Deno.Conn` that a WebSocket
 * connection and the socket-option code use: read, write, closeWrite,
 * close, and the two addresses (by which the socket's file descriptor is
 * found for keepalive). Node's errors become Deno's. It also keeps the
 * subject of the peer's certificate, which `Deno.TlsConn` does not show.
 */
export class NodeTlsConn {
  /** The local address. */
  readonly localAddr: Deno.NetAddr;
  /** The peer's address. */
  readonly remoteAddr: Deno.NetAddr;
  /** The subject of the certificate the peer showed (e.g. `CN=alice`), or null for none. */
  readonly peerSubject: string | null;
  #socket: tls.TLSSocket;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: unknown = null;
  #wake: (() => void) | null = null;

  /**
   * Wraps a connected socket whose TLS handshake is done; over a tunnel (a
   * proxy's), `tunnel` gives the addresses: the socket to the proxy, whose
   * fd the keepalive goes on.
   */
  constructor(socket: tls.TLSSocket, tunnel?: Deno.Conn) {
    this.#socket = socket;
    this.localAddr = tunnel
      ? tunnel.localAddr as Deno.NetAddr
      : addr(socket.localAddress, socket.localPort);
    this.remoteAddr = tunnel
      ? tunnel.remoteAddr as Deno.NetAddr
      : addr(socket.remoteAddress, socket.remotePort);
    this.peerSubject = certificateSubject(socket.getPeerCertificate());
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered >= READ_HIGH_WATER) socket.pause();
      this.#notify();
    });
    socket.on("end", () => this.#finish());
    socket.on("close", () => this.#finish());
    socket.on("error", (err) => {
      this.#error ??= denoError(err);
      this.#notify();
    });
  }

  /** Reads into `p`; null at the end of the stream. */
  async read(p: Uint8Array): Promise<number | null> {
    while (true) {
      const chunk = this.#chunks[0];
      if (chunk) {
        const n = Math.min(chunk.length, p.length);
        p.set(chunk.subarray(0, n));
        if (n === chunk.length) this.#chunks.shift();
        else this.#chunks[0] = chunk.subarray(n);
        this.#buffered -= n;
        if (this.#buffered < READ_HIGH_WATER / 2) this.#socket.resume();
        return n;
      }
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** Writes all of `p` (Node queues it); resolves with its length once handed to the socket. */
  write(p: Uint8Array): Promise<number> {
    if (this.#error) return Promise.reject(this.#error);
    const copy = p.slice();
    return new Promise((resolve, reject) => {
      this.#socket.write(copy, (err) => err ? reject(denoError(err)) : resolve(copy.length));
    });
  }

  /** Sends TLS close_notify and a FIN; reading goes on. */
  closeWrite(): Promise<void> {
    this.#socket.end();
    return Promise.resolve();
  }

  /** Closes the socket at once. */
  close(): void {
    this.#socket.destroy();
    this.#finish();
  }

  /** Sets TCP_NODELAY (on unless `noDelay` is false). */
  setNoDelay(noDelay?: boolean): void {
    this.#socket.setNoDelay(noDelay ?? true);
  }

  /** Switches SO_KEEPALIVE on unless `keepAlive` is false (the values are set through the socket options code). */
  setKeepAlive(keepAlive?: boolean): void {
    this.#socket.setKeepAlive(keepAlive ?? true);
  }

  /** Keeps the process alive while the socket is open (the default). */
  ref(): void {
    this.#socket.ref();
  }

  /** Lets the process end while the socket is open. */
  unref(): void {
    this.#socket.unref();
  }

  /** Closes the socket. */
  [Symbol.dispose](): void {
    this.close();
  }

  #finish(): void {
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

function addr(hostname: string | undefined, port: number | undefined): Deno.NetAddr {
  return {
    transport: "tcp",
    hostname: (hostname ?? "").replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, ""),
    port: port ?? 0,
  };
}

/**
 * The subject of the peer's certificate on `conn`, as `CN=alice` (several
 * attributes joined by ", "); null when the conn is not a
 * {@linkcode NodeTlsConn} (Deno's own TLS does not show it) or the peer
 * showed none.
 */
export function peerSubject(conn: Deno.Conn): string | null {
  return conn instanceof NodeTlsConn ? conn.peerSubject : null;
}

/** A certificate's subject as one line, from `getPeerCertificate()`; null when there is none. */
export function certificateSubject(cert: tls.PeerCertificate | undefined | null): string | null {
  const raw: Uint8Array | undefined = cert?.raw;
  if (!raw || raw.length === 0) return null;
  try {
    return new X509Certificate(raw).subject.split("\n").join(", ");
  } catch {
    return null;
  }
}
