/**
 * The server side: listen, apply Go's keepalive to every accepted socket
 * (read back), read each HTTP/1.1 request head (bounded in size and time),
 * and hand a {@linkcode ServerRequest} to the handler, which upgrades it
 * to a WebSocket, answers it, or refuses it.
 *
 * ```ts
 * const server = serve({ port: 8080 }, async (req) => {
 *   if (req.path !== "/chat") return await req.reject(404, "no such path");
 *   const ws = await req.upgrade();
 *   for await (const msg of ws) await ws.send(msg);
 * });
 * ```
 *
 * The pieces: `accept.ts` (the accept loop and its backoff), `deadline.ts`
 * (one timer for every head still being read), `request.ts` (what the
 * handler gets), `shutdown.ts` (Going Away to every WebSocket, bounded).
 * Here: the options, and what happens to one connection from accept to
 * handler, including the one path that refuses a request the handler never
 * sees (`ServerCore.refuse()`). Every connection of a server shares one
 * memory budget (see `../ws/budget.ts`).
 *
 * @module
 */

import { type Connection, connectionSettings } from "../connection.ts";
import type { ConnectionOptions } from "../ws/conn.ts";
import type { CompressionOptions } from "../ws/deflate.ts";
import { type KeepAliveConfig, type KeepAlivePolicy, resolveKeepAlive } from "../tcp/keepalive.ts";
import {
  type ApplyOptions,
  applyPolicy,
  applyToListener,
  closeConn,
  type Inheritance,
  inheritance,
  readInherited,
  readSocketOptions,
  type SocketOptions,
} from "../tcp/sockopt.ts";
import { type Eviction, MemoryBudget } from "../ws/budget.ts";
import { HandshakeError } from "../ws/errors.ts";
import type { UpgradePolicy } from "../ws/server_handshake.ts";
import { buildErrorResponse } from "../http/response.ts";
import { DEFAULT_MAX_HEAD_SIZE, parseRequestHead } from "../http/head.ts";
import { readHead, type ReadHeadOptions, recycleHead } from "../http/io.ts";
import { errorText } from "../errors.ts";
import { acceptLoop, type AcceptSink } from "./accept.ts";
import { certificateRefusal, CertificateRefused, ClientCertListener } from "./client_cert.ts";
import { HandshakeDeadlines } from "./deadline.ts";
import { answer, type RequestContext, ServerRequest, settleRequest } from "./request.ts";
import { goAway, HANDLER_GRACE_MS, SHUTDOWN_TIMEOUT_MS, within } from "./shutdown.ts";

/** Default bound on reading a request head (gorilla and ws use 10 s too). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Gorilla's chat example: ping every 54 s (9/10 of the pong wait)… */
export const DEFAULT_SERVER_PING_INTERVAL_MS = 54_000;
/** …and close when nothing arrives for 60 s. */
export const DEFAULT_SERVER_PONG_TIMEOUT_MS = 60_000;
/**
 * Default memory budget of a server: the bytes all its connections may hold
 * together in read buffers, partial messages, unread messages and send queues.
 */
export const DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024;

/** The server's defaults for the connection settings; the rest are the connection's own. */
const SERVER_CONNECTION_DEFAULTS: ConnectionOptions = {
  pingInterval: DEFAULT_SERVER_PING_INTERVAL_MS,
  pongTimeout: DEFAULT_SERVER_PONG_TIMEOUT_MS,
};

/** How every request head is read: the same object for every connection. */
const READ_HEAD: ReadHeadOptions = { maxHeadSize: DEFAULT_MAX_HEAD_SIZE };

/** A request the server ended before the handler saw it. */
export interface Refusal {
  /** The connection's number (accept order, from 1). */
  id: number;
  /** The peer. */
  remoteAddr: Deno.NetAddr;
  /** The HTTP status answered (400, 431, 505…), or 0 when nothing could be answered. */
  status: number;
  /** One sentence saying why. */
  message: string;
  /** The head did not arrive within the handshake timeout. */
  timedOut: boolean;
  /**
   * The close cause, for a refusal that is one: `handshake-timeout` (as
   * `timedOut`), or `tls-handshake`: the client's certificate was refused
   * (`tls.clientCa`; status 403, `message` says why). Null otherwise.
   */
  cause: "handshake-timeout" | "tls-handshake" | null;
}

/**
 * Options of {@linkcode serve}. Durations are in milliseconds. The
 * connection settings ({@linkcode ConnectionOptions}) go to every WebSocket
 * of the server as they are, with the server's own heartbeat defaults.
 */
