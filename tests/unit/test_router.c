/* Router and service answers: each answer's exact shape, the RFC 6120 error rules, the hooks,
 * and disco#info's features equal to the dispatch table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "lib/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xml.h"
#include "lib/xstream.h"
#include "transport/router.h"
#include "transport/service.h"
#include "lib/stanza.h"

#define DOMAIN "irc.example.org"
#define USER "alice@example.org/pc"
#define STREAM_OPEN                                                                                \
    "<stream:stream xmlns='jabber:component:accept' "                                              \
    "xmlns:stream='http://etherx.jabber.org/streams'>"
#define NS_STANZAS_Q "'urn:ietf:params:xml:ns:xmpp-stanzas'"
#define WALL_TIME 1700000000 /* 2023-11-14T22:13:20Z, a Tuesday */

struct fx {
    struct ferry_config cfg;
    service_t *svc;
    router_t *router;
    int64_t mono;
    xn_t *sent[16];
    size_t nsent;
    xn_t *hooked[16];
    const char *hook_names[16];
    size_t nhooked;
    char log[8192];
};

/* ---- helpers ---- */

static void capture_log(enum log_level level, const char *line, void *ctx)
{
    struct fx *f = ctx;
    size_t used = strlen(f->log);
    snprintf(f->log + used, sizeof(f->log) - used, "%s|%s\n", log_level_name(level), line);
}

static int64_t fake_mono(void *ctx)
{
    return ((struct fx *)ctx)->mono;
}

static time_t fake_wall(void *ctx)
{
    (void)ctx;
    return WALL_TIME;
}

static int sink(void *ctx, xn_t *stanza)
{
    struct fx *f = ctx;
    assert_true(f->nsent < FERRY_ARRAY_LEN(f->sent));
    f->sent[f->nsent++] = stanza;
    return 0;
}

static void keep_hooked(struct fx *f, const char *name, xn_t *stanza)
{
    assert_true(f->nhooked < FERRY_ARRAY_LEN(f->hooked));
    f->hook_names[f->nhooked] = name;
    f->hooked[f->nhooked++] = stanza;
}

static void hook_contact(void *ctx, xn_t *stanza)
{
    keep_hooked(ctx, "contact", stanza);
}

static void hook_presence(void *ctx, xn_t *stanza)
{
    keep_hooked(ctx, "presence", stanza);
}

static void hook_response(void *ctx, xn_t *stanza)
{
    keep_hooked(ctx, "response", stanza);
}

static void hook_register(void *ctx, xn_t *stanza)
{
    keep_hooked(ctx, "register", stanza);
}

static void hook_search(void *ctx, xn_t *stanza)
{
    keep_hooked(ctx, "search", stanza);
}

static void keep_stanza(void *ctx, xn_t *stanza)
{
    xn_t **out = ctx;
    assert_null(*out);
    *out = stanza;
}

/* Parses one stanza written as in a component stream. */
static xn_t *parse(const char *xml)
{
    xn_t *stanza = NULL;
    struct xs_callbacks cb = {.stanza = keep_stanza};
    xs_parser_t *p = xs_new(&cb, &stanza, NULL);
    assert_int_equal(xs_feed(p, STREAM_OPEN, strlen(STREAM_OPEN)), XS_OK);
    assert_int_equal(xs_feed(p, xml, strlen(xml)), XS_OK);
    xs_free(p);
    assert_non_null(stanza);
    return stanza;
}

static void route(struct fx *f, const char *xml)
{
    router_route(f->router, parse(xml));
}

/* Asserts that exactly one stanza was sent and that it equals expected. */
static void expect_sent(struct fx *f, const char *expected)
{
    assert_int_equal(f->nsent, 1);
    xn_t *want = parse(expected);
    if (!xn_equal(want, f->sent[0])) {
        char *got = xn_serialize(f->sent[0], XN_NS_COMPONENT, 0, NULL);
        fail_msg("sent:\n  %s\nexpected:\n  %s", got, expected);
    }
    xn_unref(want);
    xn_unref(f->sent[0]);
    f->nsent = 0;
}

static void expect_nothing(struct fx *f)
{
    assert_int_equal(f->nsent, 0);
}

