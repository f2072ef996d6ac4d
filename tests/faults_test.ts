/**
 * The library's fault-injection hooks, which the programs' --no-pong,
 * --freeze-after and --drop-after build on: a peer that does not answer
 * pings, one that hangs with its socket open, and one whose TCP ends with
 * a reset. Each checked from the other end, which this project wrote only
 * in part (a raw peer, or our client against our server over real TCP).
 */

import assert from "node:assert/strict";
import { type Connection, dial, serve } from "../mod.ts";
import { frame, RawPeer } from "./helpers/raw.ts";
import { waitFor } from "./helpers/wait.ts";

const PING = 0x9;
const TEXT = 0x1;

/** A server whose one connection the test gets, with `options` for it. */
async function pair(options: Parameters<typeof serve>[0] = {}) {
  let accepted!: (ws: Connection) => void;
  const got = new Promise<Connection>((r) => accepted = r);
  const server = serve({ hostname: "127.0.0.1", port: 0, ...options }, async (req) => {
    const ws = await req.upgrade();
    ws.onmessage = (m) => void ws.send(m);
    accepted(ws);
    await ws.closed;
  });
  const peer = await RawPeer.connect(server.addr.port);
  await peer.handshake("/");
  return { server, peer, ws: await got };
}

Deno.test("autoPong: false leaves pings unanswered while messages still echo", async () => {
  // The connection built by hand, on the bare core.
  const { WebSocketConn } = await import("../mod.ts");
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  const ws = new WebSocketConn(server, { role: "server", autoPong: false });
  ws.onmessage = (m) => void ws.send(m);
  const peer = new RawPeer(client);
  await peer.write(frame(PING, "anyone?", { mask: true }));
  await peer.write(frame(TEXT, "echo me", { mask: true }));
  const f = await peer.readFrame();
  assert.equal(f.opcode, TEXT, "the echo, not a pong, comes first and alone");
  assert.equal(new TextDecoder().decode(f.payload), "echo me");
  ws.terminate();
  await ws.closed;
  await peer[Symbol.asyncDispose]();
});

Deno.test("freeze() stops reading and writing but keeps TCP open, so only a heartbeat notices", async () => {
  const { server, peer, ws } = await pair({ pingInterval: 0, pongTimeout: 0 });
  try {
    await peer.write(frame(TEXT, "before", { mask: true }));
    assert.equal(new TextDecoder().decode((await peer.readFrame()).payload), "before");
    ws.freeze();
    await peer.write(frame(TEXT, "after", { mask: true }));
    await peer.write(frame(PING, "p", { mask: true }));
    await assert.rejects(
      peer.readFrame(500),
      /timed out/,
      "no echo and no pong from a frozen peer",
    );
    assert.equal(ws.state, "open", "TCP is still up");
    ws.terminate("test over");
    assert.equal((await ws.closed).cause, "local-close");
  } finally {
    await peer[Symbol.asyncDispose]();
    await server.shutdown();
  }
});

Deno.test("reset() ends TCP with an RST, which the other end names reset", async () => {
  let serverSide!: (ws: Connection) => void;
  const got = new Promise<Connection>((r) => serverSide = r);
  const server = serve({ hostname: "127.0.0.1", port: 0 }, async (req) => {
    const ws = await req.upgrade();
    serverSide(ws);
    await ws.closed;
  });
  try {
    const client = await dial(`ws://127.0.0.1:${server.addr.port}/`);
    const ws = await got;
    assert.equal(ws.reset(), null, "SO_LINGER 0 was set");
    const info = await client.closed;
    assert.deepEqual([info.code, info.cause, info.clean], [1006, "reset", false]);
    assert.match(info.error ?? "", /reset/i);
  } finally {
    await server.shutdown();
  }
});

Deno.test("dial({ autoPong: false }) leaves the server's pings unanswered, so the server times out and says so in a 1011 close frame", async () => {
  let serverSide!: (ws: Connection) => void;
  const got = new Promise<Connection>((r) => serverSide = r);
  const server = serve(
    { hostname: "127.0.0.1", port: 0, pingInterval: 100, pongTimeout: 600 },
    async (req) => {
      const ws = await req.upgrade();
      serverSide(ws);
      await ws.closed;
    },
  );
  try {
    const client = await dial(`ws://127.0.0.1:${server.addr.port}/`, { autoPong: false });
    let pings = 0;
    client.onping = () => pings++;
    const [ours, theirs] = await waitFor(
      Promise.all([client.closed, got.then((ws) => ws.closed)]),
      "the server's pong timeout to end the connection",
      5_000,
    ).finally(() => client.terminate());
    assert.ok(pings >= 3, `the server pinged ${pings} times`);
    assert.equal(theirs.cause, "pong-timeout");
    assert.deepEqual(
      [ours.code, ours.reason, ours.cause],
      [1011, "pong timeout", "peer-close"],
      "the client got the server's close frame before TCP ended",
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve({ autoPong: false }) leaves the client's pings unanswered, so the client times out", async () => {
  const server = serve(
    { hostname: "127.0.0.1", port: 0, pingInterval: 0, pongTimeout: 0, autoPong: false },
    async (req) => {
      const ws = await req.upgrade();
      await ws.closed;
    },
  );
  try {
    const client = await dial(`ws://127.0.0.1:${server.addr.port}/`, {
      pingInterval: 100,
      pongTimeout: 600,
    });
    const info = await waitFor(client.closed, "the client's pong timeout", 5_000)
      .finally(() => client.terminate());
    assert.equal(info.cause, "pong-timeout");
    assert.ok(client.pings.sent >= 3, `${client.pings.sent} pings sent`);
    assert.equal(client.pings.answered, 0);
  } finally {
    await server.shutdown();
  }
});
