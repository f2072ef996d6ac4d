/**
 * A real HAProxy as a WebSocket reverse proxy for tests, configured with the
 * recipe documented in docs/deploy.md (its ```haproxy block), so the docs
 * stay true: only the listening address, the servers' addresses and
 * `timeout tunnel` are replaced. It runs in the foreground (`-db`) on a free
 * loopback port with its config in its own temporary directory, and is
 * stopped and the directory removed on dispose (`await using`), even when a
 * test fails.
 *
 * @module
 */

import { pathOf } from "./needs.ts";
import { Program, ROOT } from "./process.ts";

/** Where Debian's haproxy package installs the binary (tests say `needs(…, "haproxy")`). */
export const HAPROXY_BIN: string = pathOf("haproxy");

/** The documented recipe: the ```haproxy block of docs/deploy.md's `## HAProxy` section. */
export function documentedRecipe(): string {
  const doc = Deno.readTextFileSync(new URL("docs/deploy.md", ROOT));
  const section = /^## HAProxy\n([^]*?)(?=^## |(?![^]))/m.exec(doc)?.[1];
  if (!section) throw new Error("docs/deploy.md has no '## HAProxy' section");
  const blocks = [...section.matchAll(/^```haproxy\n([^]*?)^```$/gm)];
  if (blocks.length !== 1) {
    throw new Error(`docs/deploy.md's HAProxy section has ${blocks.length} haproxy blocks, not 1`);
  }
  return blocks[0][1];
}

/** What changes in the recipe for a test. */
export interface HaproxyOptions {
  /** The upstream server's port on 127.0.0.1 (every `server` line points there). */
  upstreamPort: number;
  /** `timeout tunnel`, in HAProxy syntax (e.g. `3s`). */
  tunnelTimeout: string;
}

/**
 * The recipe with `bind` on 127.0.0.1:`port`, every `server` on the upstream
 * and `timeout tunnel` set; throws when a line to replace is not in it
 * exactly once (bind, timeout tunnel) or at all (server).
 */
export function haproxyConfig(recipe: string, port: number, options: HaproxyOptions): string {
  const replace = (what: string, re: RegExp, by: (...m: string[]) => string, once: boolean) => {
    const found = recipe.match(new RegExp(re.source, "gm"))?.length ?? 0;
    if (found === 0 || (once && found > 1)) {
      throw new Error(`the documented HAProxy recipe has ${found} ${what} lines`);
    }
    recipe = recipe.replace(new RegExp(re.source, "gm"), by);
  };
  replace("bind", /^(\s+bind\s+)\S+/, (_, head) => `${head}127.0.0.1:${port}`, true);
  replace(
    "timeout tunnel",
    /^(\s+timeout\s+tunnel\s+)\S+/,
    (_, head) => `${head}${options.tunnelTimeout}`,
    true,
  );
  replace(
    "server",
    /^(\s+server\s+\S+\s+)\S+/,
    (_, head) => `${head}127.0.0.1:${options.upstreamPort}`,
    false,
  );
  return recipe;
}

/** A running HAProxy started by {@linkcode startHaproxy}. */
export interface Haproxy extends AsyncDisposable {
  /** The port HAProxy listens on (127.0.0.1). */
  readonly port: number;
  /** `ws://127.0.0.1:PORT/echo` through the proxy. */
  readonly echoUrl: string;
  /** The config it runs. */
  readonly config: string;
  /** What HAProxy printed so far (its warnings and alerts; the recipe sets no log). */
  output(): string;
}

/** A port that was free on 127.0.0.1 a moment ago. */
function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return (listener.addr as Deno.NetAddr).port;
}

/** Whether `/healthz` answers 200 through the proxy (so it has a server it counts as up). */
async function healthy(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** How long HAProxy gets to listen and find its server up. */
const START_TIMEOUT_MS = 15_000;

/**
 * Starts HAProxy with the documented recipe in front of `upstreamPort`;
 * resolves once `/healthz` answers 200 through it.
 */
export async function startHaproxy(options: HaproxyOptions): Promise<Haproxy> {
  const dir = await Deno.makeTempDir({ prefix: "keepalive-ws-haproxy-" });
  const port = freePort();
  const config = haproxyConfig(documentedRecipe(), port, options);
  await Deno.writeTextFile(`${dir}/haproxy.cfg`, config);
  // -db: stay in the foreground; -f: this config only.
  const haproxy = Program.spawn(HAPROXY_BIN, ["-db", "-f", `${dir}/haproxy.cfg`], { cwd: dir });
  const stop = async () => {
    haproxy.kill("SIGTERM"); // HAProxy's hard stop: it does not wait for open tunnels.
    await haproxy.wait(5_000).catch(() => {});
    await haproxy[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await haproxy.until(
      `haproxy on 127.0.0.1:${port} to answer /healthz with 200`,
      () => healthy(port),
      START_TIMEOUT_MS,
    );
  } catch (err) {
    await stop();
    throw new Error(`haproxy did not start on 127.0.0.1:${port}:\n${haproxy.output()}`, {
      cause: err,
    });
  }
  return {
    port,
    echoUrl: `ws://127.0.0.1:${port}/echo`,
    config,
    output: () => haproxy.stdout + haproxy.stderr,
    [Symbol.asyncDispose]: stop,
  };
}
