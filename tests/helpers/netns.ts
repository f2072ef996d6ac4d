/**
 * Test helpers for cutting real links: a pair of network namespaces joined by
 * a veth pair (unique names per test, addresses only inside them), programs
 * run inside them, links set down and up, and everything removed afterwards
 * even when the test fails. Also a child process whose JSON log lines on
 * stderr can be awaited, for the server and client programs.
 *
 * @module
 */

/** Where iproute2 is installed on Debian. */
const IP = "/usr/sbin/ip";

const decoder = new TextDecoder();

/** Runs `ip` with `args`; throws with its stderr when it fails. */
async function ip(...args: string[]): Promise<string> {
  const out = await new Deno.Command(IP, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`ip ${args.join(" ")}: ${decoder.decode(out.stderr).trim()}`);
  }
  return decoder.decode(out.stdout);
}

/** Runs `ip` and ignores failure (for cleanup of things that may be gone). */
async function ipQuiet(...args: string[]): Promise<void> {
  try {
    await new Deno.Command(IP, { args, stdout: "null", stderr: "null" }).output();
  } catch {
    // ip itself is missing: nothing was created.
  }
}

let serial = 0;

/** A name unique to this process and call, short enough for an interface (15 chars). */
function uniqueTag(): string {
  return `${Deno.pid % 1_000_000}x${++serial}`;
}

let unavailable: Promise<string | null> | undefined;

/**
 * Null when namespaces can be made here; otherwise why not, for the test name.
 * Checked once, by creating and removing a namespace.
 */
export function netnsUnavailable(): Promise<string | null> {
  unavailable ??= (async () => {
    if (Deno.build.os !== "linux") return `needs Linux, not ${Deno.build.os}`;
    if (Deno.uid() !== 0) return "needs root for ip netns";
    const ns = `kwsprobe${uniqueTag()}`;
    try {
      await ip("netns", "add", ns);
      return null;
    } catch (err) {
      return `ip netns failed: ${err instanceof Error ? err.message : err}`;
    } finally {
      await ipQuiet("netns", "del", ns);
    }
  })();
  return unavailable;
}

/** One end of the pair: its namespace, its veth interface and its address. */
export interface Side {
  /** The namespace's name. */
  ns: string;
  /** The veth interface inside it. */
  veth: string;
  /** Its IPv4 address (on a /30 shared with the other side). */
  addr: string;
}

/** Options for a process started by {@linkcode LoggedProcess.start}. */
export interface StartOptions {
  /** Run inside this namespace (with `ip netns exec`), or in ours when absent. */
  ns?: string;
  /** Keep stdin open as a pipe (the default closes it). */
  stdin?: boolean;
}

/** A log event as the programs write it with `--log-format json`, plus when it was read. */
export interface LogEvent {
  /** The event name: open, close, error… */
  event: string;
  /** Every field of the line. */
  [field: string]: unknown;
}

/** A seen event with the wall-clock time (Date.now()) its line was read. */
export interface Seen {
  /** The parsed event. */
  ev: LogEvent;
  /** Date.now() when the line was read. */
  at: number;
}

/**
 * A child process whose stderr is read as JSON log lines (other lines are kept
 * as text) and whose stdout is collected. Disposing kills it (also if stopped)
 * and waits for it to end.
 */
export class LoggedProcess implements AsyncDisposable {
  /** Every JSON event read from stderr so far. */
  readonly events: Seen[] = [];
  /** stderr lines that were not JSON. */
  readonly textLines: string[] = [];
  /** Everything read from stdout. */
  stdout = "";
  /** Resolves with the exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  /** The child's pid (the program itself: `ip netns exec` execs it). */
  readonly pid: number;

  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array> | null = null;
  #wake: (() => void)[] = [];
  #reading: Promise<void>;
  #exited = false;

  private constructor(child: Deno.ChildProcess, stdin: boolean) {
    this.#child = child;
    this.pid = child.pid;
    if (stdin) this.#stdin = child.stdin.getWriter();
    this.status = child.status.then((s) => {
      this.#exited = true;
      return s;
    });
    this.#reading = Promise.all([this.#readStderr(), this.#readStdout()]).then(() => {});
  }

  /** Starts `cmd args…`, inside `options.ns` when given. */
  static start(cmd: string, args: string[], options: StartOptions = {}): LoggedProcess {
    const argv = options.ns ? [IP, "netns", "exec", options.ns, cmd, ...args] : [cmd, ...args];
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new LoggedProcess(child, options.stdin ?? false);
  }

