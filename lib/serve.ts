/**
 * The server side: listen, apply Go's keepalive to every accepted socket
 * (read back), read each HTTP/1.1 request head (bounded in size and time),
 * and hand a {@linkcode ServerRequest} to the handler, which upgrades it
 * to a WebSocket, answers it, or refuses it.
 *
 * ```ts
 * const server = serve({ port: 8080 }, async (req) => {
 *   if (req.url.pathname !== "/chat") return await req.reject(404, "no such path");
 *   const ws = await req.upgrade();
 *   for await (const msg of ws) await ws.send(msg);
 * });
 * ```
 *
 * Every connection of a server shares one memory budget (see `budget.ts`).
 * `shutdown()` stops accepting, sends 1001 to every WebSocket, waits a
 * bounded time for the answers, then cuts whoever is left.
 *
 * @module
 */

import { Connection } from "./connection.ts";
import type { ConnectionOptions } from "./ws/conn.ts";
import type { CompressionOptions } from "./ws/deflate.ts";
import { type KeepAliveConfig, type KeepAlivePolicy, resolveKeepAlive } from "./tcp/keepalive.ts";
import {
  applyPolicy,
  applyToListener,
  closeConn,
  readSocketOptions,
  type SocketOptions,
} from "./tcp/sockopt.ts";
import { type Eviction, MemoryBudget } from "./ws/budget.ts";
import { GoingAway } from "./ws/close.ts";
import { negotiateDeflate, parseExtensions, PerMessageDeflate } from "./ws/deflate.ts";
import { HandshakeError } from "./ws/errors.ts";
import {
  buildErrorResponse,
  buildResponseHead,
  buildUpgradeResponse,
  checkUpgradeRequest,
  DEFAULT_MAX_HEAD_SIZE,
  parseRequestHead,
  type RequestHead,
} from "./ws/handshake.ts";
import { readHead, writeAll } from "./ws/http.ts";
import { errorText } from "./errors.ts";

/** Default bound on reading a request head (gorilla and ws use 10 s too). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Gorilla's chat example: ping every 54 s (9/10 of the pong wait)… */
export const DEFAULT_SERVER_PING_INTERVAL_MS = 54_000;
/** …and close when nothing arrives for 60 s. */
export const DEFAULT_SERVER_PONG_TIMEOUT_MS = 60_000;
/** How long a graceful shutdown waits for clients to answer close 1001. */
export const SHUTDOWN_TIMEOUT_MS = 5_000;
/**
 * Default memory budget of a server: the bytes all its connections may hold
 * together in read buffers, partial messages, unread messages and send queues.
 */
export const DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024;

/** First and longest pause after a failed accept (Go's net/http: 5 ms doubling to 1 s). */
const ACCEPT_BACKOFF_MIN_MS = 5;
const ACCEPT_BACKOFF_MAX_MS = 1_000;

const encoder = new TextEncoder();

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
}

/** Options of {@linkcode serve}. Durations are in milliseconds. */
export interface ServeOptions extends ConnectionOptions {
  /**
   * permessage-deflate (RFC 7692): `true` to accept it when a client offers
   * it, or options. Off by default, as in ws and gorilla.
   */
  compression?: boolean | CompressionOptions;
  /** Host to bind (default `0.0.0.0`, every interface; the CLI binds `localhost`). */
  hostname?: string;
  /** Port to bind (default 8080; 0 picks a free one). */
  port?: number;
  /** PEM certificate and key: serve `wss://` and `https://`. */
  tls?: { cert: string; key: string };
  /** Share the port with other processes (SO_REUSEPORT, Linux; needs --unstable-net). */
  reusePort?: boolean;
  /**
   * TCP keepalive for accepted sockets: Go's `KeepAliveConfig` (a zero or
   * absent field takes Go's default, a negative one leaves the OS value),
   * `true` for Go's defaults (on, 15 s / 15 s / 9; the default), `false` off,
   * or a policy `resolveKeepAlive()` made already, used as it is.
   */
  keepAlive?: boolean | KeepAliveConfig | KeepAlivePolicy;
  /** TCP_USER_TIMEOUT in ms for accepted sockets; absent leaves the OS value. */
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
  /** Called when the memory budget evicts a connection (it then closes with 1013). */
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
   * Stops accepting, closes every WebSocket with 1001, waits up to
   * `timeout` ms (default 5 s) for their answers, then ends the rest.
   */
  shutdown(timeout?: number): Promise<void>;
}

