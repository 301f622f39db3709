/* bridge/pending.c with the real component over a socketpair, a fake clock and the store in a
 * temporary directory; the test plays the XMPP server. Messages kept while the link was down
 * all arrive when it is back, in order and stamped, even more of them than the component's
 * outbound queue holds: the flush goes on each time the queue drains. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge/internal.h"
#include "bridge/store.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xml.h"
#include "lib/xstream.h"
#include "transport/component.h"

#define DOMAIN "irc.example.org"
#define OWNER "alice@example.org"
#define CONTACT "bob@" DOMAIN
#define SECRET "s3cret"
#define DIGEST "a984b871214a298f0f743fcd25f99b10838ba12b" /* sha1("3BF96D32" "s3cret") */
#define SERVER_OPEN                                                                                \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "                         \
    "xmlns:stream='http://etherx.jabber.org/streams' from='" DOMAIN "' id='3BF96D32'>"
/* More than the queue holds, and more than one send's worth of room would let through. */
#define STORED (2 * COMPONENT_QUEUE_CAPACITY + 300)
#define EARLY 3 /* in the component's queue before the link came up */

struct fx {
    struct ferry_config cfg;
    struct bridge b;
    component_t *c;
    char base[64];
    char *dir;
    int64_t clock;
    int peer;
    int drains;
    xs_parser_t *srv;
    char **bodies; /* what the server got, in order */
    size_t nbodies, unstamped;
    char log[16384]; /* warnings and the pending module's flush lines */
};

/* ---- the fake world ---- */

static int64_t fake_clock(void *ctx)
{
    return ((struct fx *)ctx)->clock;
}

static int fake_connect(void *ctx, const char *host, int port, int *in_progress)
{
    struct fx *f = ctx;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    f->peer = sv[1];
    fcntl(f->peer, F_SETFL, O_NONBLOCK);
    *in_progress = 0;
    return sv[0];
}

static int sink_send(void *ctx, xn_t *stanza)
{
    return component_send(((struct fx *)ctx)->c, stanza);
}

/* The link's events, wired as transport/main.c and bridge/bridge.c wire them. */
static void on_up(void *ctx)
{
    pending_link_up(((struct fx *)ctx)->b.pending);
}

static void on_down(void *ctx)
{
    pending_link_down(((struct fx *)ctx)->b.pending);
}

static void on_drained(void *ctx)
{
    struct fx *f = ctx;
    f->drains++;
    pending_link_up(f->b.pending); /* bridge_link_drained */
}

static void capture_log(enum log_level level, const char *line, void *ctx)
{
    struct fx *f = ctx;
    size_t used = strlen(f->log);
    if (level <= LOG_LEVEL_WARN || strstr(line, "outbound queue"))
        snprintf(f->log + used, sizeof(f->log) - used, "%s|%s\n", log_level_name(level), line);
}

static void srv_stanza(void *ctx, xn_t *stanza)
{
    struct fx *f = ctx;
    if (strcmp(xn_name(stanza), "message") == 0) {
        f->bodies = xrealloc(f->bodies, (f->nbodies + 1) * sizeof(*f->bodies));
        f->bodies[f->nbodies++] = xn_child_text(stanza, NULL, "body");
        const xn_t *delay = xn_child(stanza, "urn:xmpp:delay", "delay");
        if (!delay || strcmp(xn_attr(delay, "from"), DOMAIN) != 0)
            f->unstamped++;
    }
    xn_unref(stanza);
}

/* Reads what the component wrote and parses it; returns how many bytes. */
static size_t server_reads(struct fx *f)
{
    char buf[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = read(f->peer, buf, sizeof(buf))) > 0) {
        assert_int_equal(xs_feed(f->srv, buf, (size_t)n), XS_OK);
        total += (size_t)n;
    }
    return total;
}

