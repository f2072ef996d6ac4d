/**
 * Real proxies for the `--proxy` tests, each on a free loopback port with
 * its own configuration file in a temporary directory, stopped (and the
 * directory removed) on dispose: Debian's tinyproxy (HTTP CONNECT) and
 * Dante's danted (SOCKS5). Needs tinyproxy and danted
 * ({@linkcode ./needs.ts}).
 *
 * ```ts
 * await using proxy = await startTinyproxy({ timeoutS: 5 });
 * // …client --proxy proxy.url…
 * assert.match(await proxy.log(), /CONNECT 127\.0\.0\.1:/);
 * ```
 *
 * @module
 */

import { pathOf } from "./needs.ts";

/** A running proxy. */
export interface ProxyProcess extends AsyncDisposable {
  /** Its port on 127.0.0.1. */
  port: number;
  /** `SCHEME://127.0.0.1:PORT`, without credentials. */
  url: string;
  /** The proxy's own log so far. */
  log(): Promise<string>;
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/** Waits until 127.0.0.1:`port` accepts TCP, failing after `timeoutMs` or when `child` exits. */
async function untilListening(port: number, child: Deno.ChildProcess, timeoutMs = 5_000) {
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !exited) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`the proxy did not listen on 127.0.0.1:${port}${exited ? " (it exited)" : ""}`);
}

/** Starts `command args` and waits for its port; stops it and removes `dir` on dispose. */
async function startProxy(
  command: string,
  args: string[],
  dir: string,
  scheme: string,
  port: number,
  logFile: string,
): Promise<ProxyProcess> {
  const child = new Deno.Command(command, { args, stdin: "null", stdout: "null", stderr: "piped" })
    .spawn();
  const stderr = new Response(child.stderr).text();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await child.status;
    await stderr;
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await untilListening(port, child);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}: ${await stderr}`);
  }
  return {
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    log: () => Deno.readTextFile(logFile).catch(() => ""),
    [Symbol.asyncDispose]: stop,
  };
}

/** Options of {@linkcode startTinyproxy}. */
export interface TinyproxyOptions {
  /** `Timeout`: seconds a connection may idle before tinyproxy closes it (default 600). */
  timeoutS?: number;
  /** `BasicAuth user pass`: CONNECT needs these credentials. */
  basicAuth?: { user: string; pass: string };
  /** `ConnectPort` lines: CONNECT only to these ports (default: none, so any port). */
  connectPorts?: number[];
}

/** Starts tinyproxy in the foreground (`-d -c FILE`) on a free port, logging connections. */
export async function startTinyproxy(options: TinyproxyOptions = {}): Promise<ProxyProcess> {
  const dir = await Deno.makeTempDir({ prefix: "tinyproxy-" });
  const port = freePort();
  const logFile = `${dir}/tinyproxy.log`;
  const lines = [
    `Port ${port}`,
    "Listen 127.0.0.1",
    `Timeout ${options.timeoutS ?? 600}`,
    "LogLevel Connect",
    `LogFile "${logFile}"`,
    `PidFile "${dir}/tinyproxy.pid"`,
    "MaxClients 100",
    ...(options.basicAuth ? [`BasicAuth ${options.basicAuth.user} ${options.basicAuth.pass}`] : []),
    ...(options.connectPorts ?? []).map((p) => `ConnectPort ${p}`),
  ];
  const conf = `${dir}/tinyproxy.conf`;
  await Deno.writeTextFile(conf, lines.join("\n") + "\n");
  return await startProxy(pathOf("tinyproxy"), ["-d", "-c", conf], dir, "http", port, logFile);
}

/** Options of {@linkcode startDanted}. */
export interface DantedOptions {
  /** `socksmethod: username` (system users, checked against /etc/shadow) instead of `none`. */
  username?: boolean;
}

/** Starts danted (`-f FILE -p PIDFILE`) on a free port, SOCKS5 from and to loopback. */
export async function startDanted(options: DantedOptions = {}): Promise<ProxyProcess> {
  const dir = await Deno.makeTempDir({ prefix: "danted-" });
  const port = freePort();
  const logFile = `${dir}/danted.log`;
  const conf = `${dir}/danted.conf`;
  await Deno.writeTextFile(
    conf,
    [
      `logoutput: ${logFile}`,
      `internal: 127.0.0.1 port = ${port}`,
      "external: 127.0.0.1",
      `socksmethod: ${options.username ? "username" : "none"}`,
      "clientmethod: none",
      "user.privileged: root",
      "user.unprivileged: nobody",
      "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 log: error }",
      "socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 log: connect error }",
      "",
    ].join("\n"),
  );
  return await startProxy(
    pathOf("danted"),
    ["-f", conf, "-p", `${dir}/danted.pid`],
    dir,
    "socks5",
    port,
    logFile,
  );
}

/**
 * A throwaway system user with a password, for danted's `username` method
 * (it checks system users); deleted on dispose. Needs root.
 */
export async function systemUser(name: string, password: string): Promise<AsyncDisposable> {
  const run = async (cmd: string, args: string[], input?: string) => {
    const child = new Deno.Command(cmd, {
      args,
      stdin: input === undefined ? "null" : "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    if (input !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(input));
      await w.close();
    }
    const out = await child.output();
    if (!out.success) {
      throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  await run("/usr/sbin/useradd", ["--no-create-home", "--shell", "/usr/sbin/nologin", name]);
  try {
    await run("/usr/sbin/chpasswd", [], `${name}:${password}\n`);
  } catch (err) {
    await run("/usr/sbin/userdel", [name]).catch(() => {});
    throw err;
  }
  return { [Symbol.asyncDispose]: () => run("/usr/sbin/userdel", [name]) };
}
