/* libFuzzer target for the stream parser and the serializer.
 *
 * Each input is parsed twice, in one chunk and in small chunks whose sizes come from the input
 * itself: both runs must deliver equal stanzas and agree on whether the stream broke. Every
 * delivered stanza then goes through xn_serialize and back through the parser and must come
 * out equal (xn_equal), and serializing that again must give the same bytes. Any mismatch
 * aborts, which is how a serializer bug shows up as a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "lib/xml.h"
#include "lib/xstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_BYTES 2000u
#define FUZZ_MAX_DEPTH 12u

struct run {
    xn_t **stanzas;
    size_t n, cap;
    enum xs_error err;
    int errors, opens, closes;
};

static void on_open(void *ctx, const xn_t *stream)
{
    ((struct run *)ctx)->opens++;
    free(xn_serialize_start(stream, XN_NS_COMPONENT, NULL));
}

static void on_stanza(void *ctx, xn_t *stanza)
{
    struct run *r = ctx;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->stanzas = xrealloc(r->stanzas, r->cap * sizeof(*r->stanzas));
    }
    r->stanzas[r->n++] = stanza;
}

static void on_close(void *ctx)
{
    ((struct run *)ctx)->closes++;
}

static void on_error(void *ctx, enum xs_error err, const char *detail)
{
    struct run *r = ctx;
    r->errors++;
    r->err = err;
}

static const struct xs_callbacks callbacks = {on_open, on_stanza, on_close, on_error};

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_stream: %s\n", why);
    abort();
}

static void run_free(struct run *r)
{
    for (size_t i = 0; i < r->n; i++)
        xn_unref(r->stanzas[i]);
    free(r->stanzas);
}

/* chunked: feed pieces of 1..8 bytes, their sizes taken from the data. */
static void parse(struct run *r, const uint8_t *data, size_t size, int chunked,
                  const struct xs_limits *lim)
{
    memset(r, 0, sizeof(*r));
    xs_parser_t *p = xs_new(&callbacks, r, lim);
    enum xs_error err = XS_OK;
    size_t i = 0;
    while (i < size && err == XS_OK) {
        size_t n = chunked ? 1 + data[i] % 8 : size - i;
        if (n > size - i)
            n = size - i;
        err = xs_feed(p, (const char *)data + i, n);
        i += n;
    }
    xs_free(p);
    if (err != r->err || (err && r->errors != 1) || (!err && r->errors))
        fail("xs_feed's result and the error callback disagree");
}

static int error_may_vary(enum xs_error err)
{
    return err == XS_ERR_POLICY_VIOLATION || err == XS_ERR_BAD_FORMAT;
}

static void compare_runs(const struct run *a, const struct run *b)
{
    if (a->n != b->n || a->opens != b->opens || a->closes != b->closes)
        fail("chunking changed the events delivered");
    for (size_t i = 0; i < a->n; i++)
        if (!xn_equal(a->stanzas[i], b->stanzas[i]))
            fail("chunking changed a stanza");
    if ((a->err == XS_OK) != (b->err == XS_OK))
        fail("chunking changed whether the stream broke");
    /* Which of two faults is reported may depend on where chunks end: a limit checked after a
     * feed, or text between stanzas that expat delivers early from a chunk but refuses whole
     * when "]]>" follows it in the same run. Any other difference is a bug. */
    if (a->err != b->err && !error_may_vary(a->err) && !error_may_vary(b->err))
        fail("chunking changed the stream error");
}

/* Parses header + xml and returns its one stanza; aborts unless there is exactly one. */
static xn_t *reparse(const char *header, const char *xml, size_t len)
{
    struct run r;
    struct xs_limits lim = {len + 1, FUZZ_MAX_DEPTH};
    memset(&r, 0, sizeof(r));
    xs_parser_t *p = xs_new(&callbacks, &r, &lim);
    if (xs_feed(p, header, strlen(header)) != XS_OK || xs_feed(p, xml, len) != XS_OK) {
        fprintf(stderr, "reparse failed (%s) on: %s\n", xs_error_condition(r.err), xml);
        fail("a serialized stanza does not parse");
    }
    xs_free(p);
    if (r.n != 1)
        fail("a serialized stanza parsed into a different number of stanzas");
    xn_t *out = r.stanzas[0];
    free(r.stanzas);
    return out;
}

static void round_trip(const xn_t *stanza)
{
    static const char component[] = "<stream:stream xmlns='jabber:component:accept' "
                                    "xmlns:stream='http://etherx.jabber.org/streams'>";
    static const char bare[] = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>";
    size_t len;
    char *ser = xn_serialize(stanza, XN_NS_COMPONENT, 0, &len);
    xn_t *back = reparse(component, ser, len);
    if (!xn_equal(stanza, back)) {
        fprintf(stderr, "serialized as: %s\n", ser);
        fail("a stanza changed through serialize and parse");
    }
    char *again = xn_serialize(back, XN_NS_COMPONENT, 0, NULL);
    if (strcmp(ser, again) != 0)
        fail("serializing a reparsed stanza gave different bytes");
    char *alone = xn_serialize(stanza, NULL, 0, &len);
    xn_t *back2 = reparse(bare, alone, len);
    if (!xn_equal(stanza, back2))
        fail("a stanza changed through standalone serialize and parse");
    xn_t *copy = xn_copy(stanza);
    if (!xn_equal(copy, stanza))
        fail("a copy differs");
    free(xn_serialize(copy, XN_NS_COMPONENT, XN_SER_REDACT, NULL));
    xn_unref(copy);
    xn_unref(back2);
    xn_unref(back);
    free(alone);
    free(again);
    free(ser);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xs_limits lim = {FUZZ_MAX_BYTES, FUZZ_MAX_DEPTH};
    struct run whole, chunked;
    parse(&whole, data, size, 0, &lim);
    parse(&chunked, data, size, 1, &lim);
    compare_runs(&whole, &chunked);
    for (size_t i = 0; i < whole.n; i++)
        round_trip(whole.stanzas[i]);
    run_free(&whole);
    run_free(&chunked);
    return 0;
}
