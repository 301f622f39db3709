/* Unit tests for lib/xstream.c: a well-behaved stream, chunking, limits, and hostile input
 * (each hostile case asserts the exact stream error). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xml.h"
#include "lib/xstream.h"

#define HEADER                                                                                     \
    "<stream:stream xmlns='jabber:component:accept' "                                              \
    "xmlns:stream='http://etherx.jabber.org/streams' from='irc.example.org' id='s1'>"

/* Everything the callbacks saw. Stanzas are kept serialized (component default namespace). */
struct events {
    int opens, closes, errors;
    enum xs_error err;
    char open_from[64];
    char *stanzas[64];
    int n;
    int reset_on_close; /* xs_reset from stream_close */
    xs_parser_t *parser;
};

static void ev_open(void *ctx, const xn_t *stream)
{
    struct events *e = ctx;
    e->opens++;
    const char *from = xn_attr(stream, "from");
    snprintf(e->open_from, sizeof(e->open_from), "%s", from ? from : "");
}

static void ev_stanza(void *ctx, xn_t *stanza)
{
    struct events *e = ctx;
    assert_true(e->n < 64);
    e->stanzas[e->n++] = xn_serialize(stanza, XN_NS_COMPONENT, 0, NULL);
    xn_unref(stanza);
}

static void ev_close(void *ctx)
{
    struct events *e = ctx;
    e->closes++;
    if (e->reset_on_close)
        xs_reset(e->parser);
}

static void ev_error(void *ctx, enum xs_error err, const char *detail)
{
    struct events *e = ctx;
    e->errors++;
    e->err = err;
    assert_non_null(detail);
}

static const struct xs_callbacks callbacks = {ev_open, ev_stanza, ev_close, ev_error};

static xs_parser_t *new_parser(struct events *e, size_t max_bytes, unsigned max_depth)
{
    memset(e, 0, sizeof(*e));
    struct xs_limits lim = {max_bytes, max_depth};
    e->parser = xs_new(&callbacks, e, max_bytes || max_depth ? &lim : NULL);
    return e->parser;
}

static void events_free(struct events *e)
{
    for (int i = 0; i < e->n; i++)
        free(e->stanzas[i]);
    xs_free(e->parser);
}

static enum xs_error feed_str(xs_parser_t *p, const char *s)
{
    return xs_feed(p, s, strlen(s));
}

static enum xs_error feed_bytes_one_by_one(xs_parser_t *p, const char *s, size_t len)
{
    enum xs_error err = XS_OK;
    for (size_t i = 0; i < len && err == XS_OK; i++)
        err = xs_feed(p, s + i, 1);
    return err;
}

/* Feeds header + body in one chunk and returns the error; e holds the events. */
static enum xs_error run(struct events *e, const char *body)
{
    xs_parser_t *p = new_parser(e, 0, 0);
    enum xs_error err = feed_str(p, HEADER);
    assert_int_equal(err, XS_OK);
    return feed_str(p, body);
}

/* Asserts that body after the header fails with want, through the callback exactly once, and
 * that nothing is delivered afterwards. */
static void expect_error(const char *body, enum xs_error want)
{
    struct events e;
    enum xs_error err = run(&e, body);
    assert_int_equal(err, want);
    assert_int_equal(e.errors, 1);
    assert_int_equal(e.err, want);
    int n = e.n;
    assert_int_equal(feed_str(e.parser, "<message><body>after</body></message>"), want);
    assert_int_equal(e.n, n);
    assert_int_equal(e.errors, 1);
    events_free(&e);
}

/* ---- a well-behaved stream ---- */

