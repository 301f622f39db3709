/* Unit tests for lib/xml.c: building, attributes, copy, references across threads, lookup,
 * escaping, namespace declarations, redaction, comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xml.h"

/* Serializes node and checks the exact text. */
static void assert_xml(const xn_t *node, const char *default_ns, int flags, const char *want)
{
    size_t len = 0;
    char *got = xn_serialize(node, default_ns, flags, &len);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    free(got);
}

static xn_t *sample_message(void)
{
    xn_t *m = xn_new(XN_NS_COMPONENT, "message");
    xn_set_attr(m, "from", "alice@example.org/home");
    xn_set_attr(m, "to", "bob@irc.example.org");
    xn_set_attr(m, "type", "chat");
    xn_add_child_text(m, NULL, "body", "hello");
    xn_t *x = xn_add_child(m, "jabber:x:oob", "x");
    xn_add_child_text(x, NULL, "url", "http://example.org/");
    return m;
}

static void test_build(void **state)
{
    xn_t *m = sample_message();
    assert_string_equal(xn_name(m), "message");
    assert_string_equal(xn_ns(m), XN_NS_COMPONENT);
    assert_null(xn_parent(m));
    xn_t *body = xn_first_element(m);
    assert_non_null(body);
    assert_string_equal(xn_name(body), "body");
    assert_string_equal(xn_ns(body), XN_NS_COMPONENT); /* inherited */
    assert_ptr_equal(xn_parent(body), m);
    xn_t *x = xn_next_element(body);
    assert_string_equal(xn_ns(x), "jabber:x:oob");
    assert_string_equal(xn_ns(xn_first_element(x)), "jabber:x:oob");
    assert_null(xn_next_element(x));

    char *t = xn_child_text(m, NULL, "body");
    assert_string_equal(t, "hello");
    free(t);
    assert_null(xn_child_text(m, NULL, "subject"));
    t = xn_text(m);
    assert_string_equal(t, "");
    free(t);
    xn_unref(m);
}

static void test_root_without_ns(void **state)
{
    xn_t *q = xn_new(NULL, "query");
    assert_string_equal(xn_ns(q), "");
    xn_t *iq = xn_new("jabber:client", "iq");
    assert_ptr_equal(xn_append(iq, q), q);
    assert_string_equal(xn_ns(q), "jabber:client"); /* takes the parent's once appended */
    xn_t *none = xn_add_child(iq, "", "none");
    assert_string_equal(xn_ns(none), "");
    xn_unref(iq);
}

static void test_text_merging(void **state)
{
    xn_t *b = xn_new(NULL, "body");
    xn_add_text(b, "ab", 2);
    xn_add_text(b, "cdef", 2); /* only len bytes */
    xn_add_text(b, "", 0);
    xn_add_child(b, NULL, "br");
    xn_add_text(b, "x", 1);
    char *t = xn_text(b);
    assert_string_equal(t, "abcdx");
    free(t);
    xn_t *br = xn_first_element(b);
    assert_string_equal(xn_name(br), "br");
    assert_null(xn_next_element(br));
    assert_xml(b, NULL, 0, "<body>abcd<br/>x</body>");
    /* many appends to one text node */
    xn_t *big = xn_new(NULL, "big");
    for (int i = 0; i < 1000; i++)
        xn_add_text(big, "0123456789", 10);
    t = xn_text(big);
    assert_int_equal(strlen(t), 10000);
    assert_memory_equal(t + 9990, "0123456789", 10);
    free(t);
    xn_unref(big);
    xn_unref(b);
}

