/* The component link driven one step at a time over a socketpair, with a fake clock and a
 * fake connector: the test plays the XMPP server on the other end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xml.h"
#include "lib/xstream.h"
#include "transport/component.h"

#define DOMAIN "irc.example.org"
#define USER "alice@example.org/pc"
#define SECRET "s3cret"
#define STREAM_ID "3BF96D32"
#define DIGEST "a984b871214a298f0f743fcd25f99b10838ba12b" /* sha1("3BF96D32" "s3cret") */
#define SERVER_OPEN                                                                                \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "                         \
    "xmlns:stream='http://etherx.jabber.org/streams' from='" DOMAIN "' id='" STREAM_ID "'>"
#define NS_SE "xmlns='urn:ietf:params:xml:ns:xmpp-streams'"
#define STREAM_ERROR(cond) "<stream:error><" cond " " NS_SE "/></stream:error></stream:stream>"
#define MAX_STANZA 1024

struct fx {
    struct ferry_config cfg;
    component_t *c;
    int64_t clock;
    uint32_t rnd;
    int peer; /* the server's end of the current connection */
    int connects;
    int refuse; /* the connector fails with ECONNREFUSED */
    int sndbuf; /* SO_SNDBUF of the component's end, when not 0 */
    xn_t *got[64];
    size_t ngot;
    int ups, downs, drains;
    char log[65536];
    /* The test server's view of what the component wrote. */
    xs_parser_t *srv;
    char *srv_to;
    int srv_opened, srv_closed;
    xn_t *srv_st[64];
    size_t srv_n;
};

/* ---- the fake world ---- */

static int64_t fake_clock(void *ctx)
{
    return ((struct fx *)ctx)->clock;
}

static uint32_t fake_random(void *ctx)
{
    return ((struct fx *)ctx)->rnd;
}

static void srv_reset(struct fx *f)
{
    xs_reset(f->srv);
    free(f->srv_to);
    f->srv_to = NULL;
    f->srv_opened = f->srv_closed = 0;
    for (size_t i = 0; i < f->srv_n; i++)
        xn_unref(f->srv_st[i]);
    f->srv_n = 0;
}

static int fake_connect(void *ctx, const char *host, int port, int *in_progress)
{
    struct fx *f = ctx;
    int sv[2];

    assert_string_equal(host, "xmpp.test");
    assert_int_equal(port, 5347);
    f->connects++;
    if (f->refuse) {
        errno = ECONNREFUSED;
        return -1;
    }
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    if (f->peer >= 0)
        close(f->peer);
    f->peer = sv[1];
    fcntl(f->peer, F_SETFL, O_NONBLOCK);
    if (f->sndbuf)
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &f->sndbuf, sizeof(f->sndbuf));
    srv_reset(f);
    *in_progress = 0;
    return sv[0];
}

static void on_stanza(void *ctx, xn_t *stanza)
{
    struct fx *f = ctx;
    assert_true(f->ngot < FERRY_ARRAY_LEN(f->got));
    f->got[f->ngot++] = stanza;
}

static void on_up(void *ctx)
{
    ((struct fx *)ctx)->ups++;
}

static void on_down(void *ctx)
{
    ((struct fx *)ctx)->downs++;
}

static void on_drained(void *ctx)
{
    ((struct fx *)ctx)->drains++;
}

static void capture_log(enum log_level level, const char *line, void *ctx)
{
    struct fx *f = ctx;
    size_t used = strlen(f->log);
    snprintf(f->log + used, sizeof(f->log) - used, "%s|%s\n", log_level_name(level), line);
}

static void srv_open(void *ctx, const xn_t *stream)
{
    struct fx *f = ctx;
    f->srv_opened = 1;
    assert_string_equal(xn_ns(stream), XN_NS_STREAMS);
    assert_string_equal(xn_name(stream), "stream");
    free(f->srv_to);
    f->srv_to = xn_attr(stream, "to") ? xstrdup(xn_attr(stream, "to")) : NULL;
}

static void srv_stanza(void *ctx, xn_t *stanza)
{
    struct fx *f = ctx;
    assert_true(f->srv_n < FERRY_ARRAY_LEN(f->srv_st));
    f->srv_st[f->srv_n++] = stanza;
}

static void srv_close(void *ctx)
{
    ((struct fx *)ctx)->srv_closed = 1;
}

static void srv_error(void *ctx, enum xs_error err, const char *detail)
{
    fail_msg("the component wrote bad XML: %s (%s)", xs_error_condition(err), detail);
}

