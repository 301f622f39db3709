/* Legacy text made fit for XMPP: what a legacy network sends (message bodies, status texts,
 * nicknames) may carry IRC formatting codes, control characters and broken UTF-8, and one
 * character that XML 1.0 forbids makes the XMPP server drop the whole component link. And the
 * owner's text made fit for legacy lines (text_wrap, text_line_breaks). */
#ifndef FERRY_BRIDGE_TEXT_H
#define FERRY_BRIDGE_TEXT_H

#include <stddef.h>

/* Returns a new string (caller frees): the len bytes of in (which may hold NUL bytes), with
 *  - IRC formatting removed: bold \x02, colour \x03[fg[,bg]] (one or two digits each; the
 *    comma belongs to the code only when a digit follows it), hex colour \x04[RRGGBB[,RRGGBB]],
 *    reset \x0f, reverse \x16, italic \x1d, underline \x1f, strikethrough \x1e,
 *    monospace \x11;
 *  - invalid UTF-8 repaired with U+FFFD: a stray continuation byte or a byte that never starts
 *    a sequence (F8..FF) becomes one U+FFFD each; a sequence cut short becomes one U+FFFD for
 *    the bytes it had; a complete sequence that encodes no character (overlong form, a
 *    UTF-16 surrogate, beyond U+10FFFF) becomes one U+FFFD;
 *  - characters XML 1.0 forbids removed: C0 controls other than tab, line feed and carriage
 *    return (NUL included), U+FFFE and U+FFFF.
 * in may be NULL when len is 0. */
char *text_from_legacy(const char *in, size_t len);

/* The same for a NUL-terminated string; NULL gives NULL. */
char *text_from_legacy_str(const char *in);

/* Splits text (UTF-8) into pieces that each take at most max_bytes once written as an XML
 * text node by lib/xml.c (& is 5 bytes there, < and > 4), so that a long legacy message fits
 * the XMPP server's stanza limit. Cuts only between characters, and within the last quarter
 * of a piece after a line break, else after a space, when there is one: the pieces joined
 * give text back exactly. max_bytes below 16 counts as 16. Returns a new NULL-terminated
 * array of new strings (at least one; free with text_pieces_free). */
char **text_split(const char *text, size_t max_bytes);
void text_pieces_free(char **pieces);

/* Returns a new string: text with a line break added wherever a line would be longer than
 * max_bytes (of UTF-8), cutting between characters and after a space when one is in the
 * last quarter of the line: for networks whose lines have a limit (IRC). Removing the added
 * line breaks gives text back. max_bytes below 16 counts as 16. */
char *text_wrap(const char *text, size_t max_bytes);

/* Returns a new string: text with every CRLF and every lone CR made a LF. For text on its way
 * to the legacy side: &#13; in XML gives a bare CR, which IRC servers may take for the end of
 * a line (the rest would run as a command of the owner's), while a LF is the one line break
 * native and libpurple cut lines at. */
char *text_line_breaks(const char *text);

#endif
