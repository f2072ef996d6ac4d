/**
 * The header fields of a parsed head, as the parser hands them on: names
 * compare case-insensitively, and lines with the same name are one
 * comma-separated value (RFC 9110 §5.3), as in a `Headers`. It has the part
 * of `Headers` that the handshakes use, without `Headers`' per-call name and
 * value validation (webidl ByteString checks, about 6 µs a request): the
 * parser has checked every name and value against the grammar already.
 * {@linkcode Fields.toHeaders} makes a real `Headers` for the application.
 *
 * @module
 */

/** Header fields by lowercase name; see the module doc. */
export class Fields implements Iterable<[string, string]> {
  #map = new Map<string, string>();

  /** The value of `name` (any case), or null when absent. */
  get(name: string): string | null {
    return this.#map.get(name.toLowerCase()) ?? null;
  }

  /** Whether `name` (any case) is present. */
  has(name: string): boolean {
    return this.#map.has(name.toLowerCase());
  }

  /** Adds a line: a second one with the same name joins the value with ", ". */
  append(name: string, value: string): void {
    const lower = name.toLowerCase();
    const had = this.#map.get(lower);
    this.#map.set(lower, had === undefined ? value : `${had}, ${value}`);
  }

  /** Replaces the value of `name`. */
  set(name: string, value: string): void {
    this.#map.set(name.toLowerCase(), value);
  }

  /** Removes `name`. */
  delete(name: string): void {
    this.#map.delete(name.toLowerCase());
  }

  /** The fields as [lowercase name, value], in the order the names first came. */
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.#map.entries();
  }

  /** The fields as a `Headers`. */
  toHeaders(): Headers {
    const headers = new Headers();
    for (const [name, value] of this.#map) headers.append(name, value);
    return headers;
  }
}
