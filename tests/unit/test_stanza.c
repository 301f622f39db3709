/* Unit tests for lib/stanza: stanza kinds, IQ results, RFC 6120 errors, who may be answered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/stanza.h"
#include "lib/xml.h"

static xn_t *stanza(const char *name, const char *type, const char *id)
{
    xn_t *s = xn_new(XN_NS_COMPONENT, name);
    xn_set_attr(s, "from", "alice@example.org/desk");
    xn_set_attr(s, "to", "irc.example.org");
    if (type)
        xn_set_attr(s, "type", type);
    if (id)
        xn_set_attr(s, "id", id);
    return s;
}

static void assert_xml(xn_t *node, const char *expected)
{
    char *text = xn_serialize(node, XN_NS_COMPONENT, XN_SER_DEFAULT, NULL);
    assert_string_equal(text, expected);
    free(text);
}

static void test_kinds(void **state)
{
    xn_t *m = stanza("message", NULL, NULL), *p = stanza("presence", NULL, NULL);
    xn_t *q = stanza("iq", "get", "1"), *other = xn_new(XN_NS_COMPONENT, "handshake");
    xn_t *foreign = xn_new("jabber:client", "message");
    assert_int_equal(stanza_kind(m), STANZA_MESSAGE);
    assert_int_equal(stanza_kind(p), STANZA_PRESENCE);
    assert_int_equal(stanza_kind(q), STANZA_IQ);
    assert_int_equal(stanza_kind(other), STANZA_OTHER);
    assert_int_equal(stanza_kind(foreign), STANZA_OTHER);
    xn_unref(m), xn_unref(p), xn_unref(q), xn_unref(other), xn_unref(foreign);
}

static void test_iq_result_swaps_addresses(void **state)
{
    xn_t *iq = stanza("iq", "get", "q1");
    xn_add_child(iq, "urn:xmpp:ping", "ping");
    xn_t *result = stanza_iq_result(iq);
    assert_xml(result, "<iq type='result' id='q1' from='irc.example.org' "
                       "to='alice@example.org/desk'/>");
    xn_t *payload = NULL;
    xn_t *with = stanza_iq_result_with(iq, "jabber:iq:version", "query", &payload);
    assert_non_null(payload);
    xn_add_child_text(payload, NULL, "name", "Ferry");
    assert_xml(with, "<iq type='result' id='q1' from='irc.example.org' "
                     "to='alice@example.org/desk'><query xmlns='jabber:iq:version'>"
                     "<name>Ferry</name></query></iq>");
    xn_unref(iq), xn_unref(result), xn_unref(with);
}

static void test_error_with_type_and_text(void **state)
{
    xn_t *iq = stanza("iq", "set", "r1");
    xn_add_child(iq, "jabber:iq:register", "query");
    xn_t *err = stanza_error(iq, "not-authorized", "Bad password");
    /* The payload is not echoed: an answer to an oversized stanza must stay small. */
    assert_xml(err, "<iq type='error' id='r1' from='irc.example.org' to='alice@example.org/desk'>"
                    "<error type='auth'><not-authorized "
                    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
                    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Bad password</text></error></iq>");
    xn_t *msg = stanza("message", "chat", NULL);
    xn_t *merr = stanza_error(msg, "service-unavailable", NULL);
    assert_xml(merr, "<message type='error' from='irc.example.org' to='alice@example.org/desk'>"
                     "<error type='cancel'><service-unavailable "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
    xn_unref(iq), xn_unref(err), xn_unref(msg), xn_unref(merr);
}

static void test_error_types(void **state)
{
    assert_string_equal(stanza_error_type("bad-request"), "modify");
    assert_string_equal(stanza_error_type("remote-server-timeout"), "wait");
    assert_string_equal(stanza_error_type("registration-required"), "auth");
    assert_string_equal(stanza_error_type("item-not-found"), "cancel");
    assert_string_equal(stanza_error_type("no-such-condition"), "cancel");
}

static void test_may_bounce(void **state)
{
    const struct {
        const char *name, *type;
        int expected;
    } cases[] = {
        {"iq", "get", 1},        {"iq", "set", 1},         {"iq", "result", 0},
        {"iq", "error", 0},      {"message", NULL, 1},     {"message", "chat", 1},
        {"message", "error", 0}, {"presence", "error", 0}, {"presence", NULL, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        xn_t *s = stanza(cases[i].name, cases[i].type, "x");
        assert_int_equal(stanza_may_bounce(s), cases[i].expected);
        xn_unref(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_iq_result_swaps_addresses),
        cmocka_unit_test(test_error_with_type_and_text),
        cmocka_unit_test(test_error_types),
        cmocka_unit_test(test_may_bounce),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