static int setup_with(void **state, int with_hooks)
{
    static const struct router_hooks hooks = {hook_contact, hook_presence, hook_response,
                                              NULL,         hook_register, hook_search};
    struct fx *f = calloc(1, sizeof(*f));
    f->cfg.component_jid = DOMAIN;
    f->cfg.legacy_protocol = "prpl-irc";
    f->cfg.legacy_name = "IRC";
    f->cfg.legacy_server = "irc.example.net";
    struct service_clock clock = {fake_mono, fake_wall, f};
    f->svc = service_new(&f->cfg, &clock);
    struct router_sink s = {sink, f};
    struct router_hooks h = hooks;
    h.ctx = f;
    f->router = router_new(DOMAIN, f->svc, &s, with_hooks ? &h : NULL);
    assert_non_null(f->router);
    log_set_sink(capture_log, f);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 0);
}

static int setup_hooks(void **state)
{
    return setup_with(state, 1);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    log_set_sink(NULL, NULL);
    for (size_t i = 0; i < f->nsent; i++)
        xn_unref(f->sent[i]);
    for (size_t i = 0; i < f->nhooked; i++)
        xn_unref(f->hooked[i]);
    router_free(f->router);
    service_free(f->svc);
    free(f);
    return 0;
}

/* ---- the service's answers ---- */

static void test_disco_info(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='get' id='d1' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    expect_sent(f, "<iq type='result' id='d1' from='" DOMAIN "' to='" USER "'>"
                   "<query xmlns='http://jabber.org/protocol/disco#info'>"
                   "<identity category='gateway' type='irc' name='IRC'/>"
                   "<feature var='http://jabber.org/protocol/disco#info'/>"
                   "<feature var='http://jabber.org/protocol/disco#items'/>"
                   "<feature var='jabber:iq:agents'/>"
                   "<feature var='jabber:iq:agent'/>"
                   "<feature var='jabber:iq:gateway'/>"
                   "<feature var='jabber:iq:register'/>"
                   "<feature var='jabber:iq:search'/>"
                   "<feature var='jabber:iq:version'/>"
                   "<feature var='urn:xmpp:time'/>"
                   "<feature var='jabber:iq:time'/>"
                   "<feature var='jabber:iq:last'/>"
                   "<feature var='vcard-temp'/>"
                   "<feature var='urn:xmpp:ping'/>"
                   "</query></iq>");
}

