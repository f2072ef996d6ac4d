/**
 * The proxy as the client's `open` events name it: without credentials.
 *
 * @module
 */

import type { DialOptions } from "../../mod.ts";
import { redactProxy } from "../../lib/client/proxy.ts";

/** `{ proxy: "http://127.0.0.1:8888" }` when `dial` goes through a proxy (credentials never shown), else nothing. */
export function proxyLogFields(dial: DialOptions): { proxy?: string } {
  return dial.proxy ? { proxy: redactProxy(dial.proxy) } : {};
}
