/**
 * One HTTP request as a server's handler gets it: upgrade it to a
 * WebSocket (RFC 6455 §4.2), answer it, or refuse it. Every answer here
 * other than an upgrade goes through {@linkcode answer}: the whole response
 * is written, then the connection ends.
 *
 * @module
 */

import { Connection } from "../connection.ts";
import type { ConnectionOptions } from "../ws/conn.ts";
import type { MemoryBudget } from "../ws/budget.ts";
import { GoingAway } from "../ws/close.ts";
import { type CompressionOptions, negotiateDeflate, parseExtensions } from "../ws/deflate.ts";
import { PerMessageDeflate } from "../ws/compression.ts";
import { HandshakeError } from "../ws/errors.ts";
import {
  buildUpgradeResponse,
  checkUpgradeRequest,
  type UpgradePolicy,
} from "../ws/server_handshake.ts";
import { buildErrorResponse, buildResponseHead } from "../http/response.ts";
import type { RequestHead } from "../http/head.ts";
import { authority } from "../http/grammar.ts";
import { writeAll, writeText } from "../http/io.ts";
import { closeConn, type SocketOptions } from "../tcp/sockopt.ts";
import { peerSubject } from "../tcp/node_tls.ts";

const encoder = new TextEncoder();

/** Options of {@linkcode ServerRequest.upgrade}. */
export interface UpgradeOptions {
  /**
   * The subprotocol to agree to: one the client offered, or null for none.
   * Absent: the first one the client offers that the server's `protocols` lists.
   */
  protocol?: string | null;
}

/** What the requests of a server need of it: one object per server, shared by all its requests. */
export interface RequestContext {
  /** Whether shutdown has begun: upgrades are then refused with 503. */
  readonly stopping: boolean;
  /** Whether the server speaks TLS (request URLs are then https:). */
  readonly secure: boolean;
  /** Upgrades past this many open WebSockets get 503; 0: no limit. */
  readonly maxConnections: number;
  /** The origins and subprotocols (`protocols`) an upgrade may have. */
  readonly upgradePolicy: UpgradePolicy;
  /** permessage-deflate as the server allows it (`ServeOptions.compression`). */
  readonly compression: boolean | CompressionOptions | undefined;
  /** The settings every WebSocket of the server gets, its defaults filled in. */
  readonly connection: ConnectionOptions;
  /** The WebSockets open now. */
  readonly connections: Set<Connection>;
  /** The memory budget all connections share. */
  readonly budget: MemoryBudget;
}

/** permessage-deflate as a handshake agreed it: the engine and the response's extension header. */
interface Deflate {
  engine: PerMessageDeflate;
  response: string;
}

/**
 * Writes a whole response, then closes the connection: the one way a
 * server answers other than with an upgrade. A peer already gone is no error.
 */
export async function answer(conn: Deno.Conn, response: string | Uint8Array): Promise<void> {
  try {
    await (typeof response === "string" ? writeText(conn, response) : writeAll(conn, response));
  } catch {
    // The peer may be gone already; nothing more to tell it.
  }
  closeConn(conn);
}

/**
 * Answers 500 if the handler left `req` unanswered: for the server only,
 * which calls it once the handler is done (a class's private method,
 * handed out by its static block so that it is no public member).
 */
export let settleRequest: (req: ServerRequest) => Promise<void>;

/** One HTTP request on its own TCP connection: upgrade it, answer it, or refuse it. */
export class ServerRequest {
  /** The connection's number (accept order, from 1). */
  readonly id: number;
  /** The request method. */
  readonly method: string;
  /** The peer. */
  readonly remoteAddr: Deno.NetAddr;
  /** The keepalive in force on the socket, read back from the kernel. */
  readonly keepalive: SocketOptions;
  /**
   * The subject of the client's certificate (e.g. `CN=alice`), verified
   * against `ServeOptions.tls.clientCa`; null on a server without it.
   */
  readonly peerSubject: string | null;

  #conn: Deno.Conn;
  #head: RequestHead;
  #url: URL | null = null;
  #headers: Headers | null = null;
  #path: string | null;
  #rest: Uint8Array;
  #ctx: RequestContext;
  #answered = false;
  #ws: Connection | null = null;