/* Everything the component wrote since the last call (caller frees); also parsed. */
static char *drain(struct fx *f)
{
    size_t len = 0, cap = 4096;
    char *out = xmalloc(cap);
    ssize_t n;
    while ((n = read(f->peer, out + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 2)
            out = xrealloc(out, cap *= 2);
    }
    out[len] = '\0';
    if (len > 0)
        xs_feed(f->srv, out, len);
    return out;
}

static void expect_written(struct fx *f, const char *want)
{
    char *got = drain(f);
    assert_string_equal(got, want);
    free(got);
}

static void expect_silence(struct fx *f)
{
    expect_written(f, "");
}

static void server_says(struct fx *f, const char *data)
{
    assert_int_equal(write(f->peer, data, strlen(data)), (ssize_t)strlen(data));
}

static int readable(struct fx *f)
{
    return component_on_readable(f->c);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->peer = -1;
    f->clock = 1000000;
    f->cfg.component_jid = DOMAIN;
    f->cfg.component_host = "xmpp.test";
    f->cfg.component_port = 5347;
    f->cfg.component_secret = SECRET;
    f->cfg.component_keepalive_ms = 60000;
    f->cfg.component_ping_ms = 120000;
    f->cfg.component_ping_timeout_ms = 30000;
    f->cfg.component_reconnect_min_ms = 1000;
    f->cfg.component_reconnect_max_ms = 60000;
    f->cfg.component_max_stanza_bytes = MAX_STANZA;
    struct xs_callbacks cb = {srv_open, srv_stanza, srv_close, srv_error};
    f->srv = xs_new(&cb, f, NULL);
    log_set_sink(capture_log, f);
    log_set_level(LOG_LEVEL_DEBUG);
    struct component_events ev = {.stanza = on_stanza,
                                  .link_up = on_up,
                                  .link_down = on_down,
                                  .drained = on_drained,
                                  .ctx = f};
    struct component_ops ops = {fake_clock, fake_connect, fake_random, f};
    f->c = component_new(&f->cfg, &ev, &ops);
    assert_non_null(f->c);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    component_free(f->c);
    log_set_sink(NULL, NULL);
    log_set_level(LOG_LEVEL_INFO);
    log_clear_secrets();
    for (size_t i = 0; i < f->ngot; i++)
        xn_unref(f->got[i]);
    srv_reset(f);
    xs_free(f->srv);
    if (f->peer >= 0)
        close(f->peer);
    free(f);
    return 0;
}

/* Connects and answers the stream header; leaves the handshake unanswered. */
static void open_stream(struct fx *f)
{
    assert_int_equal(component_tick(f->c), COMPONENT_OK);
    assert_int_equal(component_state(f->c), COMPONENT_OPENING);
    free(drain(f));
    assert_true(f->srv_opened);
    assert_string_equal(f->srv_to, DOMAIN);
    server_says(f, SERVER_OPEN);
    assert_int_equal(readable(f), COMPONENT_OK);
    assert_int_equal(component_state(f->c), COMPONENT_HANDSHAKING);
    expect_written(f, "<handshake>" DIGEST "</handshake>");
}

static void bring_up(struct fx *f)
{
    open_stream(f);
    server_says(f, "<handshake/>");
    assert_int_equal(readable(f), COMPONENT_OK);
    assert_int_equal(component_state(f->c), COMPONENT_UP);
}

/* The stream error the component sent last, by condition. */
static const char *sent_stream_error(struct fx *f)
{
    for (size_t i = f->srv_n; i-- > 0;)
        if (strcmp(xn_name(f->srv_st[i]), "error") == 0 &&
            strcmp(xn_ns(f->srv_st[i]), XN_NS_STREAMS) == 0)
            return xn_name(xn_first_element(f->srv_st[i]));
    return NULL;
}

/* ---- the handshake ---- */

static void test_handshake_success(void **state)
{
    struct fx *f = *state;
    assert_int_equal(component_timeout(f->c), 0); /* the first tick connects */
    bring_up(f);
    assert_int_equal(f->ups, 1);
    assert_int_equal(component_attempts(f->c), 0);
    assert_non_null(
        strstr(f->log, "info|[component] link up: " DOMAIN " attached to xmpp.test:5347"));
    /* Neither the secret nor the digest reaches the log, at any level. */
    assert_null(strstr(f->log, SECRET));
    assert_null(strstr(f->log, DIGEST));
}

static void test_stream_header_exact(void **state)
{
    struct fx *f = *state;
    assert_int_equal(component_tick(f->c), COMPONENT_OK);
    expect_written(f, "<stream:stream xmlns='jabber:component:accept' "
                      "xmlns:stream='http://etherx.jabber.org/streams' to='" DOMAIN "'>");
}

static void test_bad_secret_is_fatal(void **state)
{
    struct fx *f = *state;
    open_stream(f);
    server_says(f, "<stream:error><not-authorized " NS_SE "/>"
                   "<text " NS_SE ">Given token does not match calculated token</text>"
                   "</stream:error></stream:stream>");
    assert_int_equal(readable(f), COMPONENT_EFATAL);
    assert_int_equal(component_state(f->c), COMPONENT_FATAL);
    assert_int_equal(component_tick(f->c), COMPONENT_EFATAL);
    assert_int_equal(component_timeout(f->c), -1);
    expect_written(f, "</stream:stream>");
    assert_non_null(strstr(f->log, "error|[component] the XMPP server at xmpp.test:5347 refused "
                                   "the handshake for " DOMAIN " (not-authorized)"));
    assert_null(strstr(f->log, SECRET));
    assert_null(strstr(f->log, DIGEST));
    assert_int_equal(f->connects, 1);
}

/* After the link was up once, even not-authorized only means: try again later. */
static void test_not_authorized_after_up_reconnects(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    close(f->peer);
    f->peer = -1;
    assert_int_equal(readable(f), COMPONENT_OK);
    assert_int_equal(component_state(f->c), COMPONENT_WAITING);
    assert_int_equal(f->downs, 1);
    f->clock = component_next_attempt(f->c);
    open_stream(f);
    server_says(f, STREAM_ERROR("not-authorized"));
    assert_int_equal(readable(f), COMPONENT_OK);
    assert_int_equal(component_state(f->c), COMPONENT_WAITING);
}

static void test_conflict_backs_off(void **state)
{
    struct fx *f = *state;
    f->rnd = 7;
    open_stream(f);
    server_says(f, "<stream:error><conflict " NS_SE "/></stream:error></stream:stream>");
    int64_t t0 = f->clock;
    assert_int_equal(readable(f), COMPONENT_OK);
    assert_int_equal(component_state(f->c), COMPONENT_WAITING);
    expect_written(f, "</stream:stream>");
    /* The first retry waits exactly reconnect_min: the jitter never goes below it. */
    assert_int_equal(component_next_attempt(f->c), t0 + 1000);
    assert_int_equal(component_timeout(f->c), 1000);
    assert_non_null(
        strstr(f->log, "warn|[component] another component is attached as " DOMAIN " (conflict)"));
    assert_non_null(strstr(f->log, "info|[component] stream error conflict; reconnecting to "
                                   "xmpp.test:5347 in 1.0 s (attempt 1)"));
    f->clock = t0 + 999;
    component_tick(f->c);
    assert_int_equal(f->connects, 1);
    f->clock = t0 + 1000;
    component_tick(f->c);
    assert_int_equal(f->connects, 2);
    assert_int_equal(component_state(f->c), COMPONENT_OPENING);
    /* The second conflict waits twice as long, minus the jitter (7 % 501 ms). */
    server_says(f, SERVER_OPEN "<stream:error><conflict " NS_SE "/></stream:error>");
    assert_int_equal(readable(f), COMPONENT_OK);
    assert_int_equal(component_next_attempt(f->c), f->clock + 2000 - 7);
    assert_int_equal(component_attempts(f->c), 2);
    /* Explained at warn once per outage, at info after that. */
    assert_non_null(
        strstr(f->log, "info|[component] another component is attached as " DOMAIN " (conflict)"));
}

static void test_stream_error_when_up(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    server_says(f, "<stream:error><system-shutdown " NS_SE "/>"
                   "<text " NS_SE ">bye</text></stream:error></stream:stream>");
    assert_int_equal(readable(f), COMPONENT_OK);
    assert_int_equal(component_state(f->c), COMPONENT_WAITING);
    assert_int_equal(f->downs, 1);
    expect_written(f, "</stream:stream>");
    assert_non_null(strstr(f->log, "warn|[component] link to xmpp.test:5347 lost: stream error "
                                   "system-shutdown (bye)"));
    assert_int_equal(f->ngot, 0);
}

static void test_server_closes(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    server_says(f, "</stream:stream>");
    assert_int_equal(readable(f), COMPONENT_OK);
    assert_int_equal(component_state(f->c), COMPONENT_WAITING);
    expect_written(f, "</stream:stream>");
    assert_true(f->srv_closed);
    /* And a plain EOF during the handshake. */
    f->clock = component_next_attempt(f->c);
    open_stream(f);
    close(f->peer);
    f->peer = -1;
    assert_int_equal(readable(f), COMPONENT_OK);
    assert_int_equal(component_state(f->c), COMPONENT_WAITING);
    assert_int_equal(f->downs, 1);
}

static void test_connection_refused(void **state)
{
    struct fx *f = *state;
    f->refuse = 1;
    component_tick(f->c);
    assert_int_equal(component_state(f->c), COMPONENT_WAITING);
    assert_non_null(strstr(f->log, "info|[component] cannot connect to xmpp.test:5347: "
                                   "Connection refused; reconnecting to xmpp.test:5347 in 1.0 s"));
}

static void test_handshake_timeout(void **state)
{
    struct fx *f = *state;
    component_tick(f->c);
    free(drain(f));
    f->clock += 29999;
    component_tick(f->c);
    assert_int_equal(component_state(f->c), COMPONENT_OPENING);
    assert_int_equal(component_timeout(f->c), 1);
    f->clock += 1;
    component_tick(f->c);
    assert_int_equal(component_state(f->c), COMPONENT_WAITING);
    expect_written(f, "</stream:stream>");
}

static void test_stream_header_without_id(void **state)
{
    struct fx *f = *state;
    component_tick(f->c);
    free(drain(f));
    server_says(f, "<stream:stream xmlns='jabber:component:accept' "
                   "xmlns:stream='http://etherx.jabber.org/streams' from='" DOMAIN "'>");
    readable(f);
    assert_int_equal(component_state(f->c), COMPONENT_WAITING);
    free(drain(f));
    assert_string_equal(sent_stream_error(f), "invalid-xml");
}

/* ---- hostile and broken input: each gets its stream error, then a reconnect ---- */

struct hostile {
    const char *data;
    const char *condition;
    int before_header; /* sent instead of the server's stream header */
};

static void check_hostile(const struct hostile *h)
{
    void *state;
    setup(&state);
    struct fx *f = state;
    if (h->before_header) {
        component_tick(f->c);
        free(drain(f));
    } else {
        bring_up(f);
    }
    server_says(f, h->data);
    assert_int_equal(readable(f), COMPONENT_OK);
    char *written = drain(f);
    char *want =
        xasprintf("<stream:error><%s %s/></stream:error></stream:stream>", h->condition, NS_SE);
    if (strcmp(written, want) != 0)
        fail_msg("for %.60s: wrote %s, expected %s", h->data, written, want);
    free(want);
    free(written);
    assert_int_equal(component_state(f->c), COMPONENT_WAITING);
    assert_int_equal(f->ngot, 0);
    teardown(&state);
}

static void test_hostile_input(void **state)
{
    (void)state;
    static char oversized[MAX_STANZA + 200];
    static char deep[64 * 3 + 200];
    strcpy(oversized, "<message from='" USER "' to='" DOMAIN "'><body>");
    memset(oversized + strlen(oversized), 'x', MAX_STANZA);
    strcpy(deep, "");
    for (int i = 0; i < 66; i++)
        strcat(deep, "<a>");
    const struct hostile cases[] = {
        {"<message><<</message>", "not-well-formed", 0},
        {"<message>\xff\xfe</message>", "not-well-formed", 0},
        {"<!-- a comment -->", "restricted-xml", 0},
        {"<?pi data?>", "restricted-xml", 0},
        {"<message>&foo;</message>", "restricted-xml", 0},
        {"garbage", "bad-format", 0},
        {oversized, "policy-violation", 0},
        {deep, "policy-violation", 0},
        {"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
         "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>"
         "<stream:stream xmlns='jabber:component:accept'>",
         "restricted-xml", 1},
        {"<html xmlns='http://www.w3.org/1999/xhtml'>", "invalid-namespace", 1},
        {"<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream/>", "unsupported-encoding", 1},
    };
    for (size_t i = 0; i < FERRY_ARRAY_LEN(cases); i++)
        check_hostile(&cases[i]);
}

/* ---- stanzas in ---- */

#define THREE_STANZAS                                                                              \
    "<message from='" USER "' to='bob@" DOMAIN "' id='1'><body>a</body></message>"                 \
    "<presence from='" USER "' to='" DOMAIN "'/>"                                                  \
    "<iq type='get' id='3' from='" USER "' to='" DOMAIN "'><ping xmlns='urn:xmpp:ping'/></iq>"

static void check_three(struct fx *f)
{
    assert_int_equal(f->ngot, 3);
    assert_string_equal(xn_name(f->got[0]), "message");
    assert_string_equal(xn_attr(f->got[0], "id"), "1");
    assert_string_equal(xn_name(f->got[1]), "presence");
    assert_string_equal(xn_name(f->got[2]), "iq");
    assert_string_equal(xn_ns(f->got[2]), XN_NS_COMPONENT);
}

static void test_stanzas_one_chunk(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    server_says(f, " " THREE_STANZAS " ");
    assert_int_equal(readable(f), COMPONENT_OK);
    check_three(f);
}

static void test_stanzas_byte_by_byte(void **state)
{
    struct fx *f = *state;
    const char *data = SERVER_OPEN "<handshake/>" THREE_STANZAS;
    size_t len = strlen(data);
    /* Offsets of the last '>' of each stanza. */
    const size_t ends[] = {
        (size_t)(strstr(data, "</message>") - data) + 9,
        (size_t)(strstr(strstr(data, "<presence"), "/>") - data) + 1,
        (size_t)(strstr(data, "</iq>") - data) + 4,
    };

    component_tick(f->c);
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(write(f->peer, data + i, 1), 1);
        assert_int_equal(readable(f), COMPONENT_OK);
        /* A stanza arrives exactly with its last '>', not before, not later. */
        size_t delivered = 0;
        for (size_t k = 0; k < FERRY_ARRAY_LEN(ends); k++)
            delivered += i >= ends[k];
        assert_int_equal(f->ngot, delivered);
    }
    assert_int_equal(component_state(f->c), COMPONENT_UP);
    check_three(f);
}