export interface ServeOptions extends ConnectionOptions {
  /** Send a ping this often (default 54 s, gorilla's; 0 turns pings off). */
  pingInterval?: number;
  /** Fail with `pong-timeout` when nothing arrives for this long (default 60 s; 0 turns it off). */
  pongTimeout?: number;
  /**
   * permessage-deflate (RFC 7692): `true` to accept it when a client offers
   * it, or options. Off by default, as in ws and gorilla.
   */
  compression?: boolean | CompressionOptions;
  /**
   * Host to bind. The default is `0.0.0.0`: every IPv4 interface, so the
   * server is reachable from other hosts (the CLI binds `localhost`).
   */
  hostname?: string;
  /** Port to bind (default 8080; 0 picks a free one). */
  port?: number;
  /**
   * PEM certificate and key: serve `wss://` and `https://`. With `clientCa`
   * (PEM CA certificates), every client must show a certificate signed by one
   * of them (mutual TLS): one without, from another CA, or expired is
   * answered 403 and reported to `onRefused` with cause `tls-handshake`; an
   * accepted one's subject is `ServerRequest.peerSubject`. Such a server
   * listens through `node:tls` (Deno's own TLS cannot ask for client
   * certificates) and cannot share its port (`reusePort`).
   */
  tls?: { cert: string; key: string; clientCa?: string };
  /** Share the port with other processes (SO_REUSEPORT, Linux; needs --unstable-net). */
  reusePort?: boolean;
  /**
   * TCP keepalive for accepted sockets: `true` for Go's defaults (on,
   * 15 s / 15 s / 9; the default), `false` off, Go's `KeepAliveConfig` (a
   * zero or absent field takes Go's default, a negative one leaves the OS
   * value), or a policy {@linkcode resolveKeepAlive} resolved already.
   */
  keepAlive?: boolean | KeepAliveConfig | KeepAlivePolicy;
  /** TCP_USER_TIMEOUT in ms for accepted sockets; absent (or 0) leaves the OS value. */
  userTimeout?: number;
  /** Bound on reading a request head (default 10 s). */
  handshakeTimeout?: number;
  /** The server-wide memory budget in bytes (default 256 MiB). */
  memoryBudget?: number;
  /** Upgrades past this many open WebSockets get 503 (default 0: no limit). */
  maxConnections?: number;
  /**
   * Browser origins allowed besides the request's own host: patterns such as
   * `*.example.com` or `https://*.example.com` (`null` allows `Origin: null`).
   */
  origins?: string[];
  /** Subprotocols `upgrade()` agrees to, in the client's order of preference. */
  protocols?: string[];
  /** Called once the server listens. */
  onListen?: (addr: Deno.NetAddr) => void;
  /** Called for each request the server refused before the handler saw it. */
  onRefused?: (refusal: Refusal) => void;
  /** Called with an error the handler threw, or any other unexpected failure. */
  onError?: (error: unknown, request: ServerRequest | null) => void;
  /** Called when the memory budget evicts a connection (it then closes with Try Again Later, 1013). */
  onEvict?: (connection: Connection, eviction: Eviction) => void;
}

/** A running server. */
export interface Server {
  /** The bound address (with port 0, the port picked). */
  readonly addr: Deno.NetAddr;
  /** The WebSockets open now. */
  readonly connections: ReadonlySet<Connection>;
  /** The memory budget all connections share: its limit and use in bytes, and evictions so far. */
  readonly budget: { readonly limit: number; readonly used: number; readonly evictions: number };
  /** Resolves once the server has stopped. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting, closes every WebSocket with Going Away (1001), waits
   * up to `timeout` ms (default 5 s) for their answers, then ends the rest.
   */
  shutdown(timeout?: number): Promise<void>;
}

/**
 * Listens and serves: binds `hostname:port` (by default `0.0.0.0:8080`,
 * every interface), and every accepted TCP (or TLS) connection gets Go's
 * keepalive (read back into `req.keepalive`), its request head is read
 * within `handshakeTimeout`, and `handler` receives it. A malformed or
 * oversized head is answered by the server itself (400, 431, 505) and
 * reported to `onRefused`, as is one that does not come in time (status 0,
 * `timedOut`). A handler that throws is reported to `onError`;
 * its request gets 500 if unanswered, its WebSocket Internal Error (1011)
 * if open.
 *
 * Throws what `Deno.listen` throws (an address in use…), and a RangeError
 * for a keepalive value Linux refuses.
 */
