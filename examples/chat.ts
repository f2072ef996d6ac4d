/**
 * A broadcast chat server on keepalive-ws: every text a member sends goes
 * to every other member of the room.
 *
 *     deno run --allow-net --allow-ffi examples/chat.ts [port]
 *
 * Fan-out under backpressure: the room never awaits a member's send, so a
 * slow member cannot stall the others; and a member whose unsent messages
 * pass a bound (it stopped reading) is closed with 1008 instead of making
 * the server buffer without limit — gorilla's chat hub does the same.
 *
 * @module
 */

import { CloseCode, type Connection, serve, type Server } from "../mod.ts";

/** Unsent bytes a member may have queued before it is judged too slow. */
export const MAX_MEMBER_BACKLOG = 1024 * 1024;

/** A chat room: who is in it, and how many members were dropped for being slow. */
export class Room {
  /** The members connected now. */
  readonly members: Set<Connection> = new Set();
  /** Members closed because they stopped reading. */
  dropped = 0;

  /** Adds `ws` for as long as it is open, and relays what it says. */
  async join(ws: Connection): Promise<void> {
    this.members.add(ws);
    try {
      for await (const message of ws) {
        if (typeof message === "string") this.broadcast(message, ws);
      }
    } finally {
      this.members.delete(ws);
    }
  }

  /** Sends `text` to every member but `from`, without waiting for any of them. */
  broadcast(text: string, from: Connection | null = null): void {
    for (const member of this.members) {
      if (member === from || !member.isOpen) continue;
      if (member.bufferedAmount > MAX_MEMBER_BACKLOG) {
        this.dropped++;
        member.abort("too slow: stopped reading", CloseCode.PolicyViolation);
        continue;
      }
      void member.send(text); // not awaited: one member's backpressure is not the room's
    }
  }
}

/** Starts a chat server on `port` (0 picks one) with one room at `/chat`. */
export function startChat(port: number, hostname = "127.0.0.1"): { server: Server; room: Room } {
  const room = new Room();
  const server = serve({ hostname, port }, async (req) => {
    if (req.path !== "/chat") return await req.reject(404, "no such path");
    const ws = await req.upgrade();
    await room.join(ws);
  });
  return { server, room };
}

if (import.meta.main) {
  const { server } = startChat(Number(Deno.args[0] ?? 8080), "0.0.0.0");
  console.log(`chat on ws://localhost:${server.addr.port}/chat`);
}