/* The features advertised are exactly the table's namespaces and extras, each once. */
static void test_disco_features_equal_table(void **state)
{
    struct fx *f = *state;
    const char *want[64];
    size_t nwant = 0;

    for (size_t i = 0; i < router_route_count(); i++) {
        const struct router_route *rt = router_route_at(i);
        const char *const *extra = rt->extra_features;
        for (size_t e = 0; e == 0 || (extra && extra[e - 1]); e++) {
            const char *feature = e == 0 ? rt->ns : extra[e - 1];
            int known = 0;
            for (size_t k = 0; k < nwant; k++)
                known |= strcmp(want[k], feature) == 0;
            if (!known)
                want[nwant++] = feature;
        }
    }
    route(f, "<iq type='get' id='d2' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    assert_int_equal(f->nsent, 1);
    const xn_t *query = xn_first_element(f->sent[0]);
    size_t n = 0;
    for (const xn_t *e = xn_first_element(query); e; e = xn_next_element(e)) {
        if (strcmp(xn_name(e), "feature") != 0)
            continue;
        assert_true(n < nwant);
        assert_string_equal(xn_attr(e, "var"), want[n]);
        n++;
    }
    assert_int_equal(n, nwant);
    assert_int_equal(router_feature_count(), nwant);
    assert_null(router_feature_at(nwant));
    /* Every feature is answered: a get with that payload does not meet service-unavailable. */
    for (size_t i = 0; i < router_route_count(); i++)
        assert_non_null(router_route_at(i)->handler);
    assert_null(router_route_at(router_route_count()));
}

static void test_disco_node_and_items(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='get' id='n1' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>");
    expect_sent(f, "<iq type='error' id='n1' from='" DOMAIN "' to='" USER "'>"
                   "<error type='cancel'><item-not-found xmlns=" NS_STANZAS_Q "/></error></iq>");
    route(f, "<iq type='get' id='i1' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    expect_sent(f, "<iq type='result' id='i1' from='" DOMAIN "' to='" USER "'>"
                   "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
}

#define AGENT_BODY                                                                                 \
    "<agent jid='" DOMAIN "'><name>IRC</name>"                                                     \
    "<description>IRC gateway to irc.example.net</description>"                                    \
    "<transport>IRC nickname</transport><service>irc</service><register/><search/></agent>"

static void test_agents(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='get' id='a1' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:agents'/></iq>");
    expect_sent(f, "<iq type='result' id='a1' from='" DOMAIN "' to='" USER "'>"
                   "<query xmlns='jabber:iq:agents'>" AGENT_BODY "</query></iq>");
    route(f, "<iq type='get' id='a2' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:agent'/></iq>");
    expect_sent(f, "<iq type='result' id='a2' from='" DOMAIN "' to='" USER "'>"
                   "<query xmlns='jabber:iq:agent'>" AGENT_BODY "</query></iq>");
}

static void test_gateway(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='get' id='g1' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:gateway'/></iq>");
    expect_sent(f, "<iq type='result' id='g1' from='" DOMAIN "' to='" USER "'>"
                   "<query xmlns='jabber:iq:gateway'>"
                   "<desc>Enter the IRC nickname of the contact you would like to add.</desc>"
                   "<prompt>IRC nickname</prompt></query></iq>");
    route(f, "<iq type='set' id='g2' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:gateway'><prompt>Bob Smith@home</prompt></query></iq>");
    expect_sent(f, "<iq type='result' id='g2' from='" DOMAIN "' to='" USER "'>"
                   "<query xmlns='jabber:iq:gateway'>"
                   "<jid>bob\\20smith\\40home@" DOMAIN "</jid></query></iq>");
}

static void test_gateway_cannot_map(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='set' id='g3' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:gateway'><prompt></prompt></query></iq>");
    expect_sent(f, "<iq type='error' id='g3' from='" DOMAIN "' to='" USER "'>"
                   "<error type='modify'><bad-request xmlns=" NS_STANZAS_Q "/>"
                   "<text xmlns=" NS_STANZAS_Q ">a &lt;prompt/&gt; with the legacy address is "
                   "required</text></error></iq>");

    char name[1200];
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    char *iq = xasprintf("<iq type='set' id='g4' from='" USER "' to='" DOMAIN "'>"
                         "<query xmlns='jabber:iq:gateway'><prompt>%s</prompt></query></iq>",
                         name);
    route(f, iq);
    free(iq);
    expect_sent(f, "<iq type='error' id='g4' from='" DOMAIN "' to='" USER "'>"
                   "<error type='modify'><bad-request xmlns=" NS_STANZAS_Q "/>"
                   "<text xmlns=" NS_STANZAS_Q ">this address cannot be mapped to a JID</text>"
                   "</error></iq>");
}

static void test_version(void **state)
{
    struct fx *f = *state;
    struct utsname un;
    assert_int_equal(uname(&un), 0);
    char *want = xasprintf("<iq type='result' id='v1' from='" DOMAIN "' to='" USER "'>"
                           "<query xmlns='jabber:iq:version'><name>Ferry</name>"
                           "<version>%s</version><os>%s %s</os></query></iq>",
                           FERRY_VERSION, un.sysname, un.release);
    route(f, "<iq type='get' id='v1' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:version'/></iq>");
    expect_sent(f, want);
    free(want);
}

static void test_time(void **state)
{
    struct fx *f = *state;
    setenv("TZ", "EST5", 1);
    tzset();
    route(f, "<iq type='get' id='t1' from='" USER "' to='" DOMAIN "'>"
             "<time xmlns='urn:xmpp:time'/></iq>");
    expect_sent(f, "<iq type='result' id='t1' from='" DOMAIN "' to='" USER "'>"
                   "<time xmlns='urn:xmpp:time'><tzo>-05:00</tzo>"
                   "<utc>2023-11-14T22:13:20Z</utc></time></iq>");
    route(f, "<iq type='get' id='t2' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:time'/></iq>");
    expect_sent(f, "<iq type='result' id='t2' from='" DOMAIN "' to='" USER "'>"
                   "<query xmlns='jabber:iq:time'><utc>20231114T22:13:20</utc><tz>EST</tz>"
                   "<display>Tue Nov 14 17:13:20 2023</display></query></iq>");
    setenv("TZ", "IST-5:30", 1);
    tzset();
    route(f, "<iq type='get' id='t3' from='" USER "' to='" DOMAIN "'>"
             "<time xmlns='urn:xmpp:time'/></iq>");
    expect_sent(f, "<iq type='result' id='t3' from='" DOMAIN "' to='" USER "'>"
                   "<time xmlns='urn:xmpp:time'><tzo>+05:30</tzo>"
                   "<utc>2023-11-14T22:13:20Z</utc></time></iq>");
    unsetenv("TZ");
    tzset();
}

static void test_last(void **state)
{
    struct fx *f = *state;
    f->mono += 42999;
    route(f, "<iq type='get' id='l1' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:last'/></iq>");
    expect_sent(f, "<iq type='result' id='l1' from='" DOMAIN "' to='" USER "'>"
                   "<query xmlns='jabber:iq:last' seconds='42'/></iq>");
}

static void test_vcard_and_ping(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='get' id='c1' from='" USER "' to='" DOMAIN "'>"
             "<vCard xmlns='vcard-temp'/></iq>");
    expect_sent(f, "<iq type='result' id='c1' from='" DOMAIN "' to='" USER "'>"
                   "<vCard xmlns='vcard-temp'><FN>IRC</FN>"
                   "<DESC>IRC gateway to irc.example.net</DESC>"
                   "<URL>xmpp:" DOMAIN "</URL></vCard></iq>");
    route(f, "<iq type='get' id='p1' from='" USER "' to='" DOMAIN "/x'>"
             "<ping xmlns='urn:xmpp:ping'/></iq>");
    expect_sent(f, "<iq type='result' id='p1' from='" DOMAIN "/x' to='" USER "'/>");
}

static void test_gateway_types(void **state)
{
    (void)state;
    assert_string_equal(service_gateway_type("prpl-irc"), "irc");
    assert_string_equal(service_gateway_type("prpl-jabber"), "xmpp");
    assert_string_equal(service_gateway_type("prpl-simple"), "simple");
    assert_string_equal(service_gateway_type("prpl-gg"), "gadu-gadu");
    assert_string_equal(service_gateway_type("prpl-meanwhile"), "sametime");
    assert_string_equal(service_gateway_type("prpl-novell"), "novell");
    assert_string_equal(service_gateway_type("prpl-foo"), "foo");
    assert_string_equal(service_prompt("prpl-jabber"), "XMPP address");
    assert_null(service_prompt("prpl-foo"));
}

/* ---- errors and the rules about answering ---- */

static void test_unknown_namespace(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='get' id='u1' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='urn:example:nothing'/></iq>");
    expect_sent(f, "<iq type='error' id='u1' from='" DOMAIN "' to='" USER "'>"
                   "<error type='cancel'><service-unavailable xmlns=" NS_STANZAS_Q "/>"
                   "</error></iq>");
    /* A known namespace with a type it has no handler for. */
    route(f, "<iq type='set' id='u2' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:version'/></iq>");
    expect_sent(f, "<iq type='error' id='u2' from='" DOMAIN "' to='" USER "'>"
                   "<error type='cancel'><service-unavailable xmlns=" NS_STANZAS_Q "/>"
                   "</error></iq>");
}

static void test_bad_request(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='get' from='" USER "' to='" DOMAIN "'><ping xmlns='urn:xmpp:ping'/></iq>");
    expect_sent(f, "<iq type='error' from='" DOMAIN "' to='" USER "'>"
                   "<error type='modify'><bad-request xmlns=" NS_STANZAS_Q "/>"
                   "<text xmlns=" NS_STANZAS_Q ">IQ without id</text></error></iq>");
    route(f, "<iq type='fetch' id='b2' from='" USER "' to='" DOMAIN "'>"
             "<ping xmlns='urn:xmpp:ping'/></iq>");
    expect_sent(f, "<iq type='error' id='b2' from='" DOMAIN "' to='" USER "'>"
                   "<error type='modify'><bad-request xmlns=" NS_STANZAS_Q "/>"
                   "<text xmlns=" NS_STANZAS_Q ">unknown IQ type</text></error></iq>");
    route(f, "<iq id='b3' from='" USER "' to='" DOMAIN "'><ping xmlns='urn:xmpp:ping'/></iq>");
    expect_sent(f, "<iq type='error' id='b3' from='" DOMAIN "' to='" USER "'>"
                   "<error type='modify'><bad-request xmlns=" NS_STANZAS_Q "/>"
                   "<text xmlns=" NS_STANZAS_Q ">unknown IQ type</text></error></iq>");
    route(f, "<iq type='get' id='b4' from='" USER "' to='" DOMAIN "'/>");
    expect_sent(f, "<iq type='error' id='b4' from='" DOMAIN "' to='" USER "'>"
                   "<error type='modify'><bad-request xmlns=" NS_STANZAS_Q "/>"
                   "<text xmlns=" NS_STANZAS_Q ">an IQ carries exactly one payload</text>"
                   "</error></iq>");
    route(f, "<iq type='get' id='b5' from='" USER "' to='" DOMAIN "'>"
             "<ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>");
    expect_sent(f, "<iq type='error' id='b5' from='" DOMAIN "' to='" USER "'>"
                   "<error type='modify'><bad-request xmlns=" NS_STANZAS_Q "/>"
                   "<text xmlns=" NS_STANZAS_Q ">an IQ carries exactly one payload</text>"
                   "</error></iq>");
}

static void test_never_answer_errors_and_results(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='result' id='r1' from='" USER "' to='" DOMAIN "'/>");
    route(f, "<iq type='error' id='r2' from='" USER "' to='" DOMAIN "'>"
             "<error type='cancel'><item-not-found xmlns=" NS_STANZAS_Q "/></error></iq>");
    route(f, "<iq type='error' id='r3' from='" USER "' to='bob@" DOMAIN "'/>");
    route(f, "<message type='error' from='" USER "' to='" DOMAIN "'><body>x</body></message>");
    route(f, "<message type='error' from='" USER "' to='bob@" DOMAIN "'/>");
    route(f, "<presence type='error' from='" USER "' to='bob@" DOMAIN "'/>");
    expect_nothing(f);
}

static void test_missing_addresses_dropped(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='get' id='m1' to='" DOMAIN "'><ping xmlns='urn:xmpp:ping'/></iq>");
    route(f, "<iq type='get' id='m2' from='" USER "'><ping xmlns='urn:xmpp:ping'/></iq>");
    route(f, "<message from='" USER "'><body>x</body></message>");
    route(f, "<iq type='get' id='m3' from='" USER "' to='other.example.org'>"
             "<ping xmlns='urn:xmpp:ping'/></iq>");
    route(f, "<iq type='get' id='m4' from='@@' to='" DOMAIN "'><ping xmlns='urn:xmpp:ping'/></iq>");
    route(f, "<handshake/>");
    expect_nothing(f);
    assert_non_null(strstr(f->log, "warn|[router] dropping <iq> without from"));
    assert_non_null(strstr(f->log, "warn|[router] dropping <iq> without to"));
    assert_non_null(strstr(f->log, "dropping <iq> for other.example.org: not in " DOMAIN));
}

static void test_contacts_without_sessions(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='get' id='c1' from='" USER "' to='bob@" DOMAIN "'>"
             "<vCard xmlns='vcard-temp'/></iq>");
    expect_sent(f, "<iq type='error' id='c1' from='bob@" DOMAIN "' to='" USER "'>"
                   "<error type='cancel'><service-unavailable xmlns=" NS_STANZAS_Q "/>"
                   "</error></iq>");
    route(f, "<message type='chat' id='m1' from='" USER "' to='bob@" DOMAIN "'>"
             "<body>hi</body></message>");
    expect_sent(f, "<message type='error' id='m1' from='bob@" DOMAIN "' to='" USER "'>"
                   "<error type='cancel'><service-unavailable xmlns=" NS_STANZAS_Q "/>"
                   "</error></message>");
    route(f, "<presence from='" USER "' to='bob@" DOMAIN "'/>");
    route(f, "<presence type='subscribe' from='" USER "' to='bob@" DOMAIN "'/>");
    route(f, "<presence from='" USER "' to='" DOMAIN "'/>");
    expect_nothing(f);
}

