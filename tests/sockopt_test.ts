import assert from "node:assert/strict";
import { fromKeepAliveConfig, keepAliveFromFlags } from "../lib/tcp/keepalive.ts";
import {
  applyToConn,
  applyToListener,
  fallbackWarning,
  fdFinderStats,
  findConnFd,
  kernelKeepAliveDefaults,
  LINUX,
  MAX_CANDIDATES,
  readSocketOptions,
  releaseConn,
  sockoptUnavailableReason,
} from "../lib/tcp/sockopt.ts";

// Open libc before any test runs, so no test owns the library handle.
const unavailable = sockoptUnavailableReason();
const linux = Deno.build.os === "linux";

/** The kernel's own keepalive defaults, read independently of the module. */
function procKeepAlive() {
  const read = (name: string) =>
    Number(Deno.readTextFileSync(`/proc/sys/net/ipv4/tcp_keepalive_${name}`));
  return {
    idle_s: read("time"),
    interval_s: read("intvl"),
    count: read("probes"),
  };
}

function port(addr: Deno.Addr): number {
  return (addr as Deno.NetAddr).port;
}

/** A loopback listener and some connected pairs, all closed on dispose. */
class Loopback implements Disposable {
  readonly listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly conns: Deno.Conn[] = [];
  get port(): number {
    return port(this.listener.addr);
  }
  async pair(): Promise<{ client: Deno.Conn; server: Deno.Conn }> {
    const client = await Deno.connect({
      hostname: "127.0.0.1",
      port: this.port,
    });
    this.conns.push(client);
    const server = await this.listener.accept();
    this.conns.push(server);
    return { client, server };
  }
  close(conn: Deno.Conn): void {
    releaseConn(conn);
    conn.close();
    this.conns.splice(this.conns.indexOf(conn), 1);
  }
  [Symbol.dispose](): void {
    for (const c of this.conns) {
      releaseConn(c);
      c.close();
    }
    this.conns.length = 0;
    releaseConn(this.listener);
    this.listener.close();
  }
}

/** Seconds left on the keepalive timers `ss` shows for sockets on local port `sport`. */
async function ssKeepAliveTimers(sport: number): Promise<number[]> {
  const out = await new Deno.Command("ss", {
    args: ["-tno", "state", "established", `( sport = :${sport} )`],
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const text = new TextDecoder().decode(out.stdout);
  return [...text.matchAll(/timer:\(keepalive,([^,]+),/g)].map((m) => {
    const t = /^(?:(\d+)min)?(?:(\d+(?:\.\d+)?)sec)?(?:(\d+)ms)?$/.exec(m[1]);
    assert.ok(t, `unexpected ss timer ${m[1]}`);
    return Number(t[1] ?? 0) * 60 + Number(t[2] ?? 0) +
      Number(t[3] ?? 0) / 1000;
  });
}

/**
 * Local and peer ports of open fds, from /proc only: fd → socket inode
 * (/proc/self/fd) → ports (/proc/net/tcp{,6}).
 */
function procPorts(): (fd: number) => [number, number] | null {
  const byInode = new Map<string, [number, number]>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of Deno.readTextFileSync(file).split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const portOf = (hex: string) => parseInt(hex.split(":")[1], 16);
      byInode.set(f[9], [portOf(f[1]), portOf(f[2])]);
    }
  }
  return (fd) => {
    const link = Deno.readLinkSync(`/proc/self/fd/${fd}`);
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    return inode ? byInode.get(inode) ?? null : null;
  };
}

const ffi = { ignore: unavailable !== null || !linux };

Deno.test({
  name: "libc loads when the tests have --allow-ffi on Linux",
  ignore: !linux,
  fn() {
    assert.equal(unavailable, null);
  },
});

Deno.test({
  name: "kernelKeepAliveDefaults() matches /proc/sys/net/ipv4",
  ...ffi,
  fn() {
    assert.deepEqual(kernelKeepAliveDefaults(), procKeepAlive());
  },
});

Deno.test({
  name: "readSocketOptions() reports the kernel defaults on an untouched socket",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { server } = await lo.pair();
    const k = procKeepAlive();
    const eff = readSocketOptions(server)!;
    assert.equal(eff.verified, true);
    assert.equal(eff.enabled, false);
    assert.deepEqual([eff.idle_s, eff.interval_s, eff.count], [
      k.idle_s,
      k.interval_s,
      k.count,
    ]);
    assert.deepEqual(
      await ssKeepAliveTimers(lo.port),
      [],
      "no keepalive timer yet",
    );
  },
});

