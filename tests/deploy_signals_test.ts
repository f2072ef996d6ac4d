/**
 * docs/deploy.md's systemd unit and container entry point, against a real
 * SIGTERM. There is no systemd or container engine here, so the test does
 * what they do: it runs the documented command line as the main process of
 * a session of its own (the unit's `ExecStart=`, the image's exec-form
 * `ENTRYPOINT` + `CMD`) from the repository, with this Deno for the `deno`
 * it names and a free loopback port for its `--addr`; holds two WebSocket
 * clients open; and sends SIGTERM as `systemctl stop` (to the main process,
 * and with `KillMode=control-group` to the rest of the group) and `docker
 * stop` (to PID 1) would. Both clients must get 1001, and the server must
 * exit 0, as the page says, within 10 s, leaving nothing behind.
 */

import assert from "node:assert/strict";
import { dial } from "../mod.ts";
import { GoingAway } from "../lib/ws/mod.ts";
import { Group, groupGone } from "./helpers/group.ts";
import { waitFor } from "./helpers/wait.ts";

const PAGE = new URL("../docs/deploy.md", import.meta.url);
const SECTION = "## systemd and containers";
/** docker stop's default grace period, and the README's promise. */
const STOP_MS = 10_000;

/** The section's text, up to the next `## ` heading. */
function section(): string {
  const text = Deno.readTextFileSync(PAGE);
  const start = text.indexOf(`\n${SECTION}\n`);
  assert.ok(start >= 0 || text.startsWith(`${SECTION}\n`), `docs/deploy.md has no "${SECTION}"`);
  const rest = text.slice(Math.max(0, start));
  const end = rest.indexOf("\n## ", SECTION.length + 1);
  return end < 0 ? rest : rest.slice(0, end);
}

/** The first fenced block of `lang` in the section. */
function block(lang: string): string {
  const m = new RegExp("```" + lang + "\\n([^]*?)```").exec(section());
  assert.ok(m, `"${SECTION}" has no \`\`\`${lang} block`);
  return m[1];
}

/** The unit's `Key=value` settings (the last of each key). */
function unitSettings(): Map<string, string> {
  const settings = new Map<string, string>();
  for (const line of block("ini").split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) settings.set(m[1], m[2]);
  }
  return settings;
}

/** A Dockerfile instruction's exec-form JSON array. */
function execForm(dockerfile: string, instruction: string): string[] {
  const m = new RegExp(`^${instruction}\\s+(.*)$`, "m").exec(dockerfile);
  assert.ok(m, `the Dockerfile has no ${instruction}`);
  const value = JSON.parse(m[1]);
  assert.ok(
    Array.isArray(value) && value.every((x) => typeof x === "string"),
    `${instruction} must be in exec form (a JSON array), or SIGTERM goes to /bin/sh: ${m[1]}`,
  );
  return value;
}

/** The documented command, runnable here: this Deno for `deno`, a free port for `--addr`. */
function localCommand(argv: string[]): { command: string; args: string[] } {
  assert.match(argv[0], /(^|\/)deno$/, `the command runs ${argv[0]}, not deno`);
  const args = argv.slice(1);
  const addr = args.indexOf("--addr");
  assert.ok(addr >= 0, `the command gives no --addr: ${argv.join(" ")}`);
  args[addr + 1] = "127.0.0.1:0";
  return { command: Deno.execPath(), args };
}

/** Runs the command in a session of its own, sends SIGTERM the way `deliver` says, checks the stop. */
async function stopsOnSigterm(argv: string[], deliver: "main" | "group"): Promise<void> {
  const { command, args } = localCommand(argv);
  await using group = Group.start(command, args);
  const listening = await group.proc.until(
    "the server's listening line",
    () => /event=listening addr=(\S+)/.exec(group.proc.stderr)?.[1],
  );
  const clients = await Promise.all([1, 2].map(() => dial(`ws://${listening}/echo`)));
  const sent = Date.now();
  if (deliver === "group") group.killGroup("SIGTERM");
  else group.killLeader("SIGTERM");
  const infos = await waitFor(
    Promise.all(clients.map((ws) => ws.closed)),
    "both clients' close",
    STOP_MS,
  );
  for (const info of infos) assert.equal(info.code, GoingAway, JSON.stringify(info));
  const status = await waitFor(group.proc.child.status, "the server to exit", STOP_MS);
  assert.equal(status.code, 0, group.proc.output());
  await groupGone(group.pgid, STOP_MS - (Date.now() - sent));
}

Deno.test("docs/deploy.md says the server exits 0 on SIGTERM, under systemd and in a container", () => {
  const text = section();
  assert.match(text, /exits 0/);
  assert.match(text, /Exited \(0\)/);
});

Deno.test("the systemd unit's ExecStart= stops on systemctl stop's SIGTERM: 1001 to every client, exit 0 within 10 s, nothing left", async () => {
  const unit = unitSettings();
  assert.equal(unit.get("KillSignal") ?? "SIGTERM", "SIGTERM");
  const timeout = unit.get("TimeoutStopSec") ?? "90s";
  assert.ok(Number.parseFloat(timeout) * 1000 > STOP_MS, `TimeoutStopSec=${timeout} is too short`);
  const execStart = unit.get("ExecStart");
  assert.ok(execStart, "the unit has no ExecStart=");
  const mode = unit.get("KillMode") ?? "control-group";
  const deliver = mode === "control-group" ? "group" : "main";
  await stopsOnSigterm(execStart.split(/\s+/), deliver);
  // The page says the server drains its own workers, as KillMode=mixed expects.
  if (Deno.build.os === "linux") {
    await stopsOnSigterm([...execStart.split(/\s+/), "--workers", "2"], deliver);
  }
});

Deno.test("the container's exec-form ENTRYPOINT + CMD stops on docker stop's SIGTERM to PID 1: 1001 to every client, exit 0 within 10 s, nothing left", async () => {
  const dockerfile = block("dockerfile");
  const argv = [...execForm(dockerfile, "ENTRYPOINT"), ...execForm(dockerfile, "CMD")];
  assert.doesNotMatch(dockerfile, /^STOPSIGNAL\s+(?!SIGTERM)/m, "docker stop must send SIGTERM");
  await stopsOnSigterm(argv, "main");
});
