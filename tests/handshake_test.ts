import assert from "node:assert/strict";
import process from "node:process";
import { HandshakeError } from "../lib/ws/errors.ts";
import {
  buildUpgradeResponse,
  checkUpgradeRequest,
  computeAcceptKey,
  type UpgradePolicy,
} from "../lib/ws/server_handshake.ts";
import {
  buildUpgradeRequest,
  checkUpgradeResponse,
  generateKey,
  INVALID_RESPONSE,
} from "../lib/ws/client_handshake.ts";
import {
  findHeadEnd,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
} from "../lib/http/head.ts";
import { buildErrorResponse, buildHttpResponse } from "../lib/http/response.ts";

const enc = new TextEncoder();
const RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="; // RFC 6455 §1.3
const RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/** A valid upgrade request with `overrides` replacing (or, when null, dropping) fields. */
function requestBytes(
  overrides: Record<string, string | null> = {},
  requestLine = "GET /chat HTTP/1.1",
): Uint8Array {
  const fields: Record<string, string | null> = {
    Host: "server.example.com",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": RFC_KEY,
    "Sec-WebSocket-Version": "13",
    ...overrides,
  };
  const lines = Object.entries(fields)
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `${k}: ${v}`);
  return enc.encode([requestLine, ...lines].join("\r\n") + "\r\n\r\n");
}

/** Parses and checks a request, returning the error it throws. */
function refusal(
  overrides: Record<string, string | null>,
  policy: UpgradePolicy = {},
  requestLine?: string,
): HandshakeError {
  try {
    checkUpgradeRequest(
      parseRequestHead(requestBytes(overrides, requestLine)),
      policy,
    );
  } catch (e) {
    assert.ok(e instanceof HandshakeError, `not a HandshakeError: ${e}`);
    return e;
  }
  assert.fail("the request was accepted");
}

/** Parses raw head text, returning the error it throws. */
function parseRefusal(text: string): HandshakeError {
  try {
    parseRequestHead(enc.encode(text));
  } catch (e) {
    assert.ok(e instanceof HandshakeError, `not a HandshakeError: ${e}`);
    return e;
  }
  assert.fail("the head was accepted");
}

/** The field lines of a valid upgrade request, to add to or leave out of. */
const UPGRADE_LINES = [
  "Host: server.example.com",
  "Upgrade: websocket",
  "Connection: Upgrade",
  `Sec-WebSocket-Key: ${RFC_KEY}`,
  "Sec-WebSocket-Version: 13",
];

/** A request head from raw field lines, so a name can appear on several lines. */
function rawRequest(fieldLines: string[], requestLine = "GET /chat HTTP/1.1"): Uint8Array {
  return enc.encode([requestLine, ...fieldLines].join("\r\n") + "\r\n\r\n");
}

/** Checks raw request lines, returning the error it throws. */
function rawRefusal(fieldLines: string[], policy: UpgradePolicy = {}): HandshakeError {
  try {
    checkUpgradeRequest(parseRequestHead(rawRequest(fieldLines)), policy);
  } catch (e) {
    assert.ok(e instanceof HandshakeError, `not a HandshakeError: ${e}`);
    return e;
  }
  assert.fail("the request was accepted");
}

/** Parses raw response head text, returning the error it throws. */
function responseRefusal(text: string): HandshakeError {
  try {
    parseResponseHead(enc.encode(text));
  } catch (e) {
    assert.ok(e instanceof HandshakeError, `not a HandshakeError: ${e}`);
    return e;
  }
  assert.fail("the head was accepted");
}

Deno.test("computeAcceptKey() matches the RFC 6455 §1.3 example", () => {
  assert.equal(computeAcceptKey(RFC_KEY), RFC_ACCEPT);
});

Deno.test("findHeadEnd() finds CRLFCRLF, also when searched incrementally", async (t) => {
  const bytes = enc.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\nFRAME");
  const want = bytes.length - "FRAME".length;

  await t.step("whole buffer", () => {
    assert.equal(findHeadEnd(bytes, 0, bytes.length), want);
  });
  await t.step("every split point, resuming 3 bytes back", () => {
    for (let cut = 0; cut <= bytes.length; cut++) {
      const first = findHeadEnd(bytes, 0, cut);
      const got = first !== -1 ? first : findHeadEnd(bytes, Math.max(cut - 3, 0), bytes.length);
      assert.equal(got, want, `split at ${cut}`);
    }
  });
  await t.step("no terminator, or one past `end`", () => {
    assert.equal(findHeadEnd(bytes, 0, want - 1), -1);
    assert.equal(findHeadEnd(enc.encode("a\r\n\r"), 0, 4), -1);
  });
  await t.step("at the very start, and with a negative start", () => {
    const empty = enc.encode("\r\n\r\nX");
    assert.equal(findHeadEnd(empty, 0, empty.length), 4);
    assert.equal(findHeadEnd(empty, -3, empty.length), 4);
  });
});

Deno.test("findHeadEnd() also finds the end of a bare-LF head (LF LF, LF CR LF), incrementally too", async (t) => {
  const heads = [
    "GET / HTTP/1.1\nHost: a\n\n",
    "GET / HTTP/1.1\nHost: a\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\n\n",
    "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n",
  ];
  for (const head of heads) {
    await t.step(JSON.stringify(head), () => {
      const bytes = enc.encode(head + "FRAME");
      const want = head.length;
      assert.equal(findHeadEnd(bytes, 0, bytes.length), want);
      assert.equal(findHeadEnd(bytes, 0, want - 1), -1);
      for (let cut = 0; cut <= bytes.length; cut++) {
        const first = findHeadEnd(bytes, 0, cut);
        const got = first !== -1 ? first : findHeadEnd(bytes, Math.max(cut - 3, 0), bytes.length);
        assert.equal(got, want, `split at ${cut}`);
      }
    });
  }
  await t.step("a CRLF head ends at its CRLFCRLF, not earlier", () => {
    const bytes = enc.encode("GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n\n\n");
    assert.equal(findHeadEnd(bytes, 0, bytes.length), bytes.length - 2);
  });
  await t.step("a bare CR alone ends nothing", () => {
    const bytes = enc.encode("GET / HTTP/1.1\rHost: a\r\r");
    assert.equal(findHeadEnd(bytes, 0, bytes.length), -1);
  });
});

