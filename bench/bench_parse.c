/* Parse benchmark: Ferry's stream parser (xs_, which builds a node tree for every stanza) against
 * bare expat (namespace processing on, empty handlers) on the same generated stream of typical
 * stanzas; also the serializer's throughput. It prints figures; it never fails.
 *
 *   build/bench/bench_parse [MB]    (MB processed per measured run, default 80) */
#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/util.h"
#include "lib/xml.h"
#include "lib/xstream.h"

#define CHUNK 16384 /* what one read from a socket typically brings */
#define ROUNDS 5    /* best of */

struct buf {
    char *p;
    size_t len, cap;
};

static void add(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n + 1;
        b->p = xrealloc(b->p, b->cap);
    }
}

/* One of six typical stanzas, varied by i. */
static void add_stanza(struct buf *b, unsigned i)
{
    switch (i % 6) {
    case 0:
        add(b,
            "<message from='alice@example.org/home' to='user%u\\40irc.example.net@irc.example.org'"
            " type='chat' id='m%u'><body>Hello &amp; welcome, see &lt;http://example.org/%u&gt;"
            " - it&apos;s \"fine\" \xc3\xa9t\xc3\xa9 \xe2\x98\x83</body><thread>t%u</thread>"
            "<active xmlns='http://jabber.org/protocol/chatstates'/></message>\n",
            i, i, i, i % 7);
        break;
    case 1:
        add(b,
            "<presence from='bob%u@example.org/laptop' to='irc.example.org'><show>away</show>"
            "<status>In a meeting until %u:00</status><priority>%d</priority>"
            "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
            "node='https://gajim.org' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>\n",
            i, i % 24, (int)(i % 10) - 2);
        break;
    case 2:
        add(b,
            "<iq type='result' id='disco%u' from='irc.example.org' to='alice@example.org/home'>"
            "<query xmlns='http://jabber.org/protocol/disco#items'>"
            "<item jid='#ferry%%irc.example.net@irc.example.org' name='Ferry &amp; friends'/>"
            "<item jid='#debian%%irc.example.net@irc.example.org' name='Debian'/>"
            "<item jid='#xmpp%%irc.example.net@irc.example.org' name='&quot;XMPP&quot;'/>"
            "<item jid='#c%u%%irc.example.net@irc.example.org' name='chan %u'/>"
            "</query></iq>\n",
            i, i, i);
        break;
    case 3:
        add(b,
            "<iq type='set' id='reg%u' from='carol@example.org/phone' to='irc.example.org'>"
            "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE' type='hidden'><value>jabber:iq:register</value></field>"
            "<field var='username'><value>carol%u</value></field>"
            "<field var='password' type='text-private'><value>p&lt;%u&gt;w</value></field>"
            "</x></query></iq>\n",
            i, i, i);
        break;
    case 4:
        add(b,
            "<message from='#ferry%%irc.example.net@irc.example.org/dave' to='alice@example.org'"
            " type='groupchat' xml:lang='en'><body>dave: build %u passed on all 2 cores"
            "</body><delay xmlns='urn:xmpp:delay' from='irc.example.org' "
            "stamp='2024-05-01T12:%02u:00Z'/></message>\n",
            i, i % 60);
        break;
    default:
        add(b,
            "<presence type='unavailable' from='erin%u@example.org/res' to='irc.example.org'/>"
            "\n",
            i);
        break;
    }
}

static char *make_stream(size_t target, size_t *len, unsigned *stanzas)
{
    struct buf b = {xmalloc(4096), 0, 4096};
    add(&b, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
            "xmlns:stream='http://etherx.jabber.org/streams' from='irc.example.org' "
            "id='bench'>");
    unsigned i = 0;
    while (b.len < target)
        add_stanza(&b, i++);
    add(&b, "</stream:stream>");
    *len = b.len;
    *stanzas = i;
    return b.p;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- bare expat ---- */

static void XMLCALL ex_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
}

static void XMLCALL ex_end(void *ud, const XML_Char *name)
{
}

static void XMLCALL ex_text(void *ud, const XML_Char *s, int len)
{
}

static double run_expat(const char *data, size_t len, unsigned reps)
{
    double t0 = now();
    for (unsigned r = 0; r < reps; r++) {
        XML_Parser p = XML_ParserCreateNS("UTF-8", '\x01');
        XML_SetElementHandler(p, ex_start, ex_end);
        XML_SetCharacterDataHandler(p, ex_text);
        XML_SetReparseDeferralEnabled(p, XML_FALSE); /* as Ferry's parser runs it */
        for (size_t off = 0; off < len; off += CHUNK) {
            size_t n = len - off < CHUNK ? len - off : CHUNK;
            if (XML_Parse(p, data + off, (int)n, XML_FALSE) != XML_STATUS_OK) {
                fprintf(stderr, "expat: %s\n", XML_ErrorString(XML_GetErrorCode(p)));
                break;
            }
        }
        XML_ParserFree(p);
    }
    return now() - t0;
}