static void test_message_to_service(void **state)
{
    struct fx *f = *state;
    route(f, "<message from='" USER "' to='" DOMAIN "'><body>help</body></message>");
    expect_sent(f, "<message type='error' from='" DOMAIN "' to='" USER "'>"
                   "<error type='cancel'><service-unavailable xmlns=" NS_STANZAS_Q "/>"
                   "</error></message>");
}

static void test_hooks(void **state)
{
    struct fx *f = *state;
    route(f, "<message type='chat' from='" USER "' to='bob@" DOMAIN "'><body>hi</body></message>");
    route(f, "<presence from='" USER "' to='" DOMAIN "'/>");
    route(f, "<iq type='result' id='x1' from='" USER "' to='" DOMAIN "'/>");
    route(f, "<iq type='get' id='x2' from='" USER "' to='bob@" DOMAIN "'>"
             "<vCard xmlns='vcard-temp'/></iq>");
    /* The hooks do not change what the service itself answers. */
    route(f, "<iq type='get' id='x3' from='" USER "' to='" DOMAIN "'>"
             "<ping xmlns='urn:xmpp:ping'/></iq>");
    expect_sent(f, "<iq type='result' id='x3' from='" DOMAIN "' to='" USER "'/>");
    assert_int_equal(f->nhooked, 4);
    assert_string_equal(f->hook_names[0], "contact");
    assert_string_equal(xn_name(f->hooked[0]), "message");
    assert_string_equal(f->hook_names[1], "presence");
    assert_string_equal(f->hook_names[2], "response");
    assert_string_equal(xn_attr(f->hooked[2], "id"), "x1");
    assert_string_equal(f->hook_names[3], "contact");
    assert_string_equal(xn_attr(f->hooked[3], "id"), "x2");
}

