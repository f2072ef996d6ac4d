/**
 * The documentation against the programs: README.md, docs/*.md,
 * bench/README.md and CHANGELOG.md.
 *
 * **The convention for command blocks.** A command block is a fenced block
 * whose language is `console`, `sh`, `shell` or `bash`, or any block with a
 * line starting `$ `. Each one is either
 *
 * - **run**: a ```console block with no marker, or with
 *   `<!-- server: FLAGS -->` on the line above. For each such block this test
 *   starts `server.ts --addr 127.0.0.1:0 FLAGS` on a free port, then runs
 *   every `$ ` line (a line ending in `\` goes on to the next) with
 *   `sh -c`, from the repository root, stdin empty, stderr and stdout into
 *   one stream as a terminal shows them, `deno` being this Deno and
 *   `localhost:8080` / `127.0.0.1:8080` pointing at that server. The lines
 *   shown after a command must be what it printed, line for line (blank lines
 *   aside), once both sides are normalised: timestamps, `duration_ms`,
 *   `last_frame_age_ms`, `rtt_ms`, `idle_s` and any `Nms` vary between runs
 *   and are masked; the server's port is written 8080. In a shown line `…`
 *   stands for any text, and a line that is only `…` for any number of
 *   lines. A command that needs a program this machine lacks (jq, curl) is
 *   reported as NOT RUN, naming its Debian package;
 * - or **illustrative**: `<!-- illustrative -->` (or
 *   `<!-- illustrative: why -->`) on the line above the block, of any
 *   language. Its output is still real (the pages say where it came from),
 *   but nothing here runs it.
 *
 * Any other command block fails the test, and so does a marker this test
 * does not know. ```ts blocks in docs/*.md are run with `deno test --doc`,
 * and what each prints must match the `// …` comments on its `console.log`
 * lines. Also checked: every relative link and anchor resolves (GitHub's
 * anchor rules), the README's size, its index and quick start (run from a
 * project outside the repository), every `--help` flag is in the flag
 * tables and every flag there is real, the cause table is exactly
 * CLOSE_CAUSES, the log lines shown have the shape the programs print, and
 * the wscat/websocat comparison says how each column was checked.
 */

import assert from "node:assert/strict";
import { missing, type Need, PROGRAMS } from "./helpers/needs.ts";
import { CLOSE_CAUSES } from "../mod.ts";
import { anchors, type CodeBlock, type Doc, parseMarkdown, tables } from "./helpers/markdown.ts";
import { Program, ROOT, runClient, startServer } from "./helpers/process.ts";

/** Every Markdown file the test reads, relative to the repository root. */
const FILES = [
  "README.md",
  "CHANGELOG.md",
  "bench/README.md",
  ...[...Deno.readDirSync(new URL("docs/", ROOT))]
    .filter((e) => e.isFile && e.name.endsWith(".md"))
    .map((e) => `docs/${e.name}`)
    .sort(),
];

const DOCS: Map<string, Doc> = new Map(
  FILES.map((f) => [f, parseMarkdown(Deno.readTextFileSync(new URL(f, ROOT)))]),
);

/** The parsed file `name`. */
function doc(name: string): Doc {
  const d = DOCS.get(name);
  assert.ok(d, `${name} is not among the docs`);
  return d;
}

/** The text of `name`. */
function text(name: string): string {
  return doc(name).lines.join("\n");
}

const COMMAND_LANGS = new Set(["console", "sh", "shell", "bash"]);

/** Whether `block` holds commands (by its language, or by a `$ ` line). */
function isCommandBlock(block: CodeBlock): boolean {
  return COMMAND_LANGS.has(block.lang) || block.lines.some((l) => l.startsWith("$ "));
}

/** What the marker above `block` says: run (with server flags), illustrative, or unknown. */
function markerKind(block: CodeBlock): "run" | "illustrative" | "unknown" {
  if (block.marker === null) return "run";
  if (/^illustrative\b/.test(block.marker)) return "illustrative";
  if (/^server:/.test(block.marker)) return "run";
  return "unknown";
}