/* ---- the reconnect schedule ---- */

static void test_backoff_bounds(void **state)
{
    (void)state;
    static const int64_t bases[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
    static const uint32_t randoms[] = {0, 1, 249, 250, 251, 12345, 0x7fffffff, UINT32_MAX};
    for (unsigned a = 0; a < FERRY_ARRAY_LEN(bases); a++) {
        int64_t base = bases[a];
        assert_int_equal(component_backoff(1000, 60000, a, 0), base);
        for (size_t r = 0; r < FERRY_ARRAY_LEN(randoms); r++) {
            int64_t d = component_backoff(1000, 60000, a, randoms[r]);
            int64_t low = base - base / 4 < 1000 ? 1000 : base - base / 4;
            assert_true(d >= low && d <= base);
        }
    }
    /* The jitter really spreads: the extremes of the range are reached. */
    assert_int_equal(component_backoff(1000, 60000, 3, 2000), 6000);
    assert_int_equal(component_backoff(1000, 60000, 6, 15000), 45000);
    assert_int_equal(component_backoff(1000, 60000, 1000, 0), 60000);
    assert_int_equal(component_backoff(5000, 1000, 0, 0), 5000); /* min wins over a smaller max */
}

static void test_reconnect_schedule(void **state)
{
    struct fx *f = *state;
    static const int64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
    f->refuse = 1;
    component_tick(f->c); /* attempt at start fails */
    for (size_t i = 0; i < FERRY_ARRAY_LEN(want); i++) {
        assert_int_equal(component_state(f->c), COMPONENT_WAITING);
        assert_int_equal(component_next_attempt(f->c) - f->clock, want[i]);
        f->clock = component_next_attempt(f->c);
        component_tick(f->c);
        assert_int_equal(f->connects, (int)i + 2);
    }
    /* The cap is announced once, at warn. */
    const char *cap = "warn|[component] reconnect delay reached its cap of 60.0 s";
    char *first = strstr(f->log, cap);
    assert_non_null(first);
    assert_null(strstr(first + 1, cap));
    /* A link that comes up resets the schedule. */
    f->refuse = 0;
    f->clock = component_next_attempt(f->c);
    bring_up(f);
    assert_int_equal(component_attempts(f->c), 0);
    server_says(f, "</stream:stream>");
    readable(f);
    assert_int_equal(component_next_attempt(f->c) - f->clock, 1000);
}

/* ---- keeping the link honest ---- */

static void test_keepalive(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    int64_t t0 = f->clock;
    f->clock = t0 + 59999;
    component_tick(f->c);
    expect_silence(f);
    assert_int_equal(component_timeout(f->c), 1);
    f->clock = t0 + 60000;
    component_tick(f->c);
    expect_written(f, " ");
    f->clock = t0 + 119999;
    component_tick(f->c);
    expect_silence(f);
    /* Data from the server does not delay our keepalive, only our writes do. */
    server_says(f, " ");
    readable(f);
    f->clock = t0 + 120000;
    component_tick(f->c);
    expect_written(f, " ");
    assert_int_equal(component_state(f->c), COMPONENT_UP);
}

static void expect_ping(struct fx *f, char *id, size_t id_size)
{
    free(drain(f));
    assert_true(f->srv_n > 0);
    const xn_t *iq = f->srv_st[f->srv_n - 1];
    assert_string_equal(xn_name(iq), "iq");
    assert_string_equal(xn_attr(iq, "type"), "get");
    assert_string_equal(xn_attr(iq, "from"), DOMAIN);
    assert_string_equal(xn_attr(iq, "to"), "example.org");
    assert_non_null(xn_child(iq, "urn:xmpp:ping", "ping"));
    snprintf(id, id_size, "%s", xn_attr(iq, "id"));
}

static void test_ping_timeout(void **state)
{
    struct fx *f = *state;
    char id[64];
    f->cfg.component_keepalive_ms = 1000000; /* keep the keepalive out of the way */
    bring_up(f);
    int64_t t0 = f->clock;
    f->clock = t0 + 119999;
    component_tick(f->c);
    expect_silence(f);
    f->clock = t0 + 120000;
    component_tick(f->c);
    expect_ping(f, id, sizeof(id));
    assert_int_equal(component_timeout(f->c), 30000);
    f->clock = t0 + 149999;
    component_tick(f->c);
    assert_int_equal(component_state(f->c), COMPONENT_UP);
    f->clock = t0 + 150000;
    component_tick(f->c);
    assert_int_equal(component_state(f->c), COMPONENT_WAITING);
    assert_int_equal(f->downs, 1);
    assert_non_null(strstr(f->log, "lost: no answer to a ping within 30.0 s"));
}

static void test_ping_answered(void **state)
{
    struct fx *f = *state;
    char id[64];
    f->cfg.component_keepalive_ms = 1000000;
    bring_up(f);
    int64_t t0 = f->clock;
    f->clock = t0 + 120000;
    component_tick(f->c);
    expect_ping(f, id, sizeof(id));
    f->clock = t0 + 125000;
    char *reply = xasprintf("<iq type='result' id='%s' from='example.org' to='" DOMAIN "'/>", id);
    server_says(f, reply);
    free(reply);
    readable(f);
    assert_int_equal(f->ngot, 0); /* the answer is the component's own business */
    f->clock = t0 + 160000;
    component_tick(f->c);
    assert_int_equal(component_state(f->c), COMPONENT_UP);
    /* The next ping comes a whole interval after the answer. */
    f->clock = t0 + 245000 - 1;
    component_tick(f->c);
    expect_silence(f);
    f->clock = t0 + 245000;
    component_tick(f->c);
    expect_ping(f, id, sizeof(id));
}

/* ---- stanzas out ---- */

static xn_t *message(const char *from, const char *to, const char *id)
{
    xn_t *m = xn_new(XN_NS_COMPONENT, "message");
    if (from)
        xn_set_attr(m, "from", from);
    if (to)
        xn_set_attr(m, "to", to);
    xn_set_attr(m, "id", id);
    return m;
}

static void test_queue_order_across_reconnect(void **state)
{
    struct fx *f = *state;
    /* Queued while the link is down, written in order once it is up. */
    assert_int_equal(component_send(f->c, message("bob@" DOMAIN, USER, "1")), COMPONENT_OK);
    assert_int_equal(component_send(f->c, message(DOMAIN, USER, "2")), COMPONENT_OK);
    struct pollfd fds[2];
    assert_int_equal(component_pollfds(f->c, fds), 0); /* nothing to poll while down */
    open_stream(f);
    assert_int_equal(component_send(f->c, message("carol@" DOMAIN "/x", USER, "3")), COMPONENT_OK);
    expect_silence(f);
    server_says(f, "<handshake/>");
    readable(f);
    expect_written(f, "<message from='bob@" DOMAIN "' to='" USER "' id='1'/>"
                      "<message from='" DOMAIN "' to='" USER "' id='2'/>"
                      "<message from='carol@" DOMAIN "/x' to='" USER "' id='3'/>");
    assert_int_equal(component_pollfds(f->c, fds), 2);
    assert_int_equal(component_send(f->c, message(DOMAIN, USER, "4")), COMPONENT_OK);
    assert_int_equal(component_send(f->c, message(DOMAIN, USER, "5")), COMPONENT_OK);
    assert_int_equal(component_on_queue(f->c), COMPONENT_OK);
    expect_written(f, "<message from='" DOMAIN "' to='" USER "' id='4'/>"
                      "<message from='" DOMAIN "' to='" USER "' id='5'/>");
}

/* A message with a body that waited in the queue for the link carries an XEP-0203 stamp from
 * the transport; what was queued while the link was up, errors and chat states do not. */
static void test_waiting_messages_are_stamped(void **state)
{
    struct fx *f = *state;
    xn_t *m = message("bob@" DOMAIN, USER, "1");
    xn_add_child_text(m, NULL, "body", "waited");
    assert_int_equal(component_send(f->c, m), COMPONENT_OK);
    m = message("bob@" DOMAIN, USER, "2");
    xn_add_child(m, "http://jabber.org/protocol/chatstates", "composing");
    assert_int_equal(component_send(f->c, m), COMPONENT_OK);
    m = message("bob@" DOMAIN, USER, "3");
    xn_set_attr(m, "type", "error");
    xn_add_child_text(m, NULL, "body", "bounced");
    assert_int_equal(component_send(f->c, m), COMPONENT_OK);
    f->clock += 5000;
    bring_up(f);
    char *got = drain(f);
    time_t t = time(NULL);
    struct tm tm;
    char stamp[64];
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "' stamp='%Y-%m-%dT%H:", &tm);
    const char *delay =
        strstr(got, "<body>waited</body><delay xmlns='urn:xmpp:delay' from='" DOMAIN "' stamp='");
    assert_non_null(delay);
    assert_non_null(strstr(delay, stamp + strlen("' stamp='")));
    /* One stamp only: not on the chat state (id 2) nor on the error (id 3). */
    assert_null(strstr(strstr(delay, "urn:xmpp:delay") + 1, "urn:xmpp:delay"));
    assert_non_null(strstr(got, "id='3'"));
    free(got);
    m = message("bob@" DOMAIN, USER, "4");
    xn_add_child_text(m, NULL, "body", "at once");
    assert_int_equal(component_send(f->c, m), COMPONENT_OK);
    assert_int_equal(component_on_queue(f->c), COMPONENT_OK);
    expect_written(f, "<message from='bob@" DOMAIN "' to='" USER "' id='4'><body>at once</body>"
                      "</message>");
}