static void server_says(struct fx *f, const char *data)
{
    assert_int_equal(write(f->peer, data, strlen(data)), (ssize_t)strlen(data));
    assert_int_equal(component_on_readable(f->c), COMPONENT_OK);
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = xasprintf("%s/%s", path, e->d_name);
        if (unlink(p) != 0)
            remove_tree(p);
        free(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(path);
}

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));
    unsigned char key[CRYPTO_KEY_LEN] = {1, 2, 3};
    char *err = NULL;

    /* tmpfs when there is one: the store syncs every write. */
    strcpy(f->base, access("/dev/shm", W_OK) == 0 ? "/dev/shm/ferry-test-pending-XXXXXX"
                                                  : "/tmp/ferry-test-pending-XXXXXX");
    assert_non_null(mkdtemp(f->base));
    f->dir = xasprintf("%s/data", f->base);
    f->peer = -1;
    f->clock = 1000000;
    f->cfg.component_jid = DOMAIN;
    f->cfg.component_host = "xmpp.test";
    f->cfg.component_port = 5347;
    f->cfg.component_secret = SECRET;
    f->cfg.component_ping_timeout_ms = 30000;
    f->cfg.component_reconnect_min_ms = 1000;
    f->cfg.component_reconnect_max_ms = 60000;
    f->cfg.component_max_stanza_bytes = 65536;
    log_set_sink(capture_log, f);
    f->b.cfg = &f->cfg;
    f->b.sink = (struct bridge_sink){sink_send, f};
    f->b.store = store_open(f->dir, key, &err);
    assert_non_null(f->b.store);
    assert_int_equal(store_registration_put(f->b.store, OWNER, "alice", "pw", NULL), STORE_OK);
    f->b.pending = pending_new(&f->b);
    struct component_events ev = {
        .link_up = on_up, .link_down = on_down, .drained = on_drained, .ctx = f};
    struct component_ops ops = {.clock = fake_clock, .connect = fake_connect, .ctx = f};
    f->c = component_new(&f->cfg, &ev, &ops);
    assert_non_null(f->c);
    struct xs_callbacks cb = {NULL, srv_stanza, NULL, NULL};
    f->srv = xs_new(&cb, f, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    component_free(f->c);
    pending_free(f->b.pending);
    store_close(f->b.store);
    log_set_sink(NULL, NULL);
    log_clear_secrets();
    xs_free(f->srv);
    for (size_t i = 0; i < f->nbodies; i++)
        free(f->bodies[i]);
    free(f->bodies);
    if (f->peer >= 0)
        close(f->peer);
    remove_tree(f->base);
    free(f->dir);
    free(f);
    return 0;
}

static xn_t *from_contact(const char *body)
{
    xn_t *m = xn_new(XN_NS_COMPONENT, "message");
    xn_set_attr(m, "from", CONTACT);
    xn_set_attr(m, "to", OWNER);
    xn_set_attr(m, "type", "chat");
    xn_add_child_text(m, NULL, "body", body);
    return m;
}

/* What bridge_send does: the store takes it, or it goes to the sink. */
static void bridge_sends(struct fx *f, xn_t *m)
{
    if (!pending_keep(f->b.pending, m))
        assert_int_equal(sink_send(f, m), 0);
}

static void bring_up(struct fx *f)
{
    assert_int_equal(component_tick(f->c), COMPONENT_OK);
    server_reads(f); /* the stream header */
    server_says(f, SERVER_OPEN);
    char buf[256];
    ssize_t n = read(f->peer, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "<handshake>" DIGEST "</handshake>");
    server_says(f, "<handshake/>");
    assert_int_equal(component_state(f->c), COMPONENT_UP);
}

/* ---- the flush ---- */

