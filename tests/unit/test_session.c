/* Unit tests for bridge/sessions, bridge/session and bridge/contacts: the session table and the
 * session threads driven without libpurple or a server. The native thread is played by this
 * file (np_send records the commands, LOGOUT is answered with LOGGED_OUT as native does), the
 * sink records every stanza sent, and the store is a real one in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge/internal.h"
#include "bridge/session.h"
#include "lib/log.h"
#include "lib/stanza.h"
#include "lib/util.h"
#include "native/native.h"

#define OWNER "alice@localhost"
#define FULL "alice@localhost/desk"
#define DOMAIN "irc.localhost"
#define WAIT_MS 5000 /* generous: valgrind is slow */

/* ---- what the session sends: native commands and stanzas, recorded ---- */

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rec_cond = PTHREAD_COND_INITIALIZER;
static struct np_cmd *cmds[256];
static size_t ncmds;
static char *outs[256];
static size_t nouts;
static mailbox_t *owner_mailbox; /* from the last LOGIN */
static int native_stopped;
static int hold_logout;         /* LOGOUT unanswered: the test posts LOGGED_OUT itself */
static mailbox_t *held_mailbox; /* ... to this mailbox */
/* A stanza sent to GATE waits in bridge_send while the gate is closed, holding the session
 * thread that sends it, until the test lets one through or opens the gate. */
#define GATE "alice@localhost/gate"
static int gate_closed, gate_entered, gate_passes;

int np_send(struct np_cmd *cmd)
{
    pthread_mutex_lock(&rec_lock);
    if (native_stopped) {
        pthread_mutex_unlock(&rec_lock);
        np_cmd_free(cmd);
        return NP_ESTOPPED;
    }
    if (cmd->type == NP_CMD_LOGIN)
        owner_mailbox = cmd->u.login.mailbox;
    if (cmd->type == NP_CMD_LOGOUT && owner_mailbox && hold_logout) {
        held_mailbox = owner_mailbox;
        owner_mailbox = NULL;
    } else if (cmd->type == NP_CMD_LOGOUT && owner_mailbox) {
        struct np_event *ev = np_event_logged_out(cmd->owner);
        if (mb_send(owner_mailbox, ev) != MB_OK)
            np_event_free(ev);
        owner_mailbox = NULL;
    }
    if (ncmds == FERRY_ARRAY_LEN(cmds))
        abort(); /* not a cmocka assert: this runs on a session thread */
    cmds[ncmds++] = cmd;
    pthread_cond_broadcast(&rec_cond);
    pthread_mutex_unlock(&rec_lock);
    return NP_OK;
}

const char *np_protocol_name(void)
{
    return "IRC";
}

static int needs_authorization; /* set by a test before the session starts; reset in setup */

int np_protocol_needs_authorization(void)
{
    return needs_authorization;
}

int bridge_send(bridge_t *b, xn_t *stanza)
{
    char *s = xn_serialize(stanza, XN_NS_COMPONENT, 0, NULL);
    xn_unref(stanza);
    pthread_mutex_lock(&rec_lock);
    if (gate_closed && strstr(s, "to='" GATE "'")) {
        gate_entered++;
        pthread_cond_broadcast(&rec_cond);
        while (gate_closed && gate_passes == 0)
            pthread_cond_wait(&rec_cond, &rec_lock);
        if (gate_passes > 0)
            gate_passes--;
    }
    if (nouts == FERRY_ARRAY_LEN(outs))
        abort();
    outs[nouts++] = s;
    pthread_cond_broadcast(&rec_cond);
    pthread_mutex_unlock(&rec_lock);
    return 0;
}

void bridge_bounce(bridge_t *b, const xn_t *stanza, const char *condition, const char *text)
{
    if (stanza_may_bounce(stanza))
        bridge_send(b, stanza_error(stanza, condition, text));
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Removes and returns the first recorded command of type, waiting up to ms; NULL if none. */
static struct np_cmd *take_cmd(enum np_cmd_type type, int ms)
{
    struct timespec ts;
    struct np_cmd *found = NULL;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&rec_lock);
    for (;;) {
        for (size_t i = 0; i < ncmds && !found; i++) {
            if (cmds[i]->type == type) {
                found = cmds[i];
                memmove(cmds + i, cmds + i + 1, (ncmds - i - 1) * sizeof(*cmds));
                ncmds--;
            }
        }
        if (found || pthread_cond_timedwait(&rec_cond, &rec_lock, &ts) != 0)
            break;
    }
    pthread_mutex_unlock(&rec_lock);
    return found;
}

/* Removes and returns the first recorded stanza holding needle, waiting up to ms. */
static char *take_out(const char *needle, int ms)
{
    struct timespec ts;
    char *found = NULL;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&rec_lock);
    for (;;) {
        for (size_t i = 0; i < nouts && !found; i++) {
            if (strstr(outs[i], needle)) {
                found = outs[i];
                memmove(outs + i, outs + i + 1, (nouts - i - 1) * sizeof(*outs));
                nouts--;
            }
        }
        if (found || pthread_cond_timedwait(&rec_cond, &rec_lock, &ts) != 0)
            break;
    }
    pthread_mutex_unlock(&rec_lock);
    return found;
}

static void expect_out(const char *exact)
{
    char *got = take_out(exact, WAIT_MS);
    if (!got || strcmp(got, exact) != 0)
        fail_msg("expected %s, got %s", exact, got ? got : "nothing");
    free(got);
}

static void expect_cmd_im(const char *to, const char *text)
{
    struct np_cmd *cmd = take_cmd(NP_CMD_SEND_IM, WAIT_MS);
    assert_non_null(cmd);
    assert_string_equal(cmd->u.im.to, to);
    assert_string_equal(cmd->u.im.text, text);
    np_cmd_free(cmd);
}