Deno.test("parseRequestHead() reads the request line and fields", () => {
  const head = parseRequestHead(
    requestBytes(
      { "X-Custom": "  spaced value\t" },
      "GET /chat?room=1 HTTP/1.1",
    ),
  );
  assert.equal(head.method, "GET");
  assert.equal(head.target, "/chat?room=1");
  assert.equal(head.version, "HTTP/1.1");
  assert.equal(head.headers.get("HOST"), "server.example.com");
  assert.equal(head.headers.get("x-custom"), "spaced value");
});

Deno.test("parseRequestHead() refuses malformed heads with 400", async (t) => {
  const ok = "Host: a\r\n\r\n";
  const cases: [string, string][] = [
    ["double space in request line", `GET  / HTTP/1.1\r\n${ok}`],
    ["method not a token", `GE(T / HTTP/1.1\r\n${ok}`],
    ["absolute-form target", `GET http://a/ HTTP/1.1\r\n${ok}`],
    ["asterisk target", `OPTIONS * HTTP/1.1\r\n${ok}`],
    ["bad percent-encoding", `GET /%zz HTTP/1.1\r\n${ok}`],
    ["malformed version", `GET / HTTP/1\r\n${ok}`],
    ["lowercase version", `GET / http/1.1\r\n${ok}`],
    ["whitespace before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"],
    ["obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n"],
    ["field name not a token", "GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n"],
    ["no colon", "GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n"],
    ["empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"],
    [
      "control character in value",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    ],
    ["bare LF", "GET / HTTP/1.1\nHost: a\r\n\r\n"],
    ["bare CR", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"],
    ["missing Host", "GET / HTTP/1.1\r\nX: b\r\n\r\n"],
    ["invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"],
    ["no terminating empty line", "GET / HTTP/1.1\r\nHost: a\r\n"],
    ["empty head", "\r\n\r\n"],
  ];
  for (const [name, text] of cases) {
    await t.step(name, () => {
      const err = parseRefusal(text);
      assert.equal(err.status, 400, err.message);
      assert.ok(err.message.length > 0);
    });
  }
});

Deno.test("parseRequestHead() refuses a repeated Host with 400 (RFC 9112 §3.2)", () => {
  const err = parseRefusal("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n");
  assert.equal(err.status, 400);
  assert.match(err.message, /more than once/);
});

Deno.test("parseRequestHead() reads HTTP/1.0 (Host optional) and HTTP/1.2 as 1.x, refuses HTTP/2.0 and 0.9 with 505", () => {
  assert.equal(parseRefusal("GET / HTTP/2.0\r\nHost: a\r\n\r\n").status, 505);
  assert.equal(parseRefusal("GET / HTTP/0.9\r\nHost: a\r\n\r\n").status, 505);
  assert.equal(parseRequestHead(enc.encode("GET /healthz HTTP/1.0\r\n\r\n")).version, "HTTP/1.0");
  assert.equal(parseRefusal("GET / HTTP/1.1\r\n\r\n").status, 400, "HTTP/1.1 needs Host");
  const head = parseRequestHead(
    enc.encode("GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
  );
  assert.equal(head.version, "HTTP/1.2");
});

Deno.test("checkUpgradeRequest() refuses an HTTP/1.0 upgrade with 505 (RFC 6455 §4.2.1)", () => {
  const err = refusal({}, {}, "GET /chat HTTP/1.0");
  assert.equal(err.status, 505);
  assert.match(err.message, /HTTP\/1\.1 or higher, not HTTP\/1\.0/);
});

Deno.test("parseRequestHead() skips empty lines before the request line", () => {
  const head = parseRequestHead(
    enc.encode("\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n"),
  );
  assert.equal(head.target, "/x");
});

Deno.test("parseRequestHead() refuses bare LF line endings with 400: lines must end in CRLF (RFC 9112 §2.2)", () => {
  for (
    const text of [
      "GET / HTTP/1.1\nHost: a\n\n",
      "GET / HTTP/1.1\nHost: a\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\n",
      "GET / HTTP/1.1\r\nHost: a\n\r\n",
      "GET / HTTP/1.1\nHost: a\r\n\r\n",
      "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "\n\n",
    ]
  ) {
    const err = parseRefusal(text);
    assert.equal(err.status, 400, JSON.stringify(text));
    assert.equal(
      err.message,
      "a line ends in a bare LF; lines must end in CRLF",
      JSON.stringify(text),
    );
  }
});

Deno.test("parseRequestHead() refuses a bare CR with 400 (RFC 9112 §2.2)", () => {
  for (
    const text of [
      "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\n",
    ]
  ) {
    const err = parseRefusal(text);
    assert.equal(err.status, 400, JSON.stringify(text));
    assert.match(err.message, /bare (CR|LF); lines must end in CRLF$/, JSON.stringify(text));
  }
  assert.equal(
    parseRefusal("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n").message,
    "a line holds a bare CR; lines must end in CRLF",
  );
});

Deno.test("parseResponseHead() refuses bare LF and bare CR with INVALID_RESPONSE (RFC 9112 §2.2)", () => {
  for (
    const text of [
      "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n",
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\n\r\n",
      "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\r\n\r\n",
    ]
  ) {
    const err = responseRefusal(text);
    assert.equal(err.status, INVALID_RESPONSE);
    assert.equal(
      err.message,
      "invalid response from the server: a line ends in a bare LF; lines must end in CRLF",
    );
  }
  const cr = responseRefusal("HTTP/1.1 101 x\r\nUpgrade: websocket\rX: y\r\n\r\n");
  assert.equal(cr.status, INVALID_RESPONSE);
  assert.match(cr.message, /bare CR; lines must end in CRLF$/);
});

Deno.test("parseRequestHead() and parseResponseHead() read pathological heads correctly", async (t) => {
  const spaces = " ".repeat(7900);
  const tabs = "\t".repeat(7900);
  const header = (line: string) => parseRequestHead(rawRequest([...UPGRADE_LINES, line]));
  await t.step("7,900 spaces inside a value are kept, the OWS around it trimmed", () => {
    assert.equal(header(`X: a${spaces}b`).headers.get("x"), `a${spaces}b`);
    assert.equal(header(`X:  \t a${spaces}b \t `).headers.get("x"), `a${spaces}b`);
    assert.equal(header(`X: a${tabs}b`).headers.get("x"), `a${tabs}b`);
    assert.equal(header(`X: a${" \t".repeat(3950)}b`).headers.get("x"), `a${" \t".repeat(3950)}b`);
  });
  await t.step("a value of only OWS is empty", () => {
    assert.equal(header(`X:${spaces}`).headers.get("x"), "");
    assert.equal(header(`X:${tabs}`).headers.get("x"), "");
  });
  await t.step("7,900 spaces, then a control character, are refused", () => {
    assert.throws(
      () => header(`X: ${spaces}\x01${spaces}`),
      (e) => e instanceof HandshakeError && e.status === 400 && /control character/.test(e.message),
    );
  });
  await t.step("7,900 spaces before a colon are refused", () => {
    assert.throws(
      () => header(`X${spaces}: b`),
      (e) =>
        e instanceof HandshakeError && e.status === 400 &&
        e.message === 'whitespace between the field name "X" and the colon',
    );
  });
  await t.step("a target of 7,900 `%`, or `%4` runs, is refused; valid escapes are kept", () => {
    for (
      const target of [`/${"%".repeat(7900)}`, `/${"%4".repeat(3900)}`, `/${"%41".repeat(2600)}%`]
    ) {
      assert.equal(
        parseRefusal(`GET ${target} HTTP/1.1\r\nHost: a\r\n\r\n`).message,
        "the request target must be a path like /chat?room=1",
      );
    }
    const target = `/${"%41".repeat(2600)}?${"a=%2F&".repeat(100)}`;
    assert.equal(
      parseRequestHead(rawRequest(UPGRADE_LINES, `GET ${target} HTTP/1.1`)).target,
      target,
    );
  });
  await t.step("a request line with 7,900 spaces is refused", () => {
    const err = parseRefusal(`GET${spaces}/ HTTP/1.1\r\nHost: a\r\n\r\n`);
    assert.equal(err.message, "the request line is not `method SP target SP version`");
  });
  await t.step("a Host of 7,900 `%` or `:` is refused", () => {
    for (const host of ["%".repeat(7900), `[${":".repeat(7900)}`, `a${":".repeat(7900)}`]) {
      assert.equal(
        parseRefusal(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`).message,
        "the Host header is invalid",
      );
    }
    const host = `[${"0:".repeat(3000)}1]:${"9".repeat(100)}`;
    assert.equal(
      parseRequestHead(enc.encode(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`)).headers.get("host"),
      host,
    );
  });
  await t.step("a list of 7,900 commas, or `, ` runs, around a subprotocol", () => {
    const check = (line: string) =>
      checkUpgradeRequest(parseRequestHead(rawRequest([...UPGRADE_LINES, line])), {
        protocols: ["chat"],
      }).protocol;
    assert.equal(
      check(`Sec-WebSocket-Protocol: ${",".repeat(7900)}chat${",".repeat(7900)}`),
      "chat",
    );
    assert.equal(check(`Sec-WebSocket-Protocol: ${", \t".repeat(2600)}chat`), "chat");
    assert.equal(check(`Sec-WebSocket-Protocol: ${",".repeat(7900)}`), null);
    assert.equal(rawRefusal([...UPGRADE_LINES, `Sec-WebSocket-Protocol: a${spaces}b`]).status, 400);
  });
  await t.step("a response value of 7,900 spaces, and 1,900 folded lines", () => {
    const resp = parseResponseHead(enc.encode(`HTTP/1.1 101 x\r\nX: a${spaces}b\r\n\r\n`));
    assert.equal(resp.headers.get("x"), `a${spaces}b`);
    const folded = parseResponseHead(
      enc.encode(`HTTP/1.1 101 x\r\nX: a\r\n${" b\r\n".repeat(1900)}\r\n`),
    );
    assert.equal(folded.headers.get("x"), `a${" b".repeat(1900)}`);
  });
  await t.step("a reason phrase of 7,900 spaces, then a control character, is refused", () => {
    assert.equal(
      responseRefusal(`HTTP/1.1 101${spaces}\x01\r\n\r\n`).message,
      "invalid response from the server: the status line is malformed",
    );
    assert.equal(parseResponseHead(enc.encode(`HTTP/1.1 101 ${spaces}\r\n\r\n`)).reason, spaces);
  });
});

Deno.test("parseResponseHead() refuses a control character in a folded line, as in any other", () => {
  for (const ctl of ["\x00", "\x01", "\x7f"]) {
    const err = responseRefusal(`HTTP/1.1 101 x\r\nX: a\r\n b${ctl}c\r\n\r\n`);
    assert.equal(err.status, INVALID_RESPONSE);
    assert.equal(
      err.message,
      "invalid response from the server: the X header holds a control character",
    );
  }
});

/**
 * Heads built to make a backtracking parser slow: each is at most 8 KiB (the
 * head limit), and each costs the old regex-based parser 60–300 ms of CPU
 * where a linear one needs well under 1 ms.
 */
function pathologicalHeads(): (() => unknown)[] {
  const spaces = " ".repeat(7900);
  const request = (line: string) => rawRequest([...UPGRADE_LINES, line]);
  const requests = [
    request(`X: a${spaces}b`),
    request(`X: a${"\t".repeat(7900)}b`),
    request(`X: a${" \t".repeat(3950)}b`),
    request(`Sec-WebSocket-Protocol: a${", ".repeat(3900)}b`),
    request(`Sec-WebSocket-Protocol: ${",".repeat(7900)}chat`),
    rawRequest(UPGRADE_LINES, `GET /${"%".repeat(7900)} HTTP/1.1`),
  ];
  const responses = [
    enc.encode(`HTTP/1.1 101 x\r\nX: a${spaces}b\r\n\r\n`),
    enc.encode(`HTTP/1.1 101 x\r\nX: a\r\n${" b\r\n".repeat(1900)}\r\n`),
    enc.encode(`HTTP/1.1 101${spaces}\x01\r\n\r\n`),
  ];
  const quietly = (f: () => unknown) => () => {
    try {
      f();
    } catch (e) {
      if (!(e instanceof HandshakeError)) throw e;
    }
  };
  return [
    ...requests.map((b) =>
      quietly(() => checkUpgradeRequest(parseRequestHead(b), { protocols: ["chat"] }))
    ),
    ...responses.map((b) => quietly(() => parseResponseHead(b))),
  ];
}

Deno.test("parsing 200 pathological 8 KiB heads takes under 1 s of CPU in total (a DoS bound)", () => {
  // This bounds an attack, it is not a speed goal. The old parser trimmed
  // values with /^[ \t]+|[ \t]+$/g, which backtracks quadratically: `a`,
  // 7,900 spaces, `b` cost it 60-85 ms of CPU, so 13 such requests a second
  // saturated the server, and these 200 heads took it about 10 s. A linear
  // parser needs well under 1 ms each. CPU time, not wall time, so that a
  // busy machine does not fail the test.
  const heads = pathologicalHeads();
  const before = process.cpuUsage();
  for (let i = 0; i < 200; i++) heads[i % heads.length]();
  const { user, system } = process.cpuUsage(before);
  const ms = (user + system) / 1000;
  assert.ok(ms < 1000, `200 heads took ${ms.toFixed(0)} ms of CPU`);
});

Deno.test("checkUpgradeRequest() matches many-star origin patterns in bounded time (a DoS bound)", () => {
  // A pattern with several `*` compiled to a RegExp of several `.*` backtracks
  // polynomially in the Origin's length: against an Origin of n dots,
  // `*.*.*.x` cost the old code about 4 s of CPU per request at n = 2,000,
  // and would take hours at n = 7,900. The sizes keep a regression to a
  // failure in seconds rather than a hung test.
  const cases: [string, number][] = [
    ["*.*.x", 7900],
    ["*.*.*.x", 2000],
    ["http://*.*.*.x", 2000],
  ];
  const before = process.cpuUsage();
  for (const [pattern, n] of cases) {
    const line = `Origin: http://${".".repeat(n)}`;
    assert.equal(rawRefusal([...UPGRADE_LINES, line], { origins: [pattern] }).status, 403);
  }
  const { user, system } = process.cpuUsage(before);
  const ms = (user + system) / 1000;
  assert.ok(ms < 1000, `${cases.length} requests took ${ms.toFixed(0)} ms of CPU`);
});

Deno.test("checkUpgradeRequest() origin patterns match with any number of stars", () => {
  const allowed = (origin: string, pattern: string) =>
    checkUpgradeRequest(parseRequestHead(rawRequest([...UPGRADE_LINES, `Origin: ${origin}`])), {
      origins: [pattern],
    }).key === RFC_KEY;
  assert.ok(allowed(`http://a${".".repeat(7900)}x`, "*.*.x"));
  assert.ok(allowed(`http://${".".repeat(7900)}`, "*.*.*.*.*.*.*"));
  assert.ok(allowed("https://a.b.C.example.org:8443", "*.*.example.ORG:*"));
  assert.ok(allowed("https://a.b.example.org", "https://*.*.example.org"));
  assert.ok(allowed("http://ab", "a**b"));
  assert.ok(allowed("http://ab", "*a*b*"));
  for (
    const [origin, pattern] of [
      ["http://a.example.org", "*.*.example.org"],
      ["http://a.b.example.org", "https://*.*.example.org"],
      ["http://ab", "a*b*c"],
      ["http://abx", "*a*b"],
    ]
  ) {
    const err = rawRefusal([...UPGRADE_LINES, `Origin: ${origin}`], { origins: [pattern] });
    assert.equal(err.status, 403, `${origin} ${pattern}`);
  }
});

Deno.test("checkUpgradeRequest() accepts the RFC 6455 §1.2 request", () => {
  const got = checkUpgradeRequest(parseRequestHead(requestBytes()));
  assert.deepEqual(got, { key: RFC_KEY, protocol: null });
});

Deno.test("checkUpgradeRequest() refuses a non-GET with 405 and Allow: GET", () => {
  const err = refusal({}, {}, "POST /chat HTTP/1.1");
  assert.equal(err.status, 405);
  assert.deepEqual(err.headers, { Allow: "GET" });
  // Methods are case-sensitive (RFC 9110 §9.1).
  assert.equal(refusal({}, {}, "get /chat HTTP/1.1").status, 405);
});

Deno.test("checkUpgradeRequest() refuses malformed upgrades with 400", async (t) => {
  const cases: [string, Record<string, string | null>][] = [
    ["no Upgrade header", { Upgrade: null }],
    ["Upgrade without websocket", { Upgrade: "h2c" }],
    ["websocket only as a substring", { Upgrade: "websockets" }],
    ["no Connection header", { Connection: null }],
    ["Connection without upgrade", { Connection: "keep-alive" }],
    ["no key", { "Sec-WebSocket-Key": null }],
    ["short key", { "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=" }],
    ["15-byte key", { "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZ===" }],
    ["long key", { "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZSE=" }],
    ["key with bad characters", {
      "Sec-WebSocket-Key": "dGhlIHNhbXBsZ$Bub25jZQ==",
    }],
    ["key sent twice", { "Sec-WebSocket-Key": `${RFC_KEY}, ${RFC_KEY}` }],
    ["missing version", { "Sec-WebSocket-Version": null }],
    ["version not a number", { "Sec-WebSocket-Version": "thirteen" }],
    ["version list", { "Sec-WebSocket-Version": "13, 8" }],
    ["a body", { "Content-Length": "5" }],
    ["a chunked body", { "Transfer-Encoding": "chunked" }],
    ["protocol not a token", { "Sec-WebSocket-Protocol": "a b" }],
  ];
  for (const [name, overrides] of cases) {
    await t.step(name, () => {
      const err = refusal(overrides);
      assert.equal(err.status, 400, err.message);
    });
  }
});

Deno.test("checkUpgradeRequest() refuses a missing Host in a hand-built head with 400", () => {
  const head: RequestHead = parseRequestHead(requestBytes());
  head.headers.delete("host");
  assert.throws(
    () => checkUpgradeRequest(head),
    (e) => e instanceof HandshakeError && e.status === 400 && /Host/.test(e.message),
  );
});

Deno.test("checkUpgradeRequest() answers another version with 426 and Sec-WebSocket-Version: 13", () => {
  for (const v of ["8", "12", "14"]) {
    const err = refusal({ "Sec-WebSocket-Version": v });
    assert.equal(err.status, 426);
    assert.deepEqual(err.headers, { "Sec-WebSocket-Version": "13" });
  }
});

Deno.test("checkUpgradeRequest() matches names and tokens case-insensitively", () => {
  const bytes = enc.encode(
    "GET / HTTP/1.1\r\nhOsT: a\r\nUPGRADE: WebSocket\r\n" +
      "connection: keep-alive, Upgrade\r\nsec-websocket-key: " + RFC_KEY +
      "\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n",
  );
  assert.equal(checkUpgradeRequest(parseRequestHead(bytes)).key, RFC_KEY);
  // Connection split over two field lines is one list (RFC 9110 §5.3).
  const split = requestBytes({ Connection: "keep-alive" });
  const head = parseRequestHead(split);
  head.headers.append("connection", "UPGRADE");
  assert.equal(checkUpgradeRequest(head).key, RFC_KEY);
});

Deno.test("checkUpgradeRequest() reads Upgrade, Connection and Sec-WebSocket-Protocol lines as one list (RFC 9110 §5.3)", async (t) => {
  const without = (name: string) => UPGRADE_LINES.filter((l) => !l.startsWith(`${name}:`));
  const accepted = (lines: string[], policy: UpgradePolicy = {}) =>
    checkUpgradeRequest(parseRequestHead(rawRequest(lines)), policy);
  await t.step("Upgrade: foo, then Upgrade: websocket, is an upgrade (RFC 9110 §7.8)", () => {
    const lines = [...without("Upgrade"), "Upgrade: foo", "Upgrade: websocket"];
    assert.equal(accepted(lines).key, RFC_KEY);
    const reversed = [...without("Upgrade"), "upgrade: WebSocket", "UPGRADE: h2c"];
    assert.equal(accepted(reversed).key, RFC_KEY);
  });
  await t.step("Upgrade: foo alone, or on two lines, is not", () => {
    for (const lines of [["Upgrade: foo"], ["Upgrade: foo", "Upgrade: h2c, websockets"]]) {
      const err = rawRefusal([...without("Upgrade"), ...lines]);
      assert.equal(err.status, 400);
      assert.equal(err.message, "the Upgrade header must contain websocket");
    }
  });
  await t.step("Connection: keep-alive, then Connection: Upgrade (RFC 9110 §7.6.1)", () => {
    const lines = [...without("Connection"), "Connection: keep-alive", "Connection: Upgrade"];
    assert.equal(accepted(lines).key, RFC_KEY);
    const err = rawRefusal([
      ...without("Connection"),
      "Connection: keep-alive",
      "Connection: close",
    ]);
    assert.equal(err.message, "the Connection header must contain upgrade");
  });
  await t.step(
    "Sec-WebSocket-Protocol on two lines keeps the client's order (RFC 6455 §11.3.4)",
    () => {
      const lines = [
        ...UPGRADE_LINES,
        "Sec-WebSocket-Protocol: mqtt, chat.v2",
        "Sec-WebSocket-Protocol: chat.v1",
      ];
      assert.equal(accepted(lines, { protocols: ["chat.v1", "chat.v2"] }).protocol, "chat.v2");
      assert.equal(accepted(lines, { protocols: ["chat.v1"] }).protocol, "chat.v1");
      const bad = rawRefusal([
        ...UPGRADE_LINES,
        "Sec-WebSocket-Protocol: chat",
        "Sec-WebSocket-Protocol: a b",
      ]);
      assert.equal(bad.message, "the Sec-WebSocket-Protocol header must be a list of tokens");
    },
  );
});

Deno.test("parseRequestHead() refuses a repeated Sec-WebSocket-Key or Sec-WebSocket-Version line with 400 (RFC 6455 §11.3.1, §11.3.5)", () => {
  for (
    const [line, name] of [
      [`Sec-WebSocket-Key: ${RFC_KEY}`, "Sec-WebSocket-Key"],
      [`sec-websocket-key: ${generateKey()}`, "Sec-WebSocket-Key"],
      ["Sec-WebSocket-Version: 13", "Sec-WebSocket-Version"],
      ["SEC-WEBSOCKET-VERSION: 8", "Sec-WebSocket-Version"],
    ]
  ) {
    const err = parseRefusal(new TextDecoder().decode(rawRequest([...UPGRADE_LINES, line])));
    assert.equal(err.status, 400, line);
    assert.equal(err.message, `the ${name} header appears more than once`);
  }
  // Host is refused the same way, with the same sentence (RFC 9112 §3.2).
  const host = parseRefusal(new TextDecoder().decode(rawRequest([...UPGRADE_LINES, "Host: a"])));
  assert.equal(host.message, "the Host header appears more than once");
  // An empty second line is still a second line.
  const empty = parseRefusal(
    new TextDecoder().decode(rawRequest([...UPGRADE_LINES, "Sec-WebSocket-Key:"])),
  );
  assert.equal(empty.message, "the Sec-WebSocket-Key header appears more than once");
});

Deno.test("checkUpgradeRequest() applies the origin rule", async (t) => {
  const host = "server.example.com";
  await t.step("no Origin is allowed", () => {
    assert.equal(
      checkUpgradeRequest(parseRequestHead(requestBytes())).key,
      RFC_KEY,
    );
  });
  await t.step("same host, any case, is allowed", () => {
    const head = parseRequestHead(
      requestBytes({
        Origin: "https://server.EXAMPLE.com",
        Host: "SERVER.example.com",
      }),
    );
    assert.equal(checkUpgradeRequest(head).key, RFC_KEY);
  });
  await t.step("same host with the same port is allowed", () => {
    const head = parseRequestHead(
      requestBytes({ Origin: "http://localhost:8080", Host: "localhost:8080" }),
    );
    assert.equal(checkUpgradeRequest(head).key, RFC_KEY);
  });
  await t.step("a foreign origin is refused with 403", () => {
    assert.equal(refusal({ Origin: "https://evil.example" }).status, 403);
  });
  await t.step("a different port is a different origin", () => {
    const err = refusal({
      Origin: "http://localhost:9999",
      Host: "localhost:8080",
    });
    assert.equal(err.status, 403);
  });
  await t.step("null and unparsable origins are refused with 403", () => {
    for (
      const origin of [
        "null",
        "server.example.com",
        "https://server.example.com/path",
      ]
    ) {
      assert.equal(refusal({ Origin: origin }).status, 403, origin);
    }
  });
  await t.step("host patterns allow matching origins", () => {
    const policy = { origins: ["*.example.org", "localhost:*"] };
    for (
      const origin of [
        "https://app.example.org",
        "http://a.b.EXAMPLE.org",
        "http://localhost:3000",
      ]
    ) {
      const head = parseRequestHead(requestBytes({ Origin: origin }));
      assert.equal(checkUpgradeRequest(head, policy).key, RFC_KEY, origin);
    }
    for (
      const origin of [
        "https://example.org",
        "https://example.org.evil.com",
        "http://localhost",
      ]
    ) {
      assert.equal(refusal({ Origin: origin }, policy).status, 403, origin);
    }
  });
  await t.step("patterns with :// match the scheme too", () => {
    const policy = { origins: ["https://*.example.org"] };
    const head = parseRequestHead(
      requestBytes({ Origin: "https://app.example.org" }),
    );
    assert.equal(checkUpgradeRequest(head, policy).key, RFC_KEY);
    assert.equal(
      refusal({ Origin: "http://app.example.org" }, policy).status,
      403,
    );
  });
  await t.step("pattern dots are literal, not regex wildcards", () => {
    const policy = { origins: ["app.example.org"] };
    assert.equal(
      refusal({ Origin: "https://appXexampleYorg" }, policy).status,
      403,
    );
  });
  await t.step("patterns still allow the same host", () => {
    const head = parseRequestHead(requestBytes({ Origin: `https://${host}` }));
    assert.equal(
      checkUpgradeRequest(head, { origins: ["other.test"] }).key,
      RFC_KEY,
    );
  });
});

Deno.test("checkUpgradeRequest() picks the client's first offered subprotocol the server speaks", async (t) => {
  const check = (offer: string | null, subprotocols?: string[]) =>
    checkUpgradeRequest(
      parseRequestHead(requestBytes({ "Sec-WebSocket-Protocol": offer })),
      { protocols: subprotocols },
    ).protocol;
  await t.step("client order wins over server order", () => {
    assert.equal(check("chat.v2, chat.v1", ["chat.v1", "chat.v2"]), "chat.v2");
  });
  await t.step("skips unsupported offers", () => {
    assert.equal(check("mqtt, chat.v1", ["chat.v1"]), "chat.v1");
  });
  await t.step("null when nothing is shared, offered, or supported", () => {
    assert.equal(check("mqtt", ["chat.v1"]), null);
    assert.equal(check(null, ["chat.v1"]), null);
    assert.equal(check("chat.v1"), null);
  });
  await t.step("names compare case-sensitively", () => {
    assert.equal(check("Chat.V1", ["chat.v1"]), null);
  });
  await t.step("empty list elements are ignored (RFC 9110 §5.6.1)", () => {
    assert.equal(check(", ,chat.v1", ["chat.v1"]), "chat.v1");
  });
});

Deno.test("buildUpgradeResponse() builds the 101 with accept and optional protocol", () => {
  const text = buildUpgradeResponse(RFC_KEY, "chat");
  const resp = parseResponseHead(enc.encode(text));
  assert.equal(resp.status, 101);
  assert.equal(resp.reason, "Switching Protocols");
  assert.equal(resp.headers.get("sec-websocket-accept"), RFC_ACCEPT);
  assert.equal(resp.headers.get("sec-websocket-protocol"), "chat");
  assert.deepEqual(
    checkUpgradeResponse(resp, RFC_KEY, { protocols: ["chat"] }),
    {
      protocol: "chat",
    },
  );
  const bare = parseResponseHead(
    enc.encode(buildUpgradeResponse(RFC_KEY, null)),
  );
  assert.equal(bare.headers.has("sec-websocket-protocol"), false);
  assert.throws(() => buildUpgradeResponse(RFC_KEY, "a\r\nX: y"), TypeError);
});

Deno.test("buildHttpResponse() counts Content-Length in bytes and closes", () => {
  const body = "héllo ✓ 🎉\n"; // 2-, 3- and 4-byte UTF-8 characters
  const text = buildHttpResponse(200, body);
  const [head, gotBody] = text.split("\r\n\r\n");
  assert.equal(gotBody, body);
  const resp = parseResponseHead(enc.encode(head + "\r\n\r\n"));
  assert.equal(resp.status, 200);
  assert.equal(resp.reason, "OK");
  assert.equal(
    Number(resp.headers.get("content-length")),
    enc.encode(body).length,
  );
  assert.notEqual(enc.encode(body).length, body.length);
  assert.equal(resp.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(resp.headers.get("connection"), "close");
});

Deno.test("buildHttpResponse() uses reason phrases, extra headers and keepAlive", () => {
  const statuses: [number, string][] = [
    [400, "Bad Request"],
    [403, "Forbidden"],
    [404, "Not Found"],
    [405, "Method Not Allowed"],
    [408, "Request Timeout"],
    [426, "Upgrade Required"],
    [431, "Request Header Fields Too Large"],
    [500, "Internal Server Error"],
    [503, "Service Unavailable"],
    [505, "HTTP Version Not Supported"],
  ];
  for (const [status, reason] of statuses) {
    assert.ok(
      buildHttpResponse(status, "").startsWith(
        `HTTP/1.1 ${status} ${reason}\r\n`,
      ),
    );
  }
  const text = buildHttpResponse(200, "{}", {
    "Content-Type": "application/json",
  }, {
    keepAlive: true,
  });
  const resp = parseResponseHead(
    enc.encode(text.slice(0, text.indexOf("\r\n\r\n") + 4)),
  );
  assert.equal(resp.headers.get("content-type"), "application/json");
  assert.equal(resp.headers.has("connection"), false);
  assert.throws(() => buildHttpResponse(200, "", { "X": "a\r\nb" }), TypeError);
  assert.throws(
    () => buildHttpResponse(200, "", { "Content-Length": "9" }),
    TypeError,
  );
});

Deno.test("buildErrorResponse() carries the error's status, headers and sentence", () => {
  const err = refusal({ "Sec-WebSocket-Version": "8" });
  const text = buildErrorResponse(err);
  const end = text.indexOf("\r\n\r\n") + 4;
  const resp = parseResponseHead(enc.encode(text.slice(0, end)));
  assert.equal(resp.status, 426);
  assert.equal(resp.headers.get("sec-websocket-version"), "13");
  assert.equal(resp.headers.get("connection"), "close");
  assert.equal(text.slice(end), `${err.message}\n`);
});

Deno.test("generateKey() makes distinct 16-byte base64 keys the server accepts", () => {
  const a = generateKey();
  const b = generateKey();
  assert.notEqual(a, b);
  for (const key of [a, b]) {
    assert.equal(atob(key).length, 16);
    const head = parseRequestHead(requestBytes({ "Sec-WebSocket-Key": key }));
    assert.equal(checkUpgradeRequest(head).key, key);
  }
});

/** A deliberately naive parser, independent of lib/, for round-trip checks. */
function naiveParse(
  text: string,
): { line: string; fields: [string, string][] } {
  assert.ok(text.endsWith("\r\n\r\n"));
  const [line, ...rest] = text.slice(0, -4).split("\r\n");
  return {
    line,
    fields: rest.map((l) => {
      const i = l.indexOf(": ");
      assert.ok(i > 0, `bad line ${JSON.stringify(l)}`);
      return [l.slice(0, i), l.slice(i + 2)];
    }),
  };
}

Deno.test("buildUpgradeRequest() writes the RFC 6455 §4.1 request", async (t) => {
  const key = generateKey();
  await t.step("IPv6 literal with port, path and query", () => {
    const { line, fields } = naiveParse(
      buildUpgradeRequest(new URL("ws://[::1]:9000/x?y=1"), key),
    );
    assert.equal(line, "GET /x?y=1 HTTP/1.1");
    assert.deepEqual(fields, [
      ["Host", "[::1]:9000"],
      ["Upgrade", "websocket"],
      ["Connection", "Upgrade"],
      ["Sec-WebSocket-Key", key],
      ["Sec-WebSocket-Version", "13"],
    ]);
  });
  await t.step("default ports are left out of Host, others kept", () => {
    const host = (url: string) =>
      new Map(naiveParse(buildUpgradeRequest(new URL(url), key)).fields).get(
        "Host",
      );
    assert.equal(host("ws://example.com:80/"), "example.com");
    assert.equal(host("wss://example.com:443/"), "example.com");
    assert.equal(host("wss://example.com:80/"), "example.com:80");
    assert.equal(host("ws://example.com:443/"), "example.com:443");
    assert.equal(host("ws://EXAMPLE.com"), "example.com");
  });
  await t.step("empty path becomes /", () => {
    assert.equal(
      naiveParse(buildUpgradeRequest(new URL("ws://a"), key)).line,
      "GET / HTTP/1.1",
    );
  });
  await t.step(
    "origin, subprotocols and extra headers, and the server accepts it",
    () => {
      const text = buildUpgradeRequest(
        new URL("ws://localhost:8080/chat"),
        key,
        {
          origin: "http://localhost:8080",
          protocols: ["chat.v2", "chat.v1"],
          headers: [["Authorization", "Bearer abc"]],
        },
      );
      const fields = new Map(naiveParse(text).fields);
      assert.equal(fields.get("Origin"), "http://localhost:8080");
      assert.equal(fields.get("Sec-WebSocket-Protocol"), "chat.v2, chat.v1");
      assert.equal(fields.get("Authorization"), "Bearer abc");
      const got = checkUpgradeRequest(parseRequestHead(enc.encode(text)), {
        protocols: ["chat.v1", "chat.v2"],
      });
      assert.deepEqual(got, { key, protocol: "chat.v2" });
    },
  );
});

Deno.test("buildUpgradeRequest() refuses bad input with a TypeError", async (t) => {
  const key = generateKey();
  const cases: [string, string, Parameters<typeof buildUpgradeRequest>[2]][] = [
    ["http URL", "http://a/", {}],
    ["fragment", "ws://a/#x", {}],
    ["empty fragment", "ws://a/#", {}],
    ["credentials", "ws://u:p@a/", {}],
    ["CRLF in a value", "ws://a/", { headers: [["X-A", "b\r\nX-Evil: 1"]] }],
    ["LF in a name", "ws://a/", { headers: [["X\nA", "b"]] }],
    ["override Host", "ws://a/", { headers: [["host", "b"]] }],
    ["override key", "ws://a/", { headers: [["Sec-WebSocket-Key", key]] }],
    ["override version", "ws://a/", {
      headers: [["Sec-WebSocket-Version", "8"]],
    }],
    ["extension header", "ws://a/", {
      headers: [["Sec-WebSocket-Extensions", "x"]],
    }],
    ["CR in origin", "ws://a/", { origin: "http://a\r\nX: y" }],
    ["subprotocol not a token", "ws://a/", { protocols: ["a b"] }],
    ["subprotocol twice", "ws://a/", { protocols: ["a", "a"] }],
  ];
  for (const [name, url, opts] of cases) {
    await t.step(name, () => {
      assert.throws(
        () => buildUpgradeRequest(new URL(url), key, opts),
        TypeError,
      );
    });
  }
});

Deno.test("parseResponseHead() reads status lines and unfolds obs-fold", () => {
  const resp = parseResponseHead(
    enc.encode("HTTP/1.1 403 Forbidden here\r\nX-A: one\r\n  two\r\n\r\n"),
  );
  assert.equal(resp.status, 403);
  assert.equal(resp.reason, "Forbidden here");
  assert.equal(resp.headers.get("x-a"), "one two");
  assert.equal(
    parseResponseHead(enc.encode("HTTP/1.1 204\r\n\r\n")).reason,
    "",
  );
  for (
    const bad of [
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/2 101 x\r\n\r\n",
      "ICY 200 OK\r\n\r\n",
    ]
  ) {
    assert.throws(
      () => parseResponseHead(enc.encode(bad)),
      (e) => e instanceof HandshakeError && e.status === INVALID_RESPONSE,
      bad,
    );
  }
});

Deno.test("checkUpgradeResponse() enforces RFC 6455 §4.1", async (t) => {
  const key = generateKey();
  const response = (
    overrides: Record<string, string | null> = {},
    statusLine = "HTTP/1.1 101 Switching Protocols",
  ): ResponseHead => {
    const fields: Record<string, string | null> = {
      Upgrade: "websocket",
      Connection: "Upgrade",
      "Sec-WebSocket-Accept": computeAcceptKey(key),
      ...overrides,
    };
    const lines = Object.entries(fields).filter(([, v]) => v !== null).map((
      [k, v],
    ) => `${k}: ${v}`);
    return parseResponseHead(
      enc.encode([statusLine, ...lines].join("\r\n") + "\r\n\r\n"),
    );
  };
  const invalid = (resp: ResponseHead, offered = {}) =>
    assert.throws(
      () => checkUpgradeResponse(resp, key, offered),
      (e) => e instanceof HandshakeError && e.status === INVALID_RESPONSE,
    );

  await t.step("accepts a valid 101, names and tokens in any case", () => {
    assert.deepEqual(checkUpgradeResponse(response(), key), { protocol: null });
    const loud = response({
      Upgrade: "WebSocket",
      Connection: "keep-alive, UPGRADE",
    });
    assert.deepEqual(checkUpgradeResponse(loud, key), { protocol: null });
  });
  await t.step("a non-101 is a refusal carrying the server's status", () => {
    assert.throws(
      () => checkUpgradeResponse(response({}, "HTTP/1.1 403 Forbidden"), key),
      (e) =>
        e instanceof HandshakeError && e.status === 403 &&
        e.message === "server refused the upgrade: 403 Forbidden",
    );
    assert.throws(
      () => checkUpgradeResponse(response({}, "HTTP/1.1 200 OK"), key),
      (e) => e instanceof HandshakeError && e.status === 200,
    );
  });
  await t.step("wrong accept value", () => {
    invalid(
      response({ "Sec-WebSocket-Accept": computeAcceptKey(generateKey()) }),
    );
    invalid(response({ "Sec-WebSocket-Accept": null }));
  });
  await t.step("missing or wrong Upgrade", () => {
    invalid(response({ Upgrade: null }));
    invalid(response({ Upgrade: "websocket, h2c" }));
  });
  await t.step("Connection without upgrade", () => {
    invalid(response({ Connection: "keep-alive" }));
  });
  await t.step("any extension", () => {
    invalid(response({ "Sec-WebSocket-Extensions": "permessage-deflate" }));
  });
  await t.step("a subprotocol that was not offered", () => {
    invalid(response({ "Sec-WebSocket-Protocol": "mqtt" }), {
      protocols: ["chat"],
    });
    invalid(response({ "Sec-WebSocket-Protocol": "chat" }));
    invalid(response({ "Sec-WebSocket-Protocol": "chat, mqtt" }), {
      protocols: ["chat", "mqtt"],
    });
  });
  await t.step("Upgrade: websocket on two lines passes: every value is websocket (§4.1)", () => {
    const raw = (fieldLines: string[]) =>
      parseResponseHead(
        enc.encode(
          ["HTTP/1.1 101 Switching Protocols", ...fieldLines].join("\r\n") + "\r\n\r\n",
        ),
      );
    const accept = `Sec-WebSocket-Accept: ${computeAcceptKey(key)}`;
    const ok = (fieldLines: string[]) =>
      assert.deepEqual(checkUpgradeResponse(raw(fieldLines), key), { protocol: null });
    ok(["Upgrade: websocket", "Upgrade: WebSocket", "Connection: Upgrade", accept]);
    // Connection needs only to contain upgrade, on any of its lines.
    ok(["Upgrade: websocket", "Connection: keep-alive", "Connection: Upgrade", accept]);
    // Empty list elements do not count (RFC 9110 §5.6.1).
    ok(["Upgrade: websocket, ", "Connection: , Upgrade", accept]);
    // Any other value in the Upgrade list fails, on whichever line it is.
    invalid(raw(["Upgrade: websocket", "Upgrade: h2c", "Connection: Upgrade", accept]));
    invalid(raw(["Upgrade: h2c", "Upgrade: websocket", "Connection: Upgrade", accept]));
    invalid(raw(["Upgrade: ,", "Connection: Upgrade", accept]));
    invalid(raw(["Upgrade:", "Connection: Upgrade", accept]));
    invalid(raw(["Upgrade: websocket", "Connection: keep-alive", "Connection: close", accept]));
    // Fields a response must not repeat (§11.3.3, §11.3.4).
    invalid(raw(["Upgrade: websocket", "Connection: Upgrade", accept, accept]));
    invalid(
      raw([
        "Upgrade: websocket",
        "Connection: Upgrade",
        accept,
        "Sec-WebSocket-Protocol: chat",
        "Sec-WebSocket-Protocol: chat",
      ]),
      { protocols: ["chat"] },
    );
  });
  await t.step("an offered subprotocol is returned", () => {
    const got = checkUpgradeResponse(
      response({ "Sec-WebSocket-Protocol": "mqtt" }),
      key,
      { protocols: ["chat", "mqtt"] },
    );
    assert.deepEqual(got, { protocol: "mqtt" });
  });
});