Deno.test({
  name: "applyToConn() puts Go's 1/15/15/9 and TCP_NODELAY on the socket",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { server } = await lo.pair();
    const eff = applyToConn(server, keepAliveFromFlags({}));
    assert.deepEqual(eff, {
      enabled: true,
      idle_s: 15,
      interval_s: 15,
      count: 9,
      nodelay: true,
      user_timeout_ms: 0,
      verified: true,
      errors: [],
    });
    assert.deepEqual(readSocketOptions(server), eff, "a second read agrees");
    const timers = await ssKeepAliveTimers(lo.port);
    assert.equal(timers.length, 1, "ss shows one keepalive timer");
    assert.ok(timers[0] > 0 && timers[0] <= 15, `timer ${timers[0]}s`);
  },
});

Deno.test({
  name: "applyToConn() with --keepalive 30s gives 30/15/9",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { client } = await lo.pair();
    const eff = applyToConn(client, keepAliveFromFlags({ keepalive: "30s" }));
    assert.deepEqual([eff.enabled, eff.idle_s, eff.interval_s, eff.count], [
      true,
      30,
      15,
      9,
    ]);
    assert.equal(eff.verified, true);
  },
});

Deno.test({
  name: "applyToConn() with keepalive off clears SO_KEEPALIVE",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { server } = await lo.pair();
    assert.equal(applyToConn(server, keepAliveFromFlags({})).enabled, true);
    const eff = applyToConn(server, keepAliveFromFlags({ noKeepalive: true }));
    assert.equal(eff.enabled, false);
    assert.equal(eff.verified, true);
    assert.deepEqual(await ssKeepAliveTimers(lo.port), []);
  },
});

Deno.test({
  name: "applyToConn() leaves the count alone when the policy says os",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { server, client } = await lo.pair();
    const policy = keepAliveFromFlags({ count: "-1" });
    assert.equal(policy.count, null);
    const fresh = applyToConn(server, policy);
    assert.equal(fresh.count, procKeepAlive().count, "the kernel's count");
    assert.deepEqual([fresh.idle_s, fresh.interval_s], [15, 15]);
    applyToConn(client, keepAliveFromFlags({ count: "3" }));
    assert.equal(
      applyToConn(client, policy).count,
      3,
      "an earlier count stays",
    );
  },
});

Deno.test({
  name: "applyToConn() sets TCP_USER_TIMEOUT and reads it back",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { server } = await lo.pair();
    const eff = applyToConn(server, keepAliveFromFlags({}), {
      userTimeoutMs: 7000,
    });
    assert.equal(eff.user_timeout_ms, 7000);
    assert.equal(readSocketOptions(server)!.user_timeout_ms, 7000);
    assert.throws(() => applyToConn(server, keepAliveFromFlags({}), { userTimeoutMs: -1 }));
  },
});

Deno.test({
  name: "applyToListener() once gives accepted sockets the values with no per-conn call",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const policy = fromKeepAliveConfig({
      enable: true,
      idleMs: 21_000,
      intervalMs: 7_000,
      count: 4,
    });
    const onListener = applyToListener(lo.listener, policy, {
      userTimeoutMs: 9000,
    });
    assert.deepEqual(
      [
        onListener.verified,
        onListener.enabled,
        onListener.idle_s,
        onListener.interval_s,
        onListener.count,
      ],
      [true, true, 21, 7, 4],
    );
    const { server } = await lo.pair();
    const before = fdFinderStats();
    const eff = readSocketOptions(server)!;
    assert.deepEqual(
      [
        eff.enabled,
        eff.idle_s,
        eff.interval_s,
        eff.count,
        eff.nodelay,
        eff.user_timeout_ms,
      ],
      [true, 21, 7, 4, true, 9000],
    );
    assert.equal(fdFinderStats().fullScans, before.fullScans);
    const timers = await ssKeepAliveTimers(lo.port);
    assert.equal(timers.length, 1);
    assert.ok(timers[0] > 15 && timers[0] <= 21, `timer ${timers[0]}s`);
  },
});