/* Registration is deferred to the hook, which answers later: the router sends nothing. */
static void test_register_deferred_to_hook(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='get' id='r1' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:register'/></iq>");
    route(f, "<iq type='set' id='r2' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:register'><remove/></query></iq>");
    expect_nothing(f);
    assert_int_equal(f->nhooked, 2);
    assert_string_equal(f->hook_names[0], "register");
    assert_string_equal(xn_attr(f->hooked[0], "id"), "r1");
    assert_string_equal(f->hook_names[1], "register");
    assert_string_equal(xn_attr(f->hooked[1], "id"), "r2");
}

static void test_register_without_hook(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='set' id='r3' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:register'><username>a</username></query></iq>");
    expect_sent(f, "<iq type='error' id='r3' from='" DOMAIN "' to='" USER "'>"
                   "<error type='cancel'><service-unavailable xmlns=" NS_STANZAS_Q "/>"
                   "</error></iq>");
}

/* Search runs on the legacy network: deferred to the hook like registration. */
static void test_search_deferred_to_hook(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='get' id='s1' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:search'/></iq>");
    route(f, "<iq type='set' id='s2' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:search'><nick>bob</nick></query></iq>");
    expect_nothing(f);
    assert_int_equal(f->nhooked, 2);
    assert_string_equal(f->hook_names[0], "search");
    assert_string_equal(xn_attr(f->hooked[0], "id"), "s1");
    assert_string_equal(f->hook_names[1], "search");
    assert_string_equal(xn_attr(f->hooked[1], "id"), "s2");
}

