/**
 * The interactive client's saved history: the lines typed at the prompt,
 * kept between runs in `$XDG_STATE_HOME/keepalive-ws/history` (or
 * `~/.local/state/keepalive-ws/history`), one line each, oldest first, at
 * most {@linkcode HISTORY_MAX_LINES}. The file is the user's alone (mode
 * 0600, its folder 0700), since what one types may be a token. A line typed
 * with a leading space is not kept, as with bash's `HISTCONTROL=ignorespace`
 * (`editor.ts` leaves it out of the history altogether).
 *
 * Saving never stops the client: a file that cannot be read or written
 * gives one warning, and the session goes on without it.
 *
 * @module
 */

import { fileErrorText } from "../common/files.ts";

/** The most lines the history file holds (and the editor keeps). */
export const HISTORY_MAX_LINES = 1_000;

/** The variables {@linkcode historyPath} reads (what the client's `--allow-env` lists besides the proxy ones). */
export const HISTORY_ENV: readonly string[] = ["XDG_STATE_HOME", "HOME"];

/** The history file's path, from the environment; null when neither XDG_STATE_HOME nor HOME is set. */
export function historyPath(env: (name: string) => string | undefined): string | null {
  const state = env("XDG_STATE_HOME");
  // The XDG spec: a relative value is invalid and is ignored.
  if (state && state.startsWith("/")) return `${state}/keepalive-ws/history`;
  const home = env("HOME");
  return home ? `${home}/.local/state/keepalive-ws/history` : null;
}

/** Appends the lines typed to the history file, and trims it to its last {@linkcode HISTORY_MAX_LINES}. */
export class HistoryFile {
  /** The file. */
  readonly path: string;
  #lines: number;
  #warn: (message: string) => void;
  #failed = false;

  private constructor(path: string, lines: number, warn: (message: string) => void) {
    this.path = path;
    this.#lines = lines;
    this.#warn = warn;
  }

  /**
   * Opens the history at `path` and reads it: its last
   * {@linkcode HISTORY_MAX_LINES} lines, oldest first (none when the file
   * does not exist yet). A file that cannot be read is warned about once and
   * reads as empty.
   */
  static open(
    path: string,
    warn: (message: string) => void,
  ): { file: HistoryFile; lines: string[] } {
    let lines: string[] = [];
    try {
      lines = readLines(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        warn(
          `history: cannot read ${path}: ${fileErrorText(err)}; this session's lines are not saved`,
        );
        const file = new HistoryFile(path, 0, warn);
        file.#failed = true;
        return { file, lines: [] };
      }
    }
    lines = lines.slice(-HISTORY_MAX_LINES);
    return { file: new HistoryFile(path, lines.length, warn), lines };
  }

  /** Saves one line the editor kept (not empty, no leading space, no newline in it). */
  add(line: string): void {
    if (this.#failed) return;
    try {
      this.#ensureFolder();
      Deno.writeTextFileSync(this.path, line + "\n", { append: true, mode: 0o600 });
      Deno.chmodSync(this.path, 0o600); // an older file may have been made with other bits
      if (++this.#lines > HISTORY_MAX_LINES) this.#trim();
    } catch (err) {
      this.#failed = true;
      this.#warn(`history: cannot write ${this.path}: ${fileErrorText(err)}; lines are not saved`);
    }
  }

  /** Rewrites the file with its last lines only (through a new file, renamed over it). */
  #trim(): void {
    const lines = readLines(this.path).slice(-HISTORY_MAX_LINES);
    const next = `${this.path}.${Deno.pid}.tmp`;
    Deno.writeTextFileSync(next, lines.join("\n") + "\n", { mode: 0o600 });
    Deno.chmodSync(next, 0o600);
    Deno.renameSync(next, this.path);
    this.#lines = lines.length;
  }

  #ensureFolder(): void {
    const folder = this.path.slice(0, this.path.lastIndexOf("/"));
    if (folder) Deno.mkdirSync(folder, { recursive: true, mode: 0o700 });
  }
}

/** The non-empty lines of the file at `path`, oldest first. */
function readLines(path: string): string[] {
  return Deno.readTextFileSync(path).split("\n").filter((l) => l !== "");
}