/* ---- Ferry ---- */

struct count {
    unsigned long stanzas;
    xn_t **keep; /* when set, stanzas are kept here instead of dropped */
};

static void on_stanza(void *ctx, xn_t *stanza)
{
    struct count *c = ctx;
    if (c->keep)
        c->keep[c->stanzas] = stanza;
    else
        xn_unref(stanza);
    c->stanzas++;
}

static double run_ferry(const char *data, size_t len, unsigned reps, struct count *c)
{
    struct xs_callbacks cb = {NULL, on_stanza, NULL, NULL};
    xs_parser_t *p = xs_new(&cb, c, NULL);
    double t0 = now();
    for (unsigned r = 0; r < reps; r++) {
        xs_reset(p);
        for (size_t off = 0; off < len; off += CHUNK) {
            size_t n = len - off < CHUNK ? len - off : CHUNK;
            enum xs_error err = xs_feed(p, data + off, n);
            if (err != XS_OK) {
                fprintf(stderr, "ferry: %s\n", xs_error_condition(err));
                break;
            }
        }
    }
    double t = now() - t0;
    xs_free(p);
    return t;
}

static double run_serialize(xn_t **stanzas, unsigned n, unsigned reps, size_t *out_bytes)
{
    size_t total = 0;
    double t0 = now();
    for (unsigned r = 0; r < reps; r++) {
        for (unsigned i = 0; i < n; i++) {
            size_t len;
            free(xn_serialize(stanzas[i], XN_NS_COMPONENT, 0, &len));
            total += len;
        }
    }
    *out_bytes = total;
    return now() - t0;
}

static void bench_serializer(const char *data, size_t len, unsigned n, double mb_target)
{
    struct count c = {0, xcalloc(n, sizeof(xn_t *))};
    run_ferry(data, len, 1, &c);
    size_t once;
    run_serialize(c.keep, (unsigned)c.stanzas, 1, &once);
    unsigned reps = (unsigned)(mb_target * 1e6 / (double)once) + 1;
    double best = 1e30;
    size_t bytes = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double t = run_serialize(c.keep, (unsigned)c.stanzas, reps, &bytes);
        best = t < best ? t : best;
    }
    printf("ferry xn_serialize:                   %8.1f MB/s of XML written (%u stanzas x %u)\n",
           (double)bytes / 1e6 / best, (unsigned)c.stanzas, reps);
    for (unsigned long i = 0; i < c.stanzas; i++)
        xn_unref(c.keep[i]);
    free(c.keep);
}

int main(int argc, char **argv)
{
    double mb_target = argc > 1 ? atof(argv[1]) : 80.0;
    if (mb_target <= 0)
        mb_target = 80.0;
    size_t len;
    unsigned n;
    char *data = make_stream(1u << 20, &len, &n);
    unsigned reps = (unsigned)(mb_target * 1e6 / (double)len) + 1;
    double processed = (double)len * reps / 1e6;
    printf("stream: %.2f MB of %u stanzas (messages, presences, IQs with nested children), "
           "fed in %d-byte chunks, %u times = %.1f MB per run, best of %d runs\n",
           (double)len / 1e6, n, CHUNK, reps, processed, ROUNDS);

    double best_expat = 1e30, best_ferry = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
        double te = run_expat(data, len, reps);
        struct count c = {0, NULL};
        double tf = run_ferry(data, len, reps, &c);
        if (c.stanzas != (unsigned long)n * reps)
            printf("warning: ferry delivered %lu stanzas, expected %lu\n", c.stanzas,
                   (unsigned long)n * reps);
        best_expat = te < best_expat ? te : best_expat;
        best_ferry = tf < best_ferry ? tf : best_ferry;
    }
    double mbs_expat = processed / best_expat, mbs_ferry = processed / best_ferry;
    printf("bare expat (namespaces, empty handlers): %8.1f MB/s\n", mbs_expat);
    printf("ferry xs_ (stanza trees built, unref'd): %8.1f MB/s\n", mbs_ferry);
    printf("ratio ferry/expat: %.2f (goal 0.80)\n", mbs_ferry / mbs_expat);
    bench_serializer(data, len, n, mb_target);
    free(data);
    return 0;
}
