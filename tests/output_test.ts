// deno-lint-ignore-file no-control-regex -- these tests look for control characters on purpose
/**
 * The client's rules for what it prints, and the pure parts of its input:
 * message output per `--output` mode and kind of stdout, the short text log
 * line, slash commands, URL forms, `-H` conflicts, TLS errors and refusal
 * bodies in words.
 */

import assert from "node:assert/strict";
import {
  createOutput,
  escapeForTerminal,
  jsonLine,
  pipeLine,
  TERMINAL_BINARY_PREVIEW,
  terminalLine,
} from "../app/client/output.ts";
import { createLogger, formatText, pieceEnd, safeJson } from "../app/common/log.ts";
import { parseLine } from "../app/client/slash.ts";
import { parseWebSocketUrl } from "../app/client/url.ts";
import { parseHeader } from "../app/client/headers.ts";
import { describeTlsError } from "../app/client/tls.ts";
import { bodyLine } from "../app/client/describe.ts";
import { UsageError } from "../app/common/errors.ts";

const HOSTILE = "red\x1b[31mRED\x1b[0m\r\nline2\u009b2J\u202eabc\x07";
const dec = new TextDecoder();

Deno.test("on a terminal no control character, C1 control or bidi override reaches the screen raw", () => {
  const shown = terminalLine(HOSTILE, false);
  assert.equal(shown, "< red\\e[31mRED\\e[0m\\r\\nline2\\u{9b}2J\\u{202e}abc\\a");
  assert.ok(!/[\x00-\x1f\x7f-\x9f\u202e]/.test(shown));
  // With colour the escapes are in reverse video, so a "\n" that came as two characters differs.
  const coloured = terminalLine("a\nb\\nc", true);
  assert.equal(coloured, "\x1b[32m< a\x1b[7m\\n\x1b[27mb\\nc\x1b[0m");
  assert.equal(escapeForTerminal("tab\there"), "tab\\there");
});

Deno.test("on a terminal a binary message is marked with its size, and a big one is cut", () => {
  assert.equal(terminalLine(new TextEncoder().encode("hello"), false), "< [binary 5 B] aGVsbG8=");
  const big = terminalLine(new Uint8Array(TERMINAL_BINARY_PREVIEW + 10), false);
  assert.match(big, /^< \[binary 1034 B\] A+=*… \(10 B more\)$/);
});

Deno.test("on a pipe each message is one line: newline and CR escaped, binary as base64", () => {
  const out = createOutput("text", false, false);
  assert.equal(dec.decode(out.format("a\nb\r\nc")), "a\\nb\\r\\nc\n");
  assert.equal(pipeLine('{"json":"stays \\"as is\\""}'), '{"json":"stays \\"as is\\""}');
  assert.equal(dec.decode(out.format(Uint8Array.of(0, 255))), "AP8=\n");
  assert.equal(out.line("x"), null, "no terminal line on a pipe");
});

Deno.test("--output json gives one object per message with type and data, safe on a terminal", () => {
  const line = jsonLine(HOSTILE);
  assert.deepEqual(JSON.parse(line), { type: "text", data: HOSTILE });
  assert.ok(!/[\x00-\x1f\x7f-\x9f\u202e]/.test(line), line);
  assert.equal(jsonLine(Uint8Array.of(104, 105)), '{"type":"binary","data":"aGk="}');
  const out = createOutput("json", true, true);
  assert.equal(out.line("x"), '{"type":"text","data":"x"}', "no colour, no prefix");
});

Deno.test("--output raw writes the message's bytes as they came, then a newline", () => {
  const out = createOutput("raw", false, false);
  assert.deepEqual(out.format(Uint8Array.of(1, 2, 10)), Uint8Array.of(1, 2, 10, 10));
  assert.equal(dec.decode(out.format(HOSTILE)), HOSTILE + "\n");
});