static void test_outbound_addresses_checked(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    assert_int_equal(component_send(f->c, message("bob@other.org", USER, "1")), COMPONENT_EINVAL);
    assert_int_equal(component_send(f->c, message(NULL, USER, "2")), COMPONENT_EINVAL);
    assert_int_equal(component_send(f->c, message(DOMAIN, NULL, "3")), COMPONENT_EINVAL);
    assert_int_equal(component_send(f->c, message("sub." DOMAIN, USER, "4")), COMPONENT_EINVAL);
    assert_int_equal(component_send(f->c, message("Bob@IRC.Example.ORG", USER, "5")), COMPONENT_OK);
    component_on_queue(f->c);
    expect_written(f, "<message from='Bob@IRC.Example.ORG' to='" USER "' id='5'/>");
    assert_non_null(strstr(f->log, "warn|[component] refusing to send <message> from "
                                   "'bob@other.org' to '" USER "': 'from' is outside the "
                                   "component's domain"));
}

static void test_oversized_outbound(void **state)
{
    struct fx *f = *state;
    char body[MAX_STANZA];
    memset(body, 'y', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    bring_up(f);

    xn_t *big = message("bob@" DOMAIN, USER, "big");
    xn_add_child_text(big, NULL, "body", body);
    component_send(f->c, big);
    component_send(f->c, message("bob@" DOMAIN, USER, "small"));
    xn_t *result = xn_new(XN_NS_COMPONENT, "iq");
    xn_set_attr(result, "type", "result");
    xn_set_attr(result, "id", "r1");
    xn_set_attr(result, "from", DOMAIN);
    xn_set_attr(result, "to", USER);
    xn_add_child_text(xn_add_child(result, "jabber:iq:version", "query"), NULL, "name", body);
    component_send(f->c, result);
    component_on_queue(f->c);
    expect_written(f, "<message from='bob@" DOMAIN "' to='" USER "' id='small'/>"
                      "<iq type='error' id='r1' from='" DOMAIN "' to='" USER "'>"
                      "<error type='modify'><policy-violation "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>the answer is too large to "
                      "send</text></error></iq>");
    assert_non_null(strstr(f->log, "warn|[component] not writing <message> from bob@" DOMAIN
                                   " to " USER ": 1117 bytes exceeds max_stanza_size 1024"));
}

static void test_shutdown(void **state)
{
    struct fx *f = *state;
    bring_up(f);
    component_send(f->c, message(DOMAIN, USER, "last"));
    shutdown(f->peer, SHUT_WR); /* the server has already said goodbye: no waiting */
    component_shutdown(f->c, 5000);
    assert_int_equal(component_state(f->c), COMPONENT_CLOSED);
    expect_written(f, "<message from='" DOMAIN "' to='" USER "' id='last'/></stream:stream>");
    assert_int_equal(component_send(f->c, message(DOMAIN, USER, "late")), COMPONENT_ECLOSED);
    assert_int_equal(component_timeout(f->c), -1);
}

/* ---- what a lost link had not written ---- */

static size_t text_len(const xn_t *stanza)
{
    size_t len;
    free(xn_serialize(stanza, XN_NS_COMPONENT, XN_SER_DEFAULT, &len));
    return len;
}

static xn_t *with_body(xn_t *m, const char *body)
{
    xn_add_child_text(m, NULL, "body", body);
    return m;
}

static xn_t *stanza_of(const char *name, const char *type, const char *id)
{
    xn_t *st = xn_new(XN_NS_COMPONENT, name);
    if (type)
        xn_set_attr(st, "type", type);
    xn_set_attr(st, "id", id);
    xn_set_attr(st, "from", "bob@" DOMAIN);
    xn_set_attr(st, "to", USER);
    return st;
}

/* The component has output the socket would not take. */
static int backed_up(struct fx *f)
{
    struct pollfd fds[2];
    return component_pollfds(f->c, fds) > 0 && (fds[0].events & POLLOUT);
}

/* Reads and counts what the peer has, without parsing; appends it to *all when not NULL. */
static size_t read_raw(struct fx *f, char **all, size_t *all_len)
{
    char buf[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = read(f->peer, buf, sizeof(buf))) > 0) {
        if (all) {
            *all = xrealloc(*all, *all_len + (size_t)n + 1);
            memcpy(*all + *all_len, buf, (size_t)n);
            *all_len += (size_t)n;
            (*all)[*all_len] = '\0';
        }
        total += (size_t)n;
    }
    return total;
}

