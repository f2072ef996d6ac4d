import assert from "node:assert/strict";
import { resolveKeepAlive, resolveSingleKeepAlive } from "../lib/tcp/keepalive.ts";
import { LINUX, sockoptUnavailableReason } from "../lib/tcp/libc.ts";
import { fdFinderStats, findConnFd, MAX_CANDIDATES, releaseConn } from "../lib/tcp/fd.ts";
import {
  applyPolicy,
  applyToListener,
  inheritance,
  kernelKeepAliveDefaults,
  readInherited,
  readSocketOptions,
  type SocketOptions,
} from "../lib/tcp/sockopt.ts";
import { tuneSocket } from "../lib/tcp/tune.ts";
import { fallbackWarning, keepAliveFromFlags } from "../app/common/keepalive.ts";
import { needs } from "./helpers/needs.ts";
import { keepAliveTimers, parseProcNetTcp, ssKeepAliveTimers } from "./helpers/tcp_timers.ts";

// Open libc before any test runs, so no test owns the library handle.
const unavailable = sockoptUnavailableReason();
const linux = Deno.build.os === "linux";

/** Go's defaults (on, 15 s / 15 s / 9) as a policy. */
const GO = resolveKeepAlive();

/** The kernel's own keepalive defaults, read independently of the module, in ms. */
function procKeepAlive() {
  const read = (name: string) =>
    Number(Deno.readTextFileSync(`/proc/sys/net/ipv4/tcp_keepalive_${name}`));
  return { idle: read("time") * 1000, interval: read("intvl") * 1000, count: read("probes") };
}

function port(addr: Deno.Addr): number {
  return (addr as Deno.NetAddr).port;
}

/** The keepalive part of a read-back, as a tuple. */
function keepAliveOf(o: SocketOptions) {
  return [o.keepAlive, o.idle, o.interval, o.count];
}

/** A loopback listener and some connected pairs, all closed on dispose. */
class Loopback implements Disposable {
  readonly listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly conns: Deno.TcpConn[] = [];
  get port(): number {
    return port(this.listener.addr);
  }
  async pair(): Promise<{ client: Deno.TcpConn; server: Deno.TcpConn }> {
    const client = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
    this.conns.push(client);
    const server = await this.listener.accept();
    this.conns.push(server);
    return { client, server };
  }
  close(conn: Deno.Conn): void {
    releaseConn(conn);
    conn.close();
    this.conns.splice(this.conns.indexOf(conn as Deno.TcpConn), 1);
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

/** The keepalive timers the kernel runs for this one conn's socket (from /proc/net/tcp). */
function timersOf(conn: Deno.Conn): Promise<number[]> {
  return keepAliveTimers(port(conn.localAddr), port(conn.remoteAddr));
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

/** What Go's defaults read back as, on Linux. */
const GO_READ_BACK: SocketOptions = {
  keepAlive: true,
  idle: 15_000,
  interval: 15_000,
  count: 9,
  noDelay: true,
  userTimeout: 0,
  verified: true,
  errors: [],
};

Deno.test({
  name: "libc loads when the tests have --allow-ffi on Linux",
  ignore: !linux,
  fn() {
    assert.equal(unavailable, null);
  },
});

Deno.test("parseProcNetTcp() reads ports, state and timer from /proc/net/tcp and tcp6, in clock ticks", () => {
  const tcp = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:848D 0100007F:DDF0 01 00000000:00000011 02:000005A0 00000000     0        0 210212 2 000000002b73f118 20 4 30 12 -1",
    "   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 152482 1 000000009a940675 100 0 0 10 0",
    "",
  ].join("\n");
  assert.deepEqual(parseProcNetTcp(tcp, 100), [
    { localPort: 0x848d, remotePort: 0xddf0, state: 1, timer: 2, timerS: 14.4 },
    { localPort: 8080, remotePort: 0, state: 10, timer: 0, timerS: 0 },
  ]);
  const tcp6 = [
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 00000000000000000000000001000000:C350 00000000000000000000000001000000:1F90 01 00000000:00000000 02:00000BB8 00000000     0        0 20339 1 0000000000000000 20 4 30 10 -1",
  ].join("\n");
  assert.deepEqual(parseProcNetTcp(tcp6, 250), [
    { localPort: 50000, remotePort: 8080, state: 1, timer: 2, timerS: 12 },
  ]);
  assert.throws(() => parseProcNetTcp("sl local remote\n 0: x", 100), assert.AssertionError);
  assert.throws(() => parseProcNetTcp(`${tcp6.split("\n")[0]}\n   0: garbage`, 100), /garbage/);
});

const SS_AGREES = needs(
  "the keepalive timers read from /proc/net/tcp are the ones ss shows, socket by socket",
  "ss",
);

Deno.test({
  name: SS_AGREES.name,
  ignore: SS_AGREES.ignore || ffi.ignore,
  async fn() {
    using lo = new Loopback();
    const a = await lo.pair();
    const b = await lo.pair();
    tuneSocket(a.server, { idle: 5_000 });
    tuneSocket(a.client, { idle: 21_000 });
    tuneSocket(b.server); // 15 s; b.client keeps no keepalive.
    let timers = 0;
    for (const conn of [a.server, a.client, b.server, b.client]) {
      const [local, peer] = [port(conn.localAddr), port(conn.remoteAddr)];
      const bySs = await ssKeepAliveTimers(local, peer);
      const byProc = await keepAliveTimers(local, peer);
      assert.equal(byProc.length, bySs.length, `${local}→${peer}: ss ${bySs}, /proc ${byProc}`);
      // ss prints whole seconds above 1 s ("20sec" for 20.92 s); /proc has clock ticks.
      for (const [i, s] of bySs.entries()) {
        assert.ok(Math.abs(byProc[i] - s) < 1, `${local}→${peer}: ss ${s}s, /proc ${byProc[i]}s`);
      }
      timers += bySs.length;
    }
    assert.equal(timers, 3, "three sockets with keepalive, one without");
  },
});

Deno.test({
  name: "kernelKeepAliveDefaults() matches /proc/sys/net/ipv4, in ms",
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
    const read = readSocketOptions(server)!;
    assert.equal(read.verified, true);
    assert.deepEqual(keepAliveOf(read), [false, k.idle, k.interval, k.count]);
    assert.equal(read.userTimeout, 0);
    assert.deepEqual(await keepAliveTimers(lo.port), [], "no keepalive timer yet");
  },
});

Deno.test({
  name: "applyPolicy() puts Go's 1/15/15/9 and TCP_NODELAY on the socket",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { server } = await lo.pair();
    const read = applyPolicy(server, GO);
    assert.deepEqual(read, GO_READ_BACK);
    assert.deepEqual(readSocketOptions(server), read, "a second read agrees");
    const timers = await keepAliveTimers(lo.port);
    assert.equal(timers.length, 1, "the kernel runs one keepalive timer");
    assert.ok(timers[0] > 0 && timers[0] <= 15, `timer ${timers[0]}s`);
  },
});