static void test_attributes(void **state)
{
    xn_t *n = xn_new(NULL, "presence");
    assert_int_equal(xn_attr_count(n), 0);
    assert_null(xn_attr(n, "to"));
    xn_set_attr(n, "to", "a@b");
    xn_set_attr(n, "from", "c@d");
    xn_set_attr(n, "type", "probe");
    xn_set_attr(n, "to", "e@f"); /* a replacement keeps its position */
    xn_set_attr(n, "from", NULL);
    xn_set_attr(n, "absent", NULL);
    assert_int_equal(xn_attr_count(n), 2);
    const char *name, *value;
    assert_int_equal(xn_attr_at(n, 0, &name, &value), 0);
    assert_string_equal(name, "to");
    assert_string_equal(value, "e@f");
    assert_int_equal(xn_attr_at(n, 1, &name, &value), 0);
    assert_string_equal(name, "type");
    assert_string_equal(value, "probe");
    assert_int_equal(xn_attr_at(n, 2, &name, &value), -1);
    /* a value taken from the node itself */
    xn_set_attr(n, "to", xn_attr(n, "to"));
    assert_string_equal(xn_attr(n, "to"), "e@f");
    assert_xml(n, NULL, 0, "<presence to='e@f' type='probe'/>");
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof(k), "a%d", i);
        xn_set_attr(n, k, k);
    }
    assert_int_equal(xn_attr_count(n), 52);
    assert_string_equal(xn_attr(n, "a49"), "a49");
    xn_unref(n);
}

static void test_copy(void **state)
{
    xn_t *m = sample_message();
    xn_add_text(m, "tail", 4);
    xn_t *c = xn_copy(m);
    assert_true(xn_equal(m, c));
    assert_xml(c, XN_NS_COMPONENT, 0,
               "<message from='alice@example.org/home' to='bob@irc.example.org' type='chat'>"
               "<body>hello</body><x xmlns='jabber:x:oob'><url>http://example.org/</url></x>tail"
               "</message>");
    /* copies are independent, and a copy's inline attributes can be changed */
    xn_set_attr(c, "type", "normal");
    xn_set_attr(c, "id", "42");
    xn_set_attr(c, "from", NULL);
    assert_string_equal(xn_attr(m, "type"), "chat");
    assert_string_equal(xn_attr(m, "from"), "alice@example.org/home");
    assert_false(xn_equal(m, c));
    assert_xml(c, XN_NS_COMPONENT, 0,
               "<message to='bob@irc.example.org' type='normal' id='42'><body>hello</body>"
               "<x xmlns='jabber:x:oob'><url>http://example.org/</url></x>tail</message>");

    /* a copy of a child keeps the namespace it inherited */
    xn_t *url = xn_first_element(xn_child(m, "jabber:x:oob", "x"));
    xn_t *u = xn_copy(url);
    assert_null(xn_parent(u));
    assert_string_equal(xn_ns(u), "jabber:x:oob");
    assert_xml(u, NULL, 0, "<url xmlns='jabber:x:oob'>http://example.org/</url>");
    xn_unref(u);
    xn_unref(c);
    xn_unref(m);
}

struct handoff {
    xn_t *stanza;
    char *seen;
};

static void *receiver(void *arg)
{
    struct handoff *h = arg;
    h->seen = xn_serialize(h->stanza, XN_NS_COMPONENT, 0, NULL);
    xn_unref(h->stanza); /* the receiver drops the reference it was given */
    return NULL;
}

static void test_refcount_across_thread(void **state)
{
    xn_t *m = sample_message();
    struct handoff h = {xn_ref(m), NULL};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, receiver, &h), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_non_null(h.seen);
    assert_string_equal(xn_attr(m, "to"), "bob@irc.example.org"); /* still alive here */
    char *mine = xn_serialize(m, XN_NS_COMPONENT, 0, NULL);
    assert_string_equal(h.seen, mine);
    free(mine);
    free(h.seen);
    xn_unref(m); /* the last reference: valgrind checks that everything is freed */

    /* many threads each dropping one of many references */
    xn_t *p = xn_new(XN_NS_COMPONENT, "presence");
    struct handoff hs[8];
    pthread_t ts[8];
    for (int i = 0; i < 8; i++) {
        hs[i] = (struct handoff){xn_ref(p), NULL};
        assert_int_equal(pthread_create(&ts[i], NULL, receiver, &hs[i]), 0);
    }
    xn_unref(p);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(pthread_join(ts[i], NULL), 0);
        assert_string_equal(hs[i].seen, "<presence/>");
        free(hs[i].seen);
    }
    xn_unref(NULL);
}

