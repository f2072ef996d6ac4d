/**
 * A program in a real pseudo-terminal, read the way a person sees it: tmux
 * runs it in a detached session of a fixed size on a private server, keys
 * are sent with `send-keys`, and `capture-pane` gives the screen as drawn
 * (after every cursor move and erase), not the byte stream.
 *
 * ```ts
 * await using tty = await Tmux.start(["deno", "run", "client.ts"]);
 * await tty.type("hello\r");
 * await tty.until("the echo", (s) => s.includes("< hello"));
 * ```
 *
 * @module
 */

import { pathOf } from "./needs.ts";
import { DEFAULT_WAIT_MS } from "./wait.ts";

/** Where Debian installs tmux (tests say `needs(…, "tmux")`). */
export const TMUX: string = pathOf("tmux");

/** Options of {@linkcode Tmux.start}. */
export interface TmuxOptions {
  /** Columns (default 100). */
  width?: number;
  /** Rows (default 30). */
  height?: number;
  /** The program's whole environment (PATH, HOME and DENO_DIR are added; TERM is xterm-256color). */
  env?: Record<string, string>;
  /** The working directory. */
  cwd?: string;
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** A program running in a tmux pane. Dispose to kill the tmux server. */
export class Tmux implements AsyncDisposable {
  #socket: string;
  #dir: string;

  private constructor(dir: string) {
    this.#dir = dir;
    this.#socket = `${dir}/tmux.sock`;
  }

  /**
   * Starts `argv` in a new pane. When it ends the pane shows `[exit N]` and
   * stays, so the end of its output and its exit code can still be read.
   */
  static async start(argv: string[], options: TmuxOptions = {}): Promise<Tmux> {
    const dir = await Deno.makeTempDir({ prefix: "keepalive-ws-tmux-" });
    const t = new Tmux(dir);
    const env: Record<string, string> = { TERM: "xterm-256color", ...options.env };
    for (const k of ["PATH", "HOME", "DENO_DIR"]) {
      const v = Deno.env.get(k);
      if (v !== undefined && env[k] === undefined) env[k] = v;
    }
    const assignments = Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v)}`).join(" ");
    const script = `env -i ${assignments} ${argv.map(shellQuote).join(" ")}; ` +
      `echo "[exit $?]"; sleep 600`;
    await t.#tmux([
      "new-session",
      "-d",
      "-s",
      "t",
      "-x",
      String(options.width ?? 100),
      "-y",
      String(options.height ?? 30),
      ...(options.cwd ? ["-c", options.cwd] : []),
      "sh",
      "-c",
      script,
    ]);
    return t;
  }

  /** Types `text` literally (`\r` is Enter). */
  async type(text: string): Promise<void> {
    await this.#tmux(["send-keys", "-t", "t", "-l", text]);
  }

  /** Presses keys by tmux's names: `Up`, `Left`, `C-d`, `Enter`, `Home`… */
  async keys(...names: string[]): Promise<void> {
    await this.#tmux(["send-keys", "-t", "t", ...names]);
  }

  /** The screen as shown now: one string per row, trailing blanks trimmed. */
  async screen(): Promise<string[]> {
    const text = await this.#tmux(["capture-pane", "-t", "t", "-p"]);
    return text.replace(/\n$/, "").split("\n").map((l) => l.trimEnd());
  }

  /** The screen with its colour and attribute escapes (`capture-pane -e`). */
  async screenWithEscapes(): Promise<string> {
    return await this.#tmux(["capture-pane", "-t", "t", "-p", "-e"]);
  }

  /** The cursor's row and column (from 0). */
  async cursor(): Promise<{ row: number; column: number }> {
    const out = await this.#tmux(["display-message", "-t", "t", "-p", "#{cursor_y} #{cursor_x}"]);
    const [row, column] = out.trim().split(" ").map(Number);
    return { row, column };
  }

  /** Waits until `condition` holds for the screen (as text, rows joined with `\n`). */
  async until(
    what: string,
    condition: (screen: string) => boolean,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      last = (await this.screen()).join("\n");
      if (condition(last)) return last;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}; the screen:\n${last}`);
  }

  /** Waits for the program to end and returns its exit code. */
  async exitCode(timeoutMs = DEFAULT_WAIT_MS): Promise<number> {
    const screen = await this.until(
      "the program to exit",
      (s) => /\[exit \d+\]/.test(s),
      timeoutMs,
    );
    return Number(/\[exit (\d+)\]/.exec(screen)![1]);
  }

  async #tmux(args: string[]): Promise<string> {
    const out = await new Deno.Command(TMUX, {
      args: ["-S", this.#socket, "-f", "/dev/null", ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`tmux ${args[0]}: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
    return new TextDecoder().decode(out.stdout);
  }

  /** Kills the tmux server (and the program) and removes the socket's directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#tmux(["kill-server"]).catch(() => {});
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}