static const char stream_text[] =
    "<?xml version='1.0' encoding='UTF-8'?>" HEADER
    "<handshake>3c3d1a0e1b2a4e5f60718293a4b5c6d7e8f90123</handshake>\n"
    "<message from='alice@example.org/home' to='bob\\40x@irc.example.org' type='chat' "
    "xml:lang='en'><body>Hi &amp; &lt;welcome&gt; &#x263A; &#233;\xc3\xa9</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
    "  \t\r\n "
    "<presence from='alice@example.org/home' to='irc.example.org'><show>away</show>"
    "<status>out</status><priority>5</priority><c xmlns='http://jabber.org/protocol/caps' "
    "hash='sha-1' node='http://x' ver='Q=='/></presence>"
    "<iq type='result' id='i1' from='irc.example.org' to='alice@example.org/home'>"
    "<query xmlns='http://jabber.org/protocol/disco#items'><item jid='a@b' name='A &apos;B&quot;'/>"
    "<item jid='c@d'><x xmlns='jabber:x:data' type='form'><field var='v'><value>1</value>"
    "</field></x></item></query></iq>"
    "<r:iq xmlns:r='jabber:component:accept' type='get' id='2'><ping xmlns='urn:xmpp:ping'/>"
    "</r:iq>"
    "<message><body><![CDATA[<not markup> & ]]></body></message>"
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>"
    "</stream:stream>";

static const char *stream_stanzas[] = {
    "<handshake>3c3d1a0e1b2a4e5f60718293a4b5c6d7e8f90123</handshake>",
    "<message from='alice@example.org/home' to='bob\\40x@irc.example.org' type='chat' "
    "xml:lang='en'><body>Hi &amp; &lt;welcome&gt; \xe2\x98\xba \xc3\xa9\xc3\xa9</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    "<presence from='alice@example.org/home' to='irc.example.org'><show>away</show>"
    "<status>out</status><priority>5</priority><c xmlns='http://jabber.org/protocol/caps' "
    "hash='sha-1' node='http://x' ver='Q=='/></presence>",
    "<iq type='result' id='i1' from='irc.example.org' to='alice@example.org/home'>"
    "<query xmlns='http://jabber.org/protocol/disco#items'>"
    "<item jid='a@b' name='A &apos;B&quot;'/><item jid='c@d'><x xmlns='jabber:x:data' "
    "type='form'><field var='v'><value>1</value></field></x></item></query></iq>",
    "<iq type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<message><body>&lt;not markup&gt; &amp; </body></message>",
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>",
};

static void assert_whole_stream(const struct events *e)
{
    assert_int_equal(e->opens, 1);
    assert_string_equal(e->open_from, "irc.example.org");
    assert_int_equal(e->errors, 0);
    assert_int_equal(e->closes, 1);
    assert_int_equal(e->n, (int)(sizeof(stream_stanzas) / sizeof(stream_stanzas[0])));
    for (int i = 0; i < e->n; i++)
        assert_string_equal(e->stanzas[i], stream_stanzas[i]);
}

static void test_whole_stream_one_chunk(void **state)
{
    struct events e;
    xs_parser_t *p = new_parser(&e, 0, 0);
    assert_int_equal(xs_feed(p, stream_text, sizeof(stream_text) - 1), XS_OK);
    assert_whole_stream(&e);
    events_free(&e);
}

static void test_one_byte_at_a_time(void **state)
{
    struct events e;
    xs_parser_t *p = new_parser(&e, 0, 0);
    assert_int_equal(feed_bytes_one_by_one(p, stream_text, sizeof(stream_text) - 1), XS_OK);
    assert_whole_stream(&e);
    events_free(&e);
}

static void test_varied_chunks(void **state)
{
    for (size_t step = 2; step < 40; step += 3) {
        struct events e;
        xs_parser_t *p = new_parser(&e, 0, 0);
        size_t len = sizeof(stream_text) - 1;
        for (size_t i = 0; i < len; i += step)
            assert_int_equal(xs_feed(p, stream_text + i, len - i < step ? len - i : step), XS_OK);
        assert_whole_stream(&e);
        events_free(&e);
    }
}

static void test_delivered_on_closing_bracket(void **state)
{
    struct events e;
    xs_parser_t *p = new_parser(&e, 0, 0);
    assert_int_equal(feed_str(p, HEADER), XS_OK);
    assert_int_equal(e.opens, 1);
    const char *s = "<message to='a@b'><body>x</body></message>";
    size_t len = strlen(s);
    assert_int_equal(feed_bytes_one_by_one(p, s, len - 1), XS_OK);
    assert_int_equal(e.n, 0);
    assert_int_equal(xs_feed(p, s + len - 1, 1), XS_OK);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.stanzas[0], s);
    /* an empty-element stanza too */
    assert_int_equal(feed_str(p, "<presence"), XS_OK);
    assert_int_equal(feed_str(p, "/"), XS_OK);
    assert_int_equal(e.n, 1);
    assert_int_equal(feed_str(p, ">"), XS_OK);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.stanzas[1], "<presence/>");
    assert_int_equal(e.closes, 0);
    assert_int_equal(feed_str(p, "</stream:stream>"), XS_OK);
    assert_int_equal(e.closes, 1);
    events_free(&e);
}

