/* Incremental XMPP stream parser on expat.
 *
 * Namespace separator: expat reports names as "uri" SEP "local". SEP is '\x01' because U+0001
 * is not an XML 1.0 character: it cannot appear in a document, neither literally (invalid
 * token) nor as &#1; (invalid character reference), so no name or namespace URI expat accepts
 * can contain it, and splitting at the first SEP is always right. (A byte like 0xFF would do
 * too, but would make every name an invalid UTF-8 string while debugging.)
 *
 * Sizes: positions are expat's byte indexes since the stream start. A stanza's size runs from
 * its '<' to the end of its closing tag. It is checked exactly when the stanza ends, and
 * earlier whenever the incomplete stanza already reaches the limit (inside handlers, and after
 * every feed for a start tag still buffered in expat), so memory stays bounded.
 *
 * Reparse deferral is off so that a stanza is delivered as soon as its closing '>' arrives. The
 * price: a token split over many small feeds is rescanned on each, so a peer trickling one
 * huge start tag costs CPU quadratic in its length; the stanza limit bounds that length. */
#define XML_DTD 1 /* expat.h declares the amplification limits only under XML_DTD */
#include "lib/xstream.h"

#include <expat.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/xml_build.h"

#define XS_NS_SEP '\x01'

typedef unsigned long long pos_t;

struct xs_parser {
    XML_Parser xp;
    struct xs_callbacks cb;
    void *ctx;
    struct xs_limits lim;
    enum xs_error err;
    int reported;      /* the error callback has run */
    int in_feed;       /* inside XML_Parse: handlers may be running */
    int stopping;      /* XML_StopParser called: ignore late handler calls */
    int reset_pending; /* xs_reset called from a callback */
    pos_t resume_at;   /* where the input continues after that reset */
    unsigned depth;    /* open elements: 0 before the root, 1 between stanzas */
    xn_t *stanza;      /* the stanza being built, and its open element */
    xn_t *cur;
    pos_t stanza_start; /* position of the current stanza's '<' */
    pos_t mark;         /* end of the last event between stanzas */
    pos_t fed;          /* bytes handed to expat since the stream start */
    int have_first;     /* the stream's first byte, held back until the second comes */
    char first;
    struct xn_span *ns; /* ns[d]: namespace of the open element at depth d (d >= 2) */
    size_t ns_cap;
    struct xn_build_attr *attrs; /* scratch for one start tag */
    size_t attrs_cap;
    char *text; /* character data not yet added to cur */
    size_t text_len, text_cap;
    char detail[200];
};

const char *xs_error_condition(enum xs_error err)
{
    switch (err) {
    case XS_OK:
        return "undefined-condition";
    case XS_ERR_NOT_WELL_FORMED:
        return "not-well-formed";
    case XS_ERR_RESTRICTED_XML:
        return "restricted-xml";
    case XS_ERR_POLICY_VIOLATION:
        return "policy-violation";
    case XS_ERR_UNSUPPORTED_ENCODING:
        return "unsupported-encoding";
    case XS_ERR_INVALID_NAMESPACE:
        return "invalid-namespace";
    case XS_ERR_UNSUPPORTED_VERSION:
        return "unsupported-version";
    case XS_ERR_BAD_FORMAT:
        return "bad-format";
    }
    return "undefined-condition";
}

/* ---- errors ---- */

static void set_error(xs_parser_t *p, enum xs_error err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(xs_parser_t *p, enum xs_error err, const char *fmt, ...)
{
    if (p->err)
        return;
    p->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof(p->detail), fmt, ap);
    va_end(ap);
    /* nothing of a broken stream is delivered: drop the partial stanza now */
    xn_unref(p->stanza);
    p->stanza = p->cur = NULL;
    p->text_len = 0;
    if (p->in_feed && !p->stopping) {
        p->stopping = 1;
        XML_StopParser(p->xp, XML_FALSE);
    }
}