Deno.test("the text log line is short: ka=15/15/9, nulls and zero user timeout left out; JSON keeps all", () => {
  const open = {
    time: "2026-11-28T12:00:00.000Z",
    level: "info",
    event: "open",
    id: 1,
    remote: "127.0.0.1:8080",
    protocol: null,
    extensions: null,
    keepalive: { enabled: true, idle_s: 15, interval_s: 15, count: 9, verified: true },
    user_timeout_ms: 0,
  };
  const line = formatText(open);
  assert.equal(
    line,
    "time=2026-11-28T12:00:00.000Z level=info event=open id=1 remote=127.0.0.1:8080 ka=15/15/9",
  );
  assert.ok(line.length < 100, `${line.length} characters`);
  assert.match(
    formatText({ keepalive: { ...open.keepalive, enabled: false }, user_timeout_ms: 3000 }),
    /^ka=off user_timeout_ms=3000$/,
  );
  assert.equal(
    formatText({
      keepalive: { enabled: true, idle_s: null, interval_s: null, count: null, verified: false },
    }),
    "ka=on(unverified)",
  );
  assert.equal(
    formatText({
      reason: "",
      pings: { sent: 3, answered: 2, rtt_min_ms: 1, rtt_avg_ms: 1.5, rtt_max_ms: 2 },
      traffic: { messages_in: 1, bytes_in: 4, messages_out: 2, bytes_out: 8 },
    }),
    "pings=3/2 rtt_ms=1/1.5/2 in=1/4B out=2/8B",
  );
  assert.equal(
    formatText({ pings: { sent: 0, answered: 0, rtt_min_ms: null } }),
    "pings=0/0",
  );
  const lines: string[] = [];
  createLogger("json", (l) => lines.push(l)).info("open", open);
  const event = JSON.parse(lines[0]);
  assert.equal(event.protocol, null);
  assert.deepEqual(event.keepalive, open.keepalive);
  assert.equal(event.user_timeout_ms, 0);
});

Deno.test("log lines escape a server's control characters in text and JSON", () => {
  const text = formatText({ reason: HOSTILE });
  assert.ok(!/[\x00-\x1f\x7f-\x9f\u202e]/.test(text), text);
  assert.equal(JSON.parse(text.slice("reason=".length)), HOSTILE);
  const json = safeJson({ reason: HOSTILE });
  assert.ok(!/[\x00-\x1f\x7f-\x9f\u202e]/.test(json), json);
  assert.deepEqual(JSON.parse(json), { reason: HOSTILE });
});

Deno.test("slash commands: /ping, /close, /quit, /help; // sends one /; mistakes are not sent", () => {
  assert.deepEqual(parseLine("hello"), { type: "send", text: "hello" });
  assert.deepEqual(parseLine("//etc/passwd"), { type: "send", text: "/etc/passwd" });
  assert.deepEqual(parseLine("/ping"), { type: "ping", data: "" });
  assert.deepEqual(parseLine("/ping some data"), { type: "ping", data: "some data" });
  assert.equal(parseLine(`/ping ${"x".repeat(126)}`).type, "error");
  assert.deepEqual(parseLine("/close"), { type: "close", code: 1000, reason: "" });
  assert.deepEqual(parseLine("/close 4001 done for today"), {
    type: "close",
    code: 4001,
    reason: "done for today",
  });
  for (const bad of ["/close 1005", "/close 1006", "/close 999", "/close abc", "/close 5000"]) {
    assert.equal(parseLine(bad).type, "error", bad);
  }
  assert.equal(parseLine(`/close 1000 ${"é".repeat(62)}`).type, "error", "reason over 123 bytes");
  assert.deepEqual(parseLine("/quit"), { type: "quit" });
  assert.deepEqual(parseLine("/help"), { type: "help" });
  const unknown = parseLine("/pnig");
  assert.equal(unknown.type, "error");
  assert.match((unknown as { message: string }).message, /unknown command \/pnig.*\/\/pnig/);
});