static void clear_records(void)
{
    pthread_mutex_lock(&rec_lock);
    for (size_t i = 0; i < ncmds; i++)
        np_cmd_free(cmds[i]);
    for (size_t i = 0; i < nouts; i++)
        free(outs[i]);
    ncmds = nouts = 0;
    owner_mailbox = NULL;
    native_stopped = 0;
    hold_logout = 0;
    held_mailbox = NULL;
    gate_closed = gate_entered = gate_passes = 0;
    pthread_mutex_unlock(&rec_lock);
}

/* Waits until n stanzas in all reached the closed gate. */
static void gate_wait_entered(int n)
{
    struct timespec ts;
    deadline_in(&ts, WAIT_MS);
    pthread_mutex_lock(&rec_lock);
    while (gate_entered < n && pthread_cond_timedwait(&rec_cond, &rec_lock, &ts) == 0)
        ;
    int entered = gate_entered;
    pthread_mutex_unlock(&rec_lock);
    assert_true(entered >= n);
}

/* Lets one held stanza through (pass), or every one from now on (open). */
static void gate_set(int closed, int passes)
{
    pthread_mutex_lock(&rec_lock);
    gate_closed = closed;
    gate_passes += passes;
    pthread_cond_broadcast(&rec_cond);
    pthread_mutex_unlock(&rec_lock);
}

/* Posts an event to the session as native would. */
static void post_event(struct np_event *ev)
{
    pthread_mutex_lock(&rec_lock);
    mailbox_t *mb = owner_mailbox;
    pthread_mutex_unlock(&rec_lock);
    assert_non_null(mb);
    assert_int_equal(mb_send(mb, ev), MB_OK);
}

/* Returns once the session handled everything posted before (its mail is handled in order). */
static void sync_session(void)
{
    post_event(np_event_im_received(OWNER, "sync", "sync", 0, 0));
    char *m = take_out("from='sync@", WAIT_MS);
    assert_non_null(m);
    free(m);
}

/* ---- the log, recorded (session threads write to it) ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_lines[256];
static size_t nlog;

static void record_log(enum log_level level, const char *line, void *ctx)
{
    pthread_mutex_lock(&log_lock);
    if (nlog < FERRY_ARRAY_LEN(log_lines))
        log_lines[nlog++] = xstrdup(line);
    pthread_mutex_unlock(&log_lock);
}

static void clear_log(void)
{
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < nlog; i++)
        free(log_lines[i]);
    nlog = 0;
    pthread_mutex_unlock(&log_lock);
}

/* How many log lines hold needle, once at least count do (waiting up to ms), or fewer. */
static size_t wait_log(const char *needle, size_t count, int ms)
{
    int64_t deadline = now_ms() + ms;
    size_t n;
    for (;;) {
        n = 0;
        pthread_mutex_lock(&log_lock);
        for (size_t i = 0; i < nlog; i++)
            n += strstr(log_lines[i], needle) != NULL;
        pthread_mutex_unlock(&log_lock);
        if (n >= count || now_ms() >= deadline)
            return n;
        usleep(10 * 1000);
    }
}

/* ---- stanzas in ---- */

static xn_t *presence(const char *from, const char *to, const char *type)
{
    xn_t *p = xn_new(XN_NS_COMPONENT, "presence");
    xn_set_attr(p, "from", from);
    xn_set_attr(p, "to", to);
    xn_set_attr(p, "type", type);
    return p;
}

static xn_t *message(const char *to, const char *id, const char *body)
{
    xn_t *m = xn_new(XN_NS_COMPONENT, "message");
    xn_set_attr(m, "from", FULL);
    xn_set_attr(m, "to", to);
    xn_set_attr(m, "type", "chat");
    xn_set_attr(m, "id", id);
    xn_add_child_text(m, NULL, "body", body);
    return m;
}

/* ---- fixture: a store with alice registered, a bridge, a session table ---- */

struct fixture {
    char dir[64];
    struct ferry_config cfg;
    struct bridge b;
};

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = xasprintf("%s/%s", path, e->d_name);
        if (unlink(p) != 0)
            remove_tree(p);
        free(p);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    unsigned char key[CRYPTO_KEY_LEN] = {1, 2, 3};
    char *err = NULL;
    strcpy(f->dir, "/tmp/ferry-test-session-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->cfg.component_jid = DOMAIN;
    f->cfg.legacy_name = "IRC";
    f->cfg.legacy_login_timeout_ms = 400;
    f->cfg.legacy_early_presence_ms = 120 * 1000;
    f->cfg.legacy_reconnect_min_ms = 100;
    f->cfg.legacy_reconnect_max_ms = 200;
    f->b.cfg = &f->cfg;
    f->b.store = store_open(f->dir, key, &err);
    assert_non_null(f->b.store);
    assert_int_equal(store_registration_put(f->b.store, OWNER, "alice", "", NULL), STORE_OK);
    f->b.sessions = sessions_new(&f->b);
    clear_records();
    needs_authorization = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sessions_free(f->b.sessions);
    store_close(f->b.store);
    remove_tree(f->dir);
    clear_records();
    clear_log();
    free(f);
    return 0;
}

/* alice comes online and the legacy login succeeds. */
static void sign_on(struct fixture *f)
{
    sessions_presence(f->b.sessions, presence(FULL, DOMAIN, NULL));
    struct np_cmd *login = take_cmd(NP_CMD_LOGIN, WAIT_MS);
    assert_non_null(login);
    assert_string_equal(login->owner, OWNER);
    assert_string_equal(login->u.login.username, "alice");
    np_cmd_free(login);
    post_event(np_event_signed_on(OWNER, "alice"));
    expect_out("<presence from='" DOMAIN "' to='" OWNER "'><status>Connected to IRC as alice"
               "</status></presence>");
}

/* ---- tests ---- */