static void test_whitespace_keepalives(void **state)
{
    struct events e;
    assert_int_equal(run(&e, " \n\t \r\n<presence/> \n \n<presence/>\n"), XS_OK);
    assert_int_equal(e.n, 2);
    for (int i = 0; i < 50; i++)
        assert_int_equal(feed_str(e.parser, " "), XS_OK);
    assert_int_equal(e.errors, 0);
    events_free(&e);
}

static void test_null_callbacks(void **state)
{
    xs_parser_t *p = xs_new(NULL, NULL, NULL);
    assert_int_equal(xs_feed(p, stream_text, sizeof(stream_text) - 1), XS_OK);
    xs_reset(p);
    assert_int_equal(feed_str(p, HEADER "<message><body>never closed"), XS_OK);
    assert_int_equal(feed_str(p, "<!-- -->"), XS_ERR_RESTRICTED_XML);
    xs_free(p);
    xs_free(NULL);
}

/* ---- restricted XML ---- */

static void test_billion_laughs(void **state)
{
    struct events e;
    xs_parser_t *p = new_parser(&e, 0, 0);
    const char *bomb =
        "<?xml version='1.0'?>"
        "<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
        "<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
        "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"
        "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>"
        "<!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>"
        "<!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>"
        "<!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>"
        "<!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>"
        "<!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>"
        "<!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>]>" HEADER
        "<message><body>&lol9;</body></message></stream:stream>";
    assert_int_equal(feed_str(p, bomb), XS_ERR_RESTRICTED_XML);
    assert_int_equal(e.opens, 0);
    assert_int_equal(e.n, 0);
    assert_int_equal(e.errors, 1);
    events_free(&e);
}

static void test_doctype(void **state)
{
    struct events e;
    xs_parser_t *p = new_parser(&e, 0, 0);
    assert_int_equal(feed_str(p, "<!DOCTYPE stream:stream>" HEADER), XS_ERR_RESTRICTED_XML);
    assert_int_equal(e.opens, 0);
    assert_int_equal(e.err, XS_ERR_RESTRICTED_XML);
    events_free(&e);
    /* with an external subset, fed byte by byte */
    p = new_parser(&e, 0, 0);
    const char *s = "<!DOCTYPE s SYSTEM 'http://example.org/evil.dtd'>" HEADER;
    assert_int_equal(feed_bytes_one_by_one(p, s, strlen(s)), XS_ERR_RESTRICTED_XML);
    events_free(&e);
    /* inside the stream it is not even well-formed */
    expect_error("<!DOCTYPE x>", XS_ERR_NOT_WELL_FORMED);
}

static void test_comment(void **state)
{
    expect_error("<message><!-- hidden --><body>x</body></message>", XS_ERR_RESTRICTED_XML);
    expect_error("<!-- between stanzas -->", XS_ERR_RESTRICTED_XML);
    struct events e;
    xs_parser_t *p = new_parser(&e, 0, 0);
    assert_int_equal(feed_str(p, "<!-- prolog -->" HEADER), XS_ERR_RESTRICTED_XML);
    events_free(&e);
}

static void test_processing_instruction(void **state)
{
    expect_error("<message><?php echo 1; ?></message>", XS_ERR_RESTRICTED_XML);
    expect_error("<?xml-stylesheet href='a'?>", XS_ERR_RESTRICTED_XML);
    struct events e;
    xs_parser_t *p = new_parser(&e, 0, 0);
    assert_int_equal(feed_str(p, "<?pi data?>" HEADER), XS_ERR_RESTRICTED_XML);
    events_free(&e);
}

static void test_undefined_entity(void **state)
{
    expect_error("<message><body>&nbsp;</body></message>", XS_ERR_RESTRICTED_XML);
    expect_error("<message to='&ent;'/>", XS_ERR_RESTRICTED_XML);
}

