/**
 * The line being typed on the client's terminal, and the history of lines
 * entered: keys in, results out, and what to draw. Pure; the terminal
 * itself is `terminal.ts`.
 *
 * @module
 */

import { charWidth, type Key, type KeyName, textWidth } from "./keys.ts";

/** What a key did to the editor. */
export type EditResult =
  | { type: "edit" }
  /** `remembered`: the line went into the history (not empty, no leading space, not a repeat). */
  | { type: "line"; line: string; remembered: boolean }
  | { type: "eof" }
  | { type: "interrupt" }
  | { type: "clear-screen" };

/** The keys {@linkcode LineEditor} handles by moving the cursor or deleting. */
type EditKey = Exclude<
  KeyName,
  "enter" | "eof" | "interrupt" | "clear-screen" | "up" | "down" | "ignore"
>;

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
  /** Lines entered, oldest first (no empty lines, none starting with a space, no repeats in a row). */
  readonly history: string[];
  #historyIndex = 0;
  #draft: string[] = [];
  #scroll = 0;
  #maxHistory: number;

  /**
   * @param maxHistory how many lines the history keeps
   * @param saved lines entered before (a saved history), oldest first
   */
  constructor(maxHistory = 1000, saved: readonly string[] = []) {
    this.#maxHistory = maxHistory;
    this.history = saved.slice(-maxHistory);
    this.#historyIndex = this.history.length;
  }

  /** The line as a string. */
  get line(): string {
    return this.chars.join("");
  }

  /** Applies one key. */
  apply(key: Key): EditResult {
    switch (key.type) {
      case "text": {
        const added = [...key.text];
        this.chars.splice(this.cursor, 0, ...added);
        this.cursor += added.length;
        return { type: "edit" };
      }
      case "enter":
        return this.#enter();
      case "eof":
        if (this.chars.length === 0) return { type: "eof" };
        this.chars.splice(this.cursor, 1);
        return { type: "edit" };
      case "interrupt":
        return { type: "interrupt" };
      case "clear-screen":
        return { type: "clear-screen" };
      case "up":
      case "down":
        this.#walkHistory(key.type);
        return { type: "edit" };
      case "ignore":
        return { type: "edit" };
      default:
        this.#edit(key.type);
        return { type: "edit" };
    }
  }

  /**
   * Enter: the line is done; it goes to the history (unless it starts with a
   * space, as bash's `HISTCONTROL=ignorespace` has it) and the editor starts
   * afresh.
   */
  #enter(): EditResult {
    const line = this.line;
    const remembered = line !== "" && !line.startsWith(" ") && this.history.at(-1) !== line;
    if (remembered) {
      this.history.push(line);
      if (this.history.length > this.#maxHistory) this.history.shift();
    }
    this.#historyIndex = this.history.length;
    this.#set([]);
    this.#scroll = 0;
    return { type: "line", line, remembered };
  }

  /** The keys that move the cursor or delete. */
  #edit(key: EditKey): void {
    switch (key) {
      case "backspace":
        if (this.cursor > 0) this.chars.splice(--this.cursor, 1);
        return;
      case "delete":
        this.chars.splice(this.cursor, 1);
        return;
      case "left":
        this.cursor = Math.max(0, this.cursor - 1);
        return;
      case "right":
        this.cursor = Math.min(this.chars.length, this.cursor + 1);
        return;
      case "home":
        this.cursor = 0;
        return;
      case "end":
        this.cursor = this.chars.length;
        return;
      case "word-left":
        this.cursor = this.#wordStart();
        return;
      case "word-right":
        this.cursor = this.#wordEnd();
        return;
      case "kill-start":
        this.chars.splice(0, this.cursor);
        this.cursor = 0;
        return;
      case "kill-end":
        this.chars.splice(this.cursor);
        return;
      case "kill-word": {
        const start = this.#wordStart();
        this.chars.splice(start, this.cursor - start);
        this.cursor = start;
        return;
      }
    }
  }

  /** ↑ and ↓: an older or newer line from the history; below the newest, the line being typed. */
  #walkHistory(direction: "up" | "down"): void {
    if (direction === "up") {
      if (this.#historyIndex === 0) return;
      if (this.#historyIndex === this.history.length) this.#draft = [...this.chars];
      this.#set([...this.history[--this.#historyIndex]]);
    } else if (this.#historyIndex < this.history.length) {
      this.#historyIndex++;
      this.#set(
        this.#historyIndex === this.history.length
          ? this.#draft
          : [...this.history[this.#historyIndex]],
      );
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

  #wordEnd(): number {
    let i = this.cursor;
    while (i < this.chars.length && !isWordChar(this.chars[i])) i++;
    while (i < this.chars.length && isWordChar(this.chars[i])) i++;
    return i;
  }

  #wordStart(): number {
    let i = this.cursor;
    while (i > 0 && !isWordChar(this.chars[i - 1])) i--;
    while (i > 0 && isWordChar(this.chars[i - 1])) i--;
    return i;
  }
}