static void test_probe_before_sign_on_waits_for_the_real_state(void **state)
{
    struct fixture *f = *state;
    sessions_presence(f->b.sessions, presence(FULL, DOMAIN, NULL));
    struct np_cmd *login = take_cmd(NP_CMD_LOGIN, WAIT_MS);
    assert_non_null(login);
    np_cmd_free(login);
    sessions_to_contact(f->b.sessions, presence(FULL, "bob@" DOMAIN, "probe"));
    assert_null(take_out("bob@", 300)); /* kept in the early-presence buffer */
    post_event(np_event_signed_on(OWNER, "alice"));
    expect_out("<presence from='bob@" DOMAIN "' to='" FULL "' type='unavailable'/>");
    struct np_cmd *status = take_cmd(NP_CMD_SET_STATUS, WAIT_MS);
    assert_non_null(status);
    assert_int_equal(status->u.status.state, NP_STATE_AVAILABLE);
    np_cmd_free(status);
    /* Legacy presence with status text and idle time. */
    post_event(np_event_presence(OWNER, "Bob", "Bobby", NP_STATE_AWAY, "brb \x02soon", 0));
    expect_out("<presence from='bob@" DOMAIN "' to='" OWNER "'><show>away</show>"
               "<status>brb soon</status></presence>");
    post_event(np_event_presence(OWNER, "Bob", NULL, NP_STATE_DND, NULL, 120));
    char *idle = take_out("<idle xmlns='urn:xmpp:idle:1' since='", WAIT_MS);
    assert_non_null(idle);
    assert_non_null(strstr(idle, "<show>dnd</show>"));
    free(idle);
    /* A probe now is answered at once, to the prober. */
    sessions_to_contact(f->b.sessions, presence(FULL, "bob@" DOMAIN, "probe"));
    idle = take_out("to='" FULL "'", WAIT_MS);
    assert_non_null(idle);
    assert_non_null(strstr(idle, "<show>dnd</show>"));
    free(idle);
}

static void test_message_before_sign_on_is_sent_after_it(void **state)
{
    struct fixture *f = *state;
    sessions_presence(f->b.sessions, presence(FULL, DOMAIN, NULL));
    sessions_to_contact(f->b.sessions, message("zed\\5b1\\5d@" DOMAIN, "m1", "a < b & c"));
    sessions_to_contact(f->b.sessions, message("[q]@" DOMAIN, "m2", "second"));
    struct np_cmd *login = take_cmd(NP_CMD_LOGIN, WAIT_MS);
    assert_non_null(login);
    np_cmd_free(login);
    assert_null(take_cmd(NP_CMD_SEND_IM, 200));
    post_event(np_event_signed_on(OWNER, "alice"));
    expect_cmd_im("zed\\5b1\\5d", "a < b & c");
    expect_cmd_im("[q]", "second");
}

static void test_message_from_legacy_keeps_the_spelling_for_replies(void **state)
{
    struct fixture *f = *state;
    sign_on(f);
    post_event(np_event_im_received(OWNER, "Zed[X]",
                                    "hi \x03"
                                    "4,5there\x1b!",
                                    0, 0));
    char *m = take_out("from='zed[x]@" DOMAIN "'", WAIT_MS);
    assert_non_null(m);
    assert_non_null(strstr(m, "<body>hi there!</body>"));
    assert_non_null(strstr(m, "type='chat'"));
    free(m);
    sessions_to_contact(f->b.sessions, message("zed[x]@" DOMAIN, "r1", "reply"));
    expect_cmd_im("Zed[X]", "reply");
    /* A name whose escaping nodeprep refuses gets a digest node (never another name's node,
     * escaping never writes \5c before x) and a nickname; a reply reaches the name. */
    const char *odd = "bad\xef\xbc\xbc"
                      "20name";
    char digest[41], *from;
    sha1_hex(odd, strlen(odd), digest);
    from = xasprintf("from='\\5cx%.24s@" DOMAIN "'", digest);
    post_event(np_event_im_received(OWNER, odd, "x", 0, 0));
    m = take_out(from, WAIT_MS);
    assert_non_null(m);
    assert_non_null(strstr(m, "<body>x</body><nick xmlns='http://jabber.org/protocol/nick'>"
                              "bad\xef\xbc\xbc"
                              "20name</nick>"));
    free(m);
    char *to = xasprintf("\\5cx%.24s@" DOMAIN, digest);
    sessions_to_contact(f->b.sessions, message(to, "r2", "to the odd name"));
    expect_cmd_im(odd, "to the odd name");
    free(to);
    free(from);
    /* Longer than a JID part may be (1023 bytes): a digest node as well. */
    char *longname = xmalloc(1101);
    memset(longname, 'l', 1100);
    longname[1100] = '\0';
    sha1_hex(longname, 1100, digest);
    from = xasprintf("from='\\5cx%.24s@" DOMAIN "'", digest);
    post_event(np_event_im_received(OWNER, longname, "long", 0, 0));
    m = take_out(from, WAIT_MS);
    assert_non_null(m);
    assert_non_null(strstr(m, "<body>long</body>"));
    free(m);
    free(from);
    free(longname);
}

static void test_delivery_error_bounces_the_message(void **state)
{
    struct fixture *f = *state;
    sign_on(f);
    sessions_to_contact(f->b.sessions, message("nobody@" DOMAIN, "m7", "are you <there>?"));
    expect_cmd_im("nobody", "are you <there>?");
    post_event(np_event_im_send_failed(OWNER, "nobody", "User is not logged in"));
    expect_out("<message type='error' id='m7' from='nobody@" DOMAIN "' to='" FULL "'>"
               "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
               "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>User is not logged in</text>"
               "</error><body>are you &lt;there&gt;?</body></message>");
}

