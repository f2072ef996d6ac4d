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
 * The editing ({@linkcode LineEditor}) and the key decoding
 * ({@linkcode decodeKeys}) are pure; {@linkcode Terminal} does the I/O.
 *
 * @module
 */

/** The keys that carry no text. */
export type KeyName =
  | "enter"
  | "backspace"
  | "delete"
  | "left"
  | "right"
  | "word-left"
  | "word-right"
  | "home"
  | "end"
  | "up"
  | "down"
  | "kill-start"
  | "kill-end"
  | "kill-word"
  | "clear-screen"
  | "interrupt"
  | "eof"
  | "ignore";

/** A key press, decoded from the bytes a terminal sends. */
export type Key = { type: "text"; text: string } | { type: KeyName };

/** CSI and SS3 sequences, by what follows `ESC [` or `ESC O`. */
const SEQUENCES: Readonly<Record<string, KeyName>> = {
  "[A": "up",
  "[B": "down",
  "[C": "right",
  "[D": "left",
  "[H": "home",
  "[F": "end",
  "OA": "up",
  "OB": "down",
  "OC": "right",
  "OD": "left",
  "OH": "home",
  "OF": "end",
  "[1~": "home",
  "[7~": "home",
  "[4~": "end",
  "[8~": "end",
  "[3~": "delete",
  "[1;5C": "word-right",
  "[1;5D": "word-left",
  "[1;3C": "word-right",
  "[1;3D": "word-left",
};

/** Control keys, by the character a terminal sends for them. */
const CONTROLS: Readonly<Record<string, KeyName>> = {
  "\r": "enter",
  "\n": "enter",
  "\x7f": "backspace",
  "\b": "backspace",
  "\x01": "home",
  "\x05": "end",
  "\x02": "left",
  "\x06": "right",
  "\x10": "up",
  "\x0e": "down",
  "\x15": "kill-start",
  "\x0b": "kill-end",
  "\x17": "kill-word",
  "\x0c": "clear-screen",
  "\x03": "interrupt",
  "\x04": "eof",
};

/**
 * Splits what a terminal sent into key presses. Printable runs become one
 * `text` key; escape sequences that are not known are consumed whole and
 * ignored, so they never reach the line. `\r\n` counts as one Enter.
 */
export function decodeKeys(input: string): Key[] {
  const keys: Key[] = [];
  let text = "";
  const flush = () => {
    if (text) keys.push({ type: "text", text });
    text = "";
  };
  for (let i = 0; i < input.length;) {
    const c = input[i];
    if (c === "\x1b") {
      flush();
      const next = input[i + 1];
      if (next === "[" || next === "O") {
        // CSI: parameters and intermediates (0x20–0x3f), then a final byte (0x40–0x7e).
        let j = i + 2;
        if (next === "[") { while (j < input.length && input.charCodeAt(j) < 0x40) j++; }
        const seq = input.slice(i + 1, j + 1);
        keys.push({ type: SEQUENCES[seq] ?? "ignore" });
        i = j + 1;
      } else if (next === "b" || next === "f") {
        keys.push({ type: next === "b" ? "word-left" : "word-right" });
        i += 2;
      } else if (next === "\x7f" || next === "\b") {
        keys.push({ type: "kill-word" });
        i += 2;
      } else {
        keys.push({ type: "ignore" });
        i += next === undefined ? 1 : 2;
      }
      continue;
    }
    const control = CONTROLS[c];
    if (control) {
      flush();
      keys.push({ type: control });
      i += c === "\r" && input[i + 1] === "\n" ? 2 : 1;
      continue;
    }
    const code = input.codePointAt(i)!;
    const char = String.fromCodePoint(code);
    if (code >= 0x20 && !(code >= 0x7f && code <= 0x9f)) text += char;
    i += char.length;
  }
  flush();
  return keys;
}

/** Columns a character takes on a terminal: 0 for combining marks, 2 for wide ones, else 1. */
export function charWidth(char: string): number {
  const code = char.codePointAt(0)!;
  if (/^[\p{Mn}\p{Me}\u200b-\u200f]$/u.test(char)) return 0;
  if (
    (code >= 0x1100 && code <= 0x115f) || (code >= 0x2e80 && code <= 0xa4cf) ||
    (code >= 0xac00 && code <= 0xd7a3) || (code >= 0xf900 && code <= 0xfaff) ||
    (code >= 0xfe30 && code <= 0xfe4f) || (code >= 0xff00 && code <= 0xff60) ||
    (code >= 0xffe0 && code <= 0xffe6) || (code >= 0x1f300 && code <= 0x1faff) ||
    (code >= 0x20000 && code <= 0x3fffd)
  ) return 2;
  return 1;
}

/** Columns `text` takes on a terminal. */
export function textWidth(text: string): number {
  let w = 0;
  for (const c of text) w += charWidth(c);
  return w;
}

/** What a key did to the editor. */
export type EditResult =
  | { type: "edit" }
  | { type: "line"; line: string }
  | { type: "eof" }
  | { type: "interrupt" }
  | { type: "clear-screen" };