static enum xs_error map_expat_error(enum XML_Error code)
{
    switch (code) {
    case XML_ERROR_UNDEFINED_ENTITY:
    case XML_ERROR_RECURSIVE_ENTITY_REF:
    case XML_ERROR_BINARY_ENTITY_REF:
    case XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF:
    case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
    case XML_ERROR_ENTITY_DECLARED_IN_PE:
    case XML_ERROR_AMPLIFICATION_LIMIT_BREACH:
        return XS_ERR_RESTRICTED_XML;
    case XML_ERROR_UNKNOWN_ENCODING:
    case XML_ERROR_INCORRECT_ENCODING:
        return XS_ERR_UNSUPPORTED_ENCODING;
    case XML_ERROR_NO_MEMORY:
        return XS_ERR_POLICY_VIOLATION;
    default:
        return XS_ERR_NOT_WELL_FORMED;
    }
}

static pos_t event_end(const xs_parser_t *p)
{
    return (pos_t)XML_GetCurrentByteIndex(p->xp) + (pos_t)XML_GetCurrentByteCount(p->xp);
}

/* ---- restricted XML (RFC 6120 section 11.1) ---- */

static void XMLCALL on_xml_decl(void *ud, const XML_Char *version, const XML_Char *encoding,
                                int standalone)
{
    xs_parser_t *p = ud;
    if (version && strcmp(version, "1.0") != 0)
        set_error(p, XS_ERR_UNSUPPORTED_VERSION, "XML version %.20s", version);
    else if (encoding && strcasecmp(encoding, "UTF-8") != 0)
        set_error(p, XS_ERR_UNSUPPORTED_ENCODING, "encoding %.40s", encoding);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    set_error(ud, XS_ERR_RESTRICTED_XML, "DOCTYPE is not allowed");
}

static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
    set_error(ud, XS_ERR_RESTRICTED_XML, "comments are not allowed");
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    set_error(ud, XS_ERR_RESTRICTED_XML, "processing instructions are not allowed");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_pe, const XML_Char *value,
                                   int value_len, const XML_Char *base, const XML_Char *sysid,
                                   const XML_Char *pubid, const XML_Char *notation)
{
    set_error(ud, XS_ERR_RESTRICTED_XML, "entity declarations are not allowed");
}

static void XMLCALL on_skipped_entity(void *ud, const XML_Char *name, int is_pe)
{
    set_error(ud, XS_ERR_RESTRICTED_XML, "entity references are not allowed");
}

/* ---- building ---- */

static int span_eq_lit(struct xn_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.s, lit, n) == 0;
}

/* Splits an expat name "uri" SEP "local" (or "local"): returns 1 when it has a namespace. */
static int split_name(const char *name, struct xn_span *uri, struct xn_span *local)
{
    const char *sep = strchrnul(name, XS_NS_SEP);
    if (*sep == '\0') {
        *local = (struct xn_span){name, (size_t)(sep - name)};
        *uri = (struct xn_span){"", 0};
        return 0;
    }
    *uri = (struct xn_span){name, (size_t)(sep - name)};
    *local = (struct xn_span){sep + 1, strlen(sep + 1)};
    return 1;
}

static size_t collect_attrs(xs_parser_t *p, const XML_Char **atts)
{
    size_t n = 0;
    while (atts[2 * n])
        n++;
    if (n > p->attrs_cap) {
        p->attrs_cap = n * 2;
        p->attrs = xrealloc(p->attrs, p->attrs_cap * sizeof(*p->attrs));
    }
    for (size_t i = 0; i < n; i++) {
        struct xn_build_attr *a = &p->attrs[i];
        if (!split_name(atts[2 * i], &a->ns, &a->name))
            a->ns.s = NULL;
        a->value = (struct xn_span){atts[2 * i + 1], strlen(atts[2 * i + 1])};
    }
    return n;
}

static struct xn_span *ns_slot(xs_parser_t *p, unsigned d)
{
    if (d >= p->ns_cap) {
        p->ns_cap = d < 16 ? 32 : (size_t)d * 2;
        p->ns = xrealloc(p->ns, p->ns_cap * sizeof(*p->ns));
    }
    return &p->ns[d];
}