static void test_login_timeout_bounces_then_retries(void **state)
{
    struct fixture *f = *state;
    sessions_presence(f->b.sessions, presence(FULL, DOMAIN, NULL));
    sessions_to_contact(f->b.sessions, message("bob@" DOMAIN, "w1", "waiting"));
    struct np_cmd *login = take_cmd(NP_CMD_LOGIN, WAIT_MS);
    assert_non_null(login);
    np_cmd_free(login);
    /* No sign-on within legacy_login_timeout_ms (400 ms). */
    char *err = take_out("type='error' id='w1'", WAIT_MS);
    assert_non_null(err);
    assert_non_null(strstr(err, "<recipient-unavailable"));
    assert_non_null(strstr(err, "<body>waiting</body>"));
    free(err);
    char *p = take_out("<presence from='" DOMAIN "' to='" OWNER "' type='unavailable'>", WAIT_MS);
    assert_non_null(p);
    assert_non_null(strstr(p, "Not connected to IRC: no answer within"));
    free(p);
    /* After reconnect_min (100 ms, the first backoff step): a new login comes. */
    login = take_cmd(NP_CMD_LOGIN, WAIT_MS);
    assert_non_null(login);
    np_cmd_free(login);
    post_event(np_event_signed_on(OWNER, "alice1"));
    expect_out("<presence from='" DOMAIN "' to='" OWNER "'><status>Connected to IRC as alice1"
               "</status></presence>");
    char *note = take_out("The name alice is taken on IRC: you are connected as alice1.", WAIT_MS);
    assert_non_null(note);
    free(note);
}

static void test_fatal_error_is_not_retried(void **state)
{
    struct fixture *f = *state;
    sign_on(f);
    post_event(np_event_connection_error(OWNER, "Access denied: Bad password?", 2, 1));
    char *note = take_out("refused your login: Access denied: Bad password?", WAIT_MS);
    assert_non_null(note);
    assert_non_null(strstr(note, "register again"));
    free(note);
    char *p = take_out("type='unavailable'><status>IRC refused the login", WAIT_MS);
    assert_non_null(p);
    free(p);
    assert_null(take_cmd(NP_CMD_LOGIN, 600));
    sessions_to_contact(f->b.sessions, message("bob@" DOMAIN, "f1", "hello"));
    char *err = take_out("id='f1'", WAIT_MS);
    assert_non_null(err);
    assert_non_null(strstr(err, "<not-authorized"));
    free(err);
}

static void test_resources_and_priorities(void **state)
{
    struct fixture *f = *state;
    sign_on(f);
    struct np_cmd *c = take_cmd(NP_CMD_SET_STATUS, WAIT_MS);
    assert_non_null(c);
    np_cmd_free(c);
    xn_t *p = presence("alice@localhost/phone", DOMAIN, NULL);
    xn_add_child_text(p, NULL, "show", "xa");
    xn_add_child_text(p, NULL, "status", "far away");
    xn_add_child_text(p, NULL, "priority", "5");
    sessions_presence(f->b.sessions, p);
    c = take_cmd(NP_CMD_SET_STATUS, WAIT_MS);
    assert_non_null(c);
    assert_int_equal(c->u.status.state, NP_STATE_XA);
    assert_string_equal(c->u.status.message, "far away");
    np_cmd_free(c);
    p = presence(FULL, DOMAIN, NULL);
    xn_add_child_text(p, NULL, "show", "dnd");
    xn_add_child_text(p, NULL, "priority", "-1");
    sessions_presence(f->b.sessions, p);
    assert_null(take_cmd(NP_CMD_SET_STATUS, 300)); /* the phone still has the higher priority */
    sessions_presence(f->b.sessions, presence("alice@localhost/phone", DOMAIN, "unavailable"));
    c = take_cmd(NP_CMD_SET_STATUS, WAIT_MS);
    assert_non_null(c);
    assert_int_equal(c->u.status.state, NP_STATE_DND);
    assert_null(c->u.status.message);
    np_cmd_free(c);
    /* The last resource leaves: logout, and the transport goes unavailable. */
    sessions_presence(f->b.sessions, presence(FULL, DOMAIN, "unavailable"));
    c = take_cmd(NP_CMD_LOGOUT, WAIT_MS);
    assert_non_null(c);
    np_cmd_free(c);
    expect_out("<presence from='" DOMAIN "' to='" OWNER "' type='unavailable'/>");
    sessions_end_owner(f->b.sessions, OWNER); /* returns once the session is gone */
    /* A new presence starts a new session. */
    sessions_presence(f->b.sessions, presence(FULL, DOMAIN, NULL));
    c = take_cmd(NP_CMD_LOGIN, WAIT_MS);
    assert_non_null(c);
    np_cmd_free(c);
}

static void test_subscriptions_are_remembered(void **state)
{
    struct fixture *f = *state;
    sign_on(f);
    sessions_to_contact(f->b.sessions, presence(OWNER, "gus@" DOMAIN, "subscribe"));
    struct np_cmd *c = take_cmd(NP_CMD_ADD_BUDDY, WAIT_MS);
    assert_non_null(c);
    assert_string_equal(c->u.buddy.who, "gus");
    np_cmd_free(c);
    expect_out("<presence from='gus@" DOMAIN "' to='" OWNER "' type='subscribed'/>");
    /* A buddy the legacy list announces: one subscribe with its nickname, ever. */
    post_event(np_event_buddy_added(OWNER, "Hal", "Hal H.", NULL));
    expect_out("<presence from='hal@" DOMAIN "' to='" OWNER "' type='subscribe'>"
               "<nick xmlns='http://jabber.org/protocol/nick'>Hal H.</nick></presence>");
    /* An authorization request: subscribe to the owner, whose answer goes back. */
    post_event(np_event_auth_request(OWNER, 77, "ida", NULL, "let me in"));
    expect_out("<presence from='ida@" DOMAIN "' to='" OWNER "' type='subscribe'>"
               "<status>let me in</status></presence>");
    sessions_to_contact(f->b.sessions, presence(OWNER, "ida@" DOMAIN, "subscribed"));
    c = take_cmd(NP_CMD_AUTHORIZE, WAIT_MS);
    assert_non_null(c);
    assert_true(c->u.authorize.id == 77 && c->u.authorize.accept == 1);
    np_cmd_free(c);
    sync_session();
    struct store_contact sc;
    assert_int_equal(store_contact_get(f->b.store, OWNER, "gus", &sc), STORE_OK);
    assert_int_equal(sc.subscription, STORE_SUB_TO);
    store_contact_free(&sc);
    assert_int_equal(store_contact_get(f->b.store, OWNER, "Hal", &sc), STORE_OK);
    assert_int_equal(sc.subscribe_sent, 1);
    store_contact_free(&sc);
    assert_int_equal(store_contact_get(f->b.store, OWNER, "ida", &sc), STORE_OK);
    assert_int_equal(sc.subscription, STORE_SUB_FROM);
    store_contact_free(&sc);
    /* Next session: gus is followed again, Hal is not asked about again. */
    sessions_end_owner(f->b.sessions, OWNER);
    clear_records();
    sign_on(f);
    c = take_cmd(NP_CMD_ADD_BUDDY, WAIT_MS);
    assert_non_null(c);
    assert_string_equal(c->u.buddy.who, "gus");
    np_cmd_free(c);
    post_event(np_event_buddy_added(OWNER, "Hal", "Hal H.", NULL));
    sync_session();
    assert_null(take_out("type='subscribe'", 100));
}

