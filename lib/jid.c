/* JIDs: parsing and normalization with libidn's stringprep profiles, and XEP-0106 escaping. */
#include "lib/jid.h"

#include <arpa/inet.h>
#include <glib.h>
#include <idna.h>
#include <stdlib.h>
#include <string.h>
#include <stringprep.h>

#include "lib/util.h"

struct jid {
    char *node; /* NULL when absent */
    char *domain;
    char *resource; /* NULL when absent */
    char *full;     /* cached "node@domain/resource" */
    char *bare;     /* cached "node@domain" */
};

/* ---- preparation of the parts ---- */

/* Runs one stringprep profile over in[0..len). Returns a new string, or NULL when the profile
 * rejects the input or the result is empty or longer than JID_PART_MAX. Unassigned code points
 * are refused (RFC 6122 treats JIDs as "stored strings"). */
/* Fast path for the usual case, parts in printable ASCII without spaces (profiled: stringprep
 * was a third of the component thread's CPU per bridged message, every stanza's from/to being
 * parsed). On such input the XMPP profiles reduce to: nameprep and nodeprep fold A-Z to a-z
 * (table B.2), resourceprep changes nothing, NFKC is the identity, and among these characters
 * only nodeprep forbids any ("&'/:<>@, RFC 3920 A.5). So the result equals stringprep's; any
 * other input returns NULL here and goes through stringprep itself. */
static char *prep_ascii(const char *in, size_t len, const Stringprep_profile *profile)
{
    int is_node = profile == stringprep_xmpp_nodeprep;
    int fold = is_node || profile == stringprep_nameprep;
    char *out;

    if (len == 0 || len > JID_PART_MAX)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x21 || c > 0x7e || (is_node && strchr("\"&'/:<>@", c)))
            return NULL;
    }
    out = xstrndup(in, len);
    for (char *p = out; fold && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return out;
}

static char *prep(const char *in, size_t len, const Stringprep_profile *profile)
{
    char *fast = prep_ascii(in, len, profile);
    if (fast)
        return fast;
    /* The limit applies after preparation, and preparation may shrink the input (characters
     * mapped to nothing) or grow it (case folding, NFKC): the buffer holds the larger of the
     * two, so a result that does not fit is over the limit anyway. */
    size_t size = (len > JID_PART_MAX ? len : JID_PART_MAX) + 1;
    char *buf = xmalloc(size);

    if (!g_utf8_validate(in, (gssize)len, NULL))
        goto fail;
    memcpy(buf, in, len);
    buf[len] = '\0';
    if (stringprep(buf, size, STRINGPREP_NO_UNASSIGNED, profile) != STRINGPREP_OK)
        goto fail;
    if (buf[0] == '\0' || strlen(buf) > JID_PART_MAX)
        goto fail;
    /* Give back the unused part of the buffer: callers keep the result (a contact's node lives
     * as long as its session), and 1 kB per part was ~0.9 kB per online owner (heaptrack). */
    return xrealloc(buf, strlen(buf) + 1);
fail:
    free(buf);
    return NULL;
}

/* IDNA2003 treats these as label separators too; map them so that equal domains compare
 * equal as strings. Works in place: each replacement shrinks the string. */
static void map_dots(char *s)
{
    static const char *const dots[] = {"\xe3\x80\x82", "\xef\xbc\x8e", "\xef\xbd\xa1"};
    char *w = s;

    while (*s) {
        size_t i;
        for (i = 0; i < FERRY_ARRAY_LEN(dots); i++)
            if (strncmp(s, dots[i], 3) == 0)
                break;
        if (i < FERRY_ARRAY_LEN(dots)) {
            *w++ = '.';
            s += 3;
        } else {
            *w++ = *s++;
        }
    }
    *w = '\0';
}

/* "[v6 address]": checked with inet_pton, kept as written but lowercased for comparison. */
static char *prep_ip6(const char *in, size_t len)
{
    struct in6_addr addr;
    char *inner;
    char *out = NULL;

    if (len < 3 || in[len - 1] != ']')
        return NULL;
    inner = xstrndup(in + 1, len - 2);
    if (inet_pton(AF_INET6, inner, &addr) == 1) {
        out = xstrndup(in, len);
        for (char *p = out; *p; p++)
            if (*p >= 'A' && *p <= 'F')
                *p = (char)(*p - 'A' + 'a');
    }
    free(inner);
    return out;
}

/* 1 when every dot-separated label of s is non-empty. */
static int labels_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[0] != '.' && s[n - 1] != '.' && !strstr(s, "..");
}

