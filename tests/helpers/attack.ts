/**
 * What the attack tests (`tests/attack_test.ts`, `tests/fast_client_test.ts`)
 * share: the scale (CI or full size), the server's memory and CPU read from
 * /proc, a watchdog that stops an attack once the server passes its memory
 * bound, `/healthz` probes, raw attacking connections that write large
 * pre-built buffers of frames and read what comes back without keeping it,
 * a well-behaved client to run beside an attack, and the Go and Python
 * peers under `tests/attackers/`.
 *
 * Environment:
 * - `KEEPALIVE_WS_STRESS=1` runs every attack at the issue's full size
 *   (`deno task stress`);
 * - `KEEPALIVE_WS_ABORT_MIB=N` lets an attack go on until the server's RSS
 *   reaches N MiB instead of stopping at the test's bound (to measure how far
 *   a server that fails the bound really goes; the test still fails).
 *
 * @module
 */

import { frame, RawPeer } from "./raw.ts";
import type { LogEvent, ServerProcess } from "./process.ts";
import { buildGoPeer, PYTHON } from "./peers.ts";

/** Whether the attacks run at full size (`deno task stress`) rather than CI size. */
export const STRESS: boolean = Deno.env.get("KEEPALIVE_WS_STRESS") === "1";

/** `ci` normally, `full` under `deno task stress`. */
export function scaled<T>(ci: T, full: T): T {
  return STRESS ? full : ci;
}

/** 1 KiB. */
export const KiB = 1024;
/** 1 MiB. */
export const MiB = 1024 * 1024;

/** Formats bytes as MiB with one decimal, for messages. */
export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------
// The server process, from /proc

/** Memory of a process, in bytes, from /proc/PID/status. */
export interface MemInfo {
  /** VmRSS: resident now. */
  rss: number;
  /** VmHWM: the peak resident size so far. */
  hwm: number;
  /** VmSize: the virtual size (what has been allocated, touched or not). */
  vmSize: number;
}

/** The memory of process `pid`, or null when it is gone. */
export function memInfo(pid: number): MemInfo | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return null;
  }
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
  if (!/^VmRSS:/m.test(text)) return null; // a zombie: it has exited
  return { rss: kib("VmRSS") * KiB, hwm: kib("VmHWM") * KiB, vmSize: kib("VmSize") * KiB };
}

/** CPU time (user + system) process `pid` has used, in ms; null when it is gone. */
export function cpuMs(pid: number): number | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  // Fields after the command name (which may hold spaces) start at ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 (1-based), in clock ticks of 10 ms on Linux.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Samples a process's RSS every `intervalMs` and keeps the peak. `signal`
 * aborts as soon as the RSS passes `abortAt` or the process is gone, so an
 * attack on a server that fails its bound stops there instead of taking
 * the machine's memory.
 */
export class MemoryWatch implements Disposable {
  /** The highest RSS seen (bytes), VmHWM included. */
  peak = 0;
  /** The RSS when the watch started. */
  readonly start: MemInfo;
  /** The highest VmSize seen. */
  peakVmSize = 0;
  /** Whether the process was gone at some sample. */
  gone = false;
  /** Aborted when the RSS passes the abort threshold or the process is gone. */
  readonly signal: AbortSignal;
  /** The RSS at which the watch aborts. */
  readonly abortAt: number;
  #controller = new AbortController();
  #timer: ReturnType<typeof setInterval>;
  #pid: number;

