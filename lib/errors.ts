/**
 * The one way every layer turns a thrown value into text for a person.
 *
 * @module
 */

/** The message of an Error, or the thrown value as a string: one line for a log or a user. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
