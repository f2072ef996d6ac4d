/**
 * The client's line editor without a terminal: key decoding, editing,
 * history, sideways scrolling, and printing above the line being typed,
 * driven through a fake terminal.
 */

import assert from "node:assert/strict";
import { charWidth, decodeKeys, type Key, textWidth } from "../app/client/keys.ts";
import { LineEditor } from "../app/client/editor.ts";
import { Terminal, type TerminalIO } from "../app/client/terminal.ts";

/** Applies the keys of what a terminal would send for `input`. */
function type(editor: LineEditor, input: string) {
  return decodeKeys(input).map((k) => editor.apply(k));
}

Deno.test("decodeKeys() reads arrows, Home/End and Delete in both CSI and SS3 forms", () => {
  const names = (s: string) => decodeKeys(s).map((k) => k.type);
  assert.deepEqual(names("\x1b[A\x1b[B\x1b[C\x1b[D"), ["up", "down", "right", "left"]);
  assert.deepEqual(names("\x1bOA\x1bOH\x1bOF"), ["up", "home", "end"]);
  assert.deepEqual(names("\x1b[1~\x1b[4~\x1b[3~\x1b[H\x1b[F"), [
    "home",
    "end",
    "delete",
    "home",
    "end",
  ]);
  assert.deepEqual(names("\x1b[1;5C\x1b[1;5D\x1bb\x1bf"), [
    "word-right",
    "word-left",
    "word-left",
    "word-right",
  ]);
});

Deno.test("decodeKeys() never lets an escape sequence or a control character into the text", () => {
  // F5, a mouse report, bracketed-paste markers and a bare ESC are consumed whole.
  const keys = decodeKeys("a\x1b[15~b\x1b[<0;10;5Mc\x1b[200~d\x1b[201~\x1be\x00\x07\u009bf");
  const text = keys.filter((k): k is Extract<Key, { type: "text" }> => k.type === "text")
    .map((k) => k.text).join("");
  assert.equal(text, "abcdf");
  assert.ok(keys.every((k) => k.type === "text" || k.type === "ignore"));
});

Deno.test("decodeKeys() maps the control keys, and CR LF is one Enter", () => {
  const names = (s: string) => decodeKeys(s).map((k) => k.type);
  assert.deepEqual(names("\r\n"), ["enter"]);
  assert.deepEqual(names("\r\r"), ["enter", "enter"]);
  assert.deepEqual(names("\x01\x05\x02\x06\x10\x0e\x15\x0b\x17\x0c\x03\x04\x7f\b\x1b\x7f"), [
    "home",
    "end",
    "left",
    "right",
    "up",
    "down",
    "kill-start",
    "kill-end",
    "kill-word",
    "clear-screen",
    "interrupt",
    "eof",
    "backspace",
    "backspace",
    "kill-word",
  ]);
  // Pasted lines: each line, then Enter.
  assert.deepEqual(decodeKeys("one\rtwo\r"), [
    { type: "text", text: "one" },
    { type: "enter" },
    { type: "text", text: "two" },
    { type: "enter" },
  ]);
});

Deno.test("LineEditor edits in the middle of a line with the readline keys", () => {
  const e = new LineEditor();
  type(e, "hello world");
  type(e, "\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D"); // five left: before "world"
  type(e, "big ");
  assert.equal(e.line, "hello big world");
  type(e, "\x17"); // Ctrl-W deletes "big "
  assert.equal(e.line, "hello world");
  type(e, "\x01\x1b[3~"); // Home, Delete
  assert.equal(e.line, "ello world");
  type(e, "\x05\x7f"); // End, Backspace
  assert.equal(e.line, "ello worl");
  type(e, "\x1bb\x0b"); // Alt-B (word left), Ctrl-K
  assert.equal(e.line, "ello ");
  type(e, "x\x15"); // Ctrl-U deletes to the start
  assert.equal(e.line, "");
  assert.deepEqual(type(e, "ü✓\r"), [{ type: "edit" }, {
    type: "line",
    line: "ü✓",
    remembered: true,
  }]);
});