/* Makes the element for a start tag at depth p->depth + 1 (2: a stanza). */
static void build_element(xs_parser_t *p, const XML_Char *name, const XML_Char **atts)
{
    struct xn_span uri, local;
    split_name(name, &uri, &local);
    size_t n = collect_attrs(p, atts);
    unsigned d = p->depth + 1;
    struct xn_span *eff = ns_slot(p, d);
    if (d > 2 && uri.len == p->ns[d - 1].len && memcmp(uri.s, p->ns[d - 1].s, uri.len) == 0) {
        /* same namespace as the parent: stored once, inherited */
        *eff = p->ns[d - 1];
        p->cur = xn_build_element(p->cur, NULL, local, p->attrs, n);
        return;
    }
    xn_t *e = xn_build_element(d > 2 ? p->cur : NULL, &uri, local, p->attrs, n);
    *eff = (struct xn_span){xn_ns(e), uri.len};
    if (d == 2)
        p->stanza = e;
    p->cur = e;
}

static void flush_text(xs_parser_t *p)
{
    if (p->text_len) {
        xn_add_text(p->cur, p->text, p->text_len);
        p->text_len = 0;
    }
}

/* ---- element and text events ---- */

static void open_stream(xs_parser_t *p, const XML_Char *name, const XML_Char **atts)
{
    struct xn_span uri, local;
    split_name(name, &uri, &local);
    if (!span_eq_lit(uri, XN_NS_STREAMS) || !span_eq_lit(local, "stream")) {
        set_error(p, XS_ERR_INVALID_NAMESPACE, "the root element is not stream:stream");
        return;
    }
    size_t n = collect_attrs(p, atts);
    xn_t *stream = xn_build_element(NULL, &uri, local, p->attrs, n);
    p->depth = 1;
    p->mark = event_end(p);
    if (p->cb.stream_open)
        p->cb.stream_open(p->ctx, stream);
    xn_unref(stream);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xs_parser_t *p = ud;
    if (p->err || p->stopping)
        return;
    if (p->depth == 0) {
        open_stream(p, name, atts);
        return;
    }
    if (p->depth > p->lim.max_depth) {
        set_error(p, XS_ERR_POLICY_VIOLATION, "elements nested deeper than %u", p->lim.max_depth);
        return;
    }
    if (p->depth == 1) {
        p->stanza_start = (pos_t)XML_GetCurrentByteIndex(p->xp);
    } else {
        /* the stanza's closing tag is still to come, so reaching the limit is too much */
        if (event_end(p) - p->stanza_start >= p->lim.max_stanza_bytes) {
            set_error(p, XS_ERR_POLICY_VIOLATION, "stanza larger than %zu bytes",
                      p->lim.max_stanza_bytes);
            return;
        }
        flush_text(p);
    }
    build_element(p, name, atts);
    p->depth++;
}

static void end_stanza(xs_parser_t *p)
{
    pos_t end = event_end(p);
    if (end - p->stanza_start > p->lim.max_stanza_bytes) {
        set_error(p, XS_ERR_POLICY_VIOLATION, "stanza of %llu bytes, more than %zu",
                  end - p->stanza_start, p->lim.max_stanza_bytes);
        return;
    }
    xn_t *stanza = p->stanza;
    p->stanza = p->cur = NULL;
    p->depth = 1;
    p->mark = end;
    if (p->cb.stanza)
        p->cb.stanza(p->ctx, stanza);
    else
        xn_unref(stanza);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    xs_parser_t *p = ud;
    if (p->err || p->stopping)
        return;
    if (p->depth == 1) {
        p->depth = 0;
        p->mark = event_end(p);
        if (p->cb.stream_close)
            p->cb.stream_close(p->ctx);
        return;
    }
    flush_text(p);
    if (p->depth == 2) {
        end_stanza(p);
        return;
    }
    p->cur = xn_parent(p->cur);
    p->depth--;
}

