/**
 * `app/common/launcher.ts`: finding the npm a program was started through
 * and noticing when it is gone, on a made-up process tree, then on this
 * test's own `/proc` entries read through libc.
 */

import assert from "node:assert/strict";
import {
  detached,
  findLauncher,
  isNpm,
  type Launcher,
  launcherGone,
  parseProc,
  type Proc,
  type ProcEntry,
  type ProcRead,
  procReader,
  watchLauncher,
} from "../app/common/launcher.ts";

/** A /proc of `entries`; `status` is every process's `/proc/PID/status`. */
function fakeProc(entries: Record<number, ProcRead>, status = "SigIgn:\t0000000000001000\n"): Proc {
  return {
    read: (pid) => entries[pid] ?? "gone",
    status: () => status,
  };
}

function entry(ppid: number, argv: string[], start = "100", state = "S"): ProcEntry {
  return { ppid, argv, start, state };
}

/** npx typed in bash: npm → sh → deno task → the program (whose parent is 40). */
const NPX_TREE: Record<number, ProcRead> = {
  40: entry(30, ["deno", "task", "server"]),
  30: entry(20, ["sh", "-c", "'deno' task server"]),
  20: entry(10, ["npm exec deno@2.9.6 task server"], "555"),
  10: entry(1, ["bash"]),
};

Deno.test("isNpm() knows npm by its title (npm exec …, npx …) or by node running npm-cli.js", () => {
  for (
    const argv of [
      ["npm exec deno@2.9.6 task server"],
      ["npm run start"],
      ["npx", "-y", "deno@2.9.6"],
      ["/usr/bin/node", "/usr/lib/node_modules/npm/bin/npx-cli.js", "-y", "deno"],
      ["node", "/usr/bin/npm", "exec"],
    ]
  ) assert.ok(isNpm(argv), JSON.stringify(argv));
  for (
    const argv of [
      ["sh", "-c", "'deno' task server"],
      ["deno", "task", "server"],
      ["bash"],
      ["node", "server.js"],
      ["npmish"],
      [],
    ]
  ) assert.ok(!isNpm(argv), JSON.stringify(argv));
});

Deno.test("parseProc() counts stat's fields from the last ')', so a command name with spaces and parentheses is no trouble", () => {
  const stat = "4242 (a b) (c)) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 9876 0 0";
  assert.deepEqual(parseProc(stat, "npm exec x\0\0"), {
    state: "S",
    ppid: 17,
    start: "9876",
    argv: ["npm exec x"],
  });
  assert.equal(parseProc("garbage", ""), "unknown");
});

Deno.test("findLauncher() finds the nearest npm above the program, and nothing without one", () => {
  assert.deepEqual(findLauncher(fakeProc(NPX_TREE), 40), {
    pid: 20,
    start: "555",
    command: "npm exec deno@2.9.6 task server",
  });
  // `deno task server` typed in bash, or started by systemd or a container.
  const plain = { 40: entry(10, ["deno", "task", "server"]), 10: entry(1, ["bash"]) };
  assert.equal(findLauncher(fakeProc(plain), 40), null);
  assert.equal(findLauncher(fakeProc({}), 1), null);
  // A process that cannot be read ends the search: nothing is watched on a guess.
  assert.equal(findLauncher(fakeProc({ ...NPX_TREE, 30: "unknown" }), 40), null);
});

Deno.test("launcherGone(): gone from /proc, a zombie, or its pid reused are gone; a failed read is not", () => {
  const npm: Launcher = { pid: 20, start: "555", command: "npm" };
  const gone = (read: ProcRead) => launcherGone(fakeProc({ 20: read }), npm);
  assert.equal(gone(entry(10, ["npm"], "555")), false);
  assert.equal(gone("unknown"), false);
  assert.equal(gone("gone"), true);
  assert.equal(gone(entry(10, ["npm"], "555", "Z")), true);
  assert.equal(gone(entry(10, ["bash"], "999")), true);
});

Deno.test("detached(): SIGHUP ignored (nohup) or SIGINT ignored (a script's &) means the program was meant to outlive its launcher", () => {
  assert.equal(detached("Name:\tdeno\nSigIgn:\t0000000000001000\n"), false);
  assert.equal(detached("SigIgn:\t0000000000001001\n"), true);
  assert.equal(detached("SigIgn:\t0000000000001006\n"), true);
  assert.equal(detached("no such line"), false);
});

Deno.test("watchLauncher() calls back once after npm is gone, and watches nothing when detached or without npm", async () => {
  const tree = { ...NPX_TREE };
  const proc: Proc = { read: (pid) => tree[pid] ?? "gone", status: () => "SigIgn:\t0\n" };
  const calls: Launcher[] = [];
  const called = Promise.withResolvers<void>();
  const watched = watchLauncher((l) => {
    calls.push(l);
    called.resolve();
  }, { proc, self: 50, parent: 40, everyMs: 10 });
  assert.equal(watched?.pid, 20);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(calls.length, 0, "npm is alive");
  delete tree[20];
  // The watch's timer does not keep a program alive: this one does, meanwhile.
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([called.promise, new Promise((r) => timer = setTimeout(r, 2_000))]);
  await new Promise((r) => setTimeout(r, 50));
  clearTimeout(timer);
  assert.equal(calls.length, 1);

  const never = () => assert.fail("nothing is watched");
  const nohup = fakeProc(NPX_TREE, "SigIgn:\t0000000000001001\n");
  assert.equal(watchLauncher(never, { proc: nohup, self: 50, parent: 40 }), null);
  assert.equal(watchLauncher(never, { proc: fakeProc({}), self: 50, parent: 40 }), null);
  assert.equal(watchLauncher(never, { proc: null }), null);
});

Deno.test("procReader() reads this process through libc: its parent, its command line, its status; a pid that does not exist is gone", () => {
  if (Deno.build.os !== "linux") return;
  const proc = procReader();
  assert.ok(proc, "libc loads with --allow-ffi");
  const self = proc.read(Deno.pid);
  assert.ok(typeof self === "object", String(self));
  assert.equal(self.ppid, Deno.ppid);
  assert.notEqual(self.state, "Z");
  assert.match(self.argv.join(" "), /deno/);
  assert.match(proc.status(Deno.pid) ?? "", /^SigIgn:/m);
  // pid_max is at most 2^22 on Linux.
  assert.equal(proc.read(2 ** 23), "gone");
});
