/**
 * The interactive client's saved history without a terminal: where the
 * file is, its mode, its 1,000-line bound, what is left out (a leading
 * space), and a file that cannot be used. `client_tty_test.ts` runs the
 * same through a real terminal.
 */

import assert from "node:assert/strict";
import { HISTORY_MAX_LINES, HistoryFile, historyPath } from "../app/client/history.ts";
import { LineEditor } from "../app/client/editor.ts";
import { decodeKeys } from "../app/client/keys.ts";

/** A fresh folder for one test's history. */
async function tempState(): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "keepalive-ws-history-" });
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

function lines(path: string): string[] {
  return Deno.readTextFileSync(path).split("\n").filter((l) => l !== "");
}

Deno.test("historyPath() takes XDG_STATE_HOME, else ~/.local/state, else none", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.equal(
    historyPath(env({ XDG_STATE_HOME: "/s", HOME: "/h" })),
    "/s/keepalive-ws/history",
  );
  assert.equal(historyPath(env({ HOME: "/h" })), "/h/.local/state/keepalive-ws/history");
  // The XDG spec: a relative XDG_STATE_HOME is invalid and ignored.
  assert.equal(
    historyPath(env({ XDG_STATE_HOME: "rel", HOME: "/h" })),
    "/h/.local/state/keepalive-ws/history",
  );
  assert.equal(historyPath(env({})), null);
});

Deno.test("HistoryFile makes its folder 0700 and the file 0600, and appends each line", async () => {
  await using state = await tempState();
  const path = `${state.dir}/keepalive-ws/history`;
  const warnings: string[] = [];
  const { file, lines: saved } = HistoryFile.open(path, (w) => warnings.push(w));
  assert.deepEqual(saved, [], "no file yet: an empty history");
  file.add("first");
  file.add("second");
  assert.deepEqual(lines(path), ["first", "second"]);
  assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
  assert.equal(Deno.statSync(`${state.dir}/keepalive-ws`).mode! & 0o777, 0o700);
  assert.deepEqual(HistoryFile.open(path, () => {}).lines, ["first", "second"]);
  assert.deepEqual(warnings, []);
});

Deno.test("HistoryFile holds at most 1,000 lines: the oldest go, in the file and on reading", async () => {
  await using state = await tempState();
  const path = `${state.dir}/history`;
  const long = Array.from({ length: 1500 }, (_, i) => `old ${i}`);
  Deno.writeTextFileSync(path, long.join("\n") + "\n", { mode: 0o644 });
  const { file, lines: saved } = HistoryFile.open(path, () => {});
  assert.equal(saved.length, HISTORY_MAX_LINES);
  assert.equal(saved[0], "old 500");
  file.add("new 1");
  // A file that was readable by others is the user's alone once written to.
  assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
  const after = lines(path);
  assert.equal(after.length, HISTORY_MAX_LINES);
  assert.deepEqual([after[0], after.at(-1)], ["old 501", "new 1"]);
  for (let i = 2; i <= 5; i++) file.add(`new ${i}`);
  assert.equal(lines(path).length, HISTORY_MAX_LINES);
  assert.equal(lines(path).at(-1), "new 5");
});

Deno.test("HistoryFile that cannot be read or written warns once and the session goes on", async () => {
  await using state = await tempState();
  const folder = `${state.dir}/history`;
  Deno.mkdirSync(folder); // a folder where the file should be
  const warnings: string[] = [];
  const { file, lines: saved } = HistoryFile.open(folder, (w) => warnings.push(w));
  assert.deepEqual(saved, []);
  file.add("a");
  file.add("b");
  assert.equal(warnings.length, 1, warnings.join("\n"));
  assert.match(warnings[0], /^history: cannot read .*history: .*not saved$/);

  // A file that reads but refuses writes, even to root.
  const late: string[] = [];
  const opened = HistoryFile.open("/proc/version", (w) => late.push(w));
  assert.ok(opened.lines.length > 0);
  opened.file.add("a");
  opened.file.add("b");
  assert.equal(late.length, 1, late.join("\n"));
  assert.match(late[0], /^history: cannot write \/proc\/version: .*; lines are not saved$/);
});

Deno.test("LineEditor keeps no line that starts with a space (ignorespace), and walks a saved history", () => {
  const editor = new LineEditor(HISTORY_MAX_LINES, ["saved one", "saved two"]);
  const enter = (text: string) =>
    decodeKeys(text + "\r").map((k) => editor.apply(k)).find((r) => r.type === "line");
  assert.deepEqual(enter(" secret token"), {
    type: "line",
    line: " secret token",
    remembered: false,
  });
  assert.deepEqual(enter("kept"), { type: "line", line: "kept", remembered: true });
  assert.deepEqual(enter("kept"), { type: "line", line: "kept", remembered: false });
  assert.deepEqual(editor.history, ["saved one", "saved two", "kept"]);
  decodeKeys("\x1b[A\x1b[A").forEach((k) => editor.apply(k));
  assert.equal(editor.line, "saved two");
});
