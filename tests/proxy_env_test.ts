/**
 * Which proxy the environment names for a URL, and which hosts `no_proxy`
 * sends direct: curl's rules, as pure functions (`lib/client/proxy_env.ts`),
 * and the client's command line on top of them.
 */

import assert from "node:assert/strict";
import { noProxyMatches, proxyFromEnv } from "../lib/client/proxy_env.ts";
import { parseClientArgs } from "../app/client/cli.ts";
import { UsageError } from "../app/common/errors.ts";

/** A getenv over `vars`. */
const env = (vars: Record<string, string>) => (name: string) => vars[name];

const WS = new URL("ws://example.com/echo");
const WSS = new URL("wss://example.com/echo");

Deno.test("proxyFromEnv(): https_proxy and HTTPS_PROXY for wss://, lower case first, then all_proxy, ALL_PROXY", () => {
  const all = {
    https_proxy: "http://lower:1",
    HTTPS_PROXY: "http://upper:2",
    all_proxy: "http://all-lower:3",
    ALL_PROXY: "http://all-upper:4",
    http_proxy: "http://plain:5",
  };
  assert.deepEqual(proxyFromEnv(WSS, env(all)), { name: "https_proxy", value: "http://lower:1" });
  const { https_proxy: _a, ...noLower } = all;
  assert.equal(proxyFromEnv(WSS, env(noLower))?.name, "HTTPS_PROXY");
  const { HTTPS_PROXY: _b, ...onlyAll } = noLower;
  assert.equal(proxyFromEnv(WSS, env(onlyAll))?.name, "all_proxy");
  const { all_proxy: _c, ...onlyUpperAll } = onlyAll;
  assert.equal(proxyFromEnv(WSS, env(onlyUpperAll))?.name, "ALL_PROXY");
  assert.equal(
    proxyFromEnv(WSS, env({ http_proxy: "http://plain:5" })),
    null,
    "http_proxy is not for wss://",
  );
});

Deno.test("proxyFromEnv(): http_proxy, then HTTP_PROXY for ws://, then all_proxy; empty counts as unset", () => {
  assert.equal(proxyFromEnv(WS, env({ http_proxy: "http://p:1" }))?.value, "http://p:1");
  assert.equal(proxyFromEnv(WS, env({ HTTP_PROXY: "http://p:1" }))?.value, "http://p:1");
  assert.equal(
    proxyFromEnv(WS, env({ http_proxy: "http://lower:1", HTTP_PROXY: "http://upper:1" }))?.value,
    "http://lower:1",
    "lower case wins",
  );
  assert.equal(
    proxyFromEnv(WS, env({ HTTP_PROXY: "", ALL_PROXY: "socks5h://s:2" }))?.value,
    "socks5h://s:2",
  );
  assert.equal(
    proxyFromEnv(WS, env({ https_proxy: "http://p:1" })),
    null,
    "https_proxy is for wss://",
  );
  assert.equal(
    proxyFromEnv(WS, env({ http_proxy: "", all_proxy: "http://a:3" }))?.name,
    "all_proxy",
  );
  assert.equal(proxyFromEnv(WS, env({})), null);
});

Deno.test("proxyFromEnv(): a value without a scheme is http://; no_proxy wins over NO_PROXY and sends matching hosts direct", () => {
  assert.equal(
    proxyFromEnv(WS, env({ http_proxy: "10.0.0.1:3128" }))?.value,
    "http://10.0.0.1:3128",
  );
  const vars = { http_proxy: "http://p:1", NO_PROXY: "example.com" };
  assert.equal(proxyFromEnv(WS, env(vars)), null);
  assert.equal(proxyFromEnv(WS, env({ ...vars, no_proxy: "other.org" }))?.value, "http://p:1");
  assert.equal(
    proxyFromEnv(new URL("ws://other.org/"), env({ ...vars, no_proxy: "other.org" })),
    null,
  );
});

