/* Incremental XMPP stream parser on expat. It does no I/O: feed it bytes, get callbacks.
 *
 * Chunks may be of any size, down to one byte; each stanza is delivered as soon as its closing
 * tag arrives. RFC 6120's restricted XML is enforced (no DTD, comments, processing instructions,
 * or entities beyond the five predefined; UTF-8 and XML 1.0 only), as are a maximum stanza size
 * and nesting depth. After an error the parser delivers nothing more until xs_reset(). */
#ifndef FERRY_LIB_XSTREAM_H
#define FERRY_LIB_XSTREAM_H

#include <stddef.h>
#include "lib/xml.h"

/* Each error maps to the stream error condition to send (xs_error_condition). */
enum xs_error {
    XS_OK = 0,
    XS_ERR_NOT_WELL_FORMED,      /* not-well-formed */
    XS_ERR_RESTRICTED_XML,       /* restricted-xml: DTD, comment, PI, entity reference */
    XS_ERR_POLICY_VIOLATION,     /* policy-violation: stanza too large or nested too deep */
    XS_ERR_UNSUPPORTED_ENCODING, /* unsupported-encoding: not UTF-8 */
    XS_ERR_INVALID_NAMESPACE,    /* invalid-namespace: root is not stream:stream */
    XS_ERR_UNSUPPORTED_VERSION,  /* unsupported-version: XML other than 1.0 */
    XS_ERR_BAD_FORMAT,           /* bad-format: e.g. text at the stream's top level */
};

/* The RFC 6120 stream error condition element name for err, e.g. "not-well-formed". */
const char *xs_error_condition(enum xs_error err);

struct xs_callbacks {
    /* The stream's root element arrived; stream holds its name, namespace and attributes
     * (borrowed: valid during the call only). */
    void (*stream_open)(void *ctx, const xn_t *stream);
    /* A complete top-level element; the callee takes ownership of the one reference. */
    void (*stanza)(void *ctx, xn_t *stanza);
    /* </stream:stream> arrived. */
    void (*stream_close)(void *ctx);
    /* The stream broke; detail is a human-readable reason for the log. Called once. */
    void (*error)(void *ctx, enum xs_error err, const char *detail);
};

struct xs_limits {
    size_t max_stanza_bytes; /* bytes from a stanza's '<' to its closing '>'; default 512 KiB */
    unsigned max_depth;      /* element depth below the stream root; default 64 */
};
#define XS_DEFAULT_MAX_STANZA_BYTES (512u * 1024u)
#define XS_DEFAULT_MAX_DEPTH 64u

typedef struct xs_parser xs_parser_t;

/* New parser; limits NULL means the defaults. Callbacks may be NULL. Caller frees. */
xs_parser_t *xs_new(const struct xs_callbacks *cb, void *ctx, const struct xs_limits *limits);
void xs_free(xs_parser_t *parser);
/* Feeds len bytes. Returns XS_OK, or the error (also reported through the error callback),
 * which stays until xs_reset(). Callbacks run inside this call; they may not free the parser,
 * but may call xs_reset() only from stream_close (for a stream restart). */
enum xs_error xs_feed(xs_parser_t *parser, const char *data, size_t len);
/* Forgets everything: ready for a new stream. */
void xs_reset(xs_parser_t *parser);

#endif