static void test_predefined_entities_and_char_refs(void **state)
{
    struct events e;
    assert_int_equal(run(&e, "<message to='&lt;&amp;&gt;&apos;&quot;&#9;&#xA;&#13;'>"
                             "<body>&lt;&amp;&gt;&apos;&quot;&#65;&#x42;&#13;</body></message>"),
                     XS_OK);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.stanzas[0], "<message to='&lt;&amp;&gt;&apos;&quot;&#9;&#10;&#13;'>"
                                      "<body>&lt;&amp;&gt;'\"AB&#13;</body></message>");
    events_free(&e);
}

/* ---- limits ---- */

static void test_deep_nesting(void **state)
{
    enum { N = 100000 };
    char *s = malloc(N * 3 + 1);
    for (int i = 0; i < N; i++)
        memcpy(s + 3 * i, "<a>", 3);
    s[N * 3] = '\0';
    expect_error(s, XS_ERR_POLICY_VIOLATION);
    free(s);
}

static void test_depth_limit_exact(void **state)
{
    struct events e;
    xs_parser_t *p = new_parser(&e, 0, 3);
    assert_int_equal(feed_str(p, HEADER "<a><b><c/></b></a>"), XS_OK); /* depth 3 */
    assert_int_equal(e.n, 1);
    assert_int_equal(feed_str(p, "<a><b><c><d/></c></b></a>"), XS_ERR_POLICY_VIOLATION);
    assert_int_equal(e.n, 1);
    events_free(&e);
}

/* A stanza of exactly len bytes: <message><body>xxx...</body></message> */
static char *stanza_of(size_t len)
{
    const char *head = "<message><body>", *tail = "</body></message>";
    size_t fixed = strlen(head) + strlen(tail);
    assert_true(len >= fixed);
    char *s = malloc(len + 1);
    strcpy(s, head);
    memset(s + strlen(head), 'x', len - fixed);
    strcpy(s + len - strlen(tail), tail);
    return s;
}

static void check_stanza_size(size_t limit, size_t len, int one_by_one, enum xs_error want)
{
    struct events e;
    xs_parser_t *p = new_parser(&e, limit, 0);
    char *s = stanza_of(len);
    assert_int_equal(feed_str(p, HEADER), XS_OK);
    enum xs_error err = one_by_one ? feed_bytes_one_by_one(p, s, len) : xs_feed(p, s, len);
    assert_int_equal(err, want);
    assert_int_equal(e.n, want == XS_OK ? 1 : 0);
    if (want == XS_OK) {
        assert_string_equal(e.stanzas[0], s);
        /* the limit applies to each stanza, not to the stream */
        assert_int_equal(xs_feed(p, s, len), XS_OK);
        assert_int_equal(e.n, 2);
    }
    free(s);
    events_free(&e);
}

static void test_stanza_exactly_at_limit(void **state)
{
    check_stanza_size(1000, 1000, 0, XS_OK);
    check_stanza_size(1000, 1000, 1, XS_OK);
    check_stanza_size(XS_DEFAULT_MAX_STANZA_BYTES, XS_DEFAULT_MAX_STANZA_BYTES, 0, XS_OK);
}

static void test_stanza_one_byte_over_limit(void **state)
{
    check_stanza_size(1000, 1001, 0, XS_ERR_POLICY_VIOLATION);
    check_stanza_size(1000, 1001, 1, XS_ERR_POLICY_VIOLATION);
    check_stanza_size(XS_DEFAULT_MAX_STANZA_BYTES, XS_DEFAULT_MAX_STANZA_BYTES + 1, 0,
                      XS_ERR_POLICY_VIOLATION);
}

static void test_empty_element_stanza_at_limit(void **state)
{
    /* <presence to='xxx'/>: the size ends with the '/>' of a single tag */
    for (int over = 0; over <= 1; over++) {
        struct events e;
        xs_parser_t *p = new_parser(&e, 100, 0);
        char s[128] = "<presence to='";
        size_t fixed = strlen(s) + 3;
        memset(s + strlen(s), 'y', 100 + over - fixed);
        strcpy(s + 100 + over - 3, "'/>");
        assert_int_equal(feed_str(p, HEADER), XS_OK);
        enum xs_error err = feed_bytes_one_by_one(p, s, strlen(s));
        assert_int_equal(err, over ? XS_ERR_POLICY_VIOLATION : XS_OK);
        assert_int_equal(e.n, !over);
        events_free(&e);
    }
}

