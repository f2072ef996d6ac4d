/**
 * TLS failures in words for people: what rustls (through Deno) or the
 * library reported, as one sentence that says what is wrong with the
 * server's certificate and which flag helps, never an enum name such as
 * `Other(OtherError(CaUsedAsEndEntity))`.
 *
 * @module
 */

/** What the client was run with, for the hint. */
export interface TlsHintContext {
  /** The `--ca` file, or null. */
  caFile: string | null;
}

const NO_CHECK = "-k connects without checking (insecure)";

/** Whether an error message is about TLS: a certificate, an alert, or a non-TLS answer. */
export function isTlsError(message: string): boolean {
  return /certificate|CaUsedAsEndEntity|UnknownIssuer|fatal alert|corrupt message|InvalidContentType|speaks plain HTTP|TLS|tls|handshake failure/
    .test(message);
}

/** Rust's debug names of a certificate's names, e.g. `DnsName("a")`, `IpAddress(10.0.0.1)`, as plain names. */
function plainNames(text: string): string {
  return text.replace(/\b(?:DnsName|IpAddress|ServerName)\("?([^")]*)"?\)/g, "$1").replace(
    / or /g,
    ", ",
  );
}

/**
 * One sentence for a TLS failure, starting "TLS: ", with the flag that helps
 * (`--ca FILE`, `-k`); null when `message` is not about TLS.
 */
export function describeTlsError(message: string, ctx: TlsHintContext): string | null {
  if (!isTlsError(message)) return null;
  const ca = ctx.caFile;
  const trustHint = ca
    ? `; ${NO_CHECK}`
    : `; if a private CA signed it, pass that CA's certificate with --ca FILE; ${NO_CHECK}`;
  let m: RegExpExecArray | null;
  if (/speaks plain HTTP/.test(message)) return `TLS: ${message}`;
  if (/corrupt message|InvalidContentType/.test(message)) {
    return "TLS: the server did not answer in TLS (a plain ws:// server?): use ws:// instead of wss://";
  }
  if (/CaUsedAsEndEntity/.test(message)) {
    if (ca) {
      return `TLS: the server's certificate is a CA certificate (CA:TRUE), which TLS does not ` +
        `accept as a server's own, and it is not the certificate in --ca ${ca}; ${NO_CHECK}`;
    }
    return "TLS: the server's certificate is a self-signed CA certificate (CA:TRUE, as " +
      "'openssl req -x509' makes by default), which TLS does not accept as a server's own: " +
      `pass that same certificate file with --ca to trust it for this host; ${NO_CHECK}`;
  }
  if (/UnknownIssuer/.test(message)) {
    return `TLS: the server's certificate is not signed by a CA this client trusts${
      ca ? ` (nor by the one in --ca ${ca})` : ""
    }${trustHint}`;
  }
  if ((m = /not valid for name "([^"]*)"; certificate is only valid for (.*)$/.exec(message))) {
    return `TLS: the server's certificate is not valid for ${m[1]} (it is for ${
      plainNames(m[2])
    }); connect by one of those names; ${NO_CHECK}`;
  }
  if ((m = /is not valid for (\S+) \(it names (.*)\)$/.exec(message))) {
    return `TLS: the certificate in --ca is not valid for ${m[1]} (it is for ${
      m[2].replace(/IP Address:|DNS:/g, "")
    }); ${NO_CHECK}`;
  }
  if (/NotValidForName|not valid for name/.test(message)) {
    return `TLS: the server's certificate is not valid for this host name; ${NO_CHECK}`;
  }
  if ((m = /expired.*not valid after (\d+)/.exec(message))) {
    const when = new Date(Number(m[1]) * 1000).toISOString().replace(/\.000Z$/, "Z");
    return `TLS: the server's certificate expired at ${when}; ${NO_CHECK}`;
  }
  if (/expired/i.test(message)) return `TLS: the server's certificate has expired; ${NO_CHECK}`;
  if (/not valid yet|NotValidYet/i.test(message)) {
    return `TLS: the server's certificate is not valid yet (is this machine's clock right?); ${NO_CHECK}`;
  }
  if (/InvalidPurpose|purpose/i.test(message)) {
    return `TLS: the server's certificate is not meant for a server (its extended key usage); ${NO_CHECK}`;
  }
  if (/Revoked/i.test(message)) return "TLS: the server's certificate has been revoked";
  if (/BadSignature|UnsupportedSignatureAlgorithm/i.test(message)) {
    return `TLS: the server's certificate has a signature this client cannot verify; ${NO_CHECK}`;
  }
  if ((m = /received fatal alert: (\w+)/.exec(message))) {
    return `TLS: the server ended the handshake (alert ${
      m[1]
    }): it may want a client certificate, ` +
      "or share no TLS version or cipher with this client";
  }
  const rest = message.replace(/^invalid peer certificate: /, "")
    .replace(/Other\(OtherError\((\w+)\)\)/, "$1");
  return `TLS: ${rest}`;
}