Deno.test({
  name: "findConnFd() matches each of many conns to its own fd, also after closes",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const check = () => {
      const procPortsOfFd = procPorts();
      const seen = new Set<number>();
      for (const conn of lo.conns) {
        const fd = findConnFd(conn);
        assert.ok(fd !== null);
        assert.ok(!seen.has(fd), `fd ${fd} given to two conns`);
        seen.add(fd);
        assert.deepEqual(procPortsOfFd(fd), [
          port(conn.localAddr),
          port(conn.remoteAddr),
        ]);
      }
    };
    for (let i = 0; i < 500; i++) {
      const { client, server } = await lo.pair();
      // Server first: the client's (lower) fd is then found among skipped ones.
      applyToConn(server, keepAliveFromFlags({}));
      applyToConn(client, keepAliveFromFlags({}));
    }
    check();
    for (const conn of lo.conns.slice(200, 400)) lo.close(conn);
    // Open a batch first, then match it newest first: far from the usual
    // order, so only the address checks can tell the server conns apart.
    const batch: Deno.Conn[] = [];
    for (let i = 0; i < 150; i++) {
      const { client, server } = await lo.pair();
      batch.push(client, server);
    }
    for (const conn of batch.reverse()) {
      applyToConn(conn, keepAliveFromFlags({}));
    }
    check();
  },
});

Deno.test({
  name: "findConnFd() costs a bounded number of probes with 2,000 conns open",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    for (let i = 0; i < 1000; i++) {
      const { client, server } = await lo.pair();
      findConnFd(client);
      findConnFd(server);
    }
    assert.equal(lo.conns.length, 2000);
    const before = fdFinderStats();
    const { client, server } = await lo.pair();
    applyToConn(server, keepAliveFromFlags({}));
    applyToConn(client, keepAliveFromFlags({}));
    const after = fdFinderStats();
    assert.equal(after.fullScans, before.fullScans, "no full scan");
    assert.ok(
      after.probes - before.probes <= 2 * MAX_CANDIDATES,
      `${after.probes - before.probes} probes`,
    );
    // After closing some in the middle, the freed fds are found first.
    for (const conn of lo.conns.slice(500, 520)) lo.close(conn);
    const mid = fdFinderStats();
    const again = await lo.pair();
    applyToConn(again.server, keepAliveFromFlags({}));
    applyToConn(again.client, keepAliveFromFlags({}));
    const end = fdFinderStats();
    assert.equal(end.fullScans, mid.fullScans, "no full scan after closes");
    assert.ok(
      end.probes - mid.probes <= 2 * MAX_CANDIDATES,
      `${end.probes - mid.probes} probes`,
    );
    assert.deepEqual(procPorts()(findConnFd(again.server)!), [
      lo.port,
      port(again.client.localAddr),
    ]);
  },
});

Deno.test({
  name:
    "findConnFd() still finds the right fd when a conn closed without releaseConn() left its fd to a new one",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const old = await lo.pair();
    const oldFd = findConnFd(old.server)!;
    lo.conns.splice(lo.conns.indexOf(old.server), 1);
    old.server.close(); // no releaseConn(): the record still claims oldFd
    const fresh = await lo.pair();
    const freshFd = findConnFd(fresh.server);
    assert.ok(freshFd !== null);
    assert.deepEqual(procPorts()(freshFd), [
      lo.port,
      port(fresh.client.localAddr),
    ]);
    // Linux hands the freed fd to the next socket: one of the fresh pair.
    const clientFd = findConnFd(fresh.client);
    assert.ok(clientFd !== null);
    assert.ok([freshFd, clientFd].includes(oldFd), "the old fd was reused");
    assert.deepEqual(procPorts()(clientFd), [
      port(fresh.client.localAddr),
      lo.port,
    ]);
    assert.equal(findConnFd(old.server), null, "the closed conn has no fd");
  },
});