/* Sends stanza and adds its size to *bytes. */
static void send_counted(struct fx *f, xn_t *stanza, size_t *bytes)
{
    *bytes += text_len(stanza);
    assert_int_equal(component_send(f->c, stanza), COMPONENT_OK);
}

/* The server stops reading, the link dies with stanzas in the output: the message the socket
 * took in part never reached the server (it drops a cut stanza), so it is written again,
 * whole, once, first; the messages after it follow, in order and delay-stamped, on the next
 * link; presences and IQs are dropped; the log counts it all. */
static void test_unwritten_messages_go_back_to_the_queue(void **state)
{
    struct fx *f = *state;
    enum { MSGS = 40 };
    char filler[801], id[16];
    size_t start[MSGS + 3], offset = 0, bytes = 0, first_back = 0;
    memset(filler, 'x', sizeof(filler) - 1);
    filler[sizeof(filler) - 1] = '\0';
    /* A small send buffer: the socket takes part of the output, cutting a stanza. */
    f->sndbuf = 8192;
    log_set_level(LOG_LEVEL_INFO); /* the stanzas themselves stay out of the captured log */
    bring_up(f);
    for (int i = 0; i < MSGS + 3; i++) {
        snprintf(id, sizeof(id), "m%d", i);
        xn_t *st = i < MSGS       ? with_body(stanza_of("message", "chat", id), filler)
                   : i < MSGS + 2 ? stanza_of("presence", NULL, id)
                                  : stanza_of("iq", "result", id);
        start[i] = offset;
        offset += text_len(st);
        assert_int_equal(component_send(f->c, st), COMPONENT_OK);
    }
    assert_int_equal(component_on_queue(f->c), COMPONENT_OK);
    assert_true(backed_up(f));
    size_t got = read_raw(f, NULL, NULL);
    close(f->peer);
    f->peer = -1;
    assert_int_equal(readable(f), COMPONENT_OK);
    assert_int_equal(component_state(f->c), COMPONENT_WAITING);

    while (first_back < MSGS && start[first_back] < got)
        first_back++;
    assert_true(first_back > 1 && first_back < MSGS);
    assert_true(start[first_back - 1] < got && got < start[first_back]); /* one cut in two */
    first_back--; /* the cut message goes back too */
    bytes = offset - start[first_back];
    char *want = xasprintf("warn|[component] %zu stanza(s) (%zu bytes) not written when the link "
                           "closed: %zu message(s) back in the queue for the next link; dropped: "
                           "0 message(s), 2 presence(s), 1 iq(s), 0 other\n",
                           MSGS + 3 - first_back, bytes, MSGS - first_back);
    if (!strstr(f->log, want))
        fail_msg("no line %s in:\n%s", want, f->log);
    free(want);

    f->clock = component_next_attempt(f->c);
    bring_up(f);
    for (int idle = 0; idle < 2;) {
        char *out = drain(f);
        idle = out[0] ? 0 : idle + 1;
        free(out);
        component_on_writable(f->c);
    }
    assert_int_equal(f->srv_n, 1 + MSGS - first_back); /* the handshake, then the messages */
    snprintf(id, sizeof(id), "m%zu", first_back);      /* the cut one first, whole */
    assert_string_equal(xn_attr(f->srv_st[1], "id"), id);
    char *body = xn_child_text(f->srv_st[1], NULL, "body");
    assert_non_null(body);
    int whole = strcmp(body, filler) == 0;
    free(body);
    assert_true(whole);
    for (size_t i = first_back; i < MSGS; i++) {
        const xn_t *m = f->srv_st[1 + i - first_back];
        snprintf(id, sizeof(id), "m%zu", i);
        assert_string_equal(xn_attr(m, "id"), id);
        const xn_t *delay = xn_child(m, "urn:xmpp:delay", "delay");
        assert_non_null(delay);
        assert_string_equal(xn_attr(delay, "from"), DOMAIN);
    }
}