/** The flags in `<!-- server: FLAGS -->`, split as a shell would (no quoting needed here). */
function serverFlags(block: CodeBlock): string[] {
  const m = /^server:\s*(.*)$/.exec(block.marker ?? "");
  return m ? m[1].split(/\s+/).filter(Boolean) : [];
}

/** One `$ ` command of a console block, with the lines shown after it. */
interface Example {
  command: string;
  shown: string[];
}

/** The commands of a console block and what each is shown to print. */
function examples(block: CodeBlock): Example[] {
  const out: Example[] = [];
  let current: Example | null = null;
  let continued = false;
  for (const line of block.lines) {
    if (continued && current) {
      current.command += "\n" + line;
      continued = line.endsWith("\\");
    } else if (line.startsWith("$ ")) {
      current = { command: line.slice(2), shown: [] };
      continued = line.endsWith("\\");
      out.push(current);
    } else if (current && line.trim() !== "") {
      current.shown.push(line);
    }
  }
  return out;
}

// ---------------------------------------------------------------- the README

Deno.test("README.md is at most 200 lines and links every page of docs/, of which there are at least 6", () => {
  const readme = doc("README.md");
  const lines = text("README.md").replace(/\n$/, "").split("\n").length;
  assert.ok(lines <= 200, `README.md has ${lines} lines`);
  const pages = FILES.filter((f) => f.startsWith("docs/"));
  assert.ok(pages.length >= 6, `only ${pages.length} pages in docs/`);
  const linked = new Set(readme.links.map((l) => l.target.split("#")[0]));
  const unlinked = pages.filter((p) => !linked.has(p));
  assert.deepEqual(unlinked, [], `not linked from the README: ${unlinked.join(" ")}`);
});

Deno.test("the README shows the three commands in both forms, the test command exactly as .ci/run reads it", async () => {
  const readme = text("README.md");
  for (const task of ["server", "client", "test"]) {
    assert.match(readme, new RegExp(`npx -y deno@2\\.9\\.6 task ${task}\\b`));
    assert.match(readme, new RegExp(`deno task ${task}\\b`));
  }
  const ci = await Deno.readTextFile(new URL(".ci/run", ROOT));
  const grep = /grep -m1 -oE '([^']+)' README\.md/.exec(ci);
  assert.ok(grep, ".ci/run no longer greps the README");
  const found = new RegExp(grep[1]).exec(readme);
  assert.equal(found?.[0], "npx -y deno@2.9.6 task test");
});

Deno.test("the README's apt-get line installs what .ci/run installs", async () => {
  const ci = await Deno.readTextFile(new URL(".ci/run", ROOT));
  const list = /^packages=\(([^)]*)\)/m.exec(ci);
  assert.ok(list, ".ci/run has no packages=(…) list");
  const line = text("README.md").split("\n").find((l) => /apt-get install /.test(l));
  assert.ok(line, "the README has no apt-get install line");
  const named = line.replace(/^.*apt-get install\s+/, "").split(/\s+/).filter((w) =>
    !w.startsWith("-")
  );
  assert.deepEqual([...named].sort(), list[1].trim().split(/\s+/).sort());
});

Deno.test("the README says where serve() listens, and names the built-ins and the npm packages it uses", async () => {
  const readme = text("README.md");
  assert.match(readme, /serve\(\) listens on 0\.0\.0\.0[^\n]*port 8080/);
  assert.match(readme, /command-line server binds localhost/);
  assert.match(readme, /JSR cannot be reached/);
  for (const builtin of ["Deno.test", "node:assert/strict", "node:util", "parseArgs"]) {
    assert.ok(readme.includes(builtin), `the README does not name ${builtin}`);
  }
  const testConfig = JSON.parse(await Deno.readTextFile(new URL("deno.test.json", ROOT)));
  for (const name of Object.keys(testConfig.imports)) {
    assert.ok(readme.includes(`\`${name}\``), `the README does not name the npm package ${name}`);
  }
});