static void test_flush_larger_than_the_queue(void **state)
{
    struct fx *f = *state;
    char body[32];
    size_t n;

    /* Reached the component's queue before the loss was noticed: written first. */
    for (int i = 0; i < EARLY; i++) {
        snprintf(body, sizeof(body), "early%d", i);
        assert_int_equal(sink_send(f, from_contact(body)), COMPONENT_OK);
    }
    /* The link is not up yet: contacts' messages go to the store. */
    for (int i = 0; i < STORED; i++) {
        snprintf(body, sizeof(body), "n%05d", i);
        assert_int_equal(pending_keep(f->b.pending, from_contact(body)), 1);
    }

    f->clock += 5000;
    bring_up(f);
    /* The queue took what it could: the rest waits for room, and for nothing else. */
    assert_non_null(strstr(f->log, "the outbound queue is full"));
    assert_int_equal(f->drains, 0);
    for (int i = 0; i < 10; i++) {
        component_on_writable(f->c);
        component_on_queue(f->c);
        component_tick(f->c);
    }
    assert_int_equal(f->drains, 0); /* the server reads nothing yet: no spinning */
    /* A contact writes during the flush: stored, behind what waits. */
    bridge_sends(f, from_contact("late"));

    for (int idle = 0; idle < 2;) {
        idle = server_reads(f) == 0 ? idle + 1 : 0;
        component_on_writable(f->c);
    }
    assert_int_equal(f->nbodies, EARLY + STORED + 1);
    for (size_t i = 0; i < f->nbodies; i++) {
        if (i < EARLY)
            snprintf(body, sizeof(body), "early%zu", i);
        else if (i < EARLY + STORED)
            snprintf(body, sizeof(body), "n%05zu", i - EARLY);
        else
            strcpy(body, "late");
        if (strcmp(f->bodies[i], body) != 0)
            fail_msg("message %zu is %s, expected %s", i, f->bodies[i], body);
    }
    assert_int_equal(f->unstamped, 0);
    assert_true(f->drains >= 1);
    assert_true(f->drains <= 8); /* once per half queue, not once per stanza */

    /* The store is empty, and messages go straight to the link again. */
    struct store_pending *rows = NULL;
    assert_int_equal(store_pending_list(f->b.store, OWNER, &rows, &n), STORE_OK);
    assert_int_equal(n, 0);
    store_pending_list_free(rows, n);
    xn_t *m = from_contact("direct");
    assert_int_equal(pending_keep(f->b.pending, m), 0);
    xn_unref(m);
}

/* Reads everything the component writes until it has nothing more to say. */
static void server_reads_all(struct fx *f)
{
    for (int idle = 0; idle < 2;) {
        idle = server_reads(f) == 0 ? idle + 1 : 0;
        component_on_writable(f->c);
    }
}

static size_t stored_rows(struct fx *f, const char *owner)
{
    struct store_pending *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_pending_list(f->b.store, owner, &rows, &n), STORE_OK);
    store_pending_list_free(rows, n);
    return n;
}

/* A stored row the component refuses for itself (its from is outside the domain, as after
 * [component] jid changed) is deleted with a warning that names the owner but not the words;
 * the rows after it, this owner's and the next one's, still arrive, in order. */
static void test_refused_row_does_not_stop_the_flush(void **state)
{
    struct fx *f = *state;
    static const char other[] = "carol@example.org";
    assert_int_equal(store_registration_put(f->b.store, other, "carol", "pw", NULL), STORE_OK);

    assert_int_equal(pending_keep(f->b.pending, from_contact("first")), 1);
    xn_t *bad = from_contact("words of the refused one");
    xn_set_attr(bad, "from", "bob@old.example.org");
    char *text = xn_serialize(bad, XN_NS_COMPONENT, XN_SER_DEFAULT, NULL);
    assert_int_equal(store_pending_add(f->b.store, OWNER, STORE_DIR_TO_OWNER, "bob",
                                       "words of the refused one", text, NULL),
                     STORE_OK);
    free(text);
    xn_unref(bad);
    assert_int_equal(pending_keep(f->b.pending, from_contact("second")), 1);
    xn_t *to_other = from_contact("third");
    xn_set_attr(to_other, "to", other);
    assert_int_equal(pending_keep(f->b.pending, to_other), 1);

    f->clock += 5000;
    bring_up(f);
    server_reads_all(f);

    assert_int_equal(f->nbodies, 3);
    assert_string_equal(f->bodies[0], "first");
    assert_string_equal(f->bodies[1], "second");
    assert_string_equal(f->bodies[2], "third");
    assert_int_equal(f->unstamped, 0);
    if (!strstr(f->log, "warn|[pending] " OWNER ": stored message ") ||
        !strstr(f->log, "refused by the component (no valid to, or from outside its domain): "
                        "deleted"))
        fail_msg("no warning for the refused row in:\n%s", f->log);
    assert_null(strstr(f->log, "words of the refused one"));
    assert_int_equal(stored_rows(f, OWNER), 0);
    assert_int_equal(stored_rows(f, other), 0);
    xn_t *m = from_contact("direct"); /* the flush finished: straight to the link again */
    assert_int_equal(pending_keep(f->b.pending, m), 0);
    xn_unref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flush_larger_than_the_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_row_does_not_stop_the_flush, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