export function serve(
  options: ServeOptions,
  handler: (request: ServerRequest) => void | Promise<void>,
): Server {
  const policy = resolveKeepAlive(options.keepAlive ?? true);
  const listener = listen(options);
  const core = new ServerCore(options, handler, listener, policy);
  acceptLoop(listener, core);
  options.onListen?.(core.addr);
  return {
    addr: core.addr,
    connections: core.connections,
    budget: core.budget,
    finished: core.finished,
    shutdown: (timeout) => core.shutdown(timeout),
  };
}

/** Binds the listening socket: TCP, TLS, or TLS that asks for client certificates. */
function listen(options: ServeOptions): Deno.Listener {
  const hostname = options.hostname ?? "0.0.0.0";
  const port = options.port ?? 8080;
  if (!options.tls) return Deno.listen({ hostname, port, reusePort: options.reusePort });
  const clientCa = options.tls.clientCa;
  if (clientCa !== undefined) {
    if (options.reusePort) throw new TypeError("tls.clientCa cannot be combined with reusePort");
    return new ClientCertListener({
      hostname,
      port,
      cert: options.tls.cert,
      key: options.tls.key,
      clientCa,
      handshakeTimeout: options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    }) as unknown as Deno.Listener;
  }
  return Deno.listenTls(
    {
      hostname,
      port,
      cert: options.tls.cert,
      key: options.tls.key,
      reusePort: options.reusePort,
    } as Deno.ListenTlsOptions & Deno.TlsCertifiedKeyPem,
  );
}

/**
 * One server's state, and the path of each connection: accepted, keepalive
 * applied, head read within the deadline, then refused or handed to the
 * handler. One object per server serves every request as its context, so a
 * connection costs no options, closures or timers of its own.
 */
class ServerCore implements AcceptSink, RequestContext {
  readonly addr: Deno.NetAddr;
  readonly secure: boolean;
  readonly maxConnections: number;
  readonly upgradePolicy: UpgradePolicy;
  readonly compression: boolean | CompressionOptions | undefined;
  readonly connection: ConnectionOptions;
  readonly connections = new Set<Connection>();
  readonly budget: MemoryBudget;
  stopping = false;

  #options: ServeOptions;
  #handler: (request: ServerRequest) => void | Promise<void>;
  #listener: Deno.Listener;
  #policy: KeepAlivePolicy;
  #apply: ApplyOptions;
  #inherited: Inheritance | null;
  #deadlines: HandshakeDeadlines;
  #nextId = 1;
  #running = 0; // connections between accept and the end of their handler
  #idle: PromiseWithResolvers<void> | null = null;
  #finished = Promise.withResolvers<void>();