static void test_child_lookup(void **state)
{
    xn_t *iq = xn_new(XN_NS_COMPONENT, "iq");
    xn_t *q1 = xn_add_child(iq, "jabber:iq:version", "query");
    xn_t *q2 = xn_add_child(iq, "jabber:iq:register", "query");
    xn_t *err = xn_add_child(iq, NULL, "error");
    xn_t *cond = xn_add_child(err, XN_NS_STANZAS, "item-not-found");
    assert_ptr_equal(xn_child(iq, "jabber:iq:register", "query"), q2);
    assert_ptr_equal(xn_child(iq, "jabber:iq:version", "query"), q1);
    assert_ptr_equal(xn_child(iq, NULL, "query"), q1);
    assert_ptr_equal(xn_child(iq, "jabber:iq:register", NULL), q2);
    assert_ptr_equal(xn_child(iq, NULL, NULL), q1);
    assert_ptr_equal(xn_child(iq, XN_NS_COMPONENT, "error"), err); /* inherited ns matches */
    assert_null(xn_child(iq, "jabber:client", "error"));
    assert_null(xn_child(iq, "jabber:iq:version", "error"));
    assert_null(xn_child(iq, NULL, "item-not-found")); /* direct children only */
    assert_ptr_equal(xn_child(err, XN_NS_STANZAS, NULL), cond);
    xn_remove(q1);
    assert_ptr_equal(xn_child(iq, NULL, "query"), q2);
    assert_ptr_equal(xn_first_element(iq), q2);
    xn_remove(err);
    assert_null(xn_next_element(q2));
    xn_remove(q2);
    assert_null(xn_first_element(iq));
    assert_xml(iq, XN_NS_COMPONENT, 0, "<iq/>");
    xn_t *again = xn_add_child(iq, NULL, "again");
    assert_ptr_equal(xn_first_element(iq), again);
    assert_xml(iq, XN_NS_COMPONENT, 0, "<iq><again/></iq>");
    xn_unref(iq);
}

static void test_escaping_text(void **state)
{
    xn_t *b = xn_new(NULL, "body");
    const char text[] = "a&b<c>d'e\"f\tg\nh\ri]]>j";
    xn_add_text(b, text, sizeof(text) - 1);
    assert_xml(b, NULL, 0, "<body>a&amp;b&lt;c&gt;d'e\"f\tg\nh&#13;i]]&gt;j</body>");
    xn_unref(b);
}

static void test_escaping_attributes(void **state)
{
    xn_t *n = xn_new(NULL, "x");
    xn_set_attr(n, "v", "a&b<c>d'e\"f\tg\nh\ri");
    assert_xml(n, NULL, 0, "<x v='a&amp;b&lt;c&gt;d&apos;e&quot;f&#9;g&#10;h&#13;i'/>");
    xn_unref(n);
}

static void test_escaping_non_characters(void **state)
{
    /* what a legacy network may send: control characters and broken UTF-8 become U+FFFD */
    xn_t *b = xn_new(NULL, "body");
    const char text[] = "bold\x02x\x1b[0m\x7f"
                        "\xc3\xa9"         /* é: kept */
                        "\xe2\x82\xac"     /* €: kept */
                        "\xf0\x9f\x98\x80" /* emoji: kept */
                        "\xff"             /* never valid */
                        "\xc0\xaf"         /* overlong '/' */
                        "\xed\xa0\x80"     /* surrogate */
                        "\xef\xbf\xbe"     /* U+FFFE */
                        "\xf4\x90\x80\x80" /* beyond U+10FFFF */
                        "\xe2\x82";        /* truncated */
    xn_add_text(b, text, sizeof(text) - 1);
    xn_add_text(b, "\0z", 2);
    xn_set_attr(b, "a", "\x01\xc3");
    char rs[16][4];
    for (int i = 0; i < 16; i++)
        memcpy(rs[i], "\xef\xbf\xbd", 4);
    char want[256];
    /* one U+FFFD per byte that starts no valid character: 2 in the attribute, 2 + 16 in text */
    snprintf(want, sizeof(want),
             "<body a='%s%s'>bold%sx%s[0m\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
             "%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%sz</body>",
             rs[0], rs[1], rs[2], rs[3], rs[0], rs[1], rs[2], rs[3], rs[4], rs[5], rs[6], rs[7],
             rs[8], rs[9], rs[10], rs[11], rs[12], rs[13], rs[14], rs[15]);
    assert_xml(b, NULL, 0, want);
    xn_unref(b);
}

