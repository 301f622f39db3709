/* Legacy text to XMPP-safe plain text: one pass over the bytes, IRC formatting codes skipped,
 * UTF-8 decoded with repair, and only characters XML 1.0 allows written back. */
#include "bridge/text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define REPLACEMENT 0xfffdu

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Length of the mIRC colour arguments at p: fg of one or two digits, then ",bg" only when a
 * digit follows the comma ("\x03,5" is no colour code followed by ",5"). */
static size_t colour_args(const unsigned char *p, const unsigned char *end)
{
    size_t n = 0;
    while (n < 2 && p + n < end && is_digit(p[n]))
        n++;
    if (n == 0 || p + n + 1 >= end || p[n] != ',' || !is_digit(p[n + 1]))
        return n;
    size_t m = n + 1;
    while (m < n + 3 && p + m < end && is_digit(p[m]))
        m++;
    return m;
}

/* 1 when p starts with six hex digits. */
static int hex6(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 6)
        return 0;
    for (int i = 0; i < 6; i++)
        if (!is_hex(p[i]))
            return 0;
    return 1;
}

/* Length of the hex colour arguments at p: RRGGBB, then ",RRGGBB" when it follows. */
static size_t hex_colour_args(const unsigned char *p, const unsigned char *end)
{
    if (!hex6(p, end))
        return 0;
    if (end - p > 6 && p[6] == ',' && hex6(p + 7, end))
        return 13;
    return 6;
}

/* The IRC formatting code at p, if any: its length in bytes (with arguments), else 0. */
static size_t irc_code(const unsigned char *p, const unsigned char *end)
{
    switch (*p) {
    case 0x02:
    case 0x0f:
    case 0x11:
    case 0x16:
    case 0x1d:
    case 0x1e:
    case 0x1f:
        return 1;
    case 0x03:
        return 1 + colour_args(p + 1, end);
    case 0x04:
        return 1 + hex_colour_args(p + 1, end);
    default:
        return 0;
    }
}

/* Decodes one character at p (p < end) into *cp and returns the bytes it took; a broken
 * sequence gives REPLACEMENT (see text.h for how many bytes each one swallows). */
static size_t decode(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
    unsigned c = p[0];
    size_t n;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xc0 || c > 0xf7) {
        *cp = REPLACEMENT;
        return 1;
    }
    n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    v = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if (p + i >= end || (p[i] & 0xc0) != 0x80) {
            *cp = REPLACEMENT; /* cut short: the next byte starts afresh */
            return i;
        }
        v = (v << 6) | (p[i] & 0x3f);
    }
    static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < least[n] || (v >= 0xd800 && v <= 0xdfff) || v > 0x10ffff)
        v = REPLACEMENT;
    *cp = v;
    return n;
}

static int xml_allowed(uint32_t cp)
{
    if (cp < 0x20)
        return cp == 0x09 || cp == 0x0a || cp == 0x0d;
    return cp != 0xfffe && cp != 0xffff;
}

static size_t encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

char *text_from_legacy(const char *in, size_t len)
{
    /* A replaced byte grows to three: the output is at most 3 * len bytes. */
    char *out = xmalloc(3 * len + 1), *w = out;
    const unsigned char *p = (const unsigned char *)in, *end = p + len;
    while (p < end) {
        size_t skip = irc_code(p, end);
        if (skip) {
            p += skip;
            continue;
        }
        uint32_t cp;
        p += decode(p, end, &cp);
        if (xml_allowed(cp))
            w += encode(cp, w);
    }
    *w = '\0';
    return out;
}

char *text_from_legacy_str(const char *in)
{
    return in ? text_from_legacy(in, strlen(in)) : NULL;
}

/* ---- cutting long text ---- */

/* What the character at p (*len bytes, set here) takes in an XML text node written by
 * lib/xml.c: references for & < > and CR, U+FFFD for each byte that is no character. */
static size_t char_cost(const unsigned char *p, const unsigned char *end, size_t *len)
{
    uint32_t cp;
    size_t n = decode(p, end, &cp);
    *len = n;
    if (n > 1)
        return cp == REPLACEMENT && !(n == 3 && p[0] == 0xef && p[1] == 0xbf && p[2] == 0xbd)
                   ? 3 * n
                   : n;
    switch (p[0]) {
    case '&':
    case '\r':
        return 5;
    case '<':
    case '>':
        return 4;
    default:
        return (p[0] < 0x20 && p[0] != '\t' && p[0] != '\n') || p[0] >= 0x80 ? 3 : 1;
    }
}

/* Length of the next piece of at most max (escaped: as XML text; else bytes), ending at the
 * first line break when stop_at_newline is set. */
static size_t piece_len(const unsigned char *p, const unsigned char *end, size_t max, int escaped,
                        int stop_at_newline)
{
    size_t cost = 0, i = 0, after_nl = 0, after_sp = 0;
    while (p + i < end) {
        if (stop_at_newline && p[i] == '\n')
            return i + 1; /* the line ends here: its break does not count */
        size_t n;
        size_t c = char_cost(p + i, end, &n);
        if (!escaped)
            c = n;
        if (cost + c > max)
            break;
        cost += c;
        i += n;
        if (p[i - 1] == '\n')
            after_nl = i;
        else if (p[i - 1] == ' ')
            after_sp = i;
    }
    if (p + i == end)
        return i;
    if (i == 0) { /* one character larger than max: it goes alone */
        size_t n;
        char_cost(p, end, &n);
        return n;
    }
    size_t floor = i - i / 4;
    if (after_nl >= floor)
        return after_nl;
    return after_sp >= floor ? after_sp : i;
}

char **text_split(const char *text, size_t max_bytes)
{
    const unsigned char *p = (const unsigned char *)text, *end = p + strlen(text);
    size_t max = max_bytes < 16 ? 16 : max_bytes, count = 0, cap = 4;
    char **pieces = xmalloc(cap * sizeof(*pieces));
    do {
        size_t n = piece_len(p, end, max, 1, 0);
        if (count + 2 > cap) {
            cap *= 2;
            pieces = xrealloc(pieces, cap * sizeof(*pieces));
        }
        pieces[count++] = xstrndup((const char *)p, n);
        p += n;
    } while (p < end);
    pieces[count] = NULL;
    return pieces;
}

void text_pieces_free(char **pieces)
{
    for (size_t i = 0; pieces && pieces[i]; i++)
        free(pieces[i]);
    free(pieces);
}

char *text_wrap(const char *text, size_t max_bytes)
{
    const unsigned char *p = (const unsigned char *)text, *end = p + strlen(text);
    size_t max = max_bytes < 16 ? 16 : max_bytes;
    /* At most one added line break per max bytes. */
    char *out = xmalloc(strlen(text) + strlen(text) / max + 2), *w = out;
    while (p < end) {
        size_t n = piece_len(p, end, max, 0, 1);
        memcpy(w, p, n);
        w += n;
        p += n;
        if (p < end && w[-1] != '\n')
            *w++ = '\n';
    }
    *w = '\0';
    return out;
}

char *text_line_breaks(const char *text)
{
    char *out = xmalloc(strlen(text) + 1), *w = out;
    for (const char *p = text; *p; p++) {
        if (*p != '\r')
            *w++ = *p;
        else if (p[1] != '\n')
            *w++ = '\n';
    }
    *w = '\0';
    return out;
}