/* What is still queued when the component goes away is dropped with a count. */
static void test_dropped_at_shutdown_are_counted(void **state)
{
    struct fx *f = *state;
    size_t bytes = 0;
    send_counted(f, with_body(stanza_of("message", NULL, "1"), "a"), &bytes);
    send_counted(f, with_body(stanza_of("message", NULL, "2"), "b"), &bytes);
    send_counted(f, stanza_of("presence", NULL, "3"), &bytes);
    component_shutdown(f->c, 0);
    char *want = xasprintf("warn|[component] dropping 3 stanza(s) (%zu bytes) never written to the "
                           "server: 2 message(s), 1 presence(s), 0 iq(s), 0 other\n",
                           bytes);
    assert_non_null(strstr(f->log, want));
    free(want);
}

/* A refusal (queue full) is followed by exactly one "drained", once the link is up and the
 * queue is down to half; a server that reads nothing gets no notification and no spinning. */
static void test_drained_after_a_refusal(void **state)
{
    struct fx *f = *state;
    char id[16], body[301], *all = NULL;
    size_t all_len = 0;
    /* Large enough that half the queue does not fit in the socket and the output. */
    memset(body, 'y', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    log_set_level(LOG_LEVEL_INFO);
    for (int i = 0; i < COMPONENT_QUEUE_CAPACITY; i++) {
        snprintf(id, sizeof(id), "%d", i);
        assert_int_equal(component_send(f->c, with_body(message(DOMAIN, USER, id), body)),
                         COMPONENT_OK);
    }
    assert_int_equal(component_send(f->c, message(DOMAIN, USER, "x")), COMPONENT_EFULL);
    component_tick(f->c);
    assert_int_equal(f->drains, 0); /* not while the link is down */
    bring_up(f);
    for (int i = 0; i < 10; i++) {
        component_on_writable(f->c);
        component_on_queue(f->c);
        component_tick(f->c);
    }
    assert_int_equal(f->drains, 0); /* the server reads nothing: the queue stays full */
    for (int i = 0; i < 1000 && f->drains == 0; i++) {
        read_raw(f, &all, &all_len);
        component_on_writable(f->c);
    }
    assert_int_equal(f->drains, 1);
    /* The rest, until nothing more comes. */
    for (int idle = 0; idle < 2;) {
        idle = read_raw(f, &all, &all_len) == 0 ? idle + 1 : 0;
        component_on_writable(f->c);
    }
    assert_int_equal(f->drains, 1);
    size_t n = 0;
    for (const char *p = all; (p = strstr(p, "<message ")) != NULL; p++)
        n++;
    assert_int_equal(n, COMPONENT_QUEUE_CAPACITY);
    assert_non_null(strstr(all, "id='4095'><body>"));
    free(all);
}

/* ---- the real TCP connector and the poll helpers ---- */

static int listener(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void capture_log_plain(enum log_level level, const char *line, void *ctx)
{
    char *log = ctx;
    size_t used = strlen(log);
    snprintf(log + used, 8192 - used, "%s|%s\n", log_level_name(level), line);
}

static void test_tcp_connect_and_poll(void **state)
{
    (void)state;
    struct ferry_config cfg = {.component_jid = DOMAIN,
                               .component_host = "127.0.0.1",
                               .component_secret = SECRET,
                               .component_keepalive_ms = 60000,
                               .component_ping_ms = 120000,
                               .component_ping_timeout_ms = 30000,
                               .component_reconnect_min_ms = 1000,
                               .component_reconnect_max_ms = 60000,
                               .component_max_stanza_bytes = MAX_STANZA};
    int lfd = listener(&cfg.component_port);
    static char log[8192];
    log_set_sink(capture_log_plain, log);
    component_t *c = component_new(&cfg, NULL, NULL);
    component_tick(c);
    int srv = accept(lfd, NULL, NULL);
    assert_true(srv >= 0);
    /* Drive through poll until our header is out. */
    for (int i = 0; i < 10 && component_state(c) != COMPONENT_OPENING; i++) {
        struct pollfd fds[2];
        size_t n = component_pollfds(c, fds);
        assert_true(poll(fds, n, 2000) > 0);
        component_dispatch(c, fds, n);
    }
    assert_int_equal(component_state(c), COMPONENT_OPENING);
    char buf[512];
    ssize_t n = read(srv, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "to='" DOMAIN "'"));
    close(srv);
    close(lfd);
    /* The server is gone: EOF, then the refused reconnect is logged and scheduled. */
    struct pollfd fds[2];
    size_t nfds = component_pollfds(c, fds);
    assert_true(poll(fds, nfds, 2000) > 0);
    component_dispatch(c, fds, nfds);
    assert_int_equal(component_state(c), COMPONENT_WAITING);
    assert_non_null(strstr(log, "the server closed the connection; reconnecting to 127.0.0.1"));
    component_free(c);
    log_set_sink(NULL, NULL);
    log_clear_secrets();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_header_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_secret_is_fatal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_authorized_after_up_reconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict_backs_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_error_when_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_header_without_id, setup, teardown),
        cmocka_unit_test(test_hostile_input),
        cmocka_unit_test_setup_teardown(test_stanzas_one_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stanzas_byte_by_byte, setup, teardown),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test_setup_teardown(test_reconnect_schedule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_order_across_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_messages_are_stamped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbound_addresses_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_outbound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritten_messages_go_back_to_the_queue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dropped_at_shutdown_are_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drained_after_a_refusal, setup, teardown),
        cmocka_unit_test(test_tcp_connect_and_poll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
