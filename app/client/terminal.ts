/**
 * The client's interactive terminal: a small line editor in raw mode, with
 * history, that keeps the line being typed while messages and log lines are
 * printed above it.
 *
 * ```
 *   < a message that arrived           ← printed above: the prompt line is
 *   time=… level=info event=pong …       cleared, the text written, and
 *   > half-typed li█                     the prompt and the line redrawn
 * ```
 *
 * Keys: ←/→ (Ctrl-B/F) move, Ctrl-←/→ (Alt-B/F) by word, Home/End
 * (Ctrl-A/E), Backspace, Delete, Ctrl-W / Alt-Backspace delete a word back,
 * Ctrl-U and Ctrl-K delete to the start and to the end, ↑/↓ (Ctrl-P/N) walk
 * the history, Ctrl-L clears the screen, Enter sends, Ctrl-D on an empty
 * line is end of input, Ctrl-C quits. A line longer than the terminal
 * scrolls sideways. Pasted lines are sent one by one, as if typed.
 *
 * The editing (`editor.ts`) and the key decoding (`keys.ts`) are pure;
 * {@linkcode Terminal} does the I/O.
 *
 * @module
 */

import { LineEditor } from "./editor.ts";
import { HISTORY_MAX_LINES } from "./history.ts";
import { decodeKeys, textWidth } from "./keys.ts";

/** What {@linkcode Terminal} needs from the process; replaceable in tests. */
export interface TerminalIO {
  /** Reads what the user types (the terminal in raw mode). */
  input: ReadableStream<Uint8Array>;
  /** Writes to the terminal (stdout). */
  write(text: string): void;
  /** Switches raw mode on or off. */
  setRaw(raw: boolean): void;
  /** The terminal's width in columns. */
  columns(): number;
}

/** The process's own terminal: stdin in raw mode, stdout. */
export function processTerminal(): TerminalIO {
  const encoder = new TextEncoder();
  return {
    input: Deno.stdin.readable,
    write(text) {
      const bytes = encoder.encode(text);
      let off = 0;
      while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
    },
    setRaw: (raw) => Deno.stdin.setRaw(raw),
    columns() {
      try {
        return Deno.consoleSize().columns || 80;
      } catch {
        return 80;
      }
    },
  };
}

/**
 * The line editor on a real terminal. {@linkcode lines} yields each line
 * entered; {@linkcode above} prints text above the line being typed;
 * {@linkcode close} gives the terminal back as it was.
 */
export class Terminal {
  #io: TerminalIO;
  #editor: LineEditor;
  #onRemember: (line: string) => void;
  #prompt: string;
  #promptWidth: number;
  #shown = false;
  #closed = false;
  #onInterrupt: () => void;

  /**
   * @param io the terminal
   * @param prompt the prompt, possibly with colour escapes
   * @param onInterrupt called on Ctrl-C
   * @param history the saved history to start from, and where each line the
   *   history keeps goes (`history.ts` saves it)
   */
  constructor(
    io: TerminalIO,
    prompt: string,
    onInterrupt: () => void,
    history: { saved: readonly string[]; remember: (line: string) => void } = {
      saved: [],
      remember: () => {},
    },
  ) {
    this.#io = io;
    this.#editor = new LineEditor(HISTORY_MAX_LINES, history.saved);
    this.#onRemember = history.remember;
    this.#prompt = prompt;
    // deno-lint-ignore no-control-regex
    this.#promptWidth = textWidth(prompt.replace(/\x1b\[[0-9;]*m/g, ""));
    this.#onInterrupt = onInterrupt;
  }

  /** The editor's history (lines entered, oldest first). */
  get history(): readonly string[] {
    return this.#editor.history;
  }

  /** Yields each line entered until Ctrl-D on an empty line; raw mode is on meanwhile. */
  async *lines(): AsyncIterable<string> {
    this.#io.setRaw(true);
    const decoder = new TextDecoder();
    const reader = this.#io.input.getReader();
    try {
      while (!this.#closed) {
        const { value, done } = await reader.read();
        if (done) return;
        for (const key of decodeKeys(decoder.decode(value, { stream: true }))) {
          const result = this.#editor.apply(key);
          if (result.type === "line") {
            // The line stays on screen as typed; the next prompt goes below it.
            this.#io.write("\r\n");
            this.#shown = false;
            if (result.remembered) this.#onRemember(result.line);
            yield result.line;
          } else if (result.type === "eof") {
            return;
          } else if (result.type === "interrupt") {
            this.#onInterrupt();
            return;
          } else if (result.type === "clear-screen") {
            this.#io.write("\x1b[H\x1b[2J");
            this.#shown = false;
            this.show();
          } else if (this.#shown) {
            this.#redraw();
          }
        }
      }
    } finally {
      reader.releaseLock();
      this.close();
    }
  }

  /** Draws the prompt and the line (once ready for input). */
  show(): void {
    if (this.#closed || this.#shown) return;
    this.#shown = true;
    this.#redraw();
  }

  /**
   * Prints `text` (one or more lines, no trailing newline) above the line
   * being typed, which is then drawn again as it was. `write` writes the
   * text itself (e.g. to stderr for a log line; by default to the terminal).
   */
  above(text: string, write: (text: string) => void = (t) => this.#io.write(t)): void {
    // Raw mode may leave output processing off: end lines with CR LF ourselves.
    const lines = text.replaceAll("\n", "\r\n") + "\r\n";
    if (!this.#shown) return write(lines);
    this.#io.write("\r\x1b[2K");
    write(lines);
    this.#redraw();
  }

  /** Takes the prompt away until {@linkcode show}; what was typed is kept. */
  hide(): void {
    if (!this.#shown) return;
    this.#io.write("\r\x1b[2K");
    this.#shown = false;
  }

  /** Takes the prompt away and turns raw mode off; safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#shown) this.#io.write("\r\x1b[2K");
    this.#shown = false;
    try {
      this.#io.setRaw(false);
    } catch {
      // stdin is gone.
    }
  }

  #redraw(): void {
    const { text, cursorColumn } = this.#editor.view(this.#io.columns(), this.#promptWidth);
    this.#io.write(
      `\r${this.#prompt}${text}\x1b[K\r${cursorColumn > 0 ? `\x1b[${cursorColumn}C` : ""}`,
    );
  }
}