/* issue 5: where the legacy contact must consent (prpl-jabber), the owner's subscribe is
 * answered subscribed only once the contact accepted, and unsubscribed when it refused. */
static void test_subscribe_waits_for_the_legacy_consent(void **state)
{
    struct fixture *f = *state;
    needs_authorization = 1;
    sign_on(f);
    sessions_to_contact(f->b.sessions, presence(OWNER, "gus@" DOMAIN, "subscribe"));
    sessions_to_contact(f->b.sessions, presence(OWNER, "kim@" DOMAIN, "subscribe"));
    for (int i = 0; i < 2; i++) {
        struct np_cmd *c = take_cmd(NP_CMD_ADD_BUDDY, WAIT_MS);
        assert_non_null(c);
        np_cmd_free(c);
    }
    sync_session();
    assert_null(take_out("type='subscribed'", 0));
    post_event(np_event_buddy_authorized(OWNER, "gus", 1));
    expect_out("<presence from='gus@" DOMAIN "' to='" OWNER "' type='subscribed'/>");
    post_event(np_event_buddy_authorized(OWNER, "kim", 0));
    expect_out("<presence from='kim@" DOMAIN "' to='" OWNER "' type='unsubscribed'/>");
    /* An answer to nothing the owner asked is not passed on. */
    post_event(np_event_buddy_authorized(OWNER, "kim", 1));
    post_event(np_event_buddy_authorized(OWNER, "lou", 1));
    sync_session();
    assert_null(take_out("type='subscribed'", 0));
    struct store_contact sc;
    assert_int_equal(store_contact_get(f->b.store, OWNER, "gus", &sc), STORE_OK);
    assert_int_equal(sc.subscription, STORE_SUB_TO);
    store_contact_free(&sc);
    assert_int_equal(store_contact_get(f->b.store, OWNER, "kim", &sc), STORE_OK);
    assert_int_equal(sc.subscription, STORE_SUB_NONE);
    assert_int_equal(sc.subscribe_sent, 1);
    store_contact_free(&sc);
}

static void test_without_a_session(void **state)
{
    struct fixture *f = *state;
    xn_t *m = message("bob@" DOMAIN, "s1", "hi");
    xn_set_attr(m, "from", "eve@localhost/x");
    sessions_to_contact(f->b.sessions, m);
    char *err = take_out("id='s1'", WAIT_MS);
    assert_non_null(err);
    assert_non_null(strstr(err, "<registration-required"));
    free(err);
    sessions_to_contact(f->b.sessions, message("bob@" DOMAIN, "s2", "hi"));
    err = take_out("id='s2'", WAIT_MS);
    assert_non_null(err);
    assert_non_null(strstr(err, "<recipient-unavailable"));
    assert_non_null(strstr(err, "come online"));
    free(err);
    sessions_presence(f->b.sessions, presence(FULL, DOMAIN, "probe"));
    expect_out("<presence from='" DOMAIN "' to='" FULL "' type='unavailable'/>");
    sessions_presence(f->b.sessions, presence("eve@localhost/x", DOMAIN, NULL));
    assert_null(take_cmd(NP_CMD_LOGIN, 200));
    sessions_probe_all(f->b.sessions);
    expect_out("<presence from='" DOMAIN "' to='" OWNER "' type='probe'/>");
}

static void test_shutdown_says_goodbye(void **state)
{
    struct fixture *f = *state;
    sign_on(f);
    post_event(np_event_presence(OWNER, "bob", NULL, NP_STATE_AVAILABLE, NULL, 0));
    expect_out("<presence from='bob@" DOMAIN "' to='" OWNER "'/>");
    sessions_shutdown(f->b.sessions);
    expect_out("<presence from='bob@" DOMAIN "' to='" OWNER "' type='unavailable'/>");
    expect_out("<presence from='" DOMAIN "' to='" OWNER "' type='unavailable'><status>The "
               "gateway is shutting down</status></presence>");
    struct np_cmd *c = take_cmd(NP_CMD_LOGOUT, WAIT_MS);
    assert_non_null(c);
    np_cmd_free(c);
    /* After shutdown no session starts. */
    sessions_presence(f->b.sessions, presence(FULL, DOMAIN, NULL));
    assert_null(take_cmd(NP_CMD_LOGIN, 200));
}

/* <remove/> says goodbye from each stored contact by the node its session gave it. */
static void test_node_of_a_stored_contact(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"Zed[X]",
                           "bad\xef\xbc\xbc"
                           "20name",
                           "a@b c"};
    sign_on(f);
    for (size_t i = 0; i < FERRY_ARRAY_LEN(names); i++) {
        char *node = contacts_node_of(names[i]);
        char *from = xasprintf("<message from='%s@" DOMAIN "' ", node);
        post_event(np_event_im_received(OWNER, names[i], "x", 0, 0));
        char *m = take_out(from, WAIT_MS);
        if (!m)
            fail_msg("no message from %s", from);
        free(m);
        free(from);
        free(node);
    }
    char *node = contacts_node_of("bad\xef\xbc\xbc"
                                  "20name");
    assert_memory_equal(node, "\\5cx", 4);
    free(node);
    assert_null(contacts_node_of(""));
    assert_null(contacts_node_of(NULL));
}

