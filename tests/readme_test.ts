/**
 * The README against the programs: every flag that `--help` lists is
 * documented, the piped `jq` examples give what they show when run as
 * written, the text log line looks as documented, and the comparison with
 * wscat and websocat says what it was checked against.
 */

import assert from "node:assert/strict";
import { withPrograms } from "./helpers/needs.ts";
import { Program, ROOT, runClient, startServer } from "./helpers/process.ts";

const README = await Deno.readTextFile(new URL("README.md", ROOT));

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

for (const program of ["client", "server"] as const) {
  Deno.test(`every flag in ${program} --help appears in the README`, async () => {
    await using proc = Program.start(`${program}.ts`, ["--help"]);
    const { stdout } = await proc.wait();
    const flags = helpFlags(stdout);
    assert.ok(flags.length > 20, `only ${flags.length} flags read from --help`);
    const missing = flags.filter((f) => !new RegExp("[`\\s]" + f + "[`\\s,=|]").test(README));
    assert.deepEqual(missing, [], `not in the README: ${missing.join(" ")}`);
  });
}

/** The piped examples run through jq. */
const withJq = withPrograms("jq");

/** The `$ command` lines of the README's console blocks, each with the lines shown after it. */
function consoleExamples(): { command: string; output: string[] }[] {
  const examples: { command: string; output: string[] }[] = [];
  for (const block of README.matchAll(/```console\n([^]*?)```/g)) {
    let current: { command: string; output: string[] } | null = null;
    for (const line of block[1].split("\n")) {
      if (line.startsWith("$ ")) {
        current = { command: line.slice(2), output: [] };
        examples.push(current);
      } else if (current && line !== "") {
        current.output.push(line);
      }
    }
  }
  return examples;
}

withJq.test("the README's jq examples print what it shows, run as written against a server", async (t) => {
  const examples = consoleExamples().filter((e) => /\|\s*jq\b/.test(e.command));
  assert.ok(examples.length >= 4, `found ${examples.length} jq examples`);
  await using server = await startServer();
  for (const { command, output } of examples) {
    await t.step(command, async () => {
      assert.match(command, /^deno task -q client /, "piped examples use deno task -q");
      assert.match(
        command,
        /ws:\/\/localhost:8080\//,
        "the URL is given, so it can be pointed here",
      );
      const run = command.replace(/^deno /, `${Deno.execPath()} `)
        .replaceAll("localhost:8080", server.addr);
      const out = await new Deno.Command("sh", {
        args: ["-c", run],
        cwd: ROOT,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.deepEqual(stdout.trimEnd().split("\n"), output);
    });
  }
});

Deno.test("the README shows the text log lines the programs print", async () => {
  await using server = await startServer();
  const { stderr } = await runClient(["--send", "ping", "--count", "1", server.echoUrl]);
  const shape = (line: string) => line.replace(/^.*?level=/, "level=").replace(/=\S+/g, "=").trim();
  const printed = stderr.split("\n").filter((l) => /event=(open|close)/.test(l)).map(shape);
  const documented = README.split("\n").filter((l) =>
    /^time=2026-11-28T13:09:32\.\d+Z level=info event=(open|close) id=1 /.test(l)
  ).map(shape);
  assert.deepEqual(printed, documented);
  const open = stderr.split("\n").find((l) => /event=open/.test(l))!;
  assert.match(open, / ka=15\/15\/9$/);
  assert.ok(open.length < 100, `the open line is ${open.length} characters`);
});

Deno.test("the README compares the client with wscat and websocat and says how each was checked", () => {
  const section = README.slice(README.indexOf("### Compared with wscat and websocat"));
  assert.match(section, /wscat 6\.1\.0/);
  assert.match(
    section,
    /websocat cannot be installed here, so its column is from its documentation/,
  );
  const header = section.split("\n").find((l) => l.startsWith("| what"));
  assert.match(header ?? "", /this client.*wscat 6\.1\.0 \(run\).*websocat 1\.14 \(docs\)/);
  const rows = section.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| what"));
  assert.ok(rows.length >= 15, `${rows.length} rows`);
});