/** Options of {@linkcode ServerRequest.upgrade}. */
export interface UpgradeOptions {
  /**
   * The subprotocol to agree to: one the client offered, or null for none.
   * Absent: the first one the client offers that the server's `protocols` lists.
   */
  protocol?: string | null;
}

/** What a request needs of its server. */
interface RequestContext {
  options: ServeOptions;
  connections: Set<Connection>;
  budget: MemoryBudget;
  stopping: () => boolean;
  keepalive: SocketOptions;
  secure: boolean;
}

/** One HTTP request on its own TCP connection: upgrade it, answer it, or refuse it. */
export class ServerRequest {
  /** The connection's number (accept order, from 1). */
  readonly id: number;
  /** The request method. */
  readonly method: string;
  /** The request URL (http: or https:, from Host and the target). */
  readonly url: URL;
  /** The request headers. */
  readonly headers: Headers;
  /** The peer. */
  readonly remoteAddr: Deno.NetAddr;
  /** The keepalive in force on the socket, read back from the kernel. */
  readonly keepalive: SocketOptions;

  #conn: Deno.Conn;
  #head: RequestHead;
  #rest: Uint8Array;
  #ctx: RequestContext;
  #answered = false;
  #ws: Connection | null = null;

  /** Made by {@linkcode serve} for each request head it reads; not for direct use. */
  constructor(
    id: number,
    conn: Deno.Conn,
    head: RequestHead,
    rest: Uint8Array,
    ctx: RequestContext,
  ) {
    this.id = id;
    this.#conn = conn;
    this.#head = head;
    this.#rest = rest;
    this.#ctx = ctx;
    this.method = head.method;
    this.headers = head.headers;
    this.remoteAddr = conn.remoteAddr as Deno.NetAddr;
    this.keepalive = ctx.keepalive;
    this.url = new URL(
      head.target,
      `${ctx.secure ? "https" : "http"}://${head.headers.get("host")}`,
    );
  }

  /** Whether the request asks for a WebSocket (`Upgrade: websocket`). */
  get isUpgrade(): boolean {
    return (this.headers.get("upgrade") ?? "").toLowerCase().split(",").some((t) =>
      t.trim() === "websocket"
    );
  }

  /** Whether the request was answered (upgraded, responded or rejected). */
  get answered(): boolean {
    return this.#answered;
  }

  /** The WebSocket this request was upgraded to, or null. */
  get webSocket(): Connection | null {
    return this.#ws;
  }