  constructor(
    options: ServeOptions,
    handler: (request: ServerRequest) => void | Promise<void>,
    listener: Deno.Listener,
    policy: KeepAlivePolicy,
  ) {
    this.#options = options;
    this.#handler = handler;
    this.#listener = listener;
    this.#policy = policy;
    this.addr = listener.addr as Deno.NetAddr;
    this.secure = Boolean(options.tls);
    this.maxConnections = options.maxConnections ?? 0;
    this.upgradePolicy = { origins: options.origins, protocols: options.protocols };
    this.compression = options.compression;
    this.connection = connectionSettings(options, SERVER_CONNECTION_DEFAULTS);
    this.#apply = { userTimeout: options.userTimeout || undefined };
    // Linux copies a listening socket's options to every socket it accepts:
    // set them once here, and show each accepted socket holds them with one
    // read (see Inheritance).
    const onListener = applyToListener(listener, policy, this.#apply);
    this.#inherited = onListener.verified && onListener.errors.length === 0 &&
        matches(onListener, policy, this.#apply)
      ? inheritance(onListener)
      : null;
    this.#deadlines = new HandshakeDeadlines(
      options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    );
    this.budget = new MemoryBudget(options.memoryBudget ?? DEFAULT_MEMORY_BUDGET);
    const onEvict = options.onEvict;
    if (onEvict) {
      this.budget.onEvict = (owner, eviction) => onEvict(owner as Connection, eviction);
    }
  }

  /** Resolves once shutdown is done. */
  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  /** Starts serving a connection the listener accepted. */
  accepted(conn: Deno.Conn): void {
    this.#serve(conn, this.#nextId++);
  }

  /** Reports an accept that failed and will be retried. */
  acceptFailed(error: Error): void {
    this.#report(error, null);
  }

  /**
   * Ends a request the handler never saw, the one way: answers it when it
   * can be answered (a {@linkcode HandshakeError}: its status and message),
   * closes the connection, and reports it to `onRefused`, unless it was
   * shutdown that cut the connection short.
   */
  async refuse(conn: Deno.Conn, id: number, err: unknown): Promise<void> {
    const remoteAddr = conn.remoteAddr as Deno.NetAddr;
    const refusal = err instanceof HandshakeError ? err : null;
    if (refusal) await answer(conn, buildErrorResponse(refusal));
    else closeConn(conn);
    const late = this.#deadlines.timedOut(conn);
    if (this.stopping && !late && !refusal) return;
    const certificate = err instanceof CertificateRefused;
    this.#options.onRefused?.({
      id,
      remoteAddr,
      cause: certificate ? "tls-handshake" : late ? "handshake-timeout" : null,
      status: refusal ? refusal.status : 0,
      message: certificate
        ? refusal!.message
        : late
        ? `no request head within ${this.#deadlines.timeout}ms`
        : refusal
        ? refusal.message
        : `reading the request failed: ${errorText(err)}`,
      timedOut: late && !certificate,
    });
  }

  /** Stops accepting, sends Going Away to every WebSocket, and waits for them (bounded). */
  async shutdown(timeout = SHUTDOWN_TIMEOUT_MS): Promise<void> {
    if (this.stopping) return this.#finished.promise;
    this.stopping = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    this.#deadlines.closeAll();
    await goAway(this.connections, timeout);
    if (this.#running > 0) {
      this.#idle ??= Promise.withResolvers<void>();
      await within(this.#idle.promise, HANDLER_GRACE_MS);
    }
    this.#finished.resolve();
  }

  /** One connection from accept to the end of its handler; nothing escapes unreported. */
  async #serve(conn: Deno.Conn, id: number): Promise<void> {
    this.#running++;
    try {
      const req = await this.#read(conn, id);
      if (req !== null) await this.#run(req);
    } catch (err) {
      this.#report(err, null);
    } finally {
      if (--this.#running === 0 && this.#idle !== null) this.#idle.resolve();
    }
  }

  /**
   * Applies the keepalive, then reads the request head within the handshake
   * deadline: the request, or null when the peer left first or the request
   * was refused. A refused client certificate is answered (403) once the
   * head is in, so that closing does not reset the answer away.
   */
  async #read(conn: Deno.Conn, id: number): Promise<ServerRequest | null> {
    const keepalive = this.#keepalive(conn);
    const refusedCertificate = certificateRefusal(conn);
    this.#deadlines.start(conn);
    try {
      const got = await readHead(conn, READ_HEAD).catch((err) => {
        if (refusedCertificate === null) throw err;
      });
      if (refusedCertificate !== null) {
        await this.refuse(conn, id, new CertificateRefused(refusedCertificate));
        return null;
      }
      if (!got) {
        closeConn(conn);
        return null;
      }
      const head = parseRequestHead(got.head);
      recycleHead(got.head); // parsed into strings: its buffer can take the next head
      return new ServerRequest(id, conn, head, got.rest, keepalive, this);
    } catch (err) {
      await this.refuse(conn, id, err);
      return null;
    } finally {
      this.#deadlines.end(conn);
    }
  }

  /**
   * The socket options in force: the listener's when one read shows the
   * socket inherited them, else read in full, and applied when they differ.
   */
  #keepalive(conn: Deno.Conn): SocketOptions {
    const inherited = this.#inherited && readInherited(conn, this.#inherited);
    if (inherited) return inherited;
    const read = this.#inherited ? readSocketOptions(conn) : null;
    if (read !== null && matches(read, this.#policy, this.#apply)) return read;
    return applyPolicy(conn, this.#policy, this.#apply);
  }

  /** Runs the handler; a throw is reported, its WebSocket aborted (Internal Error) and its request settled. */
  async #run(req: ServerRequest): Promise<void> {
    try {
      await this.#handler(req);
      await settleRequest(req);
    } catch (err) {
      this.#report(err, req);
      if (req.webSocket?.isOpen) req.webSocket.abort("internal error");
      await settleRequest(req);
    }
  }

  #report(err: unknown, req: ServerRequest | null): void {
    if (this.#options.onError) this.#options.onError(err, req);
    else console.error(err);
  }
}

/** Whether options read back from a socket are what `policy` asks for. */
function matches(o: SocketOptions, policy: KeepAlivePolicy, apply: ApplyOptions): boolean {
  return o.verified && o.keepAlive === policy.enabled && o.noDelay &&
    (policy.idle === null || o.idle === policy.idle) &&
    (policy.interval === null || o.interval === policy.interval) &&
    (policy.count === null || o.count === policy.count) &&
    (apply.userTimeout === undefined || o.userTimeout === Math.ceil(apply.userTimeout));
}
