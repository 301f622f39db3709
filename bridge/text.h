/* Legacy text made fit for XMPP: what a legacy network sends (message bodies, status texts,
 * nicknames) may carry IRC formatting codes, control characters and broken UTF-8, and one
 * character that XML 1.0 forbids makes the XMPP server drop the whole component link. */
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

#endif