static void test_oversized_partial_stanza_fails_early(void **state)
{
    /* an endless start tag: refused as soon as it reaches the limit, before it ends */
    struct events e;
    xs_parser_t *p = new_parser(&e, 1000, 0);
    assert_int_equal(feed_str(p, HEADER "\n<message to='"), XS_OK);
    char chunk[100];
    memset(chunk, 'a', sizeof(chunk));
    size_t sent = strlen("<message to='");
    while (sent + sizeof(chunk) < 1000) {
        assert_int_equal(xs_feed(p, chunk, sizeof(chunk)), XS_OK);
        sent += sizeof(chunk);
    }
    assert_int_equal(xs_feed(p, chunk, 999 - sent), XS_OK); /* 999 bytes: could still fit */
    assert_int_equal(xs_feed(p, chunk, 1), XS_ERR_POLICY_VIOLATION);
    events_free(&e);

    /* endless text inside a stanza */
    p = new_parser(&e, 1000, 0);
    assert_int_equal(feed_str(p, HEADER "<message><body>"), XS_OK);
    int err = XS_OK, rounds = 0;
    while (err == XS_OK && rounds++ < 100)
        err = xs_feed(p, chunk, sizeof(chunk));
    assert_int_equal(err, XS_ERR_POLICY_VIOLATION);
    assert_int_equal(rounds, 10);
    events_free(&e);

    /* everything in one huge chunk */
    p = new_parser(&e, 1000, 0);
    char *big = stanza_of(100000);
    assert_int_equal(feed_str(p, HEADER), XS_OK);
    assert_int_equal(xs_feed(p, big, 100000), XS_ERR_POLICY_VIOLATION);
    free(big);
    events_free(&e);

    /* an endless stream header */
    p = new_parser(&e, 1000, 0);
    assert_int_equal(
        feed_str(p, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' a='"), XS_OK);
    for (err = XS_OK, rounds = 0; err == XS_OK && rounds < 100; rounds++)
        err = xs_feed(p, chunk, sizeof(chunk));
    assert_int_equal(err, XS_ERR_POLICY_VIOLATION);
    events_free(&e);
}

/* ---- encodings and versions ---- */

static void test_invalid_utf8_in_text(void **state)
{
    expect_error("<message><body>\xff</body></message>", XS_ERR_NOT_WELL_FORMED);
    expect_error("<message><body>\xc0\xaf</body></message>", XS_ERR_NOT_WELL_FORMED);
    expect_error("<message><body>\xed\xa0\x80</body></message>", XS_ERR_NOT_WELL_FORMED);
    expect_error("<message><body>\xe2\x82</body></message>", XS_ERR_NOT_WELL_FORMED);
    expect_error("<message><body>\xef\xbf\xbe</body></message>", XS_ERR_NOT_WELL_FORMED);
    expect_error("<message><body>\x02</body></message>", XS_ERR_NOT_WELL_FORMED);
}

static void test_invalid_utf8_in_attribute(void **state)
{
    expect_error("<message to='\xc3\x28'/>", XS_ERR_NOT_WELL_FORMED);
    expect_error("<message to='a\xf8\x88\x80\x80\x80'/>", XS_ERR_NOT_WELL_FORMED);
    expect_error("<message to='\x80'/>", XS_ERR_NOT_WELL_FORMED);
}

static void test_namespace_separator_in_xmlns(void **state)
{
    /* U+0001 is the separator: it cannot get into a namespace, neither as a reference... */
    expect_error("<message xmlns='jabber:client&#1;message'/>", XS_ERR_NOT_WELL_FORMED);
    expect_error("<x:message xmlns:x='urn:a&#x1;b'/>", XS_ERR_NOT_WELL_FORMED);
    /* ...nor literally */
    expect_error("<message xmlns='jabber:client\x01message'/>", XS_ERR_NOT_WELL_FORMED);
    expect_error("<message xmlns:x='urn:a\x01' x:to='b'/>", XS_ERR_NOT_WELL_FORMED);
}

static void test_encoding_declarations(void **state)
{
    const char *bad[] = {"ISO-8859-1", "UTF-16", "US-ASCII", "latin1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct events e;
        xs_parser_t *p = new_parser(&e, 0, 0);
        char s[512];
        snprintf(s, sizeof(s), "<?xml version='1.0' encoding='%s'?>%s", bad[i], HEADER);
        assert_int_equal(feed_str(p, s), XS_ERR_UNSUPPORTED_ENCODING);
        assert_int_equal(e.opens, 0);
        events_free(&e);
    }
    struct events e;
    xs_parser_t *p = new_parser(&e, 0, 0);
    assert_int_equal(feed_str(p, "\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"utf-8\"?>" HEADER),
                     XS_OK);
    assert_int_equal(e.opens, 1);
    events_free(&e);
}

static void test_utf16_input(void **state)
{
    /* UTF-16 with a BOM, and without one (detected from the NUL bytes): refused whatever the
     * chunking, before expat could switch encodings */
    const char le_bom[] = "\xff\xfe<\0s\0";
    const char le[] = "<\0s\0t\0r\0";
    const char be[] = "\0<\0s\0t\0r";
    const char be_bom[] = "\xfe\xff\0<\0s";
    const char *inputs[] = {le_bom, le, be, be_bom};
    for (size_t i = 0; i < 4; i++) {
        for (int one = 0; one <= 1; one++) {
            struct events e;
            xs_parser_t *p = new_parser(&e, 0, 0);
            enum xs_error err =
                one ? feed_bytes_one_by_one(p, inputs[i], 6) : xs_feed(p, inputs[i], 6);
            assert_int_equal(err, XS_ERR_UNSUPPORTED_ENCODING);
            assert_int_equal(e.errors, 1);
            events_free(&e);
        }
    }
    /* a NUL later on is plain not-well-formed */
    struct events e;
    assert_int_equal(run(&e, ""), XS_OK);
    assert_int_equal(xs_feed(e.parser, "<message>\0</message>", 20), XS_ERR_NOT_WELL_FORMED);
    events_free(&e);
}

static void test_xml_1_1(void **state)
{
    struct events e;
    xs_parser_t *p = new_parser(&e, 0, 0);
    assert_int_equal(feed_str(p, "<?xml version='1.1'?>" HEADER), XS_ERR_UNSUPPORTED_VERSION);
    assert_int_equal(e.opens, 0);
    events_free(&e);
}

/* ---- stream structure ---- */

static void test_wrong_root(void **state)
{
    const char *roots[] = {
        "<stream:stream xmlns:stream='http://etherx.jabber.org/streams/'>",
        "<stream xmlns='jabber:component:accept'>",
        "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>",
        "<message/>",
    };
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        struct events e;
        xs_parser_t *p = new_parser(&e, 0, 0);
        assert_int_equal(feed_str(p, roots[i]), XS_ERR_INVALID_NAMESPACE);
        assert_int_equal(e.opens, 0);
        assert_int_equal(e.errors, 1);
        events_free(&e);
    }
}

static void test_text_at_top_level(void **state)
{
    expect_error("<presence/>hello<presence/>", XS_ERR_BAD_FORMAT);
    expect_error("&amp;", XS_ERR_BAD_FORMAT);
}

static void test_not_well_formed(void **state)
{
    expect_error("<message></presence>", XS_ERR_NOT_WELL_FORMED);
    expect_error("<x:message/>", XS_ERR_NOT_WELL_FORMED); /* unbound prefix */
    expect_error("<message a='1' a='2'/>", XS_ERR_NOT_WELL_FORMED);
    expect_error("<message xmlns:x='u' xmlns:y='u' x:a='1' y:a='2'/>", XS_ERR_NOT_WELL_FORMED);
    expect_error("</stream:stream><presence/>", XS_ERR_NOT_WELL_FORMED);
}

/* ---- errors, reset, restart ---- */

static void test_reset_after_error(void **state)
{
    struct events e;
    xs_parser_t *p = new_parser(&e, 0, 0);
    assert_int_equal(feed_str(p, HEADER "<message><body>x</body><!-- -->"), XS_ERR_RESTRICTED_XML);
    assert_int_equal(xs_feed(p, "</message>", 10), XS_ERR_RESTRICTED_XML);
    assert_int_equal(e.errors, 1);
    xs_reset(p);
    assert_int_equal(feed_str(p, HEADER "<presence/>"), XS_OK);
    assert_int_equal(e.opens, 2);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.stanzas[0], "<presence/>");
    events_free(&e);
}

