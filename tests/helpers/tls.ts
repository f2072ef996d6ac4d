/**
 * Makes a throwaway certificate authority and a server certificate for
 * 127.0.0.1 and localhost with `openssl`, in a temporary directory that is
 * removed on dispose: `await using pki = await makePki();`.
 *
 * @module
 */

import { pathOf } from "./needs.ts";

/** Where the system's openssl lives (Debian; tests say `needs(…, "openssl")`). */
export const OPENSSL: string = pathOf("openssl");

/** The files of a throwaway PKI. */
export interface Pki extends AsyncDisposable {
  /** The directory holding everything. */
  dir: string;
  /** The CA certificate (PEM): what a client passes to `--ca`. */
  caCert: string;
  /** The server certificate (PEM), signed by the CA, for 127.0.0.1 and localhost. */
  cert: string;
  /** The server's private key (PEM). */
  key: string;
}

/** Runs `openssl args` in `dir`; throws with its stderr if it fails. */
export async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(OPENSSL, {
    args,
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** Creates a CA and a server certificate signed by it, valid for one day. */
export async function makePki(): Promise<Pki> {
  const dir = await Deno.makeTempDir({ prefix: "keepalive-ws-pki-" });
  const remove = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await openssl(dir, [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "1",
      "-subj",
      "/CN=keepalive-ws test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    await openssl(dir, [
      "req",
      ...ec,
      "-keyout",
      "server.key",
      "-out",
      "server.csr",
      "-subj",
      "/CN=localhost",
    ]);
    await Deno.writeTextFile(
      `${dir}/server.ext`,
      [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "",
      ].join("\n"),
    );
    await openssl(dir, [
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "1",
      "-extfile",
      "server.ext",
      "-out",
      "server.pem",
    ]);
    // rustls wants PKCS#8; openssl req writes it by default, but be explicit.
    await openssl(dir, ["pkcs8", "-topk8", "-nocrypt", "-in", "server.key", "-out", "server.p8"]);
  } catch (err) {
    await remove();
    throw err;
  }
  return {
    dir,
    caCert: `${dir}/ca.pem`,
    cert: `${dir}/server.pem`,
    key: `${dir}/server.p8`,
    [Symbol.asyncDispose]: remove,
  };
}