  async #readStderr(): Promise<void> {
    let pending = "";
    for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf("\n")) >= 0) {
        this.#line(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    }
    if (pending) this.#line(pending);
    this.#notify();
  }

  async #readStdout(): Promise<void> {
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      this.stdout += chunk;
    }
  }

  #line(line: string): void {
    const at = Date.now();
    try {
      const ev = JSON.parse(line);
      if (ev && typeof ev.event === "string") {
        this.events.push({ ev, at });
        this.#notify();
        return;
      }
    } catch {
      // Not JSON: keep it as text.
    }
    this.textLines.push(line);
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = [];
    for (const w of wake) w();
  }

  /** Events named `event` seen so far. */
  named(event: string): Seen[] {
    return this.events.filter((s) => s.ev.event === event);
  }

  /**
   * Waits for the first event named `event` (matching `where`, if given) and
   * returns it, or null if `timeoutMs` passes or stderr ends first.
   */
  async waitFor(
    event: string,
    timeoutMs: number,
    where: (ev: LogEvent) => boolean = () => true,
  ): Promise<Seen | null> {
    const deadline = Date.now() + timeoutMs;
    let stderrDone = false;
    this.#reading.then(() => stderrDone = true);
    while (true) {
      const hit = this.events.find((s) => s.ev.event === event && where(s.ev));
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0 || stderrDone) return null;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake.push(resolve);
        timer = setTimeout(resolve, left);
        this.#reading.then(resolve);
      });
      clearTimeout(timer);
    }
  }

  /** Like {@linkcode waitFor}, but throws with the log so far when nothing comes. */
  async expect(
    event: string,
    timeoutMs: number,
    where?: (ev: LogEvent) => boolean,
  ): Promise<Seen> {
    const seen = await this.waitFor(event, timeoutMs, where);
    if (!seen) {
      throw new Error(`no "${event}" event within ${timeoutMs}ms; log so far:\n${this.log()}`);
    }
    return seen;
  }

  /** Everything the process wrote to stderr, for failure messages. */
  log(): string {
    return [...this.events.map((s) => JSON.stringify(s.ev)), ...this.textLines].join("\n");
  }

  /** Writes one line to its stdin (which must have been opened). */
  async writeLine(text: string): Promise<void> {
    if (!this.#stdin) throw new Error("stdin was not opened");
    await this.#stdin.write(new TextEncoder().encode(text + "\n"));
  }

  /** Sends a signal, unless the process has already ended. */
  kill(signal: Deno.Signal): void {
    if (this.#exited) return;
    try {
      this.#child.kill(signal);
    } catch {
      // It ended in between.
    }
  }

  /** Waits for the exit status, or returns null after `timeoutMs`. */
  async exit(timeoutMs: number): Promise<Deno.CommandStatus | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      this.status,
      new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), timeoutMs)),
    ]);
    clearTimeout(timer);
    return status;
  }

  /** Kills the process (continuing it first if stopped) and waits for its end and output. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGCONT");
    this.kill("SIGKILL");
    await this.status;
    try {
      await this.#stdin?.close();
    } catch {
      // The pipe is broken already.
    }
    await this.#reading;
  }
}

/**
 * Two fresh namespaces `a` and `b` joined by a veth pair on 10.213.X.0/30,
 * links up. Nothing is added to the namespace the tests run in. Disposing
 * kills whatever still runs inside them and deletes both (which removes the
 * veth pair).
 */
export class NetnsPair implements AsyncDisposable {
  /** The first end (e.g. the server). */
  readonly a: Side;
  /** The second end (e.g. the client). */
  readonly b: Side;

  private constructor(a: Side, b: Side) {
    this.a = a;
    this.b = b;
  }

  /** Creates the namespaces and the veth pair; on any failure removes what it made. */
  static async create(): Promise<NetnsPair> {
    const tag = uniqueTag();
    const x = (Deno.pid + serial * 7) % 250 + 1;
    const a: Side = { ns: `kws${tag}a`, veth: `kw${tag}a`, addr: `10.213.${x}.1` };
    const b: Side = { ns: `kws${tag}b`, veth: `kw${tag}b`, addr: `10.213.${x}.2` };
    const pair = new NetnsPair(a, b);
    try {
      await ip("netns", "add", a.ns);
      await ip("netns", "add", b.ns);
      await ip(
        "-n",
        a.ns,
        "link",
        "add",
        a.veth,
        "type",
        "veth",
        "peer",
        "name",
        b.veth,
        "netns",
        b.ns,
      );
      for (const side of [a, b]) {
        await ip("-n", side.ns, "addr", "add", `${side.addr}/30`, "dev", side.veth);
        await ip("-n", side.ns, "link", "set", side.veth, "up");
        await ip("-n", side.ns, "link", "set", "lo", "up");
      }
    } catch (err) {
      await pair[Symbol.asyncDispose]();
      throw err;
    }
    return pair;
  }

  /** Sets one side's veth link down (cut) or up. */
  async setLink(side: Side, up: boolean): Promise<void> {
    await ip("-n", side.ns, "link", "set", side.veth, up ? "up" : "down");
  }

  /** Sets a `net.*` sysctl inside one side's namespace only, e.g. `net.ipv4.tcp_keepalive_time`. */
  async sysctl(side: Side, name: string, value: string): Promise<void> {
    if (!/^net\.[\w.]+$/.test(name)) throw new Error(`not a per-namespace sysctl: ${name}`);
    const path = `/proc/sys/${name.replaceAll(".", "/")}`;
    await ip("netns", "exec", side.ns, "sh", "-c", `echo ${Number(value)} > ${path}`);
  }

  /** Starts a program inside one side's namespace. */
  start(side: Side, cmd: string, args: string[], options: Omit<StartOptions, "ns"> = {}) {
    return LoggedProcess.start(cmd, args, { ...options, ns: side.ns });
  }

  /** Kills what still runs in the namespaces (all started by this pair) and deletes them. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const side of [this.a, this.b]) {
      let pids: number[] = [];
      try {
        pids = (await ip("netns", "pids", side.ns)).split(/\s+/).filter(Boolean).map(Number);
      } catch {
        // The namespace was never made.
      }
      for (const pid of pids) {
        try {
          Deno.kill(pid, "SIGCONT");
          Deno.kill(pid, "SIGKILL");
        } catch {
          // Gone already.
        }
      }
      await ipQuiet("netns", "del", side.ns);
    }
  }
}