static void test_reset_from_stream_close(void **state)
{
    /* a stream restart: the new header follows the close in the same chunk */
    struct events e;
    xs_parser_t *p = new_parser(&e, 0, 0);
    e.reset_on_close = 1;
    assert_int_equal(feed_str(p, HEADER "<presence/></stream:stream>" HEADER "<message/>"
                                        "</stream:stream>" HEADER),
                     XS_OK);
    assert_int_equal(e.opens, 3);
    assert_int_equal(e.closes, 2);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.stanzas[1], "<message/>");
    assert_int_equal(feed_str(p, "<iq/>"), XS_OK);
    assert_int_equal(e.n, 3);
    events_free(&e);
}

static void test_error_conditions(void **state)
{
    assert_string_equal(xs_error_condition(XS_ERR_NOT_WELL_FORMED), "not-well-formed");
    assert_string_equal(xs_error_condition(XS_ERR_RESTRICTED_XML), "restricted-xml");
    assert_string_equal(xs_error_condition(XS_ERR_POLICY_VIOLATION), "policy-violation");
    assert_string_equal(xs_error_condition(XS_ERR_UNSUPPORTED_ENCODING), "unsupported-encoding");
    assert_string_equal(xs_error_condition(XS_ERR_INVALID_NAMESPACE), "invalid-namespace");
    assert_string_equal(xs_error_condition(XS_ERR_UNSUPPORTED_VERSION), "unsupported-version");
    assert_string_equal(xs_error_condition(XS_ERR_BAD_FORMAT), "bad-format");
}