  /**
   * Completes the opening handshake (RFC 6455 §4.2) and returns the
   * WebSocket. A request that is not a valid upgrade (wrong method or
   * version, bad key, foreign origin…), one past `maxConnections`, or one
   * during shutdown is refused with the fitting status (400, 403, 405, 426,
   * 503) and the promise rejects with a {@linkcode HandshakeError} that
   * carries it. Throws a TypeError when the request was answered already or
   * `protocol` is not one the client offered.
   */
  async upgrade(options: UpgradeOptions = {}): Promise<Connection> {
    this.#claim();
    const { options: serveOptions, connections } = this.#ctx;
    let key: string;
    let protocol: string | null;
    let deflate: { engine: PerMessageDeflate; response: string } | null = null;
    try {
      if (this.#ctx.stopping()) throw new HandshakeError(503, "the server is shutting down");
      const max = serveOptions.maxConnections ?? 0;
      if (max > 0 && connections.size >= max) {
        throw new HandshakeError(503, `the server is at its limit of ${max} connections`);
      }
      ({ key, protocol } = checkUpgradeRequest(this.#head, {
        origins: serveOptions.origins,
        subprotocols: serveOptions.protocols,
      }));
      deflate = this.#negotiateCompression();
    } catch (err) {
      if (err instanceof HandshakeError) await this.#send(buildErrorResponse(err));
      throw err;
    }
    if (options.protocol !== undefined) {
      const offered = (this.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) =>
        p.trim()
      );
      if (options.protocol !== null && !offered.includes(options.protocol)) {
        await this.#send(buildErrorResponse(new HandshakeError(500, "internal error")));
        throw new TypeError(`the client did not offer subprotocol ${options.protocol}`);
      }
      protocol = options.protocol;
    }
    const extensions = deflate ? deflate.response : "";
    await writeAll(this.#conn, encoder.encode(buildUpgradeResponse(key, protocol, extensions)));
    const ws = new Connection(this.#conn, this.keepalive, {
      role: "server",
      initial: this.#rest,
      protocol,
      maxMessageSize: serveOptions.maxMessageSize,
      maxFragments: serveOptions.maxFragments,
      pingInterval: serveOptions.pingInterval ?? DEFAULT_SERVER_PING_INTERVAL_MS,
      pongTimeout: serveOptions.pongTimeout ?? DEFAULT_SERVER_PONG_TIMEOUT_MS,
      stallTimeout: serveOptions.stallTimeout,
      closeTimeout: serveOptions.closeTimeout,
      sendHighWater: serveOptions.sendHighWater,
      autoPong: serveOptions.autoPong,
      budget: this.#ctx.budget,
      deflate: deflate?.engine ?? null,
    });
    this.#ws = ws;
    connections.add(ws);
    ws.closed.then(() => connections.delete(ws));
    // An upgrade that finished while shutdown began goes too, with 1001.
    if (this.#ctx.stopping()) ws.close(GoingAway, "server shutting down", "shutdown");
    return ws;
  }

  /**
   * Answers with a plain HTTP response and ends the connection. `body` is
   * text (sent as UTF-8) or bytes; `headers` may not set Content-Length or
   * Connection. A HEAD request gets the head only.
   */
  async respond(
    status: number,
    body: string | Uint8Array = "",
    headers: Record<string, string> = {},
  ): Promise<void> {
    this.#claim();
    const bytes = typeof body === "string" ? encoder.encode(body) : body;
    const head = encoder.encode(buildResponseHead(status, bytes.length, headers));
    await this.#send(this.method === "HEAD" ? head : concat(head, bytes));
  }