Deno.test({
  name: "applyPolicy() with Go's single KeepAlive of 30 s gives 30/15/9",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { client } = await lo.pair();
    const read = applyPolicy(client, resolveSingleKeepAlive(30_000));
    assert.deepEqual(keepAliveOf(read), [true, 30_000, 15_000, 9]);
    assert.equal(read.verified, true);
    const timers = await timersOf(client);
    assert.ok(timers.length === 1 && timers[0] > 15 && timers[0] <= 30, `timers ${timers}`);
  },
});

Deno.test({
  name: "applyPolicy() with keepalive off clears SO_KEEPALIVE",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { server } = await lo.pair();
    assert.equal(applyPolicy(server, GO).keepAlive, true);
    assert.equal((await keepAliveTimers(lo.port)).length, 1);
    const read = applyPolicy(server, resolveSingleKeepAlive(-1));
    assert.equal(read.keepAlive, false);
    assert.equal(read.verified, true);
    assert.deepEqual(read.errors, []);
    assert.deepEqual(await keepAliveTimers(lo.port), []);
  },
});

Deno.test({
  name: "applyPolicy() leaves the count alone when the policy says os",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { server, client } = await lo.pair();
    const policy = resolveKeepAlive({ count: -1 });
    assert.equal(policy.count, null);
    const fresh = applyPolicy(server, policy);
    assert.deepEqual(fresh.errors, [], "TCP_KEEPCNT was not touched");
    assert.equal(fresh.count, procKeepAlive().count, "the kernel's count");
    assert.deepEqual([fresh.idle, fresh.interval], [15_000, 15_000]);
    assert.equal(applyPolicy(client, resolveKeepAlive({ count: 3 })).count, 3);
    assert.equal(applyPolicy(client, policy).count, 3, "an earlier count stays");
  },
});