static void test_search_without_hook(void **state)
{
    struct fx *f = *state;
    route(f, "<iq type='set' id='s3' from='" USER "' to='" DOMAIN "'>"
             "<query xmlns='jabber:iq:search'><nick>bob</nick></query></iq>");
    expect_sent(f, "<iq type='error' id='s3' from='" DOMAIN "' to='" USER "'>"
                   "<error type='cancel'><service-unavailable xmlns=" NS_STANZAS_Q "/>"
                   "</error></iq>");
}

static void test_stanza_helpers(void **state)
{
    (void)state;
    assert_string_equal(stanza_error_type("bad-request"), "modify");
    assert_string_equal(stanza_error_type("not-authorized"), "auth");
    assert_string_equal(stanza_error_type("resource-constraint"), "wait");
    assert_string_equal(stanza_error_type("no-such-condition"), "cancel");
    xn_t *chat = parse("<message type='chat' from='a@b' to='c@d'/>");
    xn_t *err = parse("<message type='error' from='a@b' to='c@d'/>");
    xn_t *result = parse("<iq type='result' id='1' from='a@b' to='c@d'/>");
    xn_t *plain = parse("<presence from='a@b' to='c@d'/>");
    assert_true(stanza_may_bounce(chat));
    assert_true(stanza_may_bounce(plain));
    assert_false(stanza_may_bounce(err));
    assert_false(stanza_may_bounce(result));
    assert_int_equal(stanza_kind(chat), STANZA_MESSAGE);
    assert_int_equal(stanza_kind(plain), STANZA_PRESENCE);
    assert_int_equal(stanza_kind(result), STANZA_IQ);
    xn_unref(chat);
    xn_unref(err);
    xn_unref(result);
    xn_unref(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_disco_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disco_features_equal_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disco_node_and_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_cannot_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vcard_and_ping, setup, teardown),
        cmocka_unit_test(test_gateway_types),
        cmocka_unit_test_setup_teardown(test_unknown_namespace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_answer_errors_and_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_addresses_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contacts_without_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_to_service, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hooks, setup_hooks, teardown),
        cmocka_unit_test_setup_teardown(test_register_deferred_to_hook, setup_hooks, teardown),
        cmocka_unit_test_setup_teardown(test_register_without_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_deferred_to_hook, setup_hooks, teardown),
        cmocka_unit_test_setup_teardown(test_search_without_hook, setup, teardown),
        cmocka_unit_test(test_stanza_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
