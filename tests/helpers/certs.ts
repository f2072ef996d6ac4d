/**
 * Throwaway certificates of the kinds people actually have, made with
 * `openssl` in a temporary directory removed on dispose:
 *
 * - `selfSignedCa`: `openssl req -x509` as most guides give it. OpenSSL
 *   marks such a certificate CA:TRUE, and rustls refuses a CA certificate as
 *   a server's own (CaUsedAsEndEntity).
 * - `selfSignedLeaf`: the same with `basicConstraints=CA:FALSE`.
 * - `otherSelfSigned`: another CA:TRUE self-signed one (a wrong `--ca`).
 * - `expired`: signed by `ca`, valid from two days ago until yesterday.
 * - `wrongName`: signed by `ca`, for `other.example` and 10.1.2.3 only.
 * - `server`: signed by `ca`, valid: a server certificate for mTLS tests.
 * - `clientCa`: a second CA, for client certificates (`--tls-client-ca`);
 *   `alice` (CN=alice) is signed by it, `otherAlice` (CN=alice too) by `ca`
 *   instead, and `expiredAlice` by it but expired yesterday. All three have
 *   extendedKeyUsage clientAuth.
 *
 * The server certificates but `wrongName` are for `localhost` and 127.0.0.1.
 *
 * @module
 */

import { openssl } from "./tls.ts";

/** A certificate and its key, as PEM file paths. */
export interface CertFiles {
  /** The certificate (PEM). */
  cert: string;
  /** The private key (PEM, PKCS#8). */
  key: string;
}

/** The certificates of {@linkcode makeCerts}. */
export interface Certs extends AsyncDisposable {
  /** The directory holding everything. */
  dir: string;
  /** Self-signed, CA:TRUE (openssl's default for `req -x509`). */
  selfSignedCa: CertFiles;
  /** Self-signed, CA:FALSE. */
  selfSignedLeaf: CertFiles;
  /** Another self-signed CA:TRUE certificate, for the same names. */
  otherSelfSigned: CertFiles;
  /** A CA that signs `expired` and `wrongName`. */
  ca: CertFiles;
  /** Signed by `ca`; valid from two days ago until yesterday. */
  expired: CertFiles;
  /** Signed by `ca`, for other.example and 10.1.2.3. */
  wrongName: CertFiles;
  /** Signed by `ca`, for localhost and 127.0.0.1, valid for a day. */
  server: CertFiles;
  /** The CA of the client certificates. */
  clientCa: CertFiles;
  /** A client certificate, CN=alice, signed by `clientCa`. */
  alice: CertFiles;
  /** A client certificate, CN=alice, signed by `ca` (another CA than `clientCa`). */
  otherAlice: CertFiles;
  /** A client certificate, CN=alice, signed by `clientCa`, valid from two days ago until yesterday. */
  expiredAlice: CertFiles;
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
const NAMES = "subjectAltName=DNS:localhost,IP:127.0.0.1";
/** What a client certificate carries. */
const CLIENT = "extendedKeyUsage=clientAuth";

/** The least `openssl ca` needs to sign with `ca.pem`, keeping no extensions from the request. */
const caConfig = (ca: string) =>
  `[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = .
certificate = ${ca}.pem
private_key = ${ca}.key
serial = serial
default_md = sha256
policy = any
[any]
commonName = supplied
`;

/** A time as `openssl ca -startdate/-enddate` takes it: YYYYMMDDHHMMSSZ. */
function caDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, "").replace(/\.\d+Z$/, "Z");
}

/** Makes every certificate of {@linkcode Certs}. */
export async function makeCerts(): Promise<Certs> {
  const dir = await Deno.makeTempDir({ prefix: "keepalive-ws-certs-" });
  const remove = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  const files = (name: string): CertFiles => ({
    cert: `${dir}/${name}.pem`,
    key: `${dir}/${name}.key`,
  });
  const selfSigned = (name: string, extra: string[]) =>
    openssl(dir, [
      "req",
      "-x509",
      ...EC,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      NAMES,
      ...extra,
    ]);
  /**
   * `days` is a count from now, or [notBefore, notAfter] in openssl ca's
   * YYYYMMDDHHMMSSZ; `ca` signs it; `cn` is its common name (default `name`).
   */
  const signed = async (
    name: string,
    days: string | [string, string],
    names: string,
    ca = "ca",
    cn = name,
  ) => {
    await openssl(dir, [
      "req",
      ...EC,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${cn}`,
    ]);
    await Deno.writeTextFile(`${dir}/${name}.ext`, `basicConstraints=CA:FALSE\n${names}\n`);
    if (typeof days === "string") {
      await openssl(dir, [
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        `${ca}.pem`,
        "-CAkey",
        `${ca}.key`,
        "-CAcreateserial",
        "-days",
        days,
        "-extfile",
        `${name}.ext`,
        "-out",
        `${name}.pem`,
      ]);
      return;
    }
    // OpenSSL 3.0's x509 cannot set a start date; `openssl ca` can. (-days 0
    // left the certificate valid for the rest of the second it was made in,
    // and a fast test connected within it.)
    await Deno.writeTextFile(`${dir}/index.txt`, "");
    await Deno.writeTextFile(`${dir}/serial`, "1000\n");
    await Deno.writeTextFile(`${dir}/ca.cnf`, caConfig(ca));
    await openssl(dir, [
      "ca",
      "-batch",
      "-notext",
      "-config",
      "ca.cnf",
      "-startdate",
      days[0],
      "-enddate",
      days[1],
      "-in",
      `${name}.csr`,
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.pem`,
    ]);
  };
  try {
    await selfSigned("self-ca", []);
    await selfSigned("self-leaf", ["-addext", "basicConstraints=critical,CA:FALSE"]);
    await selfSigned("other-self", []);
    await openssl(dir, [
      "req",
      "-x509",
      ...EC,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "1",
      "-subj",
      "/CN=keepalive-ws test CA",
    ]);
    const DAY = 86_400_000;
    await signed("expired", [caDate(Date.now() - 2 * DAY), caDate(Date.now() - DAY)], NAMES);
    await signed("wrong-name", "1", "subjectAltName=DNS:other.example,IP:10.1.2.3");
    await signed("server", "1", NAMES);
    await openssl(dir, [
      "req",
      "-x509",
      ...EC,
      "-keyout",
      "client-ca.key",
      "-out",
      "client-ca.pem",
      "-days",
      "1",
      "-subj",
      "/CN=keepalive-ws test client CA",
    ]);
    await signed("alice", "1", CLIENT, "client-ca");
    await signed("other-alice", "1", CLIENT, "ca", "alice");
    await signed(
      "expired-alice",
      [caDate(Date.now() - 2 * DAY), caDate(Date.now() - DAY)],
      CLIENT,
      "client-ca",
      "alice",
    );
  } catch (err) {
    await remove();
    throw err;
  }
  return {
    dir,
    selfSignedCa: files("self-ca"),
    selfSignedLeaf: files("self-leaf"),
    otherSelfSigned: files("other-self"),
    ca: files("ca"),
    expired: files("expired"),
    wrongName: files("wrong-name"),
    server: files("server"),
    clientCa: files("client-ca"),
    alice: files("alice"),
    otherAlice: files("other-alice"),
    expiredAlice: files("expired-alice"),
    [Symbol.asyncDispose]: remove,
  };
}