Deno.test({
  name: "applyPolicy() sets TCP_USER_TIMEOUT and reads it back; a bad one is a RangeError",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { server } = await lo.pair();
    const read = applyPolicy(server, GO, { userTimeout: 7000 });
    assert.equal(read.userTimeout, 7000);
    assert.deepEqual(read.errors, []);
    assert.equal(readSocketOptions(server)!.userTimeout, 7000);
    assert.equal(applyPolicy(server, GO, { userTimeout: 1500.5 }).userTimeout, 1501);
    for (const bad of [-1, 0, NaN, 2 ** 31]) {
      assert.throws(() => applyPolicy(server, GO, { userTimeout: bad }), RangeError, `${bad}`);
    }
    assert.equal(readSocketOptions(server)!.userTimeout, 1501, "a refused value is not set");
  },
});

Deno.test({
  name: "readInherited() shows with one read that an accepted socket holds the listener's options",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const policy = resolveKeepAlive({ idle: 21_000, interval: 7_000, count: 4 });
    const inh = inheritance(applyToListener(lo.listener, policy))!;
    assert.deepEqual(
      [inh.name, inh.value],
      ["TCP_KEEPIDLE", 21],
      "idle differs from a fresh socket's",
    );
    const { server } = await lo.pair();
    const got = readInherited(server, inh)!;
    assert.deepEqual(got, readSocketOptions(server), "the same as reading every option");
    assert.deepEqual(keepAliveOf(got), [true, 21_000, 7_000, 4]);
    // A socket that no longer holds the telling value is not taken for one that inherited.
    tuneSocket(server, { idle: 5_000 });
    assert.equal(readInherited(server, inh), null);
    // Nothing tells a socket that inherited from one that did not: no inheritance.
    assert.equal(inheritance({ ...readSocketOptions(server)!, verified: false }), null);
  },
});

Deno.test({
  name: "applyToListener() once gives accepted sockets the values with no per-conn call",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const policy = resolveKeepAlive({ idle: 21_000, interval: 7_000, count: 4 });
    const onListener = applyToListener(lo.listener, policy, { userTimeout: 9000 });
    assert.deepEqual(
      [onListener.verified, ...keepAliveOf(onListener), onListener.userTimeout],
      [true, true, 21_000, 7_000, 4, 9000],
    );
    const { server } = await lo.pair();
    const before = fdFinderStats();
    const read = readSocketOptions(server)!;
    assert.deepEqual(read, {
      keepAlive: true,
      idle: 21_000,
      interval: 7_000,
      count: 4,
      noDelay: true,
      userTimeout: 9000,
      verified: true,
      errors: [],
    });
    assert.equal(fdFinderStats().fullScans, before.fullScans);
    const timers = await keepAliveTimers(lo.port);
    assert.equal(timers.length, 1);
    assert.ok(timers[0] > 15 && timers[0] <= 21, `timer ${timers[0]}s`);
  },
});

// ---------------------------------------------------------------------------
// tuneSocket(): the public entry point, on real loopback sockets
// ---------------------------------------------------------------------------

Deno.test({
  name: "tuneSocket() gives Go's 15/15/9 by default and returns what the kernel reports",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { client, server } = await lo.pair();
    const tuned = tuneSocket(client);
    assert.deepEqual(tuned, GO_READ_BACK);
    assert.deepEqual(readSocketOptions(client), tuned, "a second read agrees");
    assert.deepEqual(tuneSocket(server, {}), GO_READ_BACK);
    for (const conn of [client, server]) {
      const timers = await timersOf(conn);
      assert.ok(timers.length === 1 && timers[0] > 0 && timers[0] <= 15, `timers ${timers}`);
    }
  },
});

Deno.test({
  name: "tuneSocket() with { idle: 30_000 } gives 30/15/9",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { client } = await lo.pair();
    const tuned = tuneSocket(client, { idle: 30_000 });
    assert.deepEqual(tuned, { ...GO_READ_BACK, idle: 30_000 });
    assert.deepEqual(readSocketOptions(client), tuned);
    const timers = await timersOf(client);
    assert.ok(timers.length === 1 && timers[0] > 15 && timers[0] <= 30, `timers ${timers}`);
  },
});

Deno.test({
  name: "tuneSocket() sets every field and TCP_USER_TIMEOUT, rounding durations up",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { server } = await lo.pair();
    const tuned = tuneSocket(server, {
      idle: 4_500,
      interval: 2_000,
      count: 3,
      userTimeout: 8_000,
    });
    assert.deepEqual(tuned, {
      ...GO_READ_BACK,
      idle: 5_000,
      interval: 2_000,
      count: 3,
      userTimeout: 8_000,
    });
    assert.deepEqual(readSocketOptions(server), tuned);
    const timers = await timersOf(server);
    assert.ok(timers.length === 1 && timers[0] > 0 && timers[0] <= 5, `timers ${timers}`);
  },
});

