/**
 * The programs' own error: a bad command line. The library throws
 * TypeError and RangeError; the programs turn those into this where the
 * user's input caused them.
 *
 * @module
 */

/** A bad command line: the program prints the message and exits 2. */
export class UsageError extends Error {
  /** @param message one sentence saying what was wrong, with a hint */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