Deno.test("fallbackWarning() says exactly what is in force, on one line", () => {
  const kernel = { idle_s: 7200, interval_s: 75, count: 9 };
  assert.equal(
    fallbackWarning(keepAliveFromFlags({}), kernel, "--allow-ffi not granted"),
    "keepalive: --allow-ffi not granted; only SO_KEEPALIVE=on was set, so the kernel defaults apply (idle 7200s, interval 75s, count 9), not the requested 15s/15s/9",
  );
  assert.match(
    fallbackWarning(
      keepAliveFromFlags({ count: "-1", keepalive: undefined }),
      kernel,
      "x",
    ),
    /not the requested 15s\/15s\/kernel's$/,
  );
  assert.match(
    fallbackWarning(keepAliveFromFlags({ noKeepalive: true }), kernel, "x"),
    /SO_KEEPALIVE=off was set, as requested/,
  );
  assert.match(
    fallbackWarning(keepAliveFromFlags({}), null, "x"),
    /values unknown/,
  );
});

/** Runs a script that applies Go's defaults to a loopback conn, with the given permissions. */
async function runApplyScript(permissions: string[]) {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  const lib = (name: string) => JSON.stringify(import.meta.resolve(`../lib/tcp/${name}`));
  await Deno.writeTextFile(
    script,
    `import { applyToConn, fallbackWarning, kernelKeepAliveDefaults } from ${lib("sockopt.ts")};
import { keepAliveFromFlags } from ${lib("keepalive.ts")};
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = listener.addr.port;
const client = await Deno.connect({ hostname: "127.0.0.1", port });
const server = await listener.accept();
const policy = keepAliveFromFlags({});
const eff = applyToConn(server, policy);
console.log(JSON.stringify({ port, eff, warning: fallbackWarning(policy, kernelKeepAliveDefaults()) }));
for await (const _ of Deno.stdin.readable) { /* wait for the parent */ }
client.close(); server.close(); listener.close();
`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...permissions, script],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  const stop = async () => {
    await child.stdin.close();
    await reader.cancel();
    const status = await child.status;
    await child.stderr.cancel();
    await Deno.remove(script);
    return status;
  };
  return { line: text.split("\n")[0], stop };
}

Deno.test({
  name: "without --allow-ffi, applyToConn() falls back, says so, and only SO_KEEPALIVE is on",
  ignore: !linux,
  async fn() {
    const run = await runApplyScript(["--allow-net"]);
    try {
      const out = JSON.parse(run.line);
      assert.equal(out.eff.verified, false);
      assert.equal(out.eff.enabled, true);
      assert.equal(out.eff.reason, "--allow-ffi not granted");
      assert.match(
        out.warning,
        /^keepalive: --allow-ffi not granted; only SO_KEEPALIVE=on was set, so the kernel defaults apply \(.*\), not the requested 15s\/15s\/9$/,
      );
      // From outside: the kernel's idle time is in force, not 15 s.
      const timers = await ssKeepAliveTimers(out.port);
      assert.equal(timers.length, 1);
      assert.ok(timers[0] > 15, `timer ${timers[0]}s`);
    } finally {
      await run.stop();
    }
  },
});

Deno.test({
  name: "--allow-ffi narrowed to libc's absolute path is enough",
  ignore: !linux,
  async fn() {
    const libc = LINUX.LIBC_PATHS.find((p) => {
      try {
        return Deno.statSync(p).isFile;
      } catch {
        return false;
      }
    });
    assert.ok(libc, "libc found at one of the known paths");
    const run = await runApplyScript(["--allow-net", `--allow-ffi=${libc}`]);
    try {
      const out = JSON.parse(run.line);
      assert.equal(out.eff.verified, true);
      assert.deepEqual([out.eff.idle_s, out.eff.interval_s, out.eff.count], [
        15,
        15,
        9,
      ]);
      const timers = await ssKeepAliveTimers(out.port);
      assert.ok(timers.length === 1 && timers[0] <= 15, `timers ${timers}`);
    } finally {
      await run.stop();
    }
  },
});