  /**
   * @param pid the process
   * @param bound the test's bound; the watch aborts there (or at
   *   `KEEPALIVE_WS_ABORT_MIB` when set)
   */
  constructor(pid: number, bound: number, intervalMs = 50) {
    this.#pid = pid;
    const override = Number(Deno.env.get("KEEPALIVE_WS_ABORT_MIB") ?? 0);
    this.abortAt = override > 0 ? override * MiB : bound;
    this.signal = this.#controller.signal;
    const start = memInfo(pid);
    if (!start) throw new Error(`process ${pid} is gone`);
    this.start = start;
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Takes one sample now. */
  sample(): void {
    const m = memInfo(this.#pid);
    if (!m) {
      this.gone = true;
      this.#controller.abort(new Error("the server is gone"));
      return;
    }
    this.peak = Math.max(this.peak, m.rss, m.hwm);
    this.peakVmSize = Math.max(this.peakVmSize, m.vmSize);
    if (this.peak >= this.abortAt && !this.signal.aborted) {
      this.#controller.abort(
        new Error(`the server's RSS reached ${mib(this.peak)} (stopping at ${mib(this.abortAt)})`),
      );
    }
  }

  /** Why the watch aborted, or null. */
  get reason(): string | null {
    return this.signal.aborted ? String((this.signal.reason as Error).message) : null;
  }

  /** Stops sampling. */
  [Symbol.dispose](): void {
    this.sample();
    clearInterval(this.#timer);
  }
}

// ---------------------------------------------------------------------------
// /healthz

/** One `/healthz` answer. */
export interface Health {
  /** HTTP status, 0 when none came. */
  status: number;
  /** The body. */
  body: string;
  /** Time to the full answer (ms). */
  ms: number;
  /** Why no answer came, if none did. */
  error?: string;
}

/** GET /healthz on a fresh connection (`Connection: close`), bounded by `timeoutMs`. */
export async function healthz(port: number, timeoutMs = 5_000): Promise<Health> {
  const started = performance.now();
  let conn: Deno.TcpConn | null = null;
  const timer = setTimeout(() => conn?.close(), timeoutMs);
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(
      new TextEncoder().encode(
        `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
      ),
    );
    let text = "";
    const buf = new Uint8Array(4096);
    const decoder = new TextDecoder();
    for (let n; (n = await conn.read(buf)) !== null;) text += decoder.decode(buf.subarray(0, n));
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
    const body = text.slice(text.indexOf("\r\n\r\n") + 4);
    return { status, body, ms: performance.now() - started };
  } catch (err) {
    const ms = performance.now() - started;
    const error = ms >= timeoutMs - 1
      ? `no answer within ${timeoutMs}ms`
      : err instanceof Error
      ? err.message
      : String(err);
    return { status: 0, body: "", ms, error };
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // Closed by the timer.
    }
  }
}

/** Whether a `/healthz` answer is the healthy one: 200 `ok`. */
export function healthy(h: Health): boolean {
  return h.status === 200 && h.body.trim() === "ok";
}

/** Probes `/healthz` every `everyMs` until stopped; keeps the failures and the slowest answer. */
export class HealthProbe {
  /** Probes made. */
  count = 0;
  /** The slowest healthy answer (ms). */
  worstMs = 0;
  /** Unhealthy answers, described. */
  readonly failures: string[] = [];
  #stopped = false;
  #loop: Promise<void>;

  constructor(port: number, everyMs = 250, timeoutMs = 5_000) {
    this.#loop = (async () => {
      while (!this.#stopped) {
        const h = await healthz(port, timeoutMs);
        this.count++;
        if (healthy(h)) this.worstMs = Math.max(this.worstMs, h.ms);
        else this.failures.push(describeHealth(h));
        await delay(everyMs);
      }
    })();
  }

  /** Stops probing and waits for the probe in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }
}

/** One line for a /healthz answer. */
export function describeHealth(h: Health): string {
  return h.error ?? `${h.status} ${JSON.stringify(h.body.slice(0, 40))} in ${h.ms.toFixed(0)}ms`;
}

// ---------------------------------------------------------------------------
// Frames in bulk

/** `unit` repeated `n` times, in one buffer. */
export function repeat(unit: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(unit.length * n);
  for (let i = 0; i < n; i++) out.set(unit, i * unit.length);
  return out;
}

/** As many copies of `unit` as fit in about `bytes` (at least one). */
export function fill(unit: Uint8Array, bytes = 64 * KiB): Uint8Array {
  return repeat(unit, Math.max(1, Math.floor(bytes / unit.length)));
}

/** Opcodes (RFC 6455 §5.2). */
export const Op = { Continuation: 0x0, Text: 0x1, Binary: 0x2, Close: 0x8, Ping: 0x9, Pong: 0xa };

/** A masked client frame, built by tests/helpers/raw.ts. */
export function clientFrame(
  opcode: number,
  payload: string | Uint8Array = new Uint8Array(0),
  fin = true,
): Uint8Array {
  return frame(opcode, payload, { mask: true, fin });
}

/** A masked close frame with `code`. */
export function clientClose(code = 1000): Uint8Array {
  return clientFrame(Op.Close, Uint8Array.of(code >> 8, code & 0xff));
}

// ---------------------------------------------------------------------------
// An attacking connection

/** How an {@linkcode Attacker} has ended, as far as it has seen. */
export interface AttackerEnd {
  /** The close code the server sent (1005 for an empty close), or null. */
  code: number | null;
  /** The close reason. */
  reason: string;
  /** How TCP ended: eof, reset, or null while up (or not read). */
  tcp: "eof" | "reset" | null;
}

/**
 * A raw upgraded connection for attacks: it writes large pre-built buffers
 * and (unless told not to) reads everything the server sends, counting data
 * frames and keeping only the close frame. The reader parses as it goes and
 * keeps nothing else, so millions of echoes cost nothing here.
 */
export class Attacker implements AsyncDisposable {
  /** Our end's address, as the server logs it in `remote`. */
  readonly local: string;
  /** Data frames received. */
  frames = 0;
  /** Payload bytes of data frames received. */
  payloadBytes = 0;
  /** What has ended. */
  readonly end: AttackerEnd = { code: null, reason: "", tcp: null };
  /** Bytes written. */
  written = 0;
  /** Resolves when a close frame arrives or TCP ends (never when not reading). */
  readonly ended: Promise<void>;
  readonly conn: Deno.Conn;
  #endedResolve!: () => void;
  #closed = false;
  #reading: Promise<void> | null = null;
  // The frame parser's state: header bytes so far, payload bytes still to skip.
  #head = new Uint8Array(14);
  #headLen = 0;
  #skip = 0;
  #opcode = 0;
  #fin = false;
  #closePayload: number[] | null = null;

  private constructor(conn: Deno.Conn, leftover: Uint8Array, read: boolean) {
    this.conn = conn;
    const addr = conn.localAddr as Deno.NetAddr;
    this.local = `${addr.hostname}:${addr.port}`;
    this.ended = new Promise((resolve) => this.#endedResolve = resolve);
    this.#parse(leftover);
    if (read) this.startReading();
  }

  /** Connects to `port`, upgrades `/echo`, and starts reading unless `read` is false. */
  static async open(port: number, options: { read?: boolean } = {}): Promise<Attacker> {
    const peer = await RawPeer.connect(port);
    try {
      await peer.handshake();
      const leftover = peer.buffered > 0 ? await peer.readExactly(peer.buffered) : new Uint8Array();
      return new Attacker(peer.conn, leftover, options.read ?? true);
    } catch (err) {
      await peer[Symbol.asyncDispose]();
      throw err;
    }
  }

  /** Opens `n` attackers, `parallel` handshakes at a time. */
  static async openMany(
    port: number,
    n: number,
    options: { read?: boolean; parallel?: number } = {},
  ): Promise<Attacker[]> {
    const out: Attacker[] = [];
    const parallel = options.parallel ?? 32;
    for (let i = 0; i < n; i += parallel) {
      const batch = Array.from(
        { length: Math.min(parallel, n - i) },
        () => Attacker.open(port, options),
      );
      out.push(...await Promise.all(batch));
    }
    return out;
  }

  /** Starts the reader (for an attacker opened with `read: false`, e.g. to see how it ended). */
  startReading(): Promise<void> {
    this.#reading ??= (async () => {
      const buf = new Uint8Array(256 * KiB);
      try {
        while (this.end.code === null) {
          const n = await this.conn.read(buf);
          if (n === null) {
            this.end.tcp = "eof";
            break;
          }
          this.#parse(buf.subarray(0, n));
        }
      } catch {
        if (!this.#closed) this.end.tcp = "reset";
      }
      this.#endedResolve();
    })();
    return this.#reading;
  }

  /** Whether a close frame came or TCP ended. */
  get isEnded(): boolean {
    return this.end.code !== null || this.end.tcp !== null;
  }

  #parse(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length && this.end.code === null) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, bytes.length - i);
        if (this.#closePayload) this.#closePayload.push(...bytes.subarray(i, i + n));
        else if (this.#opcode <= Op.Binary) this.payloadBytes += n;
        this.#skip -= n;
        i += n;
        if (this.#skip === 0) this.#frameDone();
        continue;
      }
      this.#head[this.#headLen++] = bytes[i++];
      const need = this.#headNeed();
      if (need === null || this.#headLen < need) continue;
      const h = this.#head;
      this.#fin = (h[0] & 0x80) !== 0;
      this.#opcode = h[0] & 0x0f;
      let len = h[1] & 0x7f;
      if (len === 126) len = (h[2] << 8) | h[3];
      else if (len === 127) {
        len = Number(new DataView(h.buffer, 2, 8).getBigUint64(0));
      }
      this.#headLen = 0;
      this.#skip = len;
      this.#closePayload = this.#opcode === Op.Close ? [] : null;
      if (len === 0) this.#frameDone();
    }
  }

  /** Header bytes this frame needs, once the first two are in. */
  #headNeed(): number | null {
    if (this.#headLen < 2) return null;
    const len = this.#head[1] & 0x7f;
    const masked = (this.#head[1] & 0x80) !== 0 ? 4 : 0;
    return 2 + (len === 126 ? 2 : len === 127 ? 8 : 0) + masked;
  }

  #frameDone(): void {
    if (this.#closePayload) {
      const p = this.#closePayload;
      this.end.code = p.length >= 2 ? (p[0] << 8) | p[1] : 1005;
      this.end.reason = new TextDecoder().decode(Uint8Array.from(p.slice(2)));
      this.#closePayload = null;
      return;
    }
    if (this.#opcode <= Op.Binary && this.#fin) this.frames++;
  }

  /** Writes all of `bytes` (resolves false if the connection failed). */
  async write(bytes: Uint8Array): Promise<boolean> {
    try {
      let off = 0;
      while (off < bytes.length) {
        const n = await this.conn.write(bytes.subarray(off));
        off += n;
        this.written += n;
      }
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Writes `chunk` again and again until `maxBytes` are written, the server
   * closes (when reading), a write fails, or `stop` aborts. A write the
   * server does not take (TCP pushback) is raced against those ends, so this
   * never hangs past them. Returns why it stopped.
   */
  async flood(
    chunk: Uint8Array,
    maxBytes: number,
    stop?: AbortSignal,
  ): Promise<"limit" | "ended" | "failed" | "stopped"> {
    const stopped = new Promise<"stopped">((resolve) => {
      if (stop?.aborted) resolve("stopped");
      stop?.addEventListener("abort", () => resolve("stopped"), { once: true });
    });
    const ended = this.ended.then(() => "ended" as const);
    let sent = 0;
    while (sent < maxBytes) {
      if (stop?.aborted) return "stopped";
      if (this.isEnded) return "ended";
      const part = maxBytes - sent < chunk.length ? chunk.subarray(0, maxBytes - sent) : chunk;
      const wrote = this.write(part).then((ok) => ok ? "wrote" as const : "failed" as const);
      const what = await Promise.race([wrote, ended, stopped]);
      if (what !== "wrote") return what;
      sent += part.length;
    }
    return "limit";
  }

  /** Waits (bounded) for the close frame or the end of TCP; true if it came. */
  async waitEnd(timeoutMs: number): Promise<boolean> {
    if (this.isEnded) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((resolve) =>
      timer = setTimeout(() => resolve(false), timeoutMs)
    );
    const ended = await Promise.race([this.ended.then(() => true), timeout]);
    clearTimeout(timer);
    return ended;
  }

  /** How it ended, in words. */
  describe(): string {
    const e = this.end;
    if (e.code !== null) return `close ${e.code}${e.reason ? ` "${e.reason}"` : ""}`;
    const echoed = this.frames > 0 ? `, ${this.frames} messages echoed` : "";
    return (e.tcp ? `TCP ${e.tcp} without a close frame` : "still open") + echoed;
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Closes the connection and lets the reader settle. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#reading;
  }
}

/** Closes every attacker. */
export async function closeAll(attackers: Attacker[]): Promise<void> {
  await Promise.all(attackers.map((a) => a[Symbol.asyncDispose]()));
}

// ---------------------------------------------------------------------------
// A well-behaved client beside the attack

/** What a {@linkcode GoodClient} saw. */
export interface GoodReport {
  /** Our address, as the server logs it. */
  local: string;
  /** Messages echoed back correctly. */
  echoed: number;
  /** The slowest round trip (ms); measured in the test process, so it includes its own delays. */
  worstMs: number;
  /** What went wrong, or null. */
  error: string | null;
  /** The code the server answered our close with, or null. */
  closeCode: number | null;
}

/**
 * A client that behaves: one small text message every `everyMs`, waits for
 * its echo (at most `echoTimeoutMs`), answers pings, and closes with 1000
 * when stopped.
 */
export class GoodClient {
  #peer: RawPeer;
  #stopped = false;
  #loop: Promise<void>;
  #report: GoodReport;

  private constructor(peer: RawPeer, everyMs: number, echoTimeoutMs: number) {
    this.#peer = peer;
    const addr = peer.conn.localAddr as Deno.NetAddr;
    this.#report = {
      local: `${addr.hostname}:${addr.port}`,
      echoed: 0,
      worstMs: 0,
      error: null,
      closeCode: null,
    };
    this.#loop = this.#run(everyMs, echoTimeoutMs);
  }

  /** Connects, upgrades and starts sending. */
  static async start(port: number, everyMs = 200, echoTimeoutMs = 10_000): Promise<GoodClient> {
    const peer = await RawPeer.connect(port);
    await peer.handshake();
    return new GoodClient(peer, everyMs, echoTimeoutMs);
  }

  /** Our address. */
  get local(): string {
    return this.#report.local;
  }

  async #run(everyMs: number, echoTimeoutMs: number): Promise<void> {
    const r = this.#report;
    try {
      for (let seq = 0; !this.#stopped; seq++) {
        const text = `good ${seq}`;
        const started = performance.now();
        await this.#peer.write(clientFrame(Op.Text, text));
        while (true) {
          const f = await this.#peer.readFrame(echoTimeoutMs);
          if (f.opcode === Op.Ping) {
            await this.#peer.write(clientFrame(Op.Pong, f.payload));
            continue;
          }
          if (f.opcode === Op.Close) {
            const code = f.payload.length >= 2 ? (f.payload[0] << 8) | f.payload[1] : 1005;
            throw new Error(`the server closed it with ${code}`);
          }
          if (f.opcode !== Op.Text || new TextDecoder().decode(f.payload) !== text) {
            throw new Error(`echo ${seq} differs`);
          }
          break;
        }
        r.worstMs = Math.max(r.worstMs, performance.now() - started);
        r.echoed++;
        await delay(everyMs);
      }
      await this.#peer.write(clientClose(1000));
      r.closeCode = (await this.#peer.readClose(5_000)).code;
    } catch (err) {
      r.error = err instanceof Error ? err.message : String(err);
    }
  }

  /** Stops, closes with 1000, and reports. */
  async stop(): Promise<GoodReport> {
    this.#stopped = true;
    await this.#loop;
    await this.#peer[Symbol.asyncDispose]();
    return this.#report;
  }
}

// ---------------------------------------------------------------------------
// The server's log

/** The server's `close` event for the connection from `local`, if logged. */
export function closeEvent(server: ServerProcess, local: string): LogEvent | undefined {
  return server.proc.events.find((e) => e.event === "close" && e.remote === local);
}

/** Waits (bounded) for the server's `close` event of the connection from `local`. */
export async function waitCloseEvent(
  server: ServerProcess,
  local: string,
  timeoutMs: number,
): Promise<LogEvent | undefined> {
  try {
    return await server.proc.waitForEvent("close", (e) => e.remote === local, { timeoutMs });
  } catch {
    return undefined;
  }
}

/** `cause/code` of a close event, for messages. */
export function describeClose(e: LogEvent | undefined): string {
  return e ? `${e.cause}/${e.code}` : "no close event";
}

// ---------------------------------------------------------------------------
// Checks that report every failure at once

/**
 * Collects the failed checks of one test and throws them together, so a
 * failing run shows everything that went wrong (RSS, close codes, health),
 * not just the first thing.
 */
export class Checks {
  readonly #failures: string[] = [];
  readonly #name: string;

  constructor(name: string) {
    this.#name = name;
  }

  /** Records `message` as a failure unless `ok`. */
  that(ok: boolean, message: string): void {
    if (!ok) this.#failures.push(message);
  }

  /** Throws an Error listing every failure, if any. */
  done(): void {
    if (this.#failures.length === 0) return;
    throw new Error(`${this.#name}:\n  - ${this.#failures.join("\n  - ")}`);
  }
}

/**
 * The checks every attack test makes on the server: still running, `/healthz`
 * 200 `ok` now and at every probe during the attack, and its peak RSS under
 * `bound`. Prints the measured figures.
 */
export async function checkServer(
  checks: Checks,
  server: ServerProcess,
  watch: MemoryWatch,
  bound: number,
  probe: HealthProbe | null,
  label: string,
): Promise<void> {
  watch.sample();
  await probe?.stop();
  const last = server.proc.stderr.split("\n").filter((l) => l && !l.startsWith("{")).slice(-3);
  checks.that(!server.proc.ended && !watch.gone, `the server died: ${last.join(" | ")}`);
  if (!server.proc.ended) {
    const h = await healthz(server.port);
    checks.that(healthy(h), `/healthz after the attack: ${describeHealth(h)}`);
  }
  if (probe) {
    const failed = `${probe.failures.length} of ${probe.count} times`;
    checks.that(
      probe.failures.length === 0,
      `/healthz during the attack failed ${failed}: ${probe.failures.slice(0, 3).join("; ")}`,
    );
  }
  checks.that(
    watch.peak < bound,
    `the server's peak RSS was ${mib(watch.peak)}, over the bound of ${mib(bound)}` +
      (watch.reason ? ` (attack stopped: ${watch.reason})` : ""),
  );
  const start = mib(watch.start.rss);
  console.log(
    `${label}: peak RSS ${mib(watch.peak)} (bound ${mib(bound)}, at start ${start})` +
      (probe ? `, /healthz worst ${probe.worstMs.toFixed(0)}ms over ${probe.count} probes` : ""),
  );
}

// ---------------------------------------------------------------------------
// The peers under tests/attackers/

const ATTACKERS = new URL("../attackers/", import.meta.url);

let built: Promise<string> | null = null;

/**
 * Builds tests/attackers/gorilla (Go and gorilla/websocket from Debian, in
 * GOPATH mode without network, as bench/loadgen.ts does) once per source
 * version, and returns the binary's path.
 */
export function gorillaPeer(): Promise<string> {
  built ??= buildGoPeer(
    new URL("gorilla/", ATTACKERS),
    "gorilla",
    "golang-go and golang-github-gorilla-websocket-dev",
  );
  built.catch(() => built = null);
  return built;
}

/** A peer program under tests/attackers/ that prints one JSON object per line on stdout. */
export class PeerProcess implements AsyncDisposable {
  /** The JSON lines so far. */
  readonly events: Record<string, unknown>[] = [];
  /** Everything on stderr. */
  stderr = "";
  /** Resolves with the exit code once it has ended and its output is read. */
  readonly exited: Promise<number>;
  readonly #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array> | null;
  #wake: (() => void)[] = [];
  #ended = false;

  constructor(cmd: string, args: string[]) {
    const child = this.#child = new Deno.Command(cmd, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = child.stdin.getWriter();
    const out = (async () => {
      let rest = "";
      for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
        rest += text;
        const lines = rest.split("\n");
        rest = lines.pop()!;
        for (const line of lines) if (line.startsWith("{")) this.events.push(JSON.parse(line));
        this.#notify();
      }
    })();
    const err = (async () => {
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.stderr += text;
      }
    })();
    this.exited = Promise.all([child.status, out, err]).then(([s]) => {
      this.#ended = true;
      this.#notify();
      return s.code;
    });
  }

  /** The gorilla peer in `mode` with `args`. */
  static async gorilla(mode: string, args: string[]): Promise<PeerProcess> {
    return new PeerProcess(await gorillaPeer(), [mode, ...args]);
  }

  /** tests/attackers/`script` on Debian's Python with `args`. */
  static python(script: string, args: string[]): PeerProcess {
    return new PeerProcess(PYTHON, [new URL(script, ATTACKERS).pathname, ...args]);
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = [];
    for (const f of w) f();
  }

  /** Events named `event`. */
  all(event: string): Record<string, unknown>[] {
    return this.events.filter((e) => e.event === event);
  }

  /** Waits (bounded) until `n` events named `event` are in; returns them. */
  async waitFor(event: string, n: number, timeoutMs: number): Promise<Record<string, unknown>[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.all(event).length < n) {
      if (this.#ended) {
        throw new Error(
          `the peer ended with ${this.all(event).length} of ${n} "${event}": ${this.stderr.trim()}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`only ${this.all(event).length} of ${n} "${event}" within ${timeoutMs}ms`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.all(event);
  }

  /** Closes its stdin (the flood mode's stop signal). */
  async closeStdin(): Promise<void> {
    const w = this.#stdin;
    this.#stdin = null;
    await w?.close().catch(() => {});
  }

  /** Waits (bounded) for the exit; kills it past the bound. */
  async wait(timeoutMs: number): Promise<number> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), timeoutMs));
    const code = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (code === null) {
      this.#kill();
      throw new Error(`the peer did not finish within ${timeoutMs}ms: ${this.stderr.trim()}`);
    }
    return code;
  }

  #kill(): void {
    if (this.#ended) return;
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // It ended meanwhile.
    }
  }

  /** Kills it if it still runs, and reaps it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.closeStdin();
    this.#kill();
    await this.exited;
  }
}