Deno.test("noProxyMatches(): * alone is every host; a name matches itself and its subdomains, with or without a leading dot", () => {
  assert.equal(noProxyMatches("*", "anything.example", 80), true);
  assert.equal(
    noProxyMatches("a.org, *", "anything.example", 80),
    false,
    "* only counts alone (curl)",
  );
  for (const entry of ["example.com", ".example.com", "EXAMPLE.com."]) {
    assert.equal(noProxyMatches(entry, "example.com", 80), true, entry);
    assert.equal(noProxyMatches(entry, "api.Example.com", 80), true, entry);
    assert.equal(noProxyMatches(entry, "notexample.com", 80), false, entry);
    assert.equal(noProxyMatches(entry, "example.com.evil.net", 80), false, entry);
  }
  assert.equal(noProxyMatches("foo.org,,  bar.org", "x.bar.org", 443), true);
  assert.equal(noProxyMatches("", "example.com", 80), false);
});

Deno.test("noProxyMatches(): host:port entries only for that port; IP addresses, IPv4 ranges, IPv6 with or without brackets", () => {
  assert.equal(noProxyMatches("example.com:8080", "example.com", 8080), true);
  assert.equal(noProxyMatches("example.com:8080", "example.com", 80), false);
  assert.equal(noProxyMatches("127.0.0.1", "127.0.0.1", 80), true);
  assert.equal(noProxyMatches("127.0.0.1", "127.0.0.10", 80), false);
  assert.equal(noProxyMatches("127.0.0.1:9000", "127.0.0.1", 9001), false);
  assert.equal(noProxyMatches("10.0.0.0/8", "10.200.3.4", 80), true);
  assert.equal(noProxyMatches("10.0.0.0/8", "11.0.0.1", 80), false);
  assert.equal(noProxyMatches("192.168.1.0/24", "192.168.1.77", 80), true);
  assert.equal(noProxyMatches("0.0.0.0/0", "8.8.8.8", 80), true);
  assert.equal(noProxyMatches("::1", "[::1]", 80), true);
  assert.equal(noProxyMatches("[::1]:8080", "[::1]", 8080), true);
  assert.equal(noProxyMatches("[::1]:8080", "[::1]", 80), false);
  assert.equal(noProxyMatches("0:0:0:0:0:0:0:1", "[::1]", 80), true, "compared as addresses");
  assert.equal(noProxyMatches("1.0.0.1", "one.one", 80), false, "a name is not an address");
});

Deno.test("the client's --proxy and --no-proxy: --proxy wins over the environment, --no-proxy ignores it, a bad URL is a usage error without its password", () => {
  const program = (args: string[], vars: Record<string, string> = {}) => {
    const cmd = parseClientArgs([...args, "ws://example.com/"], env(vars));
    assert.equal(cmd.type, "run");
    return (cmd as Extract<typeof cmd, { type: "run" }>).program;
  };
  const fromEnv = program([], { http_proxy: "http://env:1" });
  assert.deepEqual([fromEnv.dial.proxy, fromEnv.proxyFrom], ["http://env:1", "http_proxy"]);
  const flag = program(["--proxy", "socks5h://flag:2"], { http_proxy: "http://env:1" });
  assert.deepEqual([flag.dial.proxy, flag.proxyFrom], ["socks5h://flag:2", "--proxy"]);
  const none = program(["--no-proxy"], { http_proxy: "http://env:1" });
  assert.deepEqual([none.dial.proxy, none.proxyFrom], [undefined, null]);
  const bad = (args: string[], vars: Record<string, string>, pattern: RegExp) => {
    assert.throws(() => parseClientArgs([...args, "ws://example.com/"], env(vars)), (err) => {
      assert.ok(err instanceof UsageError);
      assert.match(err.message, pattern);
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    });
  };
  bad(["--proxy", "ftp://u:hunter2@p:1"], {}, /^--proxy: .*ftp:\/\/ is not one of http/);
  bad(["--proxy", "http://u:hunter2@"], {}, /^--proxy: /);
  bad(["--proxy", "not a url u:hunter2@x"], {}, /^--proxy: /);
  bad([], { http_proxy: "gopher://u:hunter2@p:1" }, /^http_proxy: .*gopher:\/\//);
  bad(["--proxy", "http://p:1", "--no-proxy"], {}, /--proxy and --no-proxy contradict/);
});