// ---------------------------------------------------------------- links

Deno.test("every relative link in the docs resolves, to a file and to an anchor GitHub would make", async (t) => {
  const anchorsOf = new Map<string, Set<string>>();
  const anchorSet = (file: string): Set<string> => {
    if (!anchorsOf.has(file)) {
      const d = DOCS.get(file) ??
        parseMarkdown(Deno.readTextFileSync(new URL(file, ROOT)));
      anchorsOf.set(file, new Set(anchors(d.headings)));
    }
    return anchorsOf.get(file)!;
  };
  let checked = 0;
  for (const [file, d] of DOCS) {
    await t.step(file, () => {
      const broken: string[] = [];
      for (const { target, line } of d.links) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:…
        checked++;
        const [path, anchor] = target.split("#", 2) as [string, string | undefined];
        const resolved = path === ""
          ? file
          : new URL(path, new URL(file, ROOT)).pathname.slice(ROOT.pathname.length);
        let exists = true;
        try {
          Deno.statSync(new URL(resolved, ROOT));
        } catch {
          exists = false;
        }
        if (!exists) broken.push(`${file}:${line}: ${target} (no file ${resolved})`);
        else if (anchor !== undefined) {
          if (!resolved.endsWith(".md")) {
            broken.push(`${file}:${line}: ${target} (an anchor into a non-Markdown file)`);
          } else if (!anchorSet(resolved).has(anchor)) {
            broken.push(`${file}:${line}: ${target} (no heading makes #${anchor} in ${resolved})`);
          }
        }
      }
      assert.deepEqual(broken, []);
    });
  }
  assert.ok(checked > 40, `only ${checked} relative links checked`);
});

Deno.test("anchors follow GitHub's rules", () => {
  const h = (text: string) => ({ level: 2, text, line: 1 });
  assert.deepEqual(
    anchors([
      h("Finding a path's idle timeout: `--probe-idle`"),
      h("The 29 names of `mod.ts`"),
      h("Interop"),
      h("Interop"),
      h("**Bold** and [a link](x.md)"),
    ]),
    [
      "finding-a-paths-idle-timeout---probe-idle",
      "the-29-names-of-modts",
      "interop",
      "interop-1",
      "bold-and-a-link",
    ],
  );
});

// ---------------------------------------------------------------- command blocks

Deno.test("every command block in the docs is run by this test or marked illustrative", () => {
  const wrong: string[] = [];
  let run = 0, illustrative = 0;
  for (const [file, d] of DOCS) {
    for (const block of d.blocks) {
      const kind = markerKind(block);
      if (kind === "unknown") {
        wrong.push(`${file}:${block.line}: unknown marker <!-- ${block.marker} -->`);
        continue;
      }
      if (!isCommandBlock(block)) {
        if (block.marker !== null) {
          wrong.push(`${file}:${block.line}: a marker above a ${block.lang || "plain"} block`);
        }
        continue;
      }
      if (kind === "illustrative") {
        illustrative++;
      } else if (block.lang !== "console") {
        wrong.push(
          `${file}:${block.line}: a ${
            block.lang || "plain"
          } block of commands, neither a console block this test runs nor marked <!-- illustrative -->`,
        );
      } else if (examples(block).length === 0) {
        wrong.push(`${file}:${block.line}: a console block with no $ command to run`);
      } else {
        run++;
      }
    }
  }
  assert.deepEqual(wrong, []);
  assert.ok(run >= 15, `only ${run} console blocks are run`);
  assert.ok(illustrative >= 1);
});