static void test_namespace_declarations(void **state)
{
    xn_t *m = sample_message();
    xn_t *x = xn_child(m, "jabber:x:oob", "x");
    xn_add_child(x, "jabber:x:oob", "desc"); /* explicitly the same ns: no new declaration */
    xn_add_child(m, "", "bare");             /* no namespace under a default one */
    /* in a component stream: no xmlns='jabber:component:accept'; jabber:x:oob exactly once */
    assert_xml(m, XN_NS_COMPONENT, 0,
               "<message from='alice@example.org/home' to='bob@irc.example.org' type='chat'>"
               "<body>hello</body><x xmlns='jabber:x:oob'><url>http://example.org/</url>"
               "<desc/></x><bare xmlns=''/></message>");
    /* standalone: the root declares its namespace */
    assert_xml(m, NULL, 0,
               "<message xmlns='jabber:component:accept' from='alice@example.org/home' "
               "to='bob@irc.example.org' type='chat'><body>hello</body>"
               "<x xmlns='jabber:x:oob'><url>http://example.org/</url><desc/></x>"
               "<bare xmlns=''/></message>");
    /* a subtree serialized alone declares what it inherited */
    assert_xml(xn_child(m, NULL, "body"), XN_NS_COMPONENT, 0, "<body>hello</body>");
    assert_xml(xn_child(m, NULL, "body"), NULL, 0,
               "<body xmlns='jabber:component:accept'>hello</body>");
    /* no namespace at all, and a stray xmlns attribute that would contradict the node */
    xn_t *plain = xn_new(NULL, "plain");
    xn_set_attr(plain, "xmlns", "urn:wrong");
    xn_set_attr(plain, "xmlns:foo", "urn:wrong");
    assert_xml(plain, NULL, 0, "<plain/>");
    assert_xml(plain, XN_NS_COMPONENT, 0, "<plain xmlns=''/>");
    xn_unref(plain);
    xn_unref(m);
}

static void test_stream_prefix(void **state)
{
    xn_t *e = xn_new(XN_NS_STREAMS, "error");
    xn_add_child(e, XN_NS_STREAM_ERRORS, "not-well-formed");
    xn_add_child_text(e, XN_NS_STREAM_ERRORS, "text", "bad");
    xn_t *inner = xn_add_child(e, NULL, "inner"); /* inherits the streams namespace */
    xn_add_child(inner, NULL, "deeper");
    assert_xml(e, XN_NS_COMPONENT, 0,
               "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
               "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bad</text>"
               "<stream:inner><stream:deeper/></stream:inner></stream:error>");
    assert_xml(e, NULL, 0,
               "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
               "<not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
               "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bad</text>"
               "<stream:inner><stream:deeper/></stream:inner></stream:error>");
    xn_unref(e);

    /* the xml prefix is bound by definition and its namespace may not be a default one */
    xn_t *x = xn_new(XN_NS_COMPONENT, "message");
    xn_add_child(xn_add_child(x, XN_NS_XML, "odd"), NULL, "inner");
    assert_xml(x, XN_NS_COMPONENT, 0, "<message><xml:odd><xml:inner/></xml:odd></message>");
    assert_xml(x, NULL, 0,
               "<message xmlns='jabber:component:accept'><xml:odd><xml:inner/></xml:odd>"
               "</message>");
    xn_unref(x);

    xn_t *f = xn_new(XN_NS_STREAMS, "features");
    xn_add_child(f, "urn:ietf:params:xml:ns:xmpp-bind", "bind");
    xn_add_child(f, XN_NS_COMPONENT, "x");
    assert_xml(f, XN_NS_COMPONENT, 0,
               "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><x/>"
               "</stream:features>");
    xn_unref(f);
}