Deno.test({
  name: "tuneSocket() leaves the socket's value where a field is negative",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { client, server } = await lo.pair();
    // On an untouched socket that is the kernel's default.
    const k = procKeepAlive();
    const fresh = tuneSocket(server, { idle: -1 });
    assert.deepEqual(keepAliveOf(fresh), [true, k.idle, 15_000, 9]);
    const serverTimers = await timersOf(server);
    assert.ok(
      serverTimers.length === 1 && serverTimers[0] > 15 && serverTimers[0] <= k.idle / 1000,
      `timers ${serverTimers}`,
    );
    // On a tuned socket it is what was set before.
    tuneSocket(client, { idle: 30_000, interval: 5_000, count: 3 });
    const again = tuneSocket(client, { idle: -1, interval: -1, count: -1 });
    assert.deepEqual(keepAliveOf(again), [true, 30_000, 5_000, 3]);
    assert.equal(again.verified, true);
    const clientTimers = await timersOf(client);
    assert.ok(
      clientTimers.length === 1 && clientTimers[0] > 15 && clientTimers[0] <= 30,
      `timers ${clientTimers}`,
    );
  },
});

Deno.test({
  name: "tuneSocket() with enable: false turns SO_KEEPALIVE off",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { client } = await lo.pair();
    assert.equal(tuneSocket(client).keepAlive, true);
    assert.equal((await timersOf(client)).length, 1);
    const off = tuneSocket(client, { enable: false });
    assert.equal(off.keepAlive, false);
    assert.equal(off.verified, true);
    assert.equal(readSocketOptions(client)!.keepAlive, false);
    assert.deepEqual(await timersOf(client), []);
  },
});

Deno.test({
  name: "tuneSocket() throws before touching the socket for a value Linux refuses",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const { server } = await lo.pair();
    const untouched = readSocketOptions(server)!;
    assert.equal(untouched.keepAlive, false);
    const refused: [Parameters<typeof tuneSocket>[1], typeof RangeError | typeof TypeError][] = [
      [{ idle: 32_768_000 }, RangeError],
      [{ idle: 30_000, interval: 40_000_000 }, RangeError],
      [{ idle: 30_000, count: 128 }, RangeError],
      [{ idle: 30_000, userTimeout: -1 }, RangeError],
      [{ idle: NaN }, TypeError],
      [{ idle: 30_000, count: 1.5 }, TypeError],
    ];
    for (const [options, type] of refused) {
      assert.throws(() => tuneSocket(server, options), (err: unknown) => {
        assert.equal((err as Error).constructor, type, `${JSON.stringify(options)}: ${err}`);
        return true;
      });
    }
    assert.throws(() => tuneSocket(server, { idle: 32_768_000 }), {
      name: "RangeError",
      message: "KeepAliveConfig.Idle 32768000ms is out of range: Linux allows 1s to 32767s",
    });
    assert.deepEqual(readSocketOptions(server), untouched, "nothing was set");
    assert.deepEqual(await timersOf(server), [], "still no keepalive timer");
  },
});

// ---------------------------------------------------------------------------
// The fd finder
// ---------------------------------------------------------------------------

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
        assert.deepEqual(procPortsOfFd(fd), [port(conn.localAddr), port(conn.remoteAddr)]);
      }
    };
    for (let i = 0; i < 500; i++) {
      const { client, server } = await lo.pair();
      // Server first: the client's (lower) fd is then found among skipped ones.
      applyPolicy(server, GO);
      applyPolicy(client, GO);
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
    for (const conn of batch.reverse()) applyPolicy(conn, GO);
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
    applyPolicy(server, GO);
    applyPolicy(client, GO);
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
    applyPolicy(again.server, GO);
    applyPolicy(again.client, GO);
    const end = fdFinderStats();
    assert.equal(end.fullScans, mid.fullScans, "no full scan after closes");
    assert.ok(end.probes - mid.probes <= 2 * MAX_CANDIDATES, `${end.probes - mid.probes} probes`);
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
    assert.deepEqual(procPorts()(freshFd), [lo.port, port(fresh.client.localAddr)]);
    // Linux hands the freed fd to the next socket: one of the fresh pair.
    const clientFd = findConnFd(fresh.client);
    assert.ok(clientFd !== null);
    assert.ok([freshFd, clientFd].includes(oldFd), "the old fd was reused");
    assert.deepEqual(procPorts()(clientFd), [port(fresh.client.localAddr), lo.port]);
    assert.equal(findConnFd(old.server), null, "the closed conn has no fd");
  },
});