/* 1 when s (non-empty labels) is plain LDH that IDNA ToASCII with the STD3 rules accepts as
 * it is: letters, digits and hyphens, no label starting or ending with a hyphen, 63 bytes at
 * most a label. Anything else is left to idna_to_ascii_8z to judge. */
static int ldh_ok(const char *s)
{
    size_t label = 0;
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || label > 63 || p[-1] == '-' || p[-(long)label] == '-')
                return 0;
            if (*p == '\0')
                return 1;
            label = 0;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-') {
            label++;
        } else {
            return 0;
        }
    }
}

/* A domainpart: one trailing dot stripped (RFC 7622 3.2), then an IPv6 literal, or nameprep
 * with every label non-empty and the whole acceptable to IDNA ToASCII with the STD3 rules
 * (letters, digits, hyphens; 63 bytes a label), which also admits IPv4 literals. */
static char *prep_domain(const char *in, size_t len)
{
    char *out;
    char *ascii = NULL;

    if (len > 0 && in[len - 1] == '.')
        len--;
    if (len > 0 && in[0] == '[')
        return prep_ip6(in, len);
    out = prep(in, len, stringprep_nameprep);
    if (!out)
        return NULL;
    map_dots(out);
    if (!labels_ok(out))
        goto fail;
    if (ldh_ok(out))
        return out; /* what ToASCII would accept unchanged: no need to convert */
    if (idna_to_ascii_8z(out, &ascii, IDNA_USE_STD3_ASCII_RULES) != IDNA_SUCCESS)
        goto fail;
    free(ascii);
    return out;
fail:
    free(ascii);
    free(out);
    return NULL;
}

/* ---- construction ---- */

/* Builds a jid from raw parts (node and resource may be NULL); each part is prepared. */
static jid_t *build(const char *node, size_t nlen, const char *domain, size_t dlen,
                    const char *resource, size_t rlen)
{
    jid_t *jid = xcalloc(1, sizeof(*jid));

    if (node && !(jid->node = prep(node, nlen, stringprep_xmpp_nodeprep)))
        goto fail;
    if (!(jid->domain = prep_domain(domain, dlen)))
        goto fail;
    if (resource && !(jid->resource = prep(resource, rlen, stringprep_xmpp_resourceprep)))
        goto fail;
    jid->bare = jid->node ? xasprintf("%s@%s", jid->node, jid->domain) : xstrdup(jid->domain);
    jid->full = jid->resource ? xasprintf("%s/%s", jid->bare, jid->resource) : xstrdup(jid->bare);
    return jid;
fail:
    jid_free(jid);
    return NULL;
}

/* RFC 7622 3.1: the resource is everything after the first '/', the node everything before
 * the first '@' that precedes it; an empty part where a separator promises one is an error. */
jid_t *jid_parse(const char *s)
{
    const char *slash, *at, *dom;
    size_t head;

    if (!s)
        return NULL;
    slash = strchr(s, '/');
    head = slash ? (size_t)(slash - s) : strlen(s);
    at = memchr(s, '@', head);
    dom = at ? at + 1 : s;
    if (at == s || (slash && slash[1] == '\0'))
        return NULL;
    return build(at ? s : NULL, at ? (size_t)(at - s) : 0, dom, (size_t)(s + head - dom),
                 slash ? slash + 1 : NULL, slash ? strlen(slash + 1) : 0);
}

