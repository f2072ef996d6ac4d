/**
 * `deno task natlab`: run the client through a NAT that forgets idle flows,
 * on this machine, to see what keepalive, the heartbeat and
 * `--probe-idle` do about it. Needs root (network namespaces) and nftables.
 *
 * ```sh
 * sudo deno task natlab -- --probe-idle --probe-min 1s --probe-max 16s --no-keepalive
 * sudo deno task natlab --nat-timeout 10s -- --keepalive-idle 5s     # type lines; idle; type again
 * ```
 *
 * It builds three namespaces (client, NAT router, server; see
 * `tests/helpers/natlab.ts`), starts `server.ts` in the server's with the
 * heartbeat and keepalive off (so that only the client decides what crosses
 * the NAT), runs `client.ts` in the client's with the flags after `--` and
 * the server's URL, shows the server's log lines prefixed with `server|`,
 * and removes everything when the client exits. Its exit code is the
 * client's.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseDuration } from "../app/common/duration.ts";
import { DEFAULT_NAT_TIMEOUT_S, NatLab, natLabUnavailable } from "../tests/helpers/natlab.ts";
import { IP, ROOT, taskFlags } from "../tests/helpers/process.ts";

const HELP = `deno task natlab [--nat-timeout D] [--server "FLAGS"] -- [client flags]

Runs client.ts through a NAT (in network namespaces made for the run and removed
after it) that forgets an idle TCP flow after --nat-timeout and then drops its
packets silently, as home routers and cloud NAT gateways do.

  --nat-timeout D     the NAT's idle timeout, whole seconds (default ${DEFAULT_NAT_TIMEOUT_S}s)
  --server "FLAGS"    flags for server.ts (default: --no-keepalive --ping-interval 0
                      --pong-timeout 0, so nothing of the server's crosses the NAT)
  -h, --help          this help

Examples:
  deno task natlab -- --probe-idle --probe-min 1s --probe-max 16s --no-keepalive
  deno task natlab -- --no-keepalive --tcp-user-timeout 4s    (type a line, wait 10s, type again)
  deno task natlab -- --keepalive-idle 2s                     (the same, but keepalive keeps the flow)

Needs root (ip netns) and nftables.`;

const QUIET_SERVER = ["--no-keepalive", "--ping-interval", "0", "--pong-timeout", "0"];
const PORT = 8080;

async function main(): Promise<number> {
  const dash = Deno.args.indexOf("--");
  const own = dash === -1 ? Deno.args : Deno.args.slice(0, dash);
  const clientArgs = dash === -1 ? [] : Deno.args.slice(dash + 1);
  let v;
  try {
    v = parseArgs({
      args: own,
      options: {
        "nat-timeout": { type: "string" },
        "server": { type: "string" },
        "help": { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (err) {
    console.error(`natlab: ${err instanceof Error ? err.message : err}\n\n${HELP}`);
    return 2;
  }
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  let natTimeoutS = DEFAULT_NAT_TIMEOUT_S;
  if (v["nat-timeout"] !== undefined) {
    const ms = parseDuration(v["nat-timeout"]);
    if (ms < 1000 || ms % 1000 !== 0) {
      console.error(
        "natlab: --nat-timeout is whole seconds, at least 1s (conntrack counts seconds)",
      );
      return 2;
    }
    natTimeoutS = ms / 1000;
  }
  const why = await natLabUnavailable();
  if (why) {
    console.error(`natlab: cannot build the lab here: ${why}`);
    return 1;
  }
  const serverFlags = v.server === undefined ? QUIET_SERVER : v.server.split(/\s+/).filter(Boolean);

  // Ctrl-C reaches the client (same process group); this process stays to clean up.
  const ignore = () => {};
  Deno.addSignalListener("SIGINT", ignore);
  await using lab = await NatLab.create({ natTimeoutS });
  const url = `ws://${lab.server.addr}:${PORT}/echo`;
  console.error(
    `natlab: client ${lab.client.addr} → NAT ${lab.router.ns} (forgets idle flows after ` +
      `${natTimeoutS}s, then drops their packets) → server ${lab.server.addr}:${PORT}\n` +
      `natlab: server.ts ${serverFlags.join(" ")}\n` +
      `natlab: client.ts ${[...clientArgs, url].join(" ")}`,
  );
  const server = new Deno.Command(IP, {
    args: [
      "netns",
      "exec",
      lab.server.ns,
      Deno.execPath(),
      "run",
      ...taskFlags("server"),
      new URL("server.ts", ROOT).pathname,
      "--addr",
      `${lab.server.addr}:${PORT}`,
      ...serverFlags,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const listening = Promise.withResolvers<void>();
  const forwarded = forward(server.stderr, "server| ", (line) => {
    if (/event=listening|"event":"listening"/.test(line)) listening.resolve();
  });
  const serverEnded = server.status.then((s) => {
    listening.reject(new Error(`server.ts exited with ${s.code} before listening`));
  });
  try {
    await listening.promise;
  } catch (err) {
    console.error(`natlab: ${err instanceof Error ? err.message : err}`);
    return 1;
  }
  const client = new Deno.Command(IP, {
    args: [
      "netns",
      "exec",
      lab.client.ns,
      Deno.execPath(),
      "run",
      ...taskFlags("client"),
      new URL("client.ts", ROOT).pathname,
      ...clientArgs,
      url,
    ],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const { code } = await client.status;
  try {
    server.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  await Promise.race([serverEnded, new Promise((r) => setTimeout(r, 7_000))]);
  await forwarded.catch(() => {});
  Deno.removeSignalListener("SIGINT", ignore);
  return code;
}

/** Copies `stream`'s lines to stderr with `prefix`, calling `each` on every line. */
async function forward(
  stream: ReadableStream<Uint8Array>,
  prefix: string,
  each: (line: string) => void,
): Promise<void> {
  let rest = "";
  const encoder = new TextEncoder();
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + text).split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      each(line);
      Deno.stderr.writeSync(encoder.encode(`${prefix}${line}\n`));
    }
  }
  if (rest) Deno.stderr.writeSync(encoder.encode(`${prefix}${rest}\n`));
}

if (import.meta.main) Deno.exit(await main());