/** Programs a command line starts: the first word of each part of a pipeline or list, quotes respected. */
function programsOf(command: string): string[] {
  const parts: string[] = [];
  let part = "", quote = "";
  const line = command.replace(/\\\n/g, " ");
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    const redirect = c === "&" && (line[i - 1] === ">" || line[i + 1] === ">");
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === "|" || c === ";" || (c === "&" && !redirect) || c === "\n") {
      parts.push(part);
      part = "";
      continue;
    }
    part += c;
  }
  parts.push(part);
  return parts.map((p) => p.trim().split(/\s+/).find((w) => !/^\w+=/.test(w)) ?? "")
    .filter((p) => p !== "");
}

const available = new Map<string, boolean>();

/**
 * Why `command` cannot run here, naming each missing program and its Debian
 * package (tests/helpers/needs.ts knows the ones the docs use besides Deno
 * and the shell's), or null.
 */
async function whyNot(command: string): Promise<string | null> {
  const known: Need[] = [];
  const gone: string[] = [];
  for (const program of programsOf(command)) {
    if (program === "deno") continue;
    if (program in PROGRAMS) {
      known.push(program as Need);
      continue;
    }
    if (!available.has(program)) {
      const out = await new Deno.Command("sh", {
        args: ["-c", `command -v "$1" >/dev/null`, "sh", program],
      }).output();
      available.set(program, out.success);
    }
    if (!available.get(program)) gone.push(`needs ${program}`);
  }
  const why = [missing(...known), ...gone].filter((w) => w !== null);
  return why.length ? why.join("; ") : null;
}

