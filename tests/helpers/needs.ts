/**
 * Every program outside Deno that a test runs, where it lives, how to tell
 * that it works here, and which Debian package brings it. A test that needs
 * one that is missing is reported as ignored, with a name that says what to
 * install, instead of failing:
 *
 * ```ts
 * Deno.test(needs("promtool finds nothing in /metrics", "promtool"), async () => { … });
 * // on a machine without it:
 * //   promtool finds nothing in /metrics — NOT RUN: needs promtool (Debian package prometheus)
 * ```
 *
 * Each program is probed once per test process, by running it (a version
 * flag, or an import), not by looking for a file: a file that cannot run is
 * missing too. (Go libraries are sources: a file of each is looked for.) `.ci/run` installs every package named here, so on CI nothing
 * is ignored for a missing program.
 *
 * @module
 */

/** The repository root (for the npm packages `deno install` puts in node_modules/). */
const ROOT = new URL("../../", import.meta.url);

/** Where Debian's golang-*-dev packages put their sources (GOPATH mode). */
export const DEBIAN_GOPATH = "/usr/share/gocode";

/** Node.js code that fails under Deno's `node`. */
const NOT_DENO = "if (process.versions.deno) process.exit(1)";

/** How one program is found and checked. */
interface Spec {
  /** What a test runs: an absolute path (Debian's own binary) or a name looked up in PATH. */
  readonly command: string;
  /** Arguments that make it print its version (or do a trivial job) and exit 0. */
  readonly probe?: readonly string[];
  /** A file that must exist instead of a program to run (Go library sources). */
  readonly file?: string;
  /** Where to get it: "Debian package X" or how else it is installed. */
  readonly from: string;
  /** What to call it in a NOT RUN message (default: the command's last path part). */
  readonly label?: string;
  /** The names of what must work first (npm and npm ws need a real Node.js). */
  readonly after?: readonly string[];
}

/** Every external program the tests run. */
export const PROGRAMS = {
  ss: { command: "ss", probe: ["-V"], from: "Debian package iproute2" },
  ip: { command: "/usr/sbin/ip", probe: ["-V"], from: "Debian package iproute2" },
  nft: { command: "/usr/sbin/nft", probe: ["--version"], from: "Debian package nftables" },
  go: { command: "go", probe: ["version"], from: "Debian package golang-go" },
  gorilla: {
    command: "",
    file: `${DEBIAN_GOPATH}/src/github.com/gorilla/websocket/conn.go`,
    label: "gorilla/websocket",
    from: "Debian package golang-github-gorilla-websocket-dev",
  },
  coder: {
    command: "",
    file: `${DEBIAN_GOPATH}/src/nhooyr.io/websocket/accept.go`,
    label: "coder/websocket",
    from: "Debian package golang-nhooyr-websocket-dev",
  },
  getconf: { command: "getconf", probe: ["CLK_TCK"], from: "Debian package libc-bin" },
  jq: { command: "jq", probe: ["--version"], from: "Debian package jq" },
  curl: { command: "curl", probe: ["--version"], from: "Debian package curl" },
  nginx: { command: "/usr/sbin/nginx", probe: ["-v"], from: "Debian package nginx-light" },
  haproxy: { command: "/usr/sbin/haproxy", probe: ["-v"], from: "Debian package haproxy" },
  chromium: { command: "/usr/bin/chromium", probe: ["--version"], from: "Debian package chromium" },
  tmux: { command: "/usr/bin/tmux", probe: ["-V"], from: "Debian package tmux" },
  promtool: {
    command: "/usr/bin/promtool",
    probe: ["--version"],
    from: "Debian package prometheus",
  },
  python3Websockets: {
    command: "/usr/bin/python3",
    // An empty websockets/ directory imports too (as a namespace package), without a version.
    probe: ["-c", "import websockets; websockets.__version__"],
    label: "python3 with websockets",
    from: "Debian package python3-websockets",
  },
  openssl: { command: "/usr/bin/openssl", probe: ["version"], from: "Debian package openssl" },
  tinyproxy: { command: "/usr/bin/tinyproxy", probe: ["-v"], from: "Debian package tinyproxy" },
  danted: { command: "/usr/sbin/danted", probe: ["-v"], from: "Debian package dante-server" },
  script: { command: "/usr/bin/script", probe: ["-V"], from: "Debian package bsdutils" },
  // Where no node is installed, Deno puts its own `node` (Deno's Node compatibility) first in
  // the PATH of what it runs; that is not Node.js, so it does not count.
  node: { command: "node", probe: ["-e", NOT_DENO], from: "Debian package nodejs" },
  npm: { command: "npm", probe: ["--version"], after: ["node"], from: "Debian package npm" },
  nodeWs: {
    command: "node",
    probe: ["-e", `require(${JSON.stringify(new URL("node_modules/ws", ROOT).pathname)})`],
    after: ["node"],
    label: "node with npm ws",
    from: "Debian package nodejs; ws from `deno install --config deno.test.json`",
  },
} as const satisfies Record<string, Spec>;

/** The name of one external program in {@linkcode PROGRAMS}. */
export type Need = keyof typeof PROGRAMS;

const probed = new Map<Need, boolean>();

/** Whether `need` works here (probed once, then cached). */
export function have(need: Need): boolean {
  let ok = probed.get(need);
  if (ok === undefined) {
    const spec: Spec = PROGRAMS[need];
    ok = (spec.after ?? []).every((n) => have(n as Need)) && probe(spec);
    probed.set(need, ok);
  }
  return ok;
}

function probe(spec: Spec): boolean {
  try {
    if (spec.file) return Deno.statSync(spec.file).isFile;
    return new Deno.Command(spec.command, {
      args: [...spec.probe ?? []],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false; // Not there, not executable, or not a directory.
  }
}

/** What to call `need` in a message. */
function label(need: Need): string {
  const spec: Spec = PROGRAMS[need];
  return spec.label ?? spec.command.split("/").pop()!;
}

/**
 * Null when every one of `needs` works here; otherwise what is missing and
 * where to get it, e.g. `needs ss (Debian package iproute2)`.
 */
export function missing(...needs: Need[]): string | null {
  const gone = needs.filter((n) => !have(n));
  if (gone.length === 0) return null;
  return `needs ${gone.map((n) => `${label(n)} (${PROGRAMS[n].from})`).join(", ")}`;
}

/** Test options: `name` as is, or marked NOT RUN with `reason` and ignored when there is one. */
export function notRun(name: string, reason: string | null): { name: string; ignore: boolean } {
  return reason === null
    ? { name, ignore: false }
    : { name: `${name} — NOT RUN: ${reason}`, ignore: true };
}

/**
 * Test options for a test that runs the programs `needs`: `name` and
 * run when all of them work here, else ignored with a name that says which
 * are missing and which Debian packages bring them.
 */
export function needs(name: string, ...needs: Need[]): { name: string; ignore: boolean } {
  return notRun(name, missing(...needs));
}

/** The path (or the name, looked up in PATH) to run `need` by. */
export function pathOf(need: Need): string {
  return PROGRAMS[need].command;
}

/** A test function, as `Deno.test` takes it. */
type TestFn = (t: Deno.TestContext) => void | Promise<void>;

/**
 * `Deno.test` for tests that run the programs `needs`, ignored with a NOT RUN
 * name where one is missing: `withOpenssl.test("name", async () => { … })`,
 * with `const withOpenssl = withPrograms("openssl")`.
 */
export function withPrograms(...programs: Need[]): { test(name: string, fn: TestFn): void } {
  return { test: (name, fn) => Deno.test({ ...needs(name, ...programs), fn }) };
}