jid_t *jid_new(const char *node, const char *domain, const char *resource)
{
    if (!domain)
        return NULL;
    return build(node, node ? strlen(node) : 0, domain, strlen(domain), resource,
                 resource ? strlen(resource) : 0);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

jid_t *jid_copy(const jid_t *jid)
{
    jid_t *c;

    if (!jid)
        return NULL;
    c = xcalloc(1, sizeof(*c));
    c->node = dup_or_null(jid->node);
    c->domain = xstrdup(jid->domain);
    c->resource = dup_or_null(jid->resource);
    c->full = xstrdup(jid->full);
    c->bare = xstrdup(jid->bare);
    return c;
}

void jid_free(jid_t *jid)
{
    if (!jid)
        return;
    free(jid->node);
    free(jid->domain);
    free(jid->resource);
    free(jid->full);
    free(jid->bare);
    free(jid);
}

const char *jid_node(const jid_t *jid)
{
    return jid->node;
}

const char *jid_domain(const jid_t *jid)
{
    return jid->domain;
}

const char *jid_resource(const jid_t *jid)
{
    return jid->resource;
}

const char *jid_full(const jid_t *jid)
{
    return jid->full;
}

const char *jid_bare(const jid_t *jid)
{
    return jid->bare;
}

/* The parts are normalized, so comparing the cached strings compares the parts: '@' and '/'
 * cannot occur in a prepared node or domain, so the joined form is unambiguous. */
int jid_equal(const jid_t *a, const jid_t *b)
{
    return strcmp(a->full, b->full) == 0;
}

int jid_bare_equal(const jid_t *a, const jid_t *b)
{
    return strcmp(a->bare, b->bare) == 0;
}

/* ---- XEP-0106 ---- */

/* The characters XEP-0106 escapes, the backslash last. */
static const char escaped_chars[] = " \"&'/:<>@\\";

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* When p starts with the two hex digits of an escape sequence, returns the character it
 * stands for, else 0. Hex digits are accepted in either case: nodeprep lowercases "\2F" into
 * "\2f", so a name holding "\2F" must have its backslash escaped as well. */
static char escape_code(const char *p)
{
    int hi = hex_value(p[0]);
    int lo = hi < 0 ? -1 : hex_value(p[1]);
    int c = hi * 16 + lo;

    if (hi < 0 || lo < 0 || c == 0 || !strchr(escaped_chars, c))
        return 0;
    return (char)c;
}

/* Every listed character becomes "\xx", and a backslash becomes "\5c" exactly where it is
 * followed by the digits of an escape sequence, so unescaping reads it back as itself. The
 * map is injective: hex digits and other characters pass through unchanged, so what follows
 * a backslash left alone in the output is what followed it in the input.
 * XEP-0106 forbids a node that begins or ends with "\20"; such names are escaped anyway,
 * because refusing them or dropping the spaces would either lose contacts or merge two
 * legacy names into one JID, and injectivity matters more to a gateway than that rule. */
char *jid_escape_node(const char *legacy_name)
{
    size_t len;
    char *out, *w;

    if (!legacy_name || !g_utf8_validate(legacy_name, -1, NULL))
        return NULL;
    len = strlen(legacy_name);
    out = w = xmalloc(3 * len + 1);
    for (const char *p = legacy_name; *p; p++) {
        if (*p != '\\' && strchr(escaped_chars, *p)) {
            *w++ = '\\';
            *w++ = "0123456789abcdef"[(unsigned char)*p >> 4];
            *w++ = "0123456789abcdef"[*p & 0xf];
        } else if (*p == '\\' && escape_code(p + 1)) {
            memcpy(w, "\\5c", 3);
            w += 3;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    return out;
}

char *jid_unescape_node(const char *node)
{
    char *out, *w;

    if (!node || !g_utf8_validate(node, -1, NULL))
        return NULL;
    out = w = xmalloc(strlen(node) + 1);
    for (const char *p = node; *p; p++) {
        char c = *p == '\\' ? escape_code(p + 1) : 0;
        if (c) {
            *w++ = c;
            p += 2;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    return out;
}

/* Returns the character of the next escape sequence in *p (advancing past it), or 0 at the
 * end of the string. Tokenizes exactly as jid_unescape_node does. */
static char next_escape(const char **p)
{
    for (const char *s = *p; *s; s++) {
        char c = *s == '\\' ? escape_code(s + 1) : 0;
        if (c) {
            *p = s + 3;
            return c;
        }
    }
    return 0;
}

/* 1 when a and b hold the same escape sequences in the same order. */
static int same_escapes(const char *a, const char *b)
{
    char ca, cb;

    do {
        ca = next_escape(&a);
        cb = next_escape(&b);
        if (ca != cb)
            return 0;
    } while (ca);
    return 1;
}

/* Nodeprep must not create or destroy escape sequences: NFKC turns a fullwidth backslash
 * into "\" (so "＼20" would come out as "\20", the node of " "), and a combining mark after
 * an escape can fuse with its last digit ("\3c" + U+0301 becomes "\3ć"). Either way the node
 * would unescape to a different legacy name than the one it came from, so it is refused. */
char *jid_node_from_legacy(const char *legacy_name)
{
    char *escaped = jid_escape_node(legacy_name);
    char *node = NULL;

    if (!escaped)
        return NULL;
    node = prep(escaped, strlen(escaped), stringprep_xmpp_nodeprep);
    if (node && !same_escapes(escaped, node)) {
        free(node);
        node = NULL;
    }
    free(escaped);
    return node;
}