/** What varies between runs, masked in both what is shown and what was printed. */
function normalise(line: string): string {
  return line
    .replace(/\btime=\S+/g, "time=T")
    .replace(/\b(duration_ms|last_frame_age_ms|rtt_ms|idle_s)=[\d./]+/g, "$1=N")
    .replace(/"(time|duration_ms|last_frame_age_ms|rtt_ms|idle_s)":("[^"]*"|[\d.]+)/g, '"$1":N')
    .replace(/\b\d+(\.\d+)?ms\b/g, "Nms");
}

/** Whether `printed` is `shown`, with `…` in a shown line matching any text and a `…` line any lines. */
function matches(shown: string[], printed: string[]): boolean {
  const lineMatches = (pattern: string, line: string) =>
    new RegExp(
      "^" + pattern.split("…").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*") +
        "$",
    ).test(line);
  const go = (i: number, j: number): boolean => {
    if (i === shown.length) return j === printed.length;
    if (shown[i].trim() === "…") {
      for (let k = j; k <= printed.length; k++) if (go(i + 1, k)) return true;
      return false;
    }
    return j < printed.length && lineMatches(shown[i], printed[j]) && go(i + 1, j + 1);
  };
  return go(0, 0);
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/** Bound on one documented command. */
const COMMAND_TIMEOUT_MS = 60_000;

/** Runs `command` as the convention says, against a server on `port`; returns what it printed. */
async function runDocumented(command: string, port: number): Promise<string[]> {
  const script = command
    .replaceAll("localhost:8080", `localhost:${port}`)
    .replaceAll("127.0.0.1:8080", `127.0.0.1:${port}`);
  const denoDir = new URL(".", `file://${Deno.execPath()}`).pathname;
  const out = await new Deno.Command("sh", {
    args: ["-c", `exec 2>&1\n${script}`],
    cwd: ROOT,
    env: { NO_COLOR: "1", PATH: `${denoDir}:${Deno.env.get("PATH") ?? ""}` },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).output();
  return new TextDecoder().decode(out.stdout)
    .replace(ANSI, "")
    .replaceAll(`:${port}`, ":8080")
    .split("\n")
    .map((l) => l.replace(/\r$/, ""))
    .filter((l) => l.trim() !== "");
}

for (const [file, d] of DOCS) {
  const blocks = d.blocks.filter((b) =>
    b.lang === "console" && markerKind(b) === "run" && examples(b).length > 0
  );
  if (blocks.length === 0) continue;
  Deno.test(`${file}: every console block prints what it shows, run against a server`, async (t) => {
    for (const block of blocks) {
      const flags = serverFlags(block);
      await using server = await startServer(flags);
      for (const { command, shown } of examples(block)) {
        const name = `line ${block.line}${
          flags.length ? ` (server ${flags.join(" ")})` : ""
        }: ${command}`;
        const why = await whyNot(command);
        if (why !== null) {
          await t.step({ name: `NOT RUN: ${why}: ${command}`, ignore: true, fn() {} });
          continue;
        }
        await t.step(name, async () => {
          const printed = await runDocumented(command, server.port);
          assert.ok(
            matches(shown.map(normalise), printed.map(normalise)),
            `shown:\n${shown.join("\n")}\nprinted:\n${printed.join("\n")}`,
          );
        });
      }
    }
  });
}

Deno.test("the console-block matcher: … matches text and lines, masked fields match any value", () => {
  assert.ok(matches(["a … c"], ["a b c"]));
  assert.ok(matches(["a", "…", "d"], ["a", "b", "c", "d"]));
  assert.ok(matches(["a", "…"], ["a"]));
  assert.ok(!matches(["a"], ["a", "b"]));
  assert.equal(
    normalise("time=2026-12-07T08:00:00.000Z duration_ms=17 rtt_ms=1/1.5/2 x=3035ms"),
    "time=T duration_ms=N rtt_ms=N x=Nms",
  );
  assert.deepEqual(programsOf("printf 'a' | deno task -q client 2>/dev/null | jq .n"), [
    "printf",
    "deno",
    "jq",
  ]);
  assert.deepEqual(
    programsOf(`deno x 2>&1 >/dev/null | jq -r 'select(.a) | "\\(.b)"' && X=1 curl -s`),
    [
      "deno",
      "jq",
      "curl",
    ],
  );
});

Deno.test("the piped jq examples of docs/client.md are among the blocks run", () => {
  const jq = doc("docs/client.md").blocks.filter((b) =>
    b.lang === "console" && markerKind(b) === "run"
  )
    .flatMap(examples).filter((e) => /\|\s*jq\b/.test(e.command));
  assert.ok(jq.length >= 4, `found ${jq.length} jq examples`);
  for (const { command } of jq) assert.match(command, /^deno task -q client /);
});

// ---------------------------------------------------------------- TypeScript examples

/** The `// …` comments on the `console.log` lines of `block`: what it should print, in order. */
function expectedOutput(block: CodeBlock): string[] {
  return block.lines.filter((l) => /console\.log\(/.test(l) && /\/\/ /.test(l))
    .map((l) => l.slice(l.lastIndexOf("// ") + 3).trim());
}

const TS_PAGES = FILES.filter((f) =>
  f.startsWith("docs/") && doc(f).blocks.some((b) => b.lang === "ts")
);

Deno.test("the ts examples in docs/ type-check, run, and print what their comments say", async (t) => {
  assert.ok(TS_PAGES.includes("docs/library.md"));
  for (const page of TS_PAGES) {
    await t.step(page, async () => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["test", "--doc", "--allow-all", page],
        cwd: ROOT,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, stdout + new TextDecoder().decode(out.stderr));
      const printed = new Map<number, string[]>();
      for (const section of stdout.split(/^running \d+ tests? from /m).slice(1)) {
        const at = /#(\d+)-\d+\.ts/.exec(section);
        if (!at) continue;
        const lines: string[] = [];
        for (
          const m of section.matchAll(
            /-+ (?:post-test )?output -+\n([^]*?)-+ (?:post-test )?output end -+/g,
          )
        ) {
          lines.push(...m[1].split("\n").filter((l) => l.trim() !== ""));
        }
        printed.set(Number(at[1]), lines);
      }
      for (const block of doc(page).blocks.filter((b) => b.lang === "ts")) {
        assert.deepEqual(
          printed.get(block.line) ?? [],
          expectedOutput(block),
          `${page}:${block.line}`,
        );
      }
    });
  }
});

Deno.test("the README's library quick start works from another project's directory, today's two ways", async (t) => {
  const readme = doc("README.md");
  const json = readme.blocks.find((b) => b.lang === "json");
  const ts = readme.blocks.find((b) => b.lang === "ts");
  assert.ok(json && ts, "the README has no deno.json or main.ts block");
  const config = JSON.parse(json.lines.join("\n"));
  assert.equal(
    config.imports["@keepalive-ws/keepalive-ws"],
    "jsr:@keepalive-ws/keepalive-ws@^0.2.0",
  );
  assert.deepEqual(config.links, ["../keepalive-ws"]);
  const run = /^\/\/ main\.ts: (deno run .* main\.ts)$/.exec(ts.lines[0]);
  assert.ok(run, "the snippet's first line says how to run it");
  const source = ts.lines.join("\n");
  assert.match(source, /from "@keepalive-ws\/keepalive-ws"/);
  assert.match(text("README.md"), /`from "\.\.\/keepalive-ws\/mod\.ts"`/);
  assert.match(text("README.md"), /deno add jsr:@keepalive-ws\/keepalive-ws/);

  const base = await Deno.makeTempDir({ prefix: "keepalive-ws-elsewhere-" });
  try {
    assert.ok(!base.startsWith(ROOT.pathname), "the project must be outside the repository");
    // A checkout next to the project, as the README has it.
    await Deno.symlink(ROOT.pathname.replace(/\/$/, ""), `${base}/keepalive-ws`);
    const app = `${base}/myapp`;
    await Deno.mkdir(app);
    const ways = [
      {
        name: "deno.json names the JSR package and links it to the checkout",
        config: true,
        source,
      },
      {
        name: "no deno.json: the checkout's mod.ts by path",
        config: false,
        source: source.replace('"@keepalive-ws/keepalive-ws"', '"../keepalive-ws/mod.ts"'),
      },
    ];
    for (const way of ways) {
      await t.step(way.name, async () => {
        await Deno.remove(`${app}/deno.json`).catch(() => {});
        if (way.config) await Deno.writeTextFile(`${app}/deno.json`, json.lines.join("\n"));
        await Deno.writeTextFile(`${app}/main.ts`, way.source);
        const [, ...args] = run[1].split(/\s+/);
        for (const argv of [["check", "main.ts"], args]) {
          const out = await new Deno.Command(Deno.execPath(), {
            args: argv,
            cwd: app,
            env: { NO_COLOR: "1" },
            stdout: "piped",
            stderr: "piped",
            signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
          }).output();
          const stdout = new TextDecoder().decode(out.stdout);
          assert.equal(
            out.code,
            0,
            `deno ${argv.join(" ")}: ${stdout}${new TextDecoder().decode(out.stderr)}`,
          );
          if (argv[0] === "run") {
            assert.deepEqual(stdout.trimEnd().split("\n"), expectedOutput(ts));
          }
        }
      });
    }
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

// ---------------------------------------------------------------- flags and causes

/** The flags a `--help` text lists: `--name` and `-x`, at the start of an entry or after a comma. */
function helpFlags(help: string): string[] {
  const flags = new Set<string>();
  for (const line of help.split("\n")) {
    const m = /^\s+((?:-\w, )?--[\w-]+(?:, --[\w-]+)?)/.exec(line);
    if (!m) continue;
    for (const f of m[1].split(", ")) flags.add(f);
  }
  return [...flags];
}

for (const program of ["server", "client"] as const) {
  Deno.test(`every flag ${program} --help prints is in docs/${program}.md's flag table, and every flag there is real`, async () => {
    await using proc = Program.start(`${program}.ts`, ["--help"]);
    const { stdout } = await proc.wait();
    const flags = helpFlags(stdout);
    assert.ok(flags.length > 20, `only ${flags.length} flags read from --help`);
    const table = tables(doc(`docs/${program}.md`)).find((t) => t.header[0] === "flag");
    assert.ok(table, `docs/${program}.md has no flag table`);
    const documented = new Set(
      table.rows.flatMap((r) =>
        [...r[0].matchAll(/`([^`]*)`/g)].flatMap((m) =>
          m[1].match(/(?<![\w-])--?[\w][\w-]*/g) ?? []
        )
      ),
    );
    const missing = flags.filter((f) => !documented.has(f));
    assert.deepEqual(missing, [], `not in docs/${program}.md's flag table: ${missing.join(" ")}`);
    const unknown = [...documented].filter((f) => !flags.includes(f));
    assert.deepEqual(
      unknown,
      [],
      `in docs/${program}.md's flag table but not in --help: ${unknown.join(" ")}`,
    );
  });
}

Deno.test("the cause table lists exactly the close causes of CLOSE_CAUSES", () => {
  const found = [...DOCS].flatMap(([file, d]) =>
    tables(d).filter((t) => t.header[0] === "cause").map((t) => ({ file, t }))
  );
  assert.equal(found.length, 1, `cause tables: ${found.map((f) => f.file).join(", ")}`);
  const listed = found[0].t.rows.map((r) => /^`([a-z-]+)`$/.exec(r[0])?.[1] ?? r[0]);
  assert.equal(new Set(listed).size, listed.length, "a cause is listed twice");
  assert.deepEqual([...listed].sort(), [...CLOSE_CAUSES].sort());
});

// ---------------------------------------------------------------- log lines, wscat

Deno.test("docs/logs.md shows the server's text log lines with the fields the server prints", async () => {
  await using server = Program.start("server.ts", ["--addr", "127.0.0.1:0"]);
  const addr = await server.until(
    "listening",
    () => /event=listening addr=(\S+)/.exec(server.stderr)?.[1],
  );
  await runClient(["--send", "hello", `ws://${addr}/echo`]);
  await server.until("close", () => /event=close/.test(server.stderr));
  const shape = (line: string) =>
    line.replace(/^time=\S+ /, "").replace(
      /(\w+)=("[^"]*"|\S+)/g,
      (_, k) => k === "event" || k === "level" ? _ : `${k}=`,
    );
  const printed = server.stderr.split("\n").filter((l) => /event=(listening|open|close)/.test(l))
    .map(shape);
  const block = doc("docs/logs.md").blocks.find((b) =>
    b.lang === "text" && b.lines.some((l) => /event=listening/.test(l))
  );
  assert.ok(block, "docs/logs.md shows no server log lines");
  assert.deepEqual(printed, block.lines.filter((l) => l.trim() !== "").map(shape));
  const open = server.stderr.split("\n").find((l) => /event=open/.test(l))!;
  assert.match(open, / ka=15\/15\/9$/);
  assert.ok(open.length < 100, `the open line is ${open.length} characters`);
});

Deno.test("docs/client.md compares the client with wscat and websocat and says how each was checked", () => {
  const page = text("docs/client.md");
  const section = page.slice(page.indexOf("## Compared with wscat and websocat"));
  assert.match(section, /wscat 6\.1\.0/);
  assert.match(
    section,
    /websocat cannot be installed here, so its column is\s+from its documentation/,
  );
  const table = tables(parseMarkdown(section)).find((t) => t.header[0] === "what");
  assert.ok(table);
  assert.match(
    table.header.join("|"),
    /this client.*wscat 6\.1\.0 \(run\).*websocat 1\.14 \(docs\)/,
  );
  assert.ok(table.rows.length >= 15, `${table.rows.length} rows`);
  const scheme = table.rows.find((r) => r[0].includes("without a scheme"));
  assert.ok(
    scheme && /stack trace/.test(scheme[2]),
    "the wscat column must say localhost:8080 throws",
  );
});