/** Whether a character belongs to a word, for the word moves and Ctrl-W. */
function isWordChar(c: string | undefined): boolean {
  return c !== undefined && /[\p{L}\p{N}_]/u.test(c);
}

/**
 * A line being edited (a list of characters and a cursor) and the history
 * of lines entered. Pure: keys in, results out; {@linkcode view} says what
 * to draw.
 */
export class LineEditor {
  /** The characters of the line (code points). */
  chars: string[] = [];
  /** The cursor, as an index into {@linkcode chars}. */
  cursor = 0;
  /** Lines entered, oldest first (no empty lines, no repeats in a row). */
  readonly history: string[] = [];
  #historyIndex = 0;
  #draft: string[] = [];
  #scroll = 0;
  #maxHistory: number;

  /** @param maxHistory how many lines the history keeps */
  constructor(maxHistory = 1000) {
    this.#maxHistory = maxHistory;
  }

  /** The line as a string. */
  get line(): string {
    return this.chars.join("");
  }

  /** Applies one key. */
  apply(key: Key): EditResult {
    const edit: EditResult = { type: "edit" };
    switch (key.type) {
      case "text": {
        const added = [...key.text];
        this.chars.splice(this.cursor, 0, ...added);
        this.cursor += added.length;
        return edit;
      }
      case "enter": {
        const line = this.line;
        if (line !== "" && this.history.at(-1) !== line) {
          this.history.push(line);
          if (this.history.length > this.#maxHistory) this.history.shift();
        }
        this.#historyIndex = this.history.length;
        this.#set([]);
        this.#scroll = 0;
        return { type: "line", line };
      }
      case "backspace":
        if (this.cursor > 0) this.chars.splice(--this.cursor, 1);
        return edit;
      case "delete":
        this.chars.splice(this.cursor, 1);
        return edit;
      case "eof":
        if (this.chars.length === 0) return { type: "eof" };
        this.chars.splice(this.cursor, 1);
        return edit;
      case "left":
        this.cursor = Math.max(0, this.cursor - 1);
        return edit;
      case "right":
        this.cursor = Math.min(this.chars.length, this.cursor + 1);
        return edit;
      case "home":
        this.cursor = 0;
        return edit;
      case "end":
        this.cursor = this.chars.length;
        return edit;
      case "word-left":
        this.cursor = this.#wordStart();
        return edit;
      case "word-right": {
        let i = this.cursor;
        while (i < this.chars.length && !isWordChar(this.chars[i])) i++;
        while (i < this.chars.length && isWordChar(this.chars[i])) i++;
        this.cursor = i;
        return edit;
      }
      case "kill-start":
        this.chars.splice(0, this.cursor);
        this.cursor = 0;
        return edit;
      case "kill-end":
        this.chars.splice(this.cursor);
        return edit;
      case "kill-word": {
        const start = this.#wordStart();
        this.chars.splice(start, this.cursor - start);
        this.cursor = start;
        return edit;
      }
      case "up":
        if (this.#historyIndex > 0) {
          if (this.#historyIndex === this.history.length) this.#draft = [...this.chars];
          this.#set([...this.history[--this.#historyIndex]]);
        }
        return edit;
      case "down":
        if (this.#historyIndex < this.history.length) {
          this.#historyIndex++;
          this.#set(
            this.#historyIndex === this.history.length
              ? this.#draft
              : [...this.history[this.#historyIndex]],
          );
        }
        return edit;
      case "interrupt":
        return { type: "interrupt" };
      case "clear-screen":
        return { type: "clear-screen" };
      case "ignore":
        return edit;
    }
  }

  /**
   * What to draw in `columns` columns after a prompt `promptWidth` wide:
   * the visible part of the line and the cursor's column. A line too long
   * for the terminal scrolls sideways to keep the cursor in view.
   */
  view(columns: number, promptWidth: number): { text: string; cursorColumn: number } {
    const room = Math.max(1, columns - promptWidth - 1);
    if (this.cursor < this.#scroll) this.#scroll = this.cursor;
    while (textWidth(this.chars.slice(this.#scroll, this.cursor).join("")) > room) this.#scroll++;
    let text = "";
    let width = 0;
    for (let i = this.#scroll; i < this.chars.length; i++) {
      const w = charWidth(this.chars[i]);
      if (width + w > room) break;
      text += this.chars[i];
      width += w;
    }
    const cursorColumn = promptWidth +
      textWidth(this.chars.slice(this.#scroll, this.cursor).join(""));
    return { text, cursorColumn };
  }

  #set(chars: string[]): void {
    this.chars = chars;
    this.cursor = chars.length;
  }

  #wordStart(): number {
    let i = this.cursor;
    while (i > 0 && !isWordChar(this.chars[i - 1])) i--;
    while (i > 0 && isWordChar(this.chars[i - 1])) i--;
    return i;
  }
}

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
  #editor = new LineEditor();
  #prompt: string;
  #promptWidth: number;
  #shown = false;
  #closed = false;
  #onInterrupt: () => void;

  /**
   * @param io the terminal
   * @param prompt the prompt, possibly with colour escapes
   * @param onInterrupt called on Ctrl-C
   */
  constructor(io: TerminalIO, prompt: string, onInterrupt: () => void) {
    this.#io = io;
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
