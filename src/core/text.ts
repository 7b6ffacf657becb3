/**
 * Text that people typed (an admin's `reason` and `actor`) or that came from Redis, made safe to store and to print.
 *
 * - {@link cleanText} removes what must never be stored: C0 and C1 control characters (an escape sequence can clear a
 *   terminal, `\n` forges a log or `explain` line) and the Unicode bidirectional controls (Trojan Source, CVE-2021-42574:
 *   U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069), then caps the length.
 * - {@link printable} escapes what is left of them in text read back (a record written by someone else), so that
 *   printing it shows `\u001b` instead of obeying it.
 */

/** C0 (U+0000..U+001F), DEL (U+007F), C1 (U+0080..U+009F) and the bidirectional controls. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is what this expression is for
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/**
 * The text with every control and bidirectional-control character removed, at most `maxLength` characters (code
 * points; a cut never splits a surrogate pair).
 * @param text any string
 * @param maxLength the longest result in code points, >= 0
 */
export function cleanText(text: string, maxLength: number): string {
  return Array.from(text.replace(UNSAFE, '')).slice(0, maxLength).join('');
}

/** The text with every control and bidirectional-control character shown as a `\uXXXX` escape (for terminals and logs). */
export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}