static void test_special_attributes(void **state)
{
    xn_t *m = xn_new(XN_NS_COMPONENT, "message");
    xn_set_attr(m, "xml:lang", "en");
    xn_set_attr(m, "{urn:example:a}flag", "1");
    xn_set_attr(m, "{urn:example:b}other", "<2>");
    xn_set_attr(m, "{urn:{odd}}x", "3");
    assert_xml(m, XN_NS_COMPONENT, 0,
               "<message xml:lang='en' xmlns:ns1='urn:example:a' ns1:flag='1' "
               "xmlns:ns2='urn:example:b' ns2:other='&lt;2&gt;' xmlns:ns3='urn:{odd}' ns3:x='3'/>");
    xn_unref(m);
}

static void test_serialize_start(void **state)
{
    xn_t *s = xn_new(XN_NS_STREAMS, "stream");
    xn_set_attr(s, "to", "irc.example.org");
    size_t len;
    char *out = xn_serialize_start(s, XN_NS_COMPONENT, &len);
    const char *want = "<stream:stream xmlns='jabber:component:accept' "
                       "xmlns:stream='http://etherx.jabber.org/streams' to='irc.example.org'>";
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    free(out);
    out = xn_serialize_start(s, NULL, NULL);
    assert_string_equal(out, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
                             "to='irc.example.org'>");
    free(out);
    xn_unref(s);
}

static void test_redaction(void **state)
{
    xn_t *iq = xn_new(XN_NS_COMPONENT, "iq");
    xn_t *q = xn_add_child(iq, "jabber:iq:register", "query");
    xn_add_child_text(q, NULL, "username", "alice");
    xn_t *pw = xn_add_child_text(q, NULL, "password", "s3cr&t");
    xn_add_text(pw, "more", 4);
    xn_add_child(q, NULL, "password"); /* empty: nothing to hide */
    xn_t *x = xn_add_child(q, "jabber:x:data", "x");
    xn_t *f1 = xn_add_child(x, NULL, "field");
    xn_set_attr(f1, "type", "text-private");
    xn_set_attr(f1, "var", "password");
    xn_add_child_text(f1, NULL, "value", "hunter2");
    xn_t *f2 = xn_add_child(x, NULL, "field");
    xn_set_attr(f2, "var", "nick");
    xn_add_child_text(f2, NULL, "value", "al");
    const char *redacted = "<iq><query xmlns='jabber:iq:register'><username>alice</username>"
                           "<password>****</password><password/><x xmlns='jabber:x:data'>"
                           "<field type='text-private' var='password'><value>****</value></field>"
                           "<field var='nick'><value>al</value></field></x></query></iq>";
    assert_xml(iq, XN_NS_COMPONENT, XN_SER_REDACT, redacted);
    char *plain = xn_serialize(iq, XN_NS_COMPONENT, 0, NULL);
    assert_non_null(strstr(plain, "<password>s3cr&amp;tmore</password>"));
    assert_non_null(strstr(plain, "<value>hunter2</value>"));
    free(plain);

    /* a submitted form without field types: the var tells */
    xn_t *form = xn_new("jabber:x:data", "x");
    xn_t *f3 = xn_add_child(form, NULL, "field");
    xn_set_attr(f3, "var", "legacy_password");
    xn_add_child_text(f3, NULL, "value", "hunter3");
    assert_xml(form, NULL, XN_SER_REDACT,
               "<x xmlns='jabber:x:data'><field var='legacy_password'><value>****</value>"
               "</field></x>");
    xn_unref(form);

    xn_t *h = xn_new(XN_NS_COMPONENT, "handshake");
    xn_add_text(h, "0123456789abcdef0123456789abcdef01234567", 40);
    assert_xml(h, XN_NS_COMPONENT, XN_SER_REDACT, "<handshake>****</handshake>");
    xn_unref(h);
    xn_unref(iq);
}