/* issue 5: presence for contacts that waits for the sign-on longer than
 * [legacy] early_presence_timeout is dropped with a log line; what is younger is replayed. */
static void test_early_presence_expires_with_a_log_line(void **state)
{
    struct fixture *f = *state;
    f->cfg.legacy_login_timeout_ms = 10000; /* the login outlives the buffer */
    f->cfg.legacy_early_presence_ms = 300;
    sessions_presence(f->b.sessions, presence(FULL, DOMAIN, NULL));
    struct np_cmd *c = take_cmd(NP_CMD_LOGIN, WAIT_MS);
    assert_non_null(c);
    np_cmd_free(c);
    sessions_to_contact(f->b.sessions, presence(FULL, "bob@" DOMAIN, "probe"));
    sessions_to_contact(f->b.sessions, presence(OWNER, "carl@" DOMAIN, "subscribe"));
    assert_int_equal(wait_log("[session] " OWNER ": presence probe to bob@" DOMAIN
                              " from before the sign-on expired",
                              1, WAIT_MS),
                     1);
    assert_int_equal(wait_log("[session] " OWNER ": presence subscribe to carl@" DOMAIN
                              " from before the sign-on expired",
                              1, WAIT_MS),
                     1);
    /* A probe that arrives now is still young at the sign-on: it alone is answered. */
    sessions_to_contact(f->b.sessions, presence(FULL, "dan@" DOMAIN, "probe"));
    post_event(np_event_signed_on(OWNER, "alice"));
    expect_out("<presence from='" DOMAIN "' to='" OWNER "'><status>Connected to IRC as alice"
               "</status></presence>");
    expect_out("<presence from='dan@" DOMAIN "' to='" FULL "' type='unavailable'/>");
    sync_session();
    assert_null(take_out("bob@", 0));
    assert_null(take_out("carl@", 0));
    assert_null(take_cmd(NP_CMD_ADD_BUDDY, 0));
    assert_int_equal(wait_log("from before the sign-on expired", 3, 0), 2);
}

/* Milliseconds from a connection error to the next LOGIN. */
static int64_t retry_gap(void)
{
    int64_t t0 = now_ms();
    post_event(np_event_connection_error(OWNER, "Connection reset by peer", 0, 0));
    struct np_cmd *c = take_cmd(NP_CMD_LOGIN, WAIT_MS);
    assert_non_null(c);
    np_cmd_free(c);
    return now_ms() - t0;
}

/* issue 5: legacy reconnects back off from [legacy] reconnect_min, doubling, to
 * reconnect_max (lib/backoff.c, tested exactly in test_backoff); a sign-on starts over. The
 * upper bounds leave room for a slow machine, but less than an off-by-one step would need. */
static void test_reconnect_backoff_doubles_to_the_cap(void **state)
{
    struct fixture *f = *state;
    enum { SLACK = 120 }; /* about 5 ms seen under valgrind */
    static const int64_t low[] = {300, 450, 900, 900}, high[] = {300, 600, 1200, 1200};
    f->cfg.legacy_reconnect_min_ms = 300;
    f->cfg.legacy_reconnect_max_ms = 1200;
    f->cfg.legacy_login_timeout_ms = 10000;
    sign_on(f);
    for (size_t i = 0; i < FERRY_ARRAY_LEN(low); i++) {
        int64_t gap = retry_gap();
        if (gap < low[i] || gap > high[i] + SLACK)
            fail_msg("retry %zu after %lld ms, not in [%lld, %lld]", i + 1, (long long)gap,
                     (long long)low[i], (long long)high[i] + SLACK);
    }
    char *p = take_out("Trying again in 1 s.", WAIT_MS);
    assert_non_null(p);
    free(p);
    post_event(np_event_signed_on(OWNER, "alice"));
    p = take_out("<status>Connected to IRC as alice</status>", WAIT_MS);
    assert_non_null(p);
    free(p);
    int64_t gap = retry_gap(); /* back to the first step */
    assert_true(gap >= 300 && gap <= 300 + SLACK);
}

static xn_t *error_presence(const char *from)
{
    xn_t *p = presence(from, DOMAIN, "error");
    xn_t *err = xn_add_child(p, NULL, "error");
    xn_set_attr(err, "type", "cancel");
    xn_add_child(err, XN_NS_STANZAS, "remote-server-not-found");
    return p;
}

/* issue 5: an error presence from the owner's server ends the session at once: legacy
 * logout. Not the pause an unavailable gets (a client that flaps keeps its login). */
static void test_error_presence_from_the_owner_server_ends_it(void **state)
{
    struct fixture *f = *state;
    sign_on(f);
    /* From the one resource, followed at once by an available one: a new session. */
    sessions_presence(f->b.sessions, error_presence(FULL));
    sessions_presence(f->b.sessions, presence(FULL, DOMAIN, NULL));
    struct np_cmd *c = take_cmd(NP_CMD_LOGOUT, WAIT_MS);
    assert_non_null(c);
    np_cmd_free(c);
    expect_out("<presence from='" DOMAIN "' to='" OWNER "' type='unavailable'/>");
    c = take_cmd(NP_CMD_LOGIN, WAIT_MS);
    assert_non_null(c);
    np_cmd_free(c);
    /* From the bare JID: the user is gone, whatever resources were online. */
    post_event(np_event_signed_on(OWNER, "alice"));
    sessions_presence(f->b.sessions, presence("alice@localhost/phone", DOMAIN, NULL));
    post_event(np_event_presence(OWNER, "bob", NULL, NP_STATE_AVAILABLE, NULL, 0));
    expect_out("<presence from='bob@" DOMAIN "' to='" OWNER "'/>");
    sessions_presence(f->b.sessions, error_presence(OWNER));
    c = take_cmd(NP_CMD_LOGOUT, WAIT_MS);
    assert_non_null(c);
    np_cmd_free(c);
    expect_out("<presence from='bob@" DOMAIN "' to='" OWNER "' type='unavailable'/>");
    expect_out("<presence from='" DOMAIN "' to='" OWNER "' type='unavailable'/>");
    assert_int_equal(wait_log("[session] " OWNER ": session ended", 2, WAIT_MS), 2);
}