Deno.test("LineEditor history: up and down walk it, and the line being typed comes back", () => {
  const e = new LineEditor();
  type(e, "first\rsecond\rsecond\r\r");
  assert.deepEqual(e.history, ["first", "second"], "no empty lines, no repeats in a row");
  type(e, "draft");
  type(e, "\x1b[A");
  assert.equal(e.line, "second");
  type(e, "\x1b[A\x1b[A");
  assert.equal(e.line, "first", "stops at the oldest");
  type(e, "\x1b[B");
  assert.equal(e.line, "second");
  type(e, "\x1b[B");
  assert.equal(e.line, "draft");
  // An edited history line is sent as edited, and the history keeps the original.
  type(e, "\x15\x1b[A!\r");
  assert.deepEqual(e.history, ["first", "second", "second!"]);
});

Deno.test("LineEditor: Ctrl-D ends input only on an empty line; Ctrl-C interrupts", () => {
  const e = new LineEditor();
  assert.deepEqual(type(e, "ab\x02\x04"), [{ type: "edit" }, { type: "edit" }, { type: "edit" }]);
  assert.equal(e.line, "a", "Ctrl-D deletes under the cursor on a non-empty line");
  assert.deepEqual(type(e, "\x15\x04"), [{ type: "edit" }, { type: "eof" }]);
  assert.deepEqual(type(e, "\x03"), [{ type: "interrupt" }]);
});

Deno.test("LineEditor.view() scrolls a long line sideways to keep the cursor in view", () => {
  const e = new LineEditor();
  type(e, "0123456789abcdefghij"); // 20 characters in a 12-column terminal after "> "
  let v = e.view(12, 2);
  assert.equal(v.text, "bcdefghij");
  assert.equal(v.cursorColumn, 11);
  type(e, "\x01");
  v = e.view(12, 2);
  assert.equal(v.text, "012345678");
  assert.equal(v.cursorColumn, 2);
  // Wide characters take two columns.
  const w = new LineEditor();
  type(w, "日本語");
  assert.equal(w.view(80, 2).cursorColumn, 8);
  assert.equal(charWidth("日"), 2);
  assert.equal(charWidth("\u0301"), 0);
  assert.equal(textWidth("é"), 1);
});

/** A terminal in memory: what was written, and keys fed in. */
function fakeTerminal(columns = 40) {
  const input = new TransformStream<Uint8Array, Uint8Array>();
  const writer = input.writable.getWriter();
  const io: TerminalIO & { out: string; raw: boolean[] } = {
    input: input.readable,
    out: "",
    raw: [],
    write(text) {
      io.out += text;
    },
    setRaw(raw) {
      io.raw.push(raw);
    },
    columns: () => columns,
  };
  return { io, keys: (s: string) => writer.write(new TextEncoder().encode(s)) };
}

Deno.test("Terminal prints above the line being typed and draws the line again as it was", async () => {
  const { io, keys } = fakeTerminal();
  let interrupted = false;
  const term = new Terminal(io, "> ", () => interrupted = true);
  const lines = term.lines()[Symbol.asyncIterator]();
  const first = lines.next();
  term.show();
  await keys("half typ");
  await keys("\x1b[D"); // the cursor one left of the end
  await new Promise((r) => setTimeout(r, 10));
  io.out = "";
  term.above("< a message\nin two lines");
  assert.equal(
    io.out,
    // Clear the prompt line, print above, then the prompt, the line, and the cursor where it was.
    "\r\x1b[2K< a message\r\nin two lines\r\n\r> half typ\x1b[K\r\x1b[9C",
  );
  await keys("e\r");
  assert.deepEqual(await first, { value: "half tyep", done: false });
  assert.deepEqual(io.raw, [true], "raw mode on while reading");
  const second = lines.next();
  await keys("\x03");
  assert.deepEqual(await second, { value: undefined, done: true });
  assert.equal(interrupted, true);
  assert.deepEqual(io.raw, [true, false], "raw mode off at the end");
});

Deno.test("Terminal.above() without a prompt on screen just prints", () => {
  const { io } = fakeTerminal();
  const term = new Terminal(io, "> ", () => {});
  const err: string[] = [];
  term.above("time=… event=open", (t) => err.push(t));
  assert.deepEqual(err, ["time=… event=open\r\n"]);
  assert.equal(io.out, "");
});