static void test_equal(void **state)
{
    xn_t *a = xn_new("jabber:client", "presence");
    xn_set_attr(a, "to", "x");
    xn_set_attr(a, "from", "y");
    xn_add_child_text(a, NULL, "status", "away now");
    xn_t *b = xn_new("jabber:client", "presence");
    xn_set_attr(b, "from", "y"); /* attribute order does not matter */
    xn_set_attr(b, "to", "x");
    xn_t *st = xn_add_child(b, "jabber:client", "status");
    xn_add_text(st, "away", 4);
    xn_add_child(st, NULL, "gone");
    xn_add_text(st, " now", 4);
    assert_false(xn_equal(a, b));
    xn_remove(xn_child(st, NULL, "gone")); /* leaves two adjacent text nodes */
    assert_true(xn_equal(a, b));
    assert_true(xn_equal(b, a));
    assert_true(xn_equal(a, a));

    xn_set_attr(b, "to", "z");
    assert_false(xn_equal(a, b));
    xn_set_attr(b, "to", "x");
    xn_set_attr(b, "id", "1");
    assert_false(xn_equal(a, b));
    xn_set_attr(b, "id", NULL);
    assert_true(xn_equal(a, b));
    xn_add_text(st, "!", 1);
    assert_false(xn_equal(a, b));
    xn_t *c = xn_copy(a);
    xn_add_child(c, NULL, "priority");
    assert_false(xn_equal(a, c));
    xn_t *d = xn_new("jabber:server", "presence");
    xn_set_attr(d, "to", "x");
    xn_set_attr(d, "from", "y");
    xn_add_child_text(d, NULL, "status", "away now");
    assert_false(xn_equal(a, d)); /* namespace */
    xn_t *e = xn_copy(a);
    xn_remove(xn_first_element(e));
    xn_add_child_text(e, "urn:other", "status", "away now");
    assert_false(xn_equal(a, e)); /* namespace of a child */
    xn_t *f = xn_new("jabber:client", "presence");
    xn_set_attr(f, "to", "x");
    xn_set_attr(f, "from", "y");
    xn_add_child_text(f, NULL, "status", "away");
    assert_false(xn_equal(a, f)); /* shorter text */
    assert_false(xn_equal(f, a));
    xn_unref(a);
    xn_unref(b);
    xn_unref(c);
    xn_unref(d);
    xn_unref(e);
    xn_unref(f);
}

static void test_deep_tree(void **state)
{
    /* walks are iterative: a tree much deeper than any stack frame budget */
    enum { DEPTH = 100000 };
    xn_t *root = xn_new("urn:deep", "d"), *n = root;
    for (int i = 0; i < DEPTH; i++)
        n = xn_add_child(n, NULL, "d");
    xn_add_text(n, "bottom", 6);
    size_t len;
    char *s = xn_serialize(root, NULL, 0, &len);
    assert_int_equal(len, strlen("<d xmlns='urn:deep'>") + DEPTH * strlen("<d></d>") +
                              strlen("bottom") + strlen("</d>"));
    assert_memory_equal(s + len - 8, "</d></d>", 8);
    free(s);
    xn_t *c = xn_copy(root);
    assert_true(xn_equal(root, c));
    xn_add_text(n, "!", 1);
    assert_false(xn_equal(root, c));
    xn_unref(c);
    xn_unref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_root_without_ns),
        cmocka_unit_test(test_text_merging),
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_refcount_across_thread),
        cmocka_unit_test(test_child_lookup),
        cmocka_unit_test(test_escaping_text),
        cmocka_unit_test(test_escaping_attributes),
        cmocka_unit_test(test_escaping_non_characters),
        cmocka_unit_test(test_namespace_declarations),
        cmocka_unit_test(test_stream_prefix),
        cmocka_unit_test(test_special_attributes),
        cmocka_unit_test(test_serialize_start),
        cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_deep_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