/* ---- parse -> serialize -> parse ---- */

struct one {
    xn_t *stanza;
    int count;
    enum xs_error err;
};

static void one_stanza(void *ctx, xn_t *stanza)
{
    struct one *o = ctx;
    o->count++;
    if (o->stanza)
        xn_unref(o->stanza);
    o->stanza = stanza;
}

static void one_error(void *ctx, enum xs_error err, const char *detail)
{
    ((struct one *)ctx)->err = err;
}

/* Parses header + body and returns the single stanza it holds. */
static xn_t *parse_one(const char *header, const char *body)
{
    struct xs_callbacks cb = {NULL, one_stanza, NULL, one_error};
    struct one o = {NULL, 0, XS_OK};
    xs_parser_t *p = xs_new(&cb, &o, NULL);
    assert_int_equal(feed_str(p, header), XS_OK);
    assert_int_equal(feed_str(p, body), XS_OK);
    xs_free(p);
    assert_int_equal(o.count, 1);
    return o.stanza;
}

static void test_round_trip(void **state)
{
    static const char *bodies[] = {
        "<message to='a@b' type='chat'><body>plain</body></message>",
        "<message xmlns='jabber:client' xml:lang='fr'><body xml:lang='en'>a&amp;b &lt;c&gt; "
        "'q' \"d\" &#13;&#9;\n tab</body><thread>t1</thread></message>",
        "<iq type='set' id='r&amp;1'><query xmlns='jabber:iq:register'><username>al</username>"
        "<password>p&apos;w</password><x xmlns='jabber:x:data' type='submit'>"
        "<field var='a' type='text-private'><value>v</value></field></x></query></iq>",
        "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>"
        "<x xmlns='vcard-temp:x:update'><photo/></x>\n  <status>\xe2\x98\x83 &#x1F600;</status>"
        "</presence>",
        "<a:iq xmlns:a='urn:other' xmlns:b='urn:b' b:attr='1' xmlns:c='urn:b' "
        "xmlns:d='}{x}' d:e='f' "
        "attr='&#10;x&#9;y&#13;'><b:child c:other='2'><inner xmlns=''>no ns</inner></b:child>"
        "<stream:error/><b:x xmlns='urn:default'><y/></b:x></a:iq>",
        "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>]]&gt;</text>"
        "</stream:error>",
        "<message><xml:odd xml:lang='en'><xml:in/></xml:odd><stream:x/></message>",
        "<message><body><![CDATA[<b>&amp;</b>]]> mixed <![CDATA[]]]]><![CDATA[>]]></body>"
        "<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/"
        "xhtml'><p style='a:b'>x<br/>y<em>z</em></p></body></html></message>",
    };
    const char *headers[] = {
        HEADER,
        "<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams'>",
    };
    for (size_t h = 0; h < 2; h++) {
        for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
            xn_t *first = parse_one(headers[h], bodies[i]);
            char *ser = xn_serialize(first, XN_NS_COMPONENT, 0, NULL);
            xn_t *second = parse_one(HEADER, ser);
            assert_true(xn_equal(first, second));
            char *again = xn_serialize(second, XN_NS_COMPONENT, 0, NULL);
            assert_string_equal(ser, again); /* serialization is stable */
            xn_t *copy = xn_copy(second);
            assert_true(xn_equal(first, copy));
            /* the standalone form parses back the same inside a stream without default ns */
            char *alone = xn_serialize(first, NULL, 0, NULL);
            xn_t *third = parse_one("<stream:stream xmlns:stream='http://etherx.jabber.org/"
                                    "streams'>",
                                    alone);
            assert_true(xn_equal(first, third));
            free(alone);
            free(again);
            free(ser);
            xn_unref(first);
            xn_unref(second);
            xn_unref(third);
            xn_unref(copy);
        }
    }
}