Deno.test({
  name:
    "findConnFd() does not hand a conn closed without releaseConn() the socket that took its fd",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const old = await lo.pair();
    const oldFd = findConnFd(old.server)!;
    lo.conns.splice(lo.conns.indexOf(old.server), 1);
    old.server.close(); // no releaseConn(): the record still claims oldFd
    const fresh = await lo.pair();
    // Linux hands the freed fd to one of the fresh pair.
    const c = port(fresh.client.localAddr);
    const ports = JSON.stringify(procPorts()(oldFd));
    assert.ok(
      [JSON.stringify([c, lo.port]), JSON.stringify([lo.port, c])].includes(ports),
      `fd ${oldFd} is ${ports}`,
    );
    // Before the fresh conns are looked up, the old record is checked, not trusted.
    assert.equal(findConnFd(old.server), null);
    assert.equal(readSocketOptions(old.server), null);
    assert.ok([findConnFd(fresh.server), findConnFd(fresh.client)].includes(oldFd));
  },
});

// ---------------------------------------------------------------------------
// Without FFI: the CLI's warning, and the fallback in a subprocess
// ---------------------------------------------------------------------------

Deno.test("fallbackWarning() says exactly what is in force, on one line", () => {
  const kernel = { idle: 7_200_000, interval: 75_000, count: 9 };
  assert.equal(
    fallbackWarning(keepAliveFromFlags({}), kernel, "--allow-ffi not granted"),
    "keepalive: --allow-ffi not granted; only SO_KEEPALIVE=on was set, so the kernel defaults apply (idle 7200s, interval 75s, count 9), not the requested 15s/15s/9",
  );
  assert.match(
    fallbackWarning(keepAliveFromFlags({ keepalive: "30s" }), kernel, "x"),
    /not the requested 30s\/15s\/9$/,
  );
  assert.match(
    fallbackWarning(keepAliveFromFlags({ count: "-1" }), kernel, "x"),
    /not the requested 15s\/15s\/kernel's$/,
  );
  assert.equal(
    fallbackWarning(keepAliveFromFlags({ idle: "-1s", interval: "-1s", count: "-1" }), kernel, "x"),
    "keepalive: x; only SO_KEEPALIVE=on was set, so the kernel defaults apply (idle 7200s, interval 75s, count 9), as requested",
  );
  assert.equal(
    fallbackWarning(keepAliveFromFlags({ noKeepalive: true }), kernel, "x"),
    "keepalive: x; SO_KEEPALIVE=off was set, as requested",
  );
  assert.match(
    fallbackWarning(keepAliveFromFlags({}), null, "x"),
    /\(values unknown: \/proc\/sys\/net\/ipv4 is not readable\), not the requested 15s\/15s\/9$/,
  );
  assert.match(fallbackWarning(keepAliveFromFlags({}), kernel), /^keepalive: [^\n]+$/);
});

/**
 * Runs a script that applies Go's defaults to both ends of a loopback pair,
 * with `applyPolicy()` on the server end and `tuneSocket()` on the client
 * end, under the given permissions.
 */
