/**
 * The client program, once its command line is read: the terminal or the
 * pipes, the log, the warnings, and then a session (or the idle probe)
 * until it ends or is asked to stop.
 *
 * @module
 */

import { readFlagFile } from "../common/files.ts";
import { warnIfUntunable } from "../common/keepalive.ts";
import { readLines } from "../common/lines.ts";
import { createLogger, type Logger, writeStderr } from "../common/log.ts";
import { runCommand } from "../common/command.ts";
import { listenForStop, type Stop } from "../common/signals.ts";
import type { ClientCommand, ClientProgram } from "./cli.ts";
import { HistoryFile, historyPath } from "./history.ts";
import { createOutput } from "./output.ts";
import { runProbe } from "./probe_run.ts";
import { type ClientIO, runClient } from "./session.ts";
import { processTerminal, Terminal } from "./terminal.ts";

/** Does what the command line asked for; resolves with the exit code. */
export function clientCommand(command: ClientCommand): Promise<number> {
  return runCommand(command, "client", runClientProgram);
}

/** Where the client's output goes: the terminal's line editor, or plain streams. */
interface Screen {
  /** The line editor, on a terminal. */
  term: Terminal | null;
  /** Where events go. */
  log: Logger;
  /** Whether stdout is a terminal. */
  stdoutTty: boolean;
}

/** Runs the client until it ends, Ctrl-C, SIGTERM, or the end of the npm it was started through. */
export async function runClientProgram(p: ClientProgram): Promise<number> {
  const caCerts = p.caFile ? [await readFlagFile("--ca", p.caFile)] : undefined;
  const dial = {
    ...p.dial,
    caCerts,
    ...(p.certFiles
      ? {
        cert: await readFlagFile("--cert", p.certFiles.cert),
        key: await readFlagFile("--key", p.certFiles.key),
      }
      : {}),
  };
  const stop = listenForStop({ launcher: true });
  const interrupted = stop.requested.then(() => {});
  const screen = openScreen(p, stop);
  const log = screen.log;
  warnIfUntunable(log, p.dial.keepAlive);
  if (p.dial.insecure && p.url.protocol === "wss:") {
    log.warn("insecure", {
      message: "-k: the server's certificate is not checked; anyone on the path can read " +
        "and change this connection",
    });
  }
  if (p.probe) {
    return await runProbe({
      url: p.url,
      dial,
      ...p.probe,
      logger: log,
      print: (line) => writeStdout(new TextEncoder().encode(line + "\n")),
      interrupted,
    });
  }
  try {
    return await runClient({
      url: p.url,
      dial,
      send: p.send ?? [],
      count: p.count,
      wait: p.wait,
      binary: p.binary,
      reconnect: p.reconnect,
      reconnectMaxDelay: p.reconnectMaxDelay,
      showPings: p.showPings,
      faults: p.faults,
      slash: p.slash ?? screen.term !== null,
      caFile: p.caFile,
      logger: log,
    }, clientIO(p, screen, interrupted));
  } finally {
    // Raw mode off before the program exits.
    screen.term?.close();
  }
}

/**
 * The line editor when both ends are a terminal (and stdin is the input),
 * with the saved history unless --no-history, and the logger.
 */
function openScreen(p: ClientProgram, stop: Stop): Screen {
  const stdoutTty = Deno.stdout.isTerminal();
  const interactive = Deno.stdin.isTerminal() && stdoutTty && !p.send && p.probe === null;
  const warnings: string[] = [];
  const history = interactive && p.history ? savedHistory((w) => warnings.push(w)) : undefined;
  const term = interactive
    ? new Terminal(
      processTerminal(),
      Deno.noColor ? "> " : "\x1b[1;36m>\x1b[0m ",
      () => stop.request({ signal: "SIGINT" }),
      history,
    )
    : null;
  const log = createLogger(
    p.logFormat,
    term && Deno.stderr.isTerminal()
      ? (line) => term.above(line.replace(/\n$/, ""), writeStderr)
      : writeStderr,
  );
  for (const message of warnings) log.warn("history", { message });
  return { term, log, stdoutTty };
}

/** The history file's lines and where new ones go; undefined when there is no place for it. */
function savedHistory(
  warn: (message: string) => void,
): { saved: string[]; remember: (line: string) => void } | undefined {
  let path: string | null;
  try {
    path = historyPath((name) => Deno.env.get(name));
  } catch {
    warn("history: not saved: reading HOME and XDG_STATE_HOME needs --allow-env");
    return undefined;
  }
  if (path === null) return undefined;
  const { file, lines } = HistoryFile.open(path, warn);
  return { saved: lines, remember: (line) => file.add(line) };
}

/** The session's input and output on this process's terminal or pipes. */
function clientIO(p: ClientProgram, screen: Screen, interrupted: Promise<void>): ClientIO {
  const { term, log, stdoutTty } = screen;
  const colour = stdoutTty && !Deno.noColor;
  const out = createOutput(p.output, stdoutTty, colour);
  const dim = (text: string) => colour ? `\x1b[2m${text}\x1b[22m` : text;
  return {
    lines: p.send ? null : term ? term.lines() : readLines(Deno.stdin.readable),
    print(message) {
      const line = out.line(message);
      if (term && line !== null) term.above(line);
      else writeStdout(out.format(message));
    },
    notice(text, otherwise = "text") {
      if (stdoutTty) {
        const shown = text.split("\n").map((l) => dim(`· ${l}`)).join("\n");
        if (term) term.above(shown);
        else writeStdout(new TextEncoder().encode(shown + "\n"));
      } else if (otherwise === "text") writeStderr(text + "\n");
      else if (otherwise !== "none") log.log(otherwise.level, otherwise.event, otherwise.fields);
    },
    ready: () => term?.show(),
    done: () => term?.hide(),
    interrupted,
  };
}

/** Writes all of `bytes` to stdout. */
function writeStdout(bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}