  /**
   * Made by {@linkcode serve} for each request head it reads; not for
   * direct use. Throws a {@linkcode HandshakeError} (400) when the Host
   * header passed the grammar but is no URL host (e.g. a bad %-escape).
   */
  constructor(
    id: number,
    conn: Deno.Conn,
    head: RequestHead,
    rest: Uint8Array,
    keepalive: SocketOptions,
    ctx: RequestContext,
  ) {
    this.id = id;
    this.#conn = conn;
    this.#head = head;
    this.#rest = rest;
    this.#ctx = ctx;
    this.method = head.method;
    this.remoteAddr = conn.remoteAddr as Deno.NetAddr;
    this.keepalive = keepalive;
    this.peerSubject = peerSubject(conn);
    this.#path = plainPath(head.target);
    // The URL is made when asked for (about 1 µs); whether it can be made is known now.
    if (!validHost(head.headers.get("host"))) {
      throw new HandshakeError(400, "the Host header is not a valid host");
    }
  }

  /** The request URL (http: or https:, from Host and the target). */
  get url(): URL {
    return this.#url ??= requestUrl(
      this.#head,
      this.#ctx.secure,
      this.#conn.localAddr as Deno.NetAddr,
    );
  }

  /** The URL's path (`url.pathname`), found without making the URL when the target is plain. */
  get path(): string {
    return this.#path ?? this.url.pathname;
  }

  /** The request headers. */
  get headers(): Headers {
    return this.#headers ??= this.#head.headers.toHeaders();
  }

  /** Whether the request asks for a WebSocket (`Upgrade: websocket`). */
  get isUpgrade(): boolean {
    return (this.#head.headers.get("upgrade") ?? "").toLowerCase().split(",").some((t) =>
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
  async upgrade(options?: UpgradeOptions): Promise<Connection> {
    this.#claim();
    let key: string;
    let protocol: string | null;
    let deflate: Deflate | null;
    try {
      ({ key, protocol } = this.#checkUpgrade());
      deflate = this.#negotiateCompression();
    } catch (err) {
      if (err instanceof HandshakeError) await this.#refuse(err);
      throw err;
    }
    const chosen = options?.protocol;
    if (chosen !== undefined) {
      if (chosen !== null && !this.#offered().includes(chosen)) {
        await this.#refuse(new HandshakeError(500, "internal error"));
        throw new TypeError(`the client did not offer subprotocol ${chosen}`);
      }
      protocol = chosen;
    }
    const response = buildUpgradeResponse(key, protocol, deflate ? deflate.response : "");
    try {
      await writeText(this.#conn, response);
    } catch (err) {
      closeConn(this.#conn); // the peer went away mid-handshake: nothing is left to answer
      throw err;
    }
    return this.#open(protocol, deflate);
  }

  /**
   * Answers with a plain HTTP response and ends the connection. `body` is
   * text (sent as UTF-8) or bytes, empty by default; `headers` may not set
   * Content-Length or Connection. A HEAD request gets the head only.
   */
  async respond(
    status: number,
    body?: string | Uint8Array,
    headers?: Record<string, string>,
  ): Promise<void> {
    this.#claim();
    const bytes = typeof body === "string" ? encoder.encode(body) : body ?? new Uint8Array(0);
    const head = encoder.encode(buildResponseHead(status, bytes.length, headers));
    await answer(this.#conn, this.method === "HEAD" ? head : concat(head, bytes));
  }

  /**
   * Refuses the request: `status` (4xx or 5xx; a RangeError otherwise) with
   * `message` as a one-line text body, then ends the connection.
   */
  async reject(status: number, message?: string, headers?: Record<string, string>): Promise<void> {
    this.#claim();
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new RangeError(`a refusal needs a 4xx or 5xx status, not ${status}`);
    }
    await this.#refuse(new HandshakeError(status, message ?? "", headers));
  }

  static {
    settleRequest = (req) => req.#settle();
  }

  /** Answers 500 if the handler left the request unanswered. */
  async #settle(): Promise<void> {
    if (this.#answered) return;
    this.#answered = true;
    await this.#refuse(new HandshakeError(500, "the server did not answer this request"));
  }

  /**
   * The key to answer and the subprotocol, or the {@linkcode HandshakeError}
   * that refuses the upgrade: shutdown and the connection limit first (503),
   * then the request's own checks (RFC 6455 §4.2.1, origins).
   */
  #checkUpgrade(): { key: string; protocol: string | null } {
    const ctx = this.#ctx;
    if (ctx.stopping) throw new HandshakeError(503, "the server is shutting down");
    const max = ctx.maxConnections;
    if (max > 0 && ctx.connections.size >= max) {
      throw new HandshakeError(503, `the server is at its limit of ${max} connections`);
    }
    return checkUpgradeRequest(this.#head, ctx.upgradePolicy);
  }

  /** The subprotocols the client offered. */
  #offered(): string[] {
    return (this.#head.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
  }

  /**
   * permessage-deflate, if the server allows it and the client offers it:
   * the first acceptable offer in the client's order (RFC 7692 §5). While
   * the memory budget is more than half used, neither side keeps its
   * compression context, so the connection costs no zlib memory of its own.
   */
  #negotiateCompression(): Deflate | null {
    const wanted = this.#ctx.compression;
    if (!wanted) return null;
    const value = this.#head.headers.get("sec-websocket-extensions");
    const offers = value === null ? null : parseExtensions(value);
    if (offers === null) return null; // none, or malformed: decline
    const o = typeof wanted === "object" ? wanted : {};
    const budget = this.#ctx.budget;
    const tight = budget.used > budget.limit / 2;
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

  /** The WebSocket on this request's connection, once the 101 response is written. */
  #open(protocol: string | null, deflate: Deflate | null): Connection {
    const { connection, connections, budget } = this.#ctx;
    const ws = new Connection(this.#conn, this.keepalive, {
      ...connection,
      role: "server",
      initial: this.#rest,
      protocol,
      budget,
      deflate: deflate?.engine ?? null,
    });
    this.#ws = ws;
    connections.add(ws);
    ws.closed.then(() => connections.delete(ws));
    // An upgrade that finished while shutdown began goes too, with Going Away.
    if (this.#ctx.stopping) ws.close(GoingAway, "server shutting down", "shutdown");
    return ws;
  }

  /** Marks the request answered; a second answer is the caller's bug. */
  #claim(): void {
    if (this.#answered) throw new TypeError("this request was answered already");
    this.#answered = true;
  }

  /** Answers with the refusal `err` describes (RFC 6455 §4.2.1) and ends the connection. */
  #refuse(err: HandshakeError): Promise<void> {
    return answer(this.#conn, buildErrorResponse(err));
  }
}

/**
 * The request's URL, from its target and Host (an HTTP/1.0 request without
 * Host: the address it came in on); a Host that is no URL host is refused
 * with 400.
 */
function requestUrl(head: RequestHead, secure: boolean, local: Deno.NetAddr): URL {
  const host = head.headers.get("host") ?? authority(local);
  try {
    return new URL(head.target, `${secure ? "https" : "http"}://${host}`);
  } catch {
    throw new HandshakeError(400, "the Host header is not a valid host");
  }
}

/** Hosts seen, and whether a URL can be made with each: clients send the same few. */
const hostValidity = new Map<string, boolean>();
const HOST_CACHE_MAX = 256;

/** Whether `new URL()` takes `host` (null: none, which is fine); cached. */
function validHost(host: string | null): boolean {
  if (host === null) return true;
  let valid = hostValidity.get(host);
  if (valid === undefined) {
    valid = URL.canParse(`http://${host}/`);
    if (hostValidity.size >= HOST_CACHE_MAX) hostValidity.clear();
    hostValidity.set(host, valid);
  }
  return valid;
}

/**
 * The path of an origin-form `target` as `URL.pathname` gives it, when that
 * is the target's own text up to `?`: only unreserved characters and `/`, no
 * empty or dot segment. Null otherwise (the URL then says).
 */
function plainPath(target: string): string | null {
  let i = 1;
  for (; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x3f) break; // ?
    const slash = c === 0x2f;
    if (slash || c === 0x2e) { // a "/" or "." right after a "/": an empty or dot segment
      if (target.charCodeAt(i - 1) === 0x2f) return null;
      if (slash) continue;
    }
    const plain = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) ||
      (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f || c === 0x7e || c === 0x2e;
    if (!plain) return null;
  }
  return target.slice(0, i);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
