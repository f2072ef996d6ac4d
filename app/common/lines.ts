/**
 * Text lines from a byte stream: stdin for the client, a worker's channel
 * for the supervisor.
 *
 * @module
 */

/** Yields each line of `stream` (UTF-8) without its `\n` or `\r\n`; a last unterminated line too. */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncIterable<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, nl).replace(/\r$/, "");
      pending = pending.slice(nl + 1);
    }
  }
  if (pending) yield pending;
}