static void test_parsed_tree(void **state)
{
    xn_t *m = parse_one(HEADER, "<message to='a' xml:lang='de' xmlns:x='urn:x' x:y='z'>"
                                "<body>t1<b/>t2</body><x:e/></message>");
    assert_string_equal(xn_ns(m), XN_NS_COMPONENT);
    assert_string_equal(xn_attr(m, "xml:lang"), "de");
    assert_string_equal(xn_attr(m, "{urn:x}y"), "z");
    assert_int_equal(xn_attr_count(m), 3);
    xn_t *body = xn_child(m, XN_NS_COMPONENT, "body");
    assert_non_null(body);
    char *t = xn_text(body);
    assert_string_equal(t, "t1t2");
    free(t);
    assert_non_null(xn_child(m, "urn:x", "e"));
    /* parsed (inline) attributes can be changed */
    xn_set_attr(m, "to", "b");
    xn_set_attr(m, "xml:lang", NULL);
    xn_set_attr(m, "id", "1");
    char *s = xn_serialize(m, XN_NS_COMPONENT, 0, NULL);
    assert_string_equal(s, "<message to='b' xmlns:ns1='urn:x' ns1:y='z' id='1'><body>t1<b/>t2"
                           "</body><e xmlns='urn:x'/></message>");
    free(s);
    xn_unref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_stream_one_chunk),
        cmocka_unit_test(test_one_byte_at_a_time),
        cmocka_unit_test(test_varied_chunks),
        cmocka_unit_test(test_delivered_on_closing_bracket),
        cmocka_unit_test(test_whitespace_keepalives),
        cmocka_unit_test(test_null_callbacks),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_doctype),
        cmocka_unit_test(test_comment),
        cmocka_unit_test(test_processing_instruction),
        cmocka_unit_test(test_undefined_entity),
        cmocka_unit_test(test_predefined_entities_and_char_refs),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_depth_limit_exact),
        cmocka_unit_test(test_stanza_exactly_at_limit),
        cmocka_unit_test(test_stanza_one_byte_over_limit),
        cmocka_unit_test(test_empty_element_stanza_at_limit),
        cmocka_unit_test(test_oversized_partial_stanza_fails_early),
        cmocka_unit_test(test_invalid_utf8_in_text),
        cmocka_unit_test(test_invalid_utf8_in_attribute),
        cmocka_unit_test(test_namespace_separator_in_xmlns),
        cmocka_unit_test(test_encoding_declarations),
        cmocka_unit_test(test_utf16_input),
        cmocka_unit_test(test_xml_1_1),
        cmocka_unit_test(test_wrong_root),
        cmocka_unit_test(test_text_at_top_level),
        cmocka_unit_test(test_not_well_formed),
        cmocka_unit_test(test_reset_after_error),
        cmocka_unit_test(test_reset_from_stream_close),
        cmocka_unit_test(test_error_conditions),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_parsed_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