static int all_space(const char *s, int len)
{
    for (int i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return 0;
    return 1;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    xs_parser_t *p = ud;
    if (p->err || p->stopping)
        return;
    if (p->depth < 2) {
        if (!all_space(s, len))
            set_error(p, XS_ERR_BAD_FORMAT, "text between stanzas");
        else
            p->mark = event_end(p);
        return;
    }
    if (event_end(p) - p->stanza_start >= p->lim.max_stanza_bytes) {
        set_error(p, XS_ERR_POLICY_VIOLATION, "stanza larger than %zu bytes",
                  p->lim.max_stanza_bytes);
        return;
    }
    if (p->text_len + (size_t)len > p->text_cap) {
        p->text_cap = (p->text_len + (size_t)len) * 2;
        p->text = xrealloc(p->text, p->text_cap);
    }
    memcpy(p->text + p->text_len, s, (size_t)len);
    p->text_len += (size_t)len;
}

/* ---- the parser ---- */

static void create_expat(xs_parser_t *p)
{
    /* UTF-8 forced: a declaration of another encoding is then refused by on_xml_decl */
    p->xp = XML_ParserCreateNS("UTF-8", XS_NS_SEP);
    if (!p->xp)
        fatalx("xstream", "cannot create an XML parser: out of memory");
    XML_SetUserData(p->xp, p);
    XML_SetElementHandler(p->xp, on_start, on_end);
    XML_SetCharacterDataHandler(p->xp, on_text);
    XML_SetXmlDeclHandler(p->xp, on_xml_decl);
    XML_SetStartDoctypeDeclHandler(p->xp, on_doctype);
    XML_SetCommentHandler(p->xp, on_comment);
    XML_SetProcessingInstructionHandler(p->xp, on_pi);
    XML_SetEntityDeclHandler(p->xp, on_entity_decl);
    XML_SetSkippedEntityHandler(p->xp, on_skipped_entity);
    XML_SetParamEntityParsing(p->xp, XML_PARAM_ENTITY_PARSING_NEVER);
    /* No DTD gets this far (on_doctype refuses it), so entity expansion should never amplify
     * anything: tight limits cost nothing and keep a hole elsewhere from turning into a bomb. */
    if (!XML_SetBillionLaughsAttackProtectionMaximumAmplification(p->xp, 2.0f) ||
        !XML_SetBillionLaughsAttackProtectionActivationThreshold(p->xp, 64 * 1024))
        fatalx("xstream", "expat refused the amplification limits");
    /* Deliver each stanza as soon as its closing tag arrives, even when fed byte by byte. */
    XML_SetReparseDeferralEnabled(p->xp, XML_FALSE);
}

static void clear_state(xs_parser_t *p)
{
    xn_unref(p->stanza);
    p->stanza = p->cur = NULL;
    p->err = XS_OK;
    p->reported = p->stopping = p->reset_pending = 0;
    p->depth = 0;
    p->stanza_start = p->mark = p->resume_at = p->fed = 0;
    p->have_first = 0;
    p->text_len = 0;
    p->detail[0] = '\0';
}

xs_parser_t *xs_new(const struct xs_callbacks *cb, void *ctx, const struct xs_limits *limits)
{
    xs_parser_t *p = xcalloc(1, sizeof(*p));
    if (cb)
        p->cb = *cb;
    p->ctx = ctx;
    p->lim.max_stanza_bytes = XS_DEFAULT_MAX_STANZA_BYTES;
    p->lim.max_depth = XS_DEFAULT_MAX_DEPTH;
    /* a zero field keeps its default */
    if (limits && limits->max_stanza_bytes)
        p->lim.max_stanza_bytes = limits->max_stanza_bytes;
    if (limits && limits->max_depth)
        p->lim.max_depth = limits->max_depth;
    create_expat(p);
    return p;
}

void xs_free(xs_parser_t *p)
{
    if (!p)
        return;
    XML_ParserFree(p->xp);
    xn_unref(p->stanza);
    free(p->ns);
    free(p->attrs);
    free(p->text);
    free(p);
}

static void reset_now(xs_parser_t *p)
{
    /* a new expat parser rather than XML_ParserReset, which forgets the handlers and limits */
    XML_ParserFree(p->xp);
    clear_state(p);
    create_expat(p);
}

void xs_reset(xs_parser_t *p)
{
    if (!p->in_feed) {
        reset_now(p);
        return;
    }
    /* inside a callback: expat cannot be replaced under its own feet; stop it, and let xs_feed
     * reset and go on with the bytes after the current event */
    p->reset_pending = 1;
    p->resume_at = event_end(p);
    if (!p->stopping) {
        p->stopping = 1;
        XML_StopParser(p->xp, XML_FALSE);
    }
}

/* After a feed: a stanza (or stream header) still incomplete that already reached the limit
 * can only end over it. This bounds what expat buffers for an endless start tag. */
static void check_pending(xs_parser_t *p)
{
    pos_t from = p->depth >= 2 ? p->stanza_start : p->mark;
    if (p->fed - from >= p->lim.max_stanza_bytes)
        set_error(p, XS_ERR_POLICY_VIOLATION, "stanza larger than %zu bytes",
                  p->lim.max_stanza_bytes);
}

/* Expat guesses UTF-16 from a BOM or a NUL in the first two bytes of a document even when told
 * the encoding is UTF-8 (and only when both bytes arrive in one call: feed_first_bytes makes
 * sure they do). Those bytes never begin a UTF-8 document, so they are refused here. */
static void check_signature(xs_parser_t *p, const char *data, size_t len)
{
    for (pos_t i = p->fed; i < 2 && i - p->fed < len; i++) {
        unsigned char c = (unsigned char)data[i - p->fed];
        if (c == 0x00 || c == 0xfe || c == 0xff) {
            set_error(p, XS_ERR_UNSUPPORTED_ENCODING, "UTF-16 or UTF-32 input: only UTF-8");
            return;
        }
    }
}

/* One XML_Parse call; returns how many bytes of data were consumed (less than len only when a
 * callback asked for a reset). */
static size_t parse_chunk(xs_parser_t *p, const char *data, int len)
{
    check_signature(p, data, (size_t)len);
    if (p->err)
        return (size_t)len;
    pos_t base = p->fed;
    p->fed += (pos_t)len;
    p->in_feed = 1;
    enum XML_Status st = XML_Parse(p->xp, data, len, XML_FALSE);
    p->in_feed = 0;
    if (p->reset_pending) {
        size_t used = (size_t)(p->resume_at - base);
        reset_now(p);
        return used;
    }
    if (st != XML_STATUS_OK && !p->err) {
        enum XML_Error code = XML_GetErrorCode(p->xp);
        set_error(p, map_expat_error(code), "%s at line %lu column %lu", XML_ErrorString(code),
                  (unsigned long)XML_GetCurrentLineNumber(p->xp),
                  (unsigned long)XML_GetCurrentColumnNumber(p->xp));
    }
    if (!p->err)
        check_pending(p);
    return (size_t)len;
}

/* The first two bytes of a document go to expat in one call, so that how it picks the encoding
 * does not depend on how the input was cut. Returns the bytes of data consumed. */
static size_t feed_first_bytes(xs_parser_t *p, const char *data, size_t len)
{
    if (!p->have_first) {
        p->first = data[0];
        p->have_first = 1;
        return 1;
    }
    char two[2] = {p->first, data[0]};
    p->have_first = 0;
    parse_chunk(p, two, 2); /* no event completes within two bytes, so no reset either */
    return 1;
}

enum xs_error xs_feed(xs_parser_t *p, const char *data, size_t len)
{
    while (len > 0 && !p->err) {
        int n = len > INT_MAX / 2 ? INT_MAX / 2 : (int)len;
        size_t used = p->fed == 0 && (p->have_first || len < 2) ? feed_first_bytes(p, data, len)
                                                                : parse_chunk(p, data, n);
        data += used;
        len -= used;
    }
    enum xs_error err = p->err;
    if (err && !p->reported) {
        p->reported = 1;
        if (p->cb.error)
            p->cb.error(p->ctx, err, p->detail);
    }
    return err;
}