  /** Refuses the request: `status` with `message` as a one-line text body, then ends the connection. */
  async reject(status: number, message = "", headers: Record<string, string> = {}): Promise<void> {
    this.#claim();
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new RangeError(`a refusal needs a 4xx or 5xx status, not ${status}`);
    }
    await this.#send(buildErrorResponse(new HandshakeError(status, message, headers)));
  }

  /**
   * permessage-deflate, if the server allows it and the client offers it:
   * the first acceptable offer in the client's order (RFC 7692 §5). While
   * the memory budget is more than half used, neither side keeps its
   * compression context, so the connection costs no zlib memory of its own.
   */
  #negotiateCompression(): { engine: PerMessageDeflate; response: string } | null {
    const wanted = this.#ctx.options.compression;
    if (!wanted) return null;
    const value = this.headers.get("sec-websocket-extensions");
    const offers = value === null ? null : parseExtensions(value);
    if (offers === null) return null; // none, or malformed: decline
    const o = typeof wanted === "object" ? wanted : {};
    const tight = this.#ctx.budget.used > this.#ctx.budget.limit / 2;
    const agreed = negotiateDeflate(offers, {
      serverNoContextTakeover: o.serverNoContextTakeover || tight,
      clientNoContextTakeover: o.clientNoContextTakeover || tight,
    });
    if (agreed === null) return null;
    return {
      engine: new PerMessageDeflate(agreed.params, "server", o.threshold, o.level),
      response: agreed.response,
    };
  }

  /** Marks the request answered; a second answer is the caller's bug. */
  #claim(): void {
    if (this.#answered) throw new TypeError("this request was answered already");
    this.#answered = true;
  }

  /** Writes a whole response and closes the connection; a peer already gone is no error. */
  async #send(response: string | Uint8Array): Promise<void> {
    try {
      await writeAll(
        this.#conn,
        typeof response === "string" ? encoder.encode(response) : response,
      );
    } catch {
      // The peer may be gone already; nothing more to tell it.
    }
    closeConn(this.#conn);
  }

  /** Answers 500 if the handler left the request unanswered (called by the server). */
  async settle(): Promise<void> {
    if (this.#answered) return;
    this.#answered = true;
    await this.#send(
      buildErrorResponse(new HandshakeError(500, "the server did not answer this request")),
    );
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Listens and serves: every accepted TCP (or TLS) connection gets Go's
 * keepalive (read back into `req.keepalive`), its request head is read
 * within `handshakeTimeout`, and `handler` receives it. A malformed or
 * oversized head is answered by the server itself (400, 431, 505) and
 * reported to `onRefused`. A handler that throws is reported to `onError`;
 * its request gets 500 if unanswered, its WebSocket 1011 if open.
 *
 * Throws what `Deno.listen` throws (an address in use…), and a RangeError
 * for a keepalive value Linux refuses.
 */
export function serve(
  options: ServeOptions,
  handler: (request: ServerRequest) => void | Promise<void>,
): Server {
  const policy = resolveKeepAlive(options.keepAlive ?? true);
  const applyOptions = { userTimeout: options.userTimeout || undefined };
  const listener: Deno.Listener = options.tls
    ? Deno.listenTls(
      {
        hostname: options.hostname ?? "0.0.0.0",
        port: options.port ?? 8080,
        cert: options.tls.cert,
        key: options.tls.key,
        reusePort: options.reusePort,
      } as Deno.ListenTlsOptions & Deno.TlsCertifiedKeyPem,
    )
    : Deno.listen({
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port ?? 8080,
      reusePort: options.reusePort,
    });
  const addr = listener.addr as Deno.NetAddr;
  // Linux copies a listening socket's options to every socket it accepts:
  // set them once here, and only read them back per connection.
  const onListener = applyToListener(listener, policy, applyOptions);
  const inherited = onListener.verified && onListener.errors.length === 0 &&
    matches(onListener, policy, applyOptions);
  const budget = new MemoryBudget(options.memoryBudget ?? DEFAULT_MEMORY_BUDGET);
  if (options.onEvict) {
    const onEvict = options.onEvict;
    budget.onEvict = (member, eviction) => onEvict(member as Connection, eviction);
  }
  const connections = new Set<Connection>();
  // Connections still sending their head, with their deadlines: one shared
  // timer ends the late ones (deadlines come in order, as the timeout is one).
  const handshaking = new Map<Deno.Conn, number>();
  const timedOut = new WeakSet<Deno.Conn>();
  let handshakeTimer: ReturnType<typeof setInterval> | undefined;
  const handlers = new Set<Promise<void>>();
  const finished = Promise.withResolvers<void>();
  const handshakeTimeout = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const handshakeTick = Math.max(10, Math.min(1_000, handshakeTimeout / 10));
  const endLateHandshakes = () => {
    const now = Date.now();
    for (const [conn, deadline] of handshaking) {
      if (deadline > now) break;
      handshaking.delete(conn);
      timedOut.add(conn);
      closeConn(conn); // the pending read fails; handle() reports the timeout
    }
    if (handshaking.size === 0) {
      clearInterval(handshakeTimer);
      handshakeTimer = undefined;
    }
  };
  let stopping = false;
  let nextId = 1;

  const reportError = (err: unknown, req: ServerRequest | null) => {
    if (options.onError) options.onError(err, req);
    else console.error(err);
  };

  async function acceptLoop(): Promise<void> {
    let backoff = 0;
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
        backoff = 0;
      } catch (err) {
        if (stopping || err instanceof Deno.errors.BadResource) return;
        // Out of file descriptors (EMFILE) and the like: retrying at once
        // would spin. Back off as Go's net/http does.
        backoff = backoff ? Math.min(backoff * 2, ACCEPT_BACKOFF_MAX_MS) : ACCEPT_BACKOFF_MIN_MS;
        reportError(new Error(`accept failed: ${errorText(err)}; retrying in ${backoff}ms`), null);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        continue;
      }
      const done = handle(conn, nextId++).catch((err) => reportError(err, null));
      handlers.add(done);
      done.then(() => handlers.delete(done));
    }
  }

  async function handle(conn: Deno.Conn, id: number): Promise<void> {
    const remoteAddr = conn.remoteAddr as Deno.NetAddr;
    let keepalive = inherited ? readSocketOptions(conn) : null;
    if (keepalive === null || !matches(keepalive, policy, applyOptions)) {
      keepalive = applyPolicy(conn, policy, applyOptions);
    }
    handshaking.set(conn, Date.now() + handshakeTimeout);
    handshakeTimer ??= setInterval(endLateHandshakes, handshakeTick);
    let head: RequestHead;
    let rest: Uint8Array;
    try {
      const got = await readHead(conn, { maxHeadSize: DEFAULT_MAX_HEAD_SIZE });
      if (!got) {
        closeConn(conn);
        return;
      }
      head = parseRequestHead(got.head);
      rest = got.rest;
    } catch (err) {
      if (err instanceof HandshakeError) {
        try {
          await writeAll(conn, encoder.encode(buildErrorResponse(err)));
        } catch {
          // The peer is gone.
        }
      }
      closeConn(conn);
      const late = timedOut.has(conn);
      // A connection the server itself cut short (shutdown) is not a refusal.
      if (stopping && !late && !(err instanceof HandshakeError)) return;
      options.onRefused?.({
        id,
        remoteAddr,
        status: err instanceof HandshakeError ? err.status : 0,
        message: late
          ? `no request head within ${handshakeTimeout}ms`
          : err instanceof HandshakeError
          ? err.message
          : `reading the request failed: ${errorText(err)}`,
        timedOut: late,
      });
      return;
    } finally {
      handshaking.delete(conn);
    }
    let req: ServerRequest;
    try {
      req = new ServerRequest(id, conn, head, rest, {
        options,
        connections,
        budget,
        stopping: () => stopping,
        keepalive,
        secure: Boolean(options.tls),
      });
    } catch {
      // The Host passed the grammar but is no URL host (e.g. a bad %-escape).
      const refusal = new HandshakeError(400, "the Host header is not a valid host");
      await writeAll(conn, encoder.encode(buildErrorResponse(refusal))).catch(() => {});
      closeConn(conn);
      options.onRefused?.({
        id,
        remoteAddr,
        status: 400,
        message: refusal.message,
        timedOut: false,
      });
      return;
    }
    try {
      await handler(req);
      await req.settle();
    } catch (err) {
      reportError(err, req);
      if (req.webSocket?.isOpen) req.webSocket.abort("internal error");
      await req.settle();
    }
  }

  acceptLoop().finally(() => {
    // When the listener is gone, the server is finished once shutdown is done.
  });
  options.onListen?.(addr);

  return {
    addr,
    connections,
    budget,
    finished: finished.promise,
    async shutdown(timeout = SHUTDOWN_TIMEOUT_MS) {
      if (stopping) return finished.promise;
      stopping = true;
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      for (const conn of handshaking.keys()) closeConn(conn);
      handshaking.clear();
      clearInterval(handshakeTimer);
      const closing = [...connections].map((ws) =>
        ws.close(GoingAway, "server shutting down", "shutdown")
      );
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(closing),
        new Promise((resolve) => timer = setTimeout(resolve, timeout)),
      ]);
      clearTimeout(timer);
      // Whoever has not answered by now is cut: the promise is bounded.
      for (const ws of connections) ws.terminate("no answer to close 1001 during shutdown");
      await Promise.race([
        Promise.allSettled([...handlers]),
        new Promise((resolve) => timer = setTimeout(resolve, 100)),
      ]);
      clearTimeout(timer);
      finished.resolve();
    },
  };
}

/** Whether options read back from a socket are what `policy` asks for. */
function matches(
  o: SocketOptions,
  policy: ReturnType<typeof resolveKeepAlive>,
  apply: { userTimeout?: number },
): boolean {
  return o.verified && o.keepAlive === policy.enabled && o.noDelay &&
    (policy.idle === null || o.idle === policy.idle) &&
    (policy.interval === null || o.interval === policy.interval) &&
    (policy.count === null || o.count === policy.count) &&
    (apply.userTimeout === undefined || o.userTimeout === Math.ceil(apply.userTimeout));
}