Deno.test("a URL without a scheme is ws://; http:// is refused with the ws:// to use", () => {
  assert.equal(parseWebSocketUrl("localhost:8080").href, "ws://localhost:8080/");
  assert.equal(
    parseWebSocketUrl("example.com:9000/chat?x=1").href,
    "ws://example.com:9000/chat?x=1",
  );
  assert.equal(parseWebSocketUrl("[::1]:8080/echo").href, "ws://[::1]:8080/echo");
  assert.equal(parseWebSocketUrl("wss://a.example/").href, "wss://a.example/");
  assert.throws(() => parseWebSocketUrl("http://localhost:8080/echo"), (e: Error) => {
    assert.ok(e instanceof UsageError);
    assert.match(
      e.message,
      /not http:\/\/ \(the WebSocket URL of that server is ws:\/\/localhost:8080\/echo\)/,
    );
    return true;
  });
  assert.throws(() => parseWebSocketUrl("https://a/"), /is wss:\/\/a\//);
});

Deno.test("-H with a header the handshake sets is a usage error that names the flag to use", () => {
  assert.deepEqual(parseHeader("Authorization: Bearer x"), ["Authorization", "Bearer x"]);
  const cases: [string, RegExp][] = [
    ["Host: other", /sets Host itself \(the URL sets Host/],
    ["origin: https://a", /use --origin/],
    ["Sec-WebSocket-Protocol: chat", /use --subprotocol/],
    ["Sec-WebSocket-Extensions: permessage-deflate", /use --compression/],
    ["Sec-WebSocket-Key: abc", /fresh key/],
    ["Upgrade: h2c", /sets Upgrade itself/],
    ["Bad Name: x", /not a valid header name/],
  ];
  for (const [header, message] of cases) {
    assert.throws(() => parseHeader(header), (e: Error) => {
      assert.ok(e instanceof UsageError, header);
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("TLS errors read as sentences that name the flag that helps, never rustls enum names", () => {
  const none = { caFile: null };
  const cases: [string, { caFile: string | null }, RegExp][] = [
    [
      "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
      none,
      /self-signed CA certificate \(CA:TRUE, as 'openssl req -x509' makes by default\).*--ca.*-k connects without checking/,
    ],
    [
      "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
      { caFile: "my.pem" },
      /not the certificate in --ca my\.pem; -k/,
    ],
    [
      "invalid peer certificate: UnknownIssuer",
      none,
      /not signed by a CA this client trusts; if a private CA signed it, pass that CA's certificate with --ca FILE; -k/,
    ],
    [
      'invalid peer certificate: certificate not valid for name "127.0.0.1"; certificate is only valid for DnsName("other.example") or IpAddress(10.1.2.3)',
      none,
      /not valid for 127\.0\.0\.1 \(it is for other\.example, 10\.1\.2\.3\)/,
    ],
    [
      "invalid peer certificate: certificate expired: verification time 1795870294 (UNIX), but certificate is not valid after 1795870291 (3 seconds ago)",
      none,
      /expired at 2026-11-28T\d\d:\d\d:\d\dZ/,
    ],
    [
      "received corrupt message of type InvalidContentType",
      none,
      /did not answer in TLS.*use ws:\/\//,
    ],
  ];
  for (const [message, ctx, expected] of cases) {
    const text = describeTlsError(message, ctx)!;
    assert.match(text, /^TLS: /);
    assert.match(text, expected);
    assert.doesNotMatch(text, /Other\(|OtherError|CaUsedAsEndEntity|UnknownIssuer|DnsName/, text);
  }
  assert.equal(describeTlsError("Connection refused (os error 111)", none), null);
});

Deno.test("a refusal's body becomes part of one line: no tags, no control characters, cut", () => {
  assert.equal(
    bodyLine("the origin https://a is not allowed\n"),
    "the origin https://a is not allowed",
  );
  assert.equal(
    bodyLine(
      "<html><head><style>p{}</style></head><body><h1>403</h1><p>No\x1b[2J way</p></body></html>",
    ),
    "403 No [2J way",
  );
  assert.equal(bodyLine("x".repeat(500)).length, 200);
  assert.equal(bodyLine("\n\n"), "");
});

Deno.test("writeStderr writes long text whole, in pieces cut after a newline or else between characters", async () => {
  // Past one 64 Ki-unit piece: lines, then one long line with surrogate pairs around the cuts.
  const text = "é".repeat(70_000) + "\n" + "😀".repeat(40_000) + "x".repeat(3) + "\n"; // as the child makes it
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { writeStderr } from "${import.meta.resolve("../app/common/log.ts")}";
      writeStderr("é".repeat(70_000) + "\\n" + "😀".repeat(40_000) + "x".repeat(3) + "\\n");`,
    ],
    stderr: "piped",
    stdout: "null",
  });
  const out = await child.output();
  assert.equal(out.code, 0);
  assert.equal(dec.decode(out.stderr), text);
  // Where the pieces end: after the last newline that fits, else never inside a pair.
  assert.equal(pieceEnd("ab\ncd\nef", 0, 7), 6, "after the last newline that fits");
  assert.equal(pieceEnd("ab\ncd\nef", 6, 7), 8, "the rest, when it fits");
  assert.equal(pieceEnd("abcdefgh", 0, 5), 5, "no newline: as much as fits");
  assert.equal(pieceEnd("abcd😀efgh", 0, 5), 4, "not between a surrogate pair's halves");
});