/* An available presence from one of alice's resources, with a priority. */
static xn_t *available(const char *from, const char *show, const char *priority)
{
    xn_t *p = presence(from, DOMAIN, NULL);
    if (show)
        xn_add_child_text(p, NULL, "show", show);
    if (priority)
        xn_add_child_text(p, NULL, "priority", priority);
    return p;
}

static void expect_status(enum np_state state, int ms)
{
    struct np_cmd *c = take_cmd(NP_CMD_SET_STATUS, ms);
    assert_non_null(c);
    assert_int_equal(c->u.status.state, state);
    np_cmd_free(c);
}

/* issue 7: the component link came back (after a server restart that took every client):
 * once the owner's server answered the probe, resources it did not confirm within the grace
 * period are dropped and the legacy status follows those left; an 'unsubscribed' answer tells
 * nothing of the resources. */
static void test_link_up_drops_resources_that_are_not_back(void **state)
{
    struct fixture *f = *state;
    sign_on(f);
    expect_status(NP_STATE_AVAILABLE, WAIT_MS);
    sessions_presence(f->b.sessions, available("alice@localhost/phone", "xa", "5"));
    expect_status(NP_STATE_XA, WAIT_MS);
    sessions_probe_all(f->b.sessions);
    expect_out("<presence from='" DOMAIN "' to='" OWNER "' type='probe'/>");
    /* The server answers with the desk only: until the grace period ends, nothing changes. */
    int64_t probed = now_ms();
    sessions_presence(f->b.sessions, available(FULL, NULL, NULL));
    assert_null(take_cmd(NP_CMD_SET_STATUS, 300));
    expect_status(NP_STATE_AVAILABLE, SESS_LINK_GRACE_MS + WAIT_MS);
    assert_true(now_ms() - probed >= SESS_LINK_GRACE_MS - 50);
    assert_int_equal(wait_log("alice@localhost/phone offline: no presence since the link", 1, 0),
                     1);
    assert_null(take_cmd(NP_CMD_LOGOUT, 0));
    /* Again, and the server answers 'unsubscribed' (the transport may not see the owner's
     * presence, as Prosody says to a probe without a subscription): the desk stays. */
    sessions_probe_all(f->b.sessions);
    expect_out("<presence from='" DOMAIN "' to='" OWNER "' type='probe'/>");
    sessions_presence(f->b.sessions, presence(OWNER, DOMAIN, "unsubscribed"));
    assert_int_equal(
        wait_log("since the link came back: 1 resource(s) kept", 1, SESS_LINK_GRACE_MS + WAIT_MS),
        1);
    assert_null(take_cmd(NP_CMD_LOGOUT, 1500));
    assert_null(take_cmd(NP_CMD_SET_STATUS, 0));
    assert_int_equal(wait_log("resource " FULL " offline", 1, 0), 0);
}

/* issue 7: no answer at all to the probe at link-up (the owner's server is remote and slower
 * than the grace period, or tells the transport nothing): every resource is kept, and so is
 * the legacy login, instead of a logout now and a login when the answer comes. */
static void test_link_up_without_an_answer_keeps_every_resource(void **state)
{
    struct fixture *f = *state;
    sign_on(f);
    expect_status(NP_STATE_AVAILABLE, WAIT_MS);
    sessions_presence(f->b.sessions, available("alice@localhost/phone", "xa", "5"));
    expect_status(NP_STATE_XA, WAIT_MS);
    sessions_probe_all(f->b.sessions);
    expect_out("<presence from='" DOMAIN "' to='" OWNER "' type='probe'/>");
    assert_int_equal(
        wait_log("since the link came back: 2 resource(s) kept", 1, SESS_LINK_GRACE_MS + WAIT_MS),
        1);
    assert_null(take_cmd(NP_CMD_LOGOUT, 1500));
    assert_null(take_cmd(NP_CMD_SET_STATUS, 0));
    assert_int_equal(wait_log(" offline", 1, 0), 0);
    /* Both still count: the phone leaving gives the desk's status, not a logout. */
    sessions_presence(f->b.sessions, presence("alice@localhost/phone", DOMAIN, "unavailable"));
    expect_status(NP_STATE_AVAILABLE, WAIT_MS);
    assert_null(take_cmd(NP_CMD_LOGOUT, 1500));
}

/* issue 7: an unavailable from the bare JID (the server's answer to a probe when no resource
 * is online) clears every resource and logs out after the usual pause: a resource back within
 * it keeps the login. */
static void test_unavailable_from_the_bare_jid_clears_every_resource(void **state)
{
    struct fixture *f = *state;
    sign_on(f);
    sessions_presence(f->b.sessions, available("alice@localhost/phone", NULL, "5"));
    sessions_probe_all(f->b.sessions);
    sessions_presence(f->b.sessions, presence(OWNER, DOMAIN, "unavailable"));
    assert_int_equal(wait_log("resource alice@localhost/phone offline", 1, WAIT_MS), 1);
    assert_int_equal(wait_log("resource " FULL " offline", 1, WAIT_MS), 1);
    assert_null(take_cmd(NP_CMD_LOGOUT, 300));
    sessions_presence(f->b.sessions, available(FULL, NULL, NULL));
    assert_null(take_cmd(NP_CMD_LOGOUT, 1500));
    sessions_presence(f->b.sessions, presence(OWNER, DOMAIN, "unavailable"));
    struct np_cmd *c = take_cmd(NP_CMD_LOGOUT, WAIT_MS);
    assert_non_null(c);
    np_cmd_free(c);
    assert_int_equal(wait_log("[session] " OWNER ": session ended", 1, WAIT_MS), 1);
    assert_int_equal(wait_log("logging in", 2, 0), 1);
}

