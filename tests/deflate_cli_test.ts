/**
 * --compression on both programs: the open events say what was agreed,
 * and a program without the flag simply goes on uncompressed.
 */

import assert from "node:assert/strict";
import { runClient, startServer } from "./helpers/process.ts";

const long = JSON.stringify({ text: "compress me ".repeat(100) });

Deno.test("--compression on both ends: permessage-deflate is agreed, logged in both open events, and messages echo", async () => {
  await using server = await startServer(["--compression"]);
  const run = await runClient(
    ["--compression", "--log-format", "json", server.echoUrl],
    { input: `${long}\nshort\n` },
  );
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, `${long}\nshort\n`);
  const clientOpen = run.events.find((e) => e.event === "open");
  assert.equal(clientOpen?.extensions, "permessage-deflate");
  const serverOpen = await server.proc.waitForEvent("open");
  assert.equal(serverOpen.extensions, "permessage-deflate");
  const close = await server.proc.waitForEvent("close");
  assert.equal((close.traffic as Record<string, number>).bytes_in, long.length + 5);
});

Deno.test("--compression on one end only: nothing is agreed (extensions null) and the connection works", async (t) => {
  for (
    const [name, serverArgs, clientArgs] of [
      ["client only", [], ["--compression"]],
      ["server only", ["--compression"], []],
    ] as const
  ) {
    await t.step(name, async () => {
      await using server = await startServer([...serverArgs]);
      const run = await runClient([...clientArgs, "--log-format", "json", server.echoUrl], {
        input: `${long}\n`,
      });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, `${long}\n`);
      assert.equal(run.events.find((e) => e.event === "open")?.extensions, null);
      assert.equal((await server.proc.waitForEvent("open")).extensions, null);
    });
  }
});
