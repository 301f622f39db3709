/* libFuzzer target for the component link past the parser: the input is what the server
 * sends after the stream header, and every stanza it holds goes through router_route with the
 * real service handlers. The bridge's entry points are stand-ins that drop the stanza, or
 * answer one error where the real bridge would answer a deferred IQ, so libpurple stays out.
 *
 * A fake sink serializes every outbound stanza and checks the router's promises (router.h):
 * every IQ get/set with an id and usable addresses gets exactly one answer (an IQ result or
 * error with the same id, to the sender); an IQ result/error or a message of type error gets
 * none; anything else gets at most one; every outbound stanza has a to and a from inside the
 * component domain. A broken promise aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/stanza.h"
#include "lib/util.h"
#include "lib/xml.h"
#include "lib/xstream.h"
#include "transport/router.h"
#include "transport/service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DOMAIN "irc.example.org"
#define STREAM_OPEN                                                                                \
    "<stream:stream xmlns='jabber:component:accept' "                                              \
    "xmlns:stream='http://etherx.jabber.org/streams' from='" DOMAIN "' id='fuzz'>"

/* What the stanza being routed expects of the sink. */
enum expect { EXPECT_AT_MOST_ONE, EXPECT_NONE, EXPECT_ONE_ANSWER };

struct fuzz {
    router_t *router;
    xn_t *in; /* the stanza being routed (our own reference) */
    enum expect expect;
    size_t out; /* stanzas sent while routing it */
};

static void fail(const char *why, const xn_t *stanza)
{
    char *xml = stanza ? xn_serialize(stanza, XN_NS_COMPONENT, 0, NULL) : NULL;
    fprintf(stderr, "fuzz_router: %s%s%s\n", why, xml ? ": " : "", xml ? xml : "");
    free(xml);
    abort();
}

static int streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* 1 when s is a JID whose domain is the component's (the router compares normalized). */
static int in_domain(const char *s)
{
    jid_t *jid = s ? jid_parse(s) : NULL;
    int ok = jid && strcmp(jid_domain(jid), DOMAIN) == 0;
    jid_free(jid);
    return ok;
}

/* The router answers only stanzas whose from and to are valid and whose to is ours. */
static int routable(const xn_t *stanza)
{
    const char *from = xn_attr(stanza, "from");
    jid_t *jid = from ? jid_parse(from) : NULL;
    int ok = jid && in_domain(xn_attr(stanza, "to"));
    jid_free(jid);
    return ok;
}

static enum expect expectation(const xn_t *stanza)
{
    enum stanza_kind kind = stanza_kind(stanza);
    const char *type = xn_attr(stanza, "type");
    if (kind == STANZA_IQ && (streq(type, "result") || streq(type, "error")))
        return EXPECT_NONE;
    if (kind == STANZA_MESSAGE && streq(type, "error"))
        return EXPECT_NONE;
    if (kind == STANZA_IQ && (streq(type, "get") || streq(type, "set")) && xn_attr(stanza, "id") &&
        routable(stanza))
        return EXPECT_ONE_ANSWER;
    return EXPECT_AT_MOST_ONE;
}

static void check_answer(const struct fuzz *f, const xn_t *out)
{
    const char *type = xn_attr(out, "type");
    if (stanza_kind(out) != STANZA_IQ || !(streq(type, "result") || streq(type, "error")))
        fail("an IQ get/set was answered with something else", out);
    if (!streq(xn_attr(out, "id"), xn_attr(f->in, "id")))
        fail("an IQ answer has the wrong id", out);
    if (!streq(xn_attr(out, "to"), xn_attr(f->in, "from")))
        fail("an IQ answer is not addressed to the requester", out);
}

static int sink(void *ctx, xn_t *stanza)
{
    struct fuzz *f = ctx;
    size_t len;
    char *xml = xn_serialize(stanza, XN_NS_COMPONENT, 0, &len);
    if (xml == NULL || len == 0)
        fail("an outbound stanza does not serialize", stanza);
    free(xml);
    if (f->in == NULL)
        fail("a stanza was sent outside router_route", stanza);
    if (xn_attr(stanza, "to") == NULL)
        fail("an outbound stanza has no to", stanza);
    if (!in_domain(xn_attr(stanza, "from")))
        fail("an outbound stanza's from is not in the component domain", stanza);
    f->out++;
    if (f->expect == EXPECT_NONE)
        fail("a result or an error was answered", f->in);
    if (f->out > 1)
        fail("one stanza got more than one answer", f->in);
    if (f->expect == EXPECT_ONE_ANSWER)
        check_answer(f, stanza);
    xn_unref(stanza);
    return 0;
}

/* The bridge's stand-ins. Deferred IQs (registration, search) and IQs to contacts would be
 * answered by the bridge: answer them with one error here; everything else is dropped. */
static void answer_or_drop(void *ctx, xn_t *stanza)
{
    struct fuzz *f = ctx;
    const char *type = xn_attr(stanza, "type");
    if (stanza_kind(stanza) == STANZA_IQ && (streq(type, "get") || streq(type, "set")))
        router_bounce(f->router, stanza, "feature-not-implemented", NULL);
    xn_unref(stanza);
}

static void drop(void *ctx, xn_t *stanza)
{
    xn_unref(stanza);
}

static void on_stanza(void *ctx, xn_t *stanza)
{
    struct fuzz *f = ctx;
    f->in = xn_ref(stanza);
    f->expect = expectation(stanza);
    f->out = 0;
    router_route(f->router, stanza);
    if (f->expect == EXPECT_ONE_ANSWER && f->out != 1)
        fail("an IQ get/set got no answer", f->in);
    xn_unref(f->in);
    f->in = NULL;
}

static void quiet(enum log_level level, const char *line, void *ctx)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct xs_callbacks callbacks = {.stanza = on_stanza};
    struct xs_limits lim = {8192, 16};
    struct ferry_config cfg;
    struct fuzz f = {0};

    /* Debug level, so the log lines' formatting runs too; the lines go nowhere. */
    log_set_sink(quiet, NULL);
    log_set_level(LOG_LEVEL_DEBUG);
    memset(&cfg, 0, sizeof(cfg));
    cfg.component_jid = DOMAIN;
    cfg.legacy_protocol = "prpl-irc";
    cfg.legacy_name = "IRC";
    cfg.legacy_server = "irc.example.net";
    service_t *svc = service_new(&cfg, NULL);
    struct router_sink s = {sink, &f};
    struct router_hooks hooks = {.to_contact = answer_or_drop,
                                 .presence = drop,
                                 .iq_response = drop,
                                 .ctx = &f,
                                 .register_iq = answer_or_drop,
                                 .search_iq = answer_or_drop};
    f.router = router_new(DOMAIN, svc, &s, &hooks);
    if (f.router == NULL)
        fail("router_new failed", NULL);
    xs_parser_t *p = xs_new(&callbacks, &f, &lim);
    if (xs_feed(p, STREAM_OPEN, strlen(STREAM_OPEN)) == XS_OK)
        xs_feed(p, (const char *)data, size);
    xs_free(p);
    router_free(f.router);
    service_free(svc);
    return 0;
}