/* issue 7: a delivery error without an id (IRC's "no such nick") answers a line already
 * written: a message whose IM_SENT came, else the oldest one unanswered to that contact (the
 * only one that can have a line out), never a newer one native may still deliver. */
static void test_error_without_an_id_bounces_a_message_written(void **state)
{
    struct fixture *f = *state;
    sign_on(f);
    sessions_to_contact(f->b.sessions, message("nobody@" DOMAIN, "m1", "first"));
    sessions_to_contact(f->b.sessions, message("nobody@" DOMAIN, "m2", "second"));
    struct np_cmd *c1 = take_cmd(NP_CMD_SEND_IM, WAIT_MS);
    struct np_cmd *c2 = take_cmd(NP_CMD_SEND_IM, WAIT_MS);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_string_equal(c1->u.im.text, "first");
    uint64_t id1 = c1->u.im.id, id2 = c2->u.im.id;
    np_cmd_free(c1);
    np_cmd_free(c2);
    /* m1 partly written, m2 still in the pacer: the error is m1's. */
    post_event(np_event_im_send_failed(OWNER, "nobody", "No such nick/channel"));
    char *err = take_out("type='error' id='m1'", WAIT_MS);
    assert_non_null(err);
    free(err);
    /* m2 is written later and delivered; m1's own answer finds nothing left to answer. */
    post_event(np_event_im_sent(OWNER, "nobody", id2));
    post_event(np_event_im_sent(OWNER, "nobody", id1));
    sync_session();
    assert_null(take_out("type='error'", 0));
    /* Written whole beats unanswered: with m2 on the ring and m3 unanswered, m2 it is. */
    sessions_to_contact(f->b.sessions, message("nobody@" DOMAIN, "m3", "third"));
    struct np_cmd *c3 = take_cmd(NP_CMD_SEND_IM, WAIT_MS);
    assert_non_null(c3);
    np_cmd_free(c3);
    post_event(np_event_im_send_failed(OWNER, "nobody", "No such nick/channel"));
    err = take_out("type='error' id='m2'", WAIT_MS);
    assert_non_null(err);
    free(err);
    sync_session();
    assert_null(take_out("type='error'", 0));
}

/* issue 7: an ending session hands the owner's stanzas it still holds (mailbox, then the
 * presences kept aside) back to the table before it waits for native's LOGGED_OUT: a newer
 * presence meanwhile starts a new session, which must not get an older one after it (here a
 * spilled 'unavailable' of the phone, after the phone came back). */
static void test_ending_session_hands_back_what_it_holds_first(void **state)
{
    struct fixture *f = *state;
    sign_on(f);
    pthread_mutex_lock(&rec_lock);
    hold_logout = 1;
    pthread_mutex_unlock(&rec_lock);
    /* The session thread is held answering a probe, while its mailbox fills: the desk
     * leaves, a second probe to hold it, presences that change nothing, and more than fit:
     * those and the phone's unavailable are kept aside. */
    gate_set(1, 0);
    sessions_to_contact(f->b.sessions, presence(GATE, "bob@" DOMAIN, "probe"));
    gate_wait_entered(1);
    sessions_presence(f->b.sessions, presence(FULL, DOMAIN, "unavailable"));
    sessions_to_contact(f->b.sessions, presence(GATE, "bob@" DOMAIN, "probe"));
    for (int i = 0; i < SESSION_MAILBOX_CAPACITY + 8; i++)
        sessions_presence(f->b.sessions, presence(FULL, DOMAIN, "subscribed"));
    sessions_presence(f->b.sessions, presence("alice@localhost/phone", DOMAIN, "unavailable"));
    /* The desk's unavailable is read (the logout waits LINGER_MS, 1 s), the second probe is
     * held past it: the session ends with presences still unread and kept aside. */
    gate_set(1, 1);
    gate_wait_entered(2);
    usleep(1300 * 1000);
    gate_set(0, 0);
    struct np_cmd *c = take_cmd(NP_CMD_LOGOUT, WAIT_MS);
    assert_non_null(c);
    np_cmd_free(c);
    assert_int_equal(wait_log("presence(s) kept aside handed back", 1, WAIT_MS), 1);
    /* The phone comes back: a new session, while the old one still waits for LOGGED_OUT. */
    sessions_presence(f->b.sessions, presence("alice@localhost/phone", DOMAIN, NULL));
    c = take_cmd(NP_CMD_LOGIN, WAIT_MS);
    assert_non_null(c);
    np_cmd_free(c);
    pthread_mutex_lock(&rec_lock);
    mailbox_t *old = held_mailbox;
    hold_logout = 0;
    pthread_mutex_unlock(&rec_lock);
    assert_non_null(old);
    assert_int_equal(mb_send(old, np_event_logged_out(OWNER)), MB_OK);
    assert_int_equal(wait_log("[session] " OWNER ": session ended", 1, WAIT_MS), 1);
    /* The new session keeps the phone: no logout after LINGER_MS. */
    assert_null(take_cmd(NP_CMD_LOGOUT, 2000));
    assert_int_equal(wait_log("resource alice@localhost/phone offline", 1, 0), 0);
}

int main(void)
{
    log_set_sink(record_log, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_probe_before_sign_on_waits_for_the_real_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_message_before_sign_on_is_sent_after_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_message_from_legacy_keeps_the_spelling_for_replies,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_error_bounces_the_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_timeout_bounces_then_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fatal_error_is_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resources_and_priorities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscriptions_are_remembered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_without_a_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_says_goodbye, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_of_a_stored_contact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_waits_for_the_legacy_consent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_early_presence_expires_with_a_log_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_backoff_doubles_to_the_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_presence_from_the_owner_server_ends_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_link_up_drops_resources_that_are_not_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unavailable_from_the_bare_jid_clears_every_resource,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_up_without_an_answer_keeps_every_resource, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_error_without_an_id_bounces_a_message_written, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ending_session_hands_back_what_it_holds_first, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
