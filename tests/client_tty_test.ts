// deno-lint-ignore-file no-control-regex -- these tests look for control characters on purpose
/**
 * The client as a person uses it, in a real pseudo-terminal (tmux), read
 * from the screen as drawn: line editing and history, messages that arrive
 * while a line is half typed, slash commands, and a server that sends
 * control characters and binary.
 */

import assert from "node:assert/strict";
import { type CloseInfo, serve, type Server } from "../mod.ts";
import { PERMISSIONS, ROOT } from "./helpers/process.ts";
import { withPrograms } from "./helpers/needs.ts";
import { Tmux } from "./helpers/tmux.ts";

const HOSTILE = "red\x1b[31mRED\x1b[0m\r\nline2\u009b2J\u202eabc";

/**
 * A server that plays along: it echoes, and it answers `later:TEXT` with
 * TEXT 800 ms later, `evil` with a text full of control characters and a
 * binary message. It records what it received and how connections closed.
 */
function playServer() {
  const received: string[] = [];
  const closes: CloseInfo[] = [];
  const server: Server = serve({ hostname: "127.0.0.1", port: 0 }, async (req) => {
    const ws = await req.upgrade();
    ws.closed.then((info) => closes.push(info));
    for await (const m of ws) {
      const text = typeof m === "string" ? m : new TextDecoder().decode(m);
      received.push(text);
      if (text.startsWith("later:")) {
        setTimeout(() => ws.send(text.slice(6)).catch(() => {}), 800);
      } else if (text === "evil") {
        await ws.send(HOSTILE);
        await ws.send(new TextEncoder().encode("hello"));
      } else {
        await ws.send(m);
      }
    }
  });
  return {
    url: `ws://127.0.0.1:${server.addr.port}/echo`,
    received,
    closes,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/**
 * The client in a terminal, `env` its whole environment (NO_COLOR, …).
 * Unless `env` names one, its history goes to a fresh XDG_STATE_HOME that
 * goes with the pane, never to this machine's home.
 */
async function client(
  args: string[],
  env: Record<string, string> = {},
  width = 100,
): Promise<Tmux> {
  const state = env.XDG_STATE_HOME ?? await Deno.makeTempDir({ prefix: "keepalive-ws-state-" });
  const tty = await Tmux.start([
    Deno.execPath(),
    "run",
    ...PERMISSIONS,
    new URL("client.ts", ROOT).pathname,
    ...args,
  ], { env: { XDG_STATE_HOME: state, ...env }, width });
  if (env.XDG_STATE_HOME) return tty;
  const dispose = tty[Symbol.asyncDispose].bind(tty);
  tty[Symbol.asyncDispose] = async () => {
    await dispose();
    await Deno.remove(state, { recursive: true });
  };
  return tty;
}

/** The last row that shows the prompt. */
function promptRow(screen: string): string {
  return screen.split("\n").filter((l) => l.startsWith(">")).at(-1) ?? "";
}

/** Every test here reads the screen of a tmux pane. */
const withTmux = withPrograms("tmux");

withTmux.test("client on a terminal: the up arrow recalls the last line to edit instead of sending \\x1b[A", async () => {
  await using server = playServer();
  await using tty = await client([server.url]);
  await tty.until("the prompt", (s) => /event=open/.test(s) && promptRow(s) === ">");
  await tty.type("first message\r");
  await tty.until("the echo", (s) => s.includes("< first message"));
  await tty.keys("Up");
  await tty.until("the line recalled", (s) => promptRow(s) === "> first message");
  // Edit it: Home, a word, End, Backspace twice.
  await tty.keys("Home");
  await tty.type("edited ");
  await tty.keys("End", "BSpace", "BSpace", "Enter");
  await tty.until("the edited echo", (s) => s.includes("< edited first messa"));
  assert.deepEqual(server.received, ["first message", "edited first messa"]);
  await tty.keys("C-d");
  assert.equal(await tty.exitCode(), 0);
});

withTmux.test("client on a terminal: a message that arrives while a line is half typed prints above it, and the line and cursor stay", async () => {
  await using server = playServer();
  await using tty = await client([server.url]);
  await tty.until("the prompt", (s) => /event=open/.test(s) && promptRow(s) === ">");
  await tty.type("later:pushed while you type\r");
  await tty.until("the prompt again", (s) => s.split("\n").filter((l) => l === ">").length === 1);
  await tty.type("half typed");
  await tty.keys("Left", "Left");
  const screen = await tty.until(
    "the pushed message",
    (s) => s.includes("< pushed while you type"),
  );
  // The message is above the prompt, and the half-typed line is intact below it.
  const rows = screen.split("\n").filter((l) => l !== "");
  assert.equal(rows.at(-1), "> half typed", screen);
  assert.equal(rows.at(-2), "< pushed while you type", screen);
  const cursor = await tty.cursor();
  assert.equal(cursor.column, "> half typ".length, "the cursor is back where it was");
  await tty.type("X\r");
  await tty.until("the echo", (s) => s.includes("< half typXed"));
  assert.deepEqual(server.received.at(-1), "half typXed");
});

withTmux.test("client on a terminal: slash commands /ping, /help, //, an unknown one, and /close with a code and reason", async () => {
  await using server = playServer();
  await using tty = await client([server.url], { NO_COLOR: "1" }, 200);
  await tty.until("the prompt", (s) => /event=open/.test(s) && promptRow(s) === ">");
  await tty.type("/ping hello\r");
  await tty.until("the round trip", (s) => /· pong: round trip \d+ ms/.test(s));
  await tty.type("/help\r");
  await tty.until("the list", (s) => s.includes("/close [code [reason]]"));
  await tty.type("/nope\r");
  await tty.until("the mistake", (s) => s.includes("· unknown command /nope"));
  await tty.type("//etc\r");
  await tty.until("the echo of /etc", (s) => s.includes("< /etc"));
  assert.deepEqual(server.received, ["/etc"], "commands are not sent as messages");
  await tty.type("/close 4001 done for today\r");
  assert.equal(await tty.exitCode(), 0);
  const screen = (await tty.screen()).join("\n");
  assert.match(screen, /event=close id=1 code=4001 reason="done for today" cause=local-close/);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(
    [server.closes[0]?.code, server.closes[0]?.reason],
    [4001, "done for today"],
  );
});

withTmux.test("client on a terminal: a server's control characters show as escapes and binary is marked; nothing reaches the terminal raw", async () => {
  await using server = playServer();
  await using tty = await client([server.url], { NO_COLOR: "1" });
  await tty.until("the prompt", (s) => /event=open/.test(s) && promptRow(s) === ">");
  await tty.type("evil\r");
  const screen = await tty.until("the binary message", (s) => s.includes("< [binary 5 B]"));
  assert.ok(
    screen.includes("< red\\e[31mRED\\e[0m\\r\\nline2\\u{9b}2J\\u{202e}abc"),
    screen,
  );
  assert.ok(screen.includes("< [binary 5 B] aGVsbG8="), screen);
  // With NO_COLOR the client writes no colour at all: red on screen would be the server's.
  const drawn = await tty.screenWithEscapes();
  assert.ok(!drawn.includes("\x1b[31m"), JSON.stringify(drawn));
  assert.ok(!/\x1b\[[0-9;]*m/.test(drawn), "no colour at all under NO_COLOR");
  await tty.keys("C-c");
  assert.equal(await tty.exitCode(), 0, "Ctrl-C closes with 1000 and exits 0");
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(server.closes[0]?.code, 1000);
});

withTmux.test("client on a terminal: a line longer than the terminal scrolls sideways and is sent whole", async () => {
  await using server = playServer();
  await using tty = await client([server.url], { NO_COLOR: "1" }, 30);
  await tty.until("the prompt", (s) => promptRow(s) === ">");
  const long = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF";
  await tty.type(long);
  const screen = await tty.until("the end of the line", (s) => promptRow(s).endsWith("ABCDEF"));
  assert.ok(promptRow(screen).length <= 30, promptRow(screen));
  await tty.type("\r");
  await tty.until("the echo", () => server.received.includes(long));
});

withTmux.test("client --output raw on a terminal is a usage error: the server's bytes could drive it", async () => {
  await using tty = await client(["--output", "raw", "ws://127.0.0.1:1/"]);
  assert.equal(await tty.exitCode(), 2);
  const screen = (await tty.screen()).join("\n");
  assert.match(screen, /client: --output raw writes the server's bytes unchanged/);
  assert.match(screen, /Run 'deno task client --help' for usage\./);
});

withTmux.test("client on a terminal keeps its history in $XDG_STATE_HOME (0600) for the next run, without lines typed after a space; --no-history neither reads nor writes it", async () => {
  await using server = playServer();
  const state = await Deno.makeTempDir({ prefix: "keepalive-ws-state-" });
  const file = `${state}/keepalive-ws/history`;
  try {
    {
      await using tty = await client([server.url], { XDG_STATE_HOME: state });
      await tty.until("the prompt", (s) => /event=open/.test(s) && promptRow(s) === ">");
      await tty.type("kept line\r");
      await tty.until("the echo", (s) => s.includes("< kept line"));
      await tty.type(" secret token\r");
      await tty.until("the secret's echo", (s) => s.includes("<  secret token"));
      await tty.keys("C-d");
      assert.equal(await tty.exitCode(), 0);
    }
    assert.equal(
      Deno.readTextFileSync(file),
      "kept line\n",
      "the line after a space is sent, not kept",
    );
    assert.equal(Deno.statSync(file).mode! & 0o777, 0o600);
    {
      await using tty = await client([server.url], { XDG_STATE_HOME: state });
      await tty.until("the prompt", (s) => /event=open/.test(s) && promptRow(s) === ">");
      await tty.keys("Up");
      await tty.until("last run's line recalled", (s) => promptRow(s) === "> kept line");
      await tty.keys("C-u", "C-d");
      assert.equal(await tty.exitCode(), 0);
    }
    {
      await using tty = await client(["--no-history", server.url], { XDG_STATE_HOME: state });
      await tty.until("the prompt", (s) => /event=open/.test(s) && promptRow(s) === ">");
      await tty.keys("Up");
      await tty.type("unsaved\r");
      await tty.until("the echo", (s) => s.includes("< unsaved"));
      await tty.keys("Up");
      await tty.until("only this run's line", (s) => promptRow(s) === "> unsaved");
      await tty.keys("C-u", "C-d");
      assert.equal(await tty.exitCode(), 0);
    }
    assert.equal(Deno.readTextFileSync(file), "kept line\n", "--no-history wrote nothing");
    assert.deepEqual(server.received, ["kept line", " secret token", "unsaved"]);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});