async function runApplyScript(permissions: string[]) {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  const url = (path: string) => JSON.stringify(import.meta.resolve(path));
  await Deno.writeTextFile(
    script,
    `import { applyPolicy, kernelKeepAliveDefaults } from ${url("../lib/tcp/sockopt.ts")};
import { resolveKeepAlive } from ${url("../lib/tcp/keepalive.ts")};
import { tuneSocket } from ${url("../lib/tcp/tune.ts")};
import { fallbackWarning } from ${url("../app/common/keepalive.ts")};
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = listener.addr.port;
const client = await Deno.connect({ hostname: "127.0.0.1", port });
const server = await listener.accept();
const policy = resolveKeepAlive();
const applied = applyPolicy(server, policy);
const tuned = tuneSocket(client);
const warning = fallbackWarning(policy, kernelKeepAliveDefaults());
console.log(JSON.stringify({ port, clientPort: client.localAddr.port, applied, tuned, warning }));
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
    const stderr = await new Response(child.stderr).text();
    await Deno.remove(script);
    return { status, stderr };
  };
  if (!text.includes("\n")) {
    const { status, stderr } = await stop();
    assert.fail(`the script printed nothing (exit ${status.code}): ${stderr}`);
  }
  return { line: text.split("\n")[0], stop };
}

Deno.test({
  name:
    "without --allow-ffi, applyPolicy() and tuneSocket() fall back, say so, and only SO_KEEPALIVE is on",
  ignore: !linux,
  async fn() {
    const run = await runApplyScript(["--allow-net"]);
    try {
      const out = JSON.parse(run.line);
      for (const read of [out.applied, out.tuned]) {
        assert.deepEqual(read, {
          keepAlive: true,
          // Neither /proc nor a socket can be read without permissions: unknown, not made up.
          idle: null,
          interval: null,
          count: null,
          noDelay: true,
          userTimeout: 0,
          verified: false,
          errors: [],
          reason: "--allow-ffi not granted",
        });
      }
      assert.equal(
        out.warning,
        "keepalive: --allow-ffi not granted; only SO_KEEPALIVE=on was set, so the kernel defaults apply (values unknown: /proc/sys/net/ipv4 is not readable), not the requested 15s/15s/9",
      );
      // From outside: the kernel's idle time is in force on both ends, not 15 s.
      const timers = [
        ...await keepAliveTimers(out.port),
        ...await keepAliveTimers(out.clientPort, out.port),
      ];
      assert.equal(timers.length, 2, `timers ${timers}`);
      for (const t of timers) assert.ok(t > 15, `timer ${t}s`);
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
      assert.deepEqual(out.applied, GO_READ_BACK);
      assert.deepEqual(out.tuned, GO_READ_BACK);
      const timers = [
        ...await keepAliveTimers(out.port),
        ...await keepAliveTimers(out.clientPort, out.port),
      ];
      assert.ok(timers.length === 2 && timers.every((t) => t <= 15), `timers ${timers}`);
    } finally {
      await run.stop();
    }
  },
});

Deno.test({
  name:
    "findConnFd() after a burst of conns accepted before any lookup (a reconnect storm): one full scan finds them all",
  ...ffi,
  async fn() {
    using lo = new Loopback();
    const servers: Deno.TcpConn[] = [];
    for (let i = 0; i < 300; i++) servers.push((await lo.pair()).server);
    const before = fdFinderStats();
    // Looked up in the reverse order of their fds, as no heuristic expects.
    const found = servers.toReversed().map((s) => [s, findConnFd(s)] as const);
    const after = fdFinderStats();
    assert.ok(
      after.fullScans - before.fullScans <= 2,
      `${after.fullScans - before.fullScans} full scans for 300 lookups`,
    );
    const ports = procPorts();
    for (const [s, fd] of found) {
      assert.deepEqual(ports(fd!), [lo.port, port(s.remoteAddr)], "each fd is its own conn's");
    }
  },
});

Deno.test({
  name:
    "findConnFd() without --allow-all (which /dev/fd needs) lists the fds through libc: a full scan probes the open fds, not every fd up to the limit",
  ...ffi,
  async fn() {
    const script = await Deno.makeTempFile({ suffix: ".ts" });
    try {
      const fd = new URL("../lib/tcp/fd.ts", import.meta.url).href;
      await Deno.writeTextFile(
        script,
        `import { fdFinderStats, findConnFd } from ${JSON.stringify(fd)};
const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = (l.addr as Deno.NetAddr).port;
const servers: Deno.Conn[] = [];
const keep: Deno.Conn[] = [];
for (let i = 0; i < 100; i++) {
  keep.push(await Deno.connect({ hostname: "127.0.0.1", port }));
  servers.push(await l.accept());
}
let readable = true;
try { Deno.readDirSync("/dev/fd"); } catch { readable = false; }
const found = servers.toReversed().map((s) => findConnFd(s));
console.log(JSON.stringify({ readable, found: found.filter((f) => f !== null).length, ...fdFinderStats() }));
`,
      );
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-net", "--allow-ffi", "--allow-read", script],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const r = JSON.parse(text);
      assert.equal(r.readable, false, "Deno 2.9 lets only --allow-all read /dev/fd");
      assert.equal(r.found, 100);
      // About 200 fds are open (both ends of 100 conns): a scan up to the fd limit would probe
      // thousands.
      assert.ok(r.probes < 1_000, `${r.probes} probes in ${r.fullScans} full scan(s)`);
    } finally {
      await Deno.remove(script);
    }
  },
});
