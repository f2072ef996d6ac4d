/**
 * Key presses from the bytes a terminal sends in raw mode (printable runs,
 * control keys, CSI and SS3 sequences), and how many columns text takes on
 * screen. Pure.
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
