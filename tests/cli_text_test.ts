/**
 * Every help, usage and error text both programs print holds no control
 * character but newline: not in `--help` (where `\n` and `\x01` once came
 * out as a newline and a raw ^A), not in a usage error for any kind of
 * value, not when the value the user typed holds an escape sequence, and
 * not in the errors of a program that cannot start or connect.
 */

import assert from "node:assert/strict";
import { Program } from "./helpers/process.ts";
import { parseLine, SLASH_HELP } from "../app/client/slash.ts";

/** C0 controls but newline, DEL and the C1 controls. */
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

/** Where the first control character is, with the line around it, or null. */
function firstControl(text: string): string | null {
  const m = CONTROL.exec(text);
  if (!m) return null;
  const line = text.slice(text.lastIndexOf("\n", m.index) + 1).split("\n")[0];
  return `U+${m[0].charCodeAt(0).toString(16).padStart(4, "0")} in ${JSON.stringify(line)}`;
}

type Case = [program: "server" | "client", args: string[], code: number];

const ESC = "\x1b[2J\x1b[31m";

/** A port nothing listens on. */
const closed = (() => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
})();

const CASES: Case[] = [
  ["server", ["--help"], 0],
  ["client", ["--help"], 0],
  ["server", ["--version"], 0],
  ["client", ["--version"], 0],
  ["server", ["--print-keepalive"], 0],
  ["client", ["--print-keepalive", "--keepalive-idle", "-1s"], 0],
  // An unknown flag, a missing value, an argument too many.
  ["server", ["--nope"], 2],
  ["client", ["--nope"], 2],
  ["server", ["--addr"], 2],
  ["server", ["extra"], 2],
  ["client", ["ws://a/", "ws://b/"], 2],
  // A bad URL.
  ["client", ["http://localhost:8080/echo"], 2],
  ["client", ["ftp://x/"], 2],
  ["client", ["ws://host/#frag"], 2],
  ["client", [`ws://${ESC}host/`], 2],
  // A bad value of each kind: duration, negative duration, whole number, size,
  // one of a list, address, header, worker count, probe count, combinations.
  ["server", ["--ping-interval", "5x"], 2],
  ["client", ["--wait", "10"], 2],
  ["server", ["--stall-timeout", "-1s"], 2],
  ["client", ["--count", "many"], 2],
  ["server", ["--max-connections", "-3"], 2],
  ["server", ["--max-message-size", "1XB"], 2],
  ["server", ["--memory-budget", "0"], 2],
  ["server", ["--log-format", "xml"], 2],
  ["client", ["--output", "html"], 2],
  ["client", ["--drop-after", "1s", "--drop-mode", "pull"], 2],
  ["server", ["--addr", "nowhere"], 2],
  ["server", ["--addr", ESC], 2],
  ["client", ["-H", "no colon"], 2],
  ["client", ["-H", `${ESC}: v`], 2],
  ["client", ["-H", "Origin: x"], 2],
  ["server", ["--workers", "0"], 2],
  ["server", ["--keepalive-count", "nine"], 2],
  ["server", ["--keepalive-idle", "99999h"], 2],
  ["client", ["--no-keepalive", "--keepalive", "1s"], 2],
  ["server", ["--handshake-timeout", "0"], 2],
  ["server", ["--ping-interval", "10s", "--pong-timeout", "5s"], 2],
  ["server", ["--tls-cert", "/tmp/x.pem"], 2],
  ["client", ["--slash", "--no-slash"], 2],
  ["client", ["--probe-min", "1s"], 2],
  ["client", ["--probe-idle", "--send", "x"], 2],
  ["client", ["--probe-idle", "--probe-min", "4s", "--probe-max", "2s"], 2],
  ["server", ["--drop-mode", "rst"], 2],
  // Cannot start or connect.
  ["server", ["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], 1],
  ["client", ["--ca", "/nonexistent.pem", "wss://127.0.0.1:1/"], 1],
  ["client", ["--send", "x", `ws://127.0.0.1:${closed}/echo`], 1],
];

Deno.test("help, usage and error texts of both programs hold no control character but newline", async () => {
  const failures: string[] = [];
  // A few at a time: each is a short-lived process.
  for (let i = 0; i < CASES.length; i += 6) {
    await Promise.all(
      CASES.slice(i, i + 6).map(async ([program, args, code]) => {
        await using proc = Program.start(`${program}.ts`, args);
        const exit = await proc.wait();
        const what = `${program} ${JSON.stringify(args)}`;
        if (exit.code !== code) failures.push(`${what} exited ${exit.code}, not ${code}`);
        if (exit.stdout + exit.stderr === "") failures.push(`${what} printed nothing`);
        for (const [stream, text] of [["stdout", exit.stdout], ["stderr", exit.stderr]]) {
          const found = firstControl(text);
          if (found) failures.push(`${what} ${stream}: ${found}`);
        }
      }),
    );
  }
  assert.deepEqual(failures, []);
});

Deno.test("the slash commands' help and errors hold no control character but newline", () => {
  const texts = [SLASH_HELP];
  for (const line of ["/nope", "/close abc", "/close 1000 " + "x".repeat(200), "/quit now"]) {
    const command = parseLine(line);
    assert.equal(command.type, "error", line);
    if (command.type === "error") texts.push(command.message);
  }
  for (const text of texts) assert.equal(firstControl(text), null, text);
});
