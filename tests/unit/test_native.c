/* Tests for native/: the command and event structs, then libpurple for real against a private
 * ngircd on loopback (started here, killed by PID at the end; the tests fail if it cannot
 * start). The server requires a password, so every good login proves the password reached
 * it, and a wrong one must come back as a fatal connection error. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <glib.h>

#include "lib/log.h"
#include "lib/mailbox.h"
#include "lib/util.h"
#include "native/internal.h"
#include "native/native.h"

#define SERVER_PASSWORD "Pl3ase-N0t-In-Files"
#define WAIT_MS 30000
/* Text with markup characters, quotes, accents and an emoji: must arrive byte for byte. */
#define TRICKY "a<b> & c \"q\" 'r' d&amp;e <i>x</i> caf\xc3\xa9 \xf0\x9f\x98\x80"

/* LeakSanitizer (make asan): what libpurple allocates while it initialises is its own, and
 * partly lost when it unloads its plugins at quit (valgrind: tests/unit/libpurple.supp). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:purple_core_init\n";
}

/* Full stacks, so that the suppression can see purple_core_init through libraries built
 * without frame pointers. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "fast_unwind_on_malloc=0";
}

static struct {
    pid_t ircd;
    int port;
    char dir[64];     /* everything of this test run */
    char storage[96]; /* [storage] path */
} rig;

/* ---- helpers: processes, files, sockets ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static char *ircd_config(void)
{
    return xasprintf("[Global]\nName = irc.ferry.test\nInfo = Ferry test\n"
                     "Listen = 127.0.0.1\nPorts = %d\nPidFile = %s/ngircd.pid\n"
                     "ServerUID = nobody\nServerGID = nogroup\nPassword = %s\n"
                     "AdminInfo1 = test\nAdminInfo2 = test\nAdminEMail = test@localhost\n"
                     "MotdPhrase = hello\n"
                     "[Limits]\nMaxConnectionsIP = 0\nMaxJoins = 0\nMaxPenaltyTime = 0\n"
                     "[Options]\nPAM = no\nDNS = no\nIdent = no\n",
                     rig.port, rig.dir, SERVER_PASSWORD);
}

/* Not a cmocka test: failures are printed and make the whole run fail. */
static int start_ircd(void)
{
    char *conf_path = xasprintf("%s/ngircd.conf", rig.dir);
    char *conf = ircd_config();
    int rc = write_file(conf_path, conf);
    free(conf);
    if (rc == 0 && (rig.ircd = fork()) == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execlp("ngircd", "ngircd", "-n", "-f", conf_path, (char *)NULL);
        _exit(127);
    }
    free(conf_path);
    for (int i = 0; rc == 0 && rig.ircd > 0 && i < 200; i++) {
        int status, fd;
        if (waitpid(rig.ircd, &status, WNOHANG) == rig.ircd) {
            fprintf(stderr, "ngircd exited at start (status %d): is it installed?\n", status);
            rig.ircd = 0;
            return -1;
        }
        if ((fd = connect_port(rig.port)) >= 0) {
            close(fd);
            return 0;
        }
        usleep(50000);
    }
    fprintf(stderr, "ngircd did not listen on port %d within 10 s\n", rig.port);
    return -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int rig_setup(void)
{
    strcpy(rig.dir, "/tmp/ferry-test-native-XXXXXX");
    if (!mkdtemp(rig.dir))
        return -1;
    chmod(rig.dir, 0755); /* ngircd drops to nobody and must read its config */
    snprintf(rig.storage, sizeof(rig.storage), "%s/data", rig.dir);
    rig.port = free_port();
    if (rig.port < 0 || start_ircd() < 0)
        return -1;
    if (!getenv("FERRY_TEST_DEBUG"))
        log_set_level(LOG_LEVEL_WARN);
    else
        log_set_level(LOG_LEVEL_DEBUG);
    return 0;
}

static int rig_teardown(void)
{
    if (rig.ircd > 0) {
        kill(rig.ircd, SIGTERM);
        waitpid(rig.ircd, NULL, 0);
    }
    nftw(rig.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void config_init(struct ferry_config *cfg, const char *protocol)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->legacy_protocol = (char *)protocol;
    cfg->legacy_server = (char *)"127.0.0.1";
    cfg->legacy_port = rig.port;
    cfg->legacy_login_rate = 50;
    cfg->legacy_request_timeout_ms = 20000;
    cfg->storage_path = rig.storage;
}

/* ---- helpers: events ---- */

/* Waits for an event of this type (for this name, when who is given), freeing the others. */
static struct np_event *wait_event(mailbox_t *mb, enum np_event_type type, const char *who)
{
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        int64_t left = deadline - now_ms();
        void *msg = NULL;
        if (left <= 0 || mb_recv(mb, &msg, (int)left) != MB_OK)
            fail_msg("no %s event%s%s within %d ms", np_event_type_name(type), who ? " about " : "",
                     who ? who : "", WAIT_MS);
        struct np_event *ev = msg;
        assert_int_equal(ev->kind, NP_EVENT_KIND);
        const char *name = ev->type == NP_EV_IM_RECEIVED      ? ev->u.im.from
                           : ev->type == NP_EV_IM_SEND_FAILED ? ev->u.send_failed.to
                           : ev->type == NP_EV_BUDDY_PRESENCE ? ev->u.presence.who
                           : ev->type == NP_EV_USERINFO       ? ev->u.userinfo.who
                                                              : NULL;
        if (ev->type == type && (!who || (name && strcmp(name, who) == 0)))
            return ev;
        if (ev->type == NP_EV_CONNECTION_ERROR && type != NP_EV_CONNECTION_ERROR)
            fail_msg("connection error while waiting for %s: %s", np_event_type_name(type),
                     ev->u.error.reason);
        np_event_free(ev);
    }
}

static void login(const char *owner, const char *user, const char *password, mailbox_t *mb)
{
    assert_int_equal(np_send(np_cmd_login(owner, user, password, mb)), NP_OK);
}

static void expect_signed_on(mailbox_t *mb, const char *owner, const char *nick)
{
    struct np_event *ev = wait_event(mb, NP_EV_SIGNED_ON, NULL);
    assert_string_equal(ev->owner, owner);
    assert_string_equal(ev->u.signed_on.display_name, nick);
    np_event_free(ev);
}

static void logout(const char *owner, mailbox_t *mb)
{
    assert_int_equal(np_send(np_cmd_logout(owner)), NP_OK);
    struct np_event *ev = wait_event(mb, NP_EV_LOGGED_OUT, NULL);
    assert_string_equal(ev->owner, owner);
    np_event_free(ev);
}

/* ---- commands and events as data ---- */

static void test_commands_round_trip(void **state)
{
    struct np_field f[2] = {{(char *)"nick", (char *)"bob"}, {(char *)"email", NULL}};
    struct np_cmd *c = np_cmd_login("o@x", "alice", "secret", NULL);
    assert_int_equal(c->type, NP_CMD_LOGIN);
    assert_string_equal(c->owner, "o@x");
    assert_string_equal(c->u.login.username, "alice");
    assert_string_equal(c->u.login.password, "secret");
    np_cmd_free(c);
    c = np_cmd_login("o@x", "alice", NULL, NULL);
    assert_string_equal(c->u.login.password, "");
    np_cmd_free(c);
    c = np_cmd_send_im("o@x", "bob", TRICKY);
    assert_string_equal(c->u.im.to, "bob");
    assert_string_equal(c->u.im.text, TRICKY);
    assert_string_equal(np_cmd_type_name(c->type), "send-im");
    np_cmd_free(c);
    c = np_cmd_set_status("o@x", NP_STATE_DND, NULL);
    assert_int_equal(c->u.status.state, NP_STATE_DND);
    assert_null(c->u.status.message);
    np_cmd_free(c);
    c = np_cmd_add_buddy("o@x", "bob", "Bob", NULL);
    assert_string_equal(c->u.buddy.alias, "Bob");
    assert_null(c->u.buddy.group);
    np_cmd_free(c);
    np_cmd_free(np_cmd_remove_buddy("o@x", "bob"));
    np_cmd_free(np_cmd_logout("o@x"));
    c = np_cmd_authorize("o@x", 42, 7);
    assert_int_equal(c->u.authorize.id, 42);
    assert_int_equal(c->u.authorize.accept, 1);
    np_cmd_free(c);
    np_cmd_free(np_cmd_send_typing("o@x", "bob", NP_TYPING_PAUSED));
    c = np_cmd_get_info("o@x", 9, "bob");
    assert_int_equal(c->u.info.request_id, 9);
    np_cmd_free(c);
    c = np_cmd_search("o@x", 10, f, 2);
    assert_int_equal(c->u.search.field_count, 2);
    assert_string_equal(c->u.search.fields[0].value, "bob");
    assert_string_equal(c->u.search.fields[1].value, "");
    assert_ptr_not_equal(c->u.search.fields[0].name, f[0].name);
    np_cmd_free(c);
    np_cmd_free(np_cmd_search("o@x", 11, NULL, 0));
    np_cmd_free(NULL);
}

static void test_events_round_trip(void **state)
{
    struct np_field pairs[1] = {{(char *)"Real name", (char *)"Bob B."}};
    const char *cols[2] = {"Nick", "Name"};
    const char *cells[4] = {"bob", "Bob", "bobby", NULL};
    struct np_event *e[] = {
        np_event_signed_on("o", "alice1"),
        np_event_signed_off("o"),
        np_event_connection_error("o", "Access denied: Bad password?", 2, 5),
        np_event_logged_out("o"),
        np_event_presence("o", "bob", NULL, NP_STATE_XA, "gone", 60),
        np_event_buddy_added("o", "bob", "Bob", "Friends"),
        np_event_buddy_removed("o", "bob"),
        np_event_im_received("o", "bob", TRICKY, NP_IM_DELAYED, 1234),
        np_event_im_send_failed("o", "nobody", "User is not logged in"),
        np_event_typing("o", "bob", NP_TYPING_ACTIVE),
        np_event_auth_request("o", 3, "carol", NULL, "let me in"),
        np_event_userinfo("o", 4, "bob", NP_REQ_OK, NULL, pairs, 1),
        np_event_search_form("o", 5, "Fill in", pairs, 1),
        np_event_search_results("o", 6, NP_REQ_OK, NULL, cols, 2, cells, 2),
        np_event_search_results("o", 7, NP_REQ_UNSUPPORTED, "no directory", NULL, 0, NULL, 0),
        np_event_buddy_authorized("o", "dave@legacy", 7),
        np_event_buddy_authorized("o", "erin@legacy", 0),
    };
    for (size_t i = 0; i < FERRY_ARRAY_LEN(e); i++) {
        assert_int_equal(e[i]->kind, NP_EVENT_KIND);
        assert_string_equal(e[i]->owner, "o");
        assert_string_not_equal(np_event_type_name(e[i]->type), "unknown");
    }
    assert_string_equal(e[0]->u.signed_on.display_name, "alice1");
    assert_int_equal(e[2]->u.error.fatal, 1);
    assert_int_equal(e[2]->u.error.code, 2);
    assert_null(e[4]->u.presence.alias);
    assert_string_equal(np_state_name(e[4]->u.presence.state), "xa");
    assert_int_equal(e[4]->u.presence.idle_seconds, 60);
    assert_string_equal(e[5]->u.buddy.group, "Friends");
    assert_string_equal(e[7]->u.im.text, TRICKY);
    assert_int_equal(e[7]->u.im.when, 1234);
    assert_string_equal(e[11]->u.userinfo.pairs[0].value, "Bob B.");
    assert_ptr_not_equal(e[11]->u.userinfo.pairs[0].value, pairs[0].value);
    assert_string_equal(e[13]->u.search.columns[1], "Name");
    assert_int_equal(e[13]->u.search.row_count, 2);
    assert_string_equal(e[13]->u.search.cells[2], "bobby");
    assert_string_equal(e[13]->u.search.cells[3], "");
    assert_int_equal(e[14]->u.search.row_count, 0);
    assert_string_equal(np_event_type_name(e[15]->type), "buddy-authorized");
    assert_string_equal(e[15]->u.authorized.who, "dave@legacy");
    assert_int_equal(e[15]->u.authorized.accepted, 1);
    assert_string_equal(e[16]->u.authorized.who, "erin@legacy");
    assert_int_equal(e[16]->u.authorized.accepted, 0);
    for (size_t i = 0; i < FERRY_ARRAY_LEN(e); i++)
        np_event_free(e[i]);
    /* A mailbox frees what nobody received. */
    mailbox_t *mb = mb_new(4, np_event_free_void);
    assert_int_equal(mb_send(mb, np_event_signed_off("o")), MB_OK);
    mb_free(mb);
    assert_int_equal(np_send(np_cmd_logout("o")), NP_ESTOPPED);
}

/* ---- reliable posts: one owner's full mailbox holds up only that owner ---- */

/* Runs the calling thread's GLib loop (the retry timer) until mb holds n events. */
static void run_until_count(mailbox_t *mb, size_t n)
{
    int64_t deadline = now_ms() + 3000;
    while (mb_count(mb) < n) {
        if (now_ms() > deadline)
            fail_msg("%zu event(s) of %zu arrived within 3 s", mb_count(mb), n);
        g_main_context_iteration(NULL, FALSE);
        g_usleep(10000);
    }
}

/* The next event in mb: of this type, for this owner, answering this SEND_IM id (when sent). */
static void expect_next(mailbox_t *mb, enum np_event_type type, const char *owner, uint64_t id)
{
    void *msg = NULL;
    assert_int_equal(mb_recv(mb, &msg, 0), MB_OK);
    struct np_event *ev = msg;
    assert_int_equal(ev->type, type);
    assert_string_equal(ev->owner, owner);
    if (type == NP_EV_IM_SENT)
        assert_int_equal(ev->u.sent.id, id);
    np_event_free(ev);
}

/* Owner A's mailbox stays full: B's answers and LOGGED_OUT are delivered at once, or by the
 * retry timer as soon as B has room, while A's wait and then arrive in order. The posts run
 * on this thread with no native thread: np_post_reliably only needs a GLib loop. */
static void test_reliable_post_per_mailbox(void **state)
{
    mailbox_t *a = mb_new(2, np_event_free_void), *b = mb_new(2, np_event_free_void);
    mailbox_t *c = mb_new(1, np_event_free_void);
    assert_int_equal(mb_send(a, np_event_logged_out("filler")), MB_OK);
    assert_int_equal(mb_send(a, np_event_logged_out("filler")), MB_OK);
    for (uint64_t id = 1; id <= 3; id++)
        np_post_reliably(a, np_event_im_sent("a@x", "bob", id));
    np_post_reliably(b, np_event_im_sent("b@x", "bob", 10));
    np_post_reliably(b, np_event_im_sent("b@x", "bob", 11));
    assert_int_equal(mb_count(b), 2); /* at once, although A's answers wait */
    /* B full too: its next events wait, and come as soon as B is read, A still full. */
    np_post_reliably(b, np_event_im_sent("b@x", "bob", 12));
    np_post_reliably(b, np_event_logged_out("b@x"));
    g_main_context_iteration(NULL, FALSE);
    expect_next(b, NP_EV_IM_SENT, "b@x", 10);
    expect_next(b, NP_EV_IM_SENT, "b@x", 11);
    run_until_count(b, 2);
    expect_next(b, NP_EV_IM_SENT, "b@x", 12);
    expect_next(b, NP_EV_LOGGED_OUT, "b@x", 0);
    np_post_reliably(a, np_event_logged_out("a@x"));
    assert_int_equal(mb_count(a), 2);
    /* A drains: its events come in the order they were posted, LOGGED_OUT last. */
    expect_next(a, NP_EV_LOGGED_OUT, "filler", 0);
    expect_next(a, NP_EV_LOGGED_OUT, "filler", 0);
    for (uint64_t id = 1; id <= 3; id++) {
        run_until_count(a, 1);
        expect_next(a, NP_EV_IM_SENT, "a@x", id);
    }
    run_until_count(a, 1);
    expect_next(a, NP_EV_LOGGED_OUT, "a@x", 0);
    /* What still waits at shutdown is freed (valgrind checks). */
    assert_int_equal(mb_send(c, np_event_logged_out("filler")), MB_OK);
    np_post_reliably(c, np_event_logged_out("c@x"));
    np_accounts_shutdown();
    assert_int_equal(mb_count(c), 1);
    mb_free(a);
    mb_free(b);
    mb_free(c);
}

/* ---- np_start checks [legacy] ---- */

static void test_unknown_protocol(void **state)
{
    struct ferry_config cfg;
    char *error = NULL;
    config_init(&cfg, "prpl-nosuch");
    assert_int_equal(np_start(&cfg, &error), -1);
    assert_non_null(error);
    assert_non_null(strstr(error, "'prpl-nosuch'"));
    assert_non_null(strstr(error, "prpl-irc"));
    assert_non_null(strstr(error, "prpl-jabber"));
    free(error);
}

static void test_unknown_option(void **state)
{
    struct ferry_config cfg;
    struct config_option opts[2] = {{(char *)"realname", (char *)"Ferry"},
                                    {(char *)"nickserv", (char *)"x"}};
    char *error = NULL;
    config_init(&cfg, "prpl-irc");
    cfg.legacy_options = opts;
    cfg.legacy_option_count = 2;
    assert_int_equal(np_start(&cfg, &error), -1);
    assert_non_null(error);
    assert_non_null(strstr(error, "nickserv: not an option of prpl-irc"));
    assert_non_null(strstr(error, "encoding"));
    assert_non_null(strstr(error, "realname"));
    assert_null(strstr(error, "[legacy] realname"));
    free(error);
}

static void test_bad_option_values(void **state)
{
    struct ferry_config cfg;
    struct config_option opts[3] = {{(char *)"ssl", (char *)"maybe"},
                                    {(char *)"ratelimit-burst", (char *)"lots"},
                                    {(char *)"autodetect_utf8", (char *)"yes"}};
    char *error = NULL;
    config_init(&cfg, "prpl-irc");
    cfg.legacy_options = opts;
    cfg.legacy_option_count = 3;
    assert_int_equal(np_start(&cfg, &error), -1);
    assert_non_null(error);
    assert_non_null(strstr(error, "[legacy] ssl: 'maybe' is not a boolean"));
    assert_non_null(strstr(error, "[legacy] ratelimit-burst: 'lots' is not an integer"));
    assert_null(strstr(error, "autodetect_utf8"));
    free(error);
}

/* prpl-jabber's list option names its valid values. */
static void test_bad_list_value(void **state)
{
    struct ferry_config cfg;
    char *error = NULL;
    struct config_option list[1] = {{(char *)"connection_security", (char *)"sometimes"}};
    config_init(&cfg, "prpl-jabber");
    cfg.legacy_port = 0;
    cfg.legacy_options = list;
    cfg.legacy_option_count = 1;
    assert_int_equal(np_start(&cfg, &error), -1);
    assert_non_null(strstr(error, "'sometimes' is not one of: require_tls, opportunistic_tls"));
    free(error);
}

/* ---- against ngircd ---- */

/* A raw IRC client, registered as nick. */
struct peer {
    int fd;
    char buf[8192];
    size_t len;
};

static void peer_send(struct peer *p, const char *line)
{
    size_t n = strlen(line);
    assert_int_equal(write(p->fd, line, n), (ssize_t)n);
}

/* Reads lines until one contains needle; returns a copy (caller frees). */
static char *peer_expect(struct peer *p, const char *needle)
{
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        char *nl;
        while ((nl = memchr(p->buf, '\n', p->len)) != NULL) {
            *nl = '\0';
            char *line = xstrdup(p->buf);
            size_t used = (size_t)(nl - p->buf) + 1;
            memmove(p->buf, nl + 1, p->len - used);
            p->len -= used;
            if (strncmp(line, "PING ", 5) == 0) {
                char *pong = xasprintf("PONG %s\n", line + 5);
                peer_send(p, pong);
                free(pong);
            }
            if (strstr(line, needle))
                return line;
            free(line);
        }
        if (now_ms() > deadline)
            fail_msg("raw IRC peer: no line with '%s'", needle);
        ssize_t n = read(p->fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
        if (n <= 0)
            fail_msg("raw IRC peer: connection closed while waiting for '%s'", needle);
        p->len += (size_t)n;
    }
}

static void peer_open(struct peer *p, const char *nick, const char *realname)
{
    memset(p, 0, sizeof(*p));
    p->fd = connect_port(rig.port);
    assert_true(p->fd >= 0);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char *hello = xasprintf("PASS %s\r\nNICK %s\r\nUSER %s 0 * :%s\r\n", SERVER_PASSWORD, nick,
                            nick, realname);
    peer_send(p, hello);
    free(hello);
    free(peer_expect(p, " 001 "));
}

static void check_messages(mailbox_t *a, mailbox_t *c)
{
    assert_int_equal(np_send(np_cmd_send_im("a@x", "bob", TRICKY)), NP_OK);
    struct np_event *ev = wait_event(c, NP_EV_IM_RECEIVED, "alice");
    assert_string_equal(ev->owner, "c@x");
    assert_string_equal(ev->u.im.text, TRICKY);
    assert_int_equal(ev->u.im.flags, 0);
    np_event_free(ev);
    assert_int_equal(np_send(np_cmd_send_im("c@x", "alice", "two\nlines")), NP_OK);
    ev = wait_event(a, NP_EV_IM_RECEIVED, "bob");
    assert_string_equal(ev->u.im.text, "two");
    np_event_free(ev);
    ev = wait_event(a, NP_EV_IM_RECEIVED, "bob");
    assert_string_equal(ev->u.im.text, "lines");
    np_event_free(ev);
}

static void check_raw_peer(mailbox_t *a, struct peer *carol)
{
    peer_send(carol, "PRIVMSG alice :" TRICKY "\r\n");
    struct np_event *ev = wait_event(a, NP_EV_IM_RECEIVED, "carol");
    assert_string_equal(ev->u.im.text, TRICKY);
    np_event_free(ev);
    /* And the other way: the text reaches the wire unescaped. */
    assert_int_equal(np_send(np_cmd_send_im("a@x", "carol", TRICKY)), NP_OK);
    char *line = peer_expect(carol, "PRIVMSG carol :");
    g_strchomp(line);
    assert_string_equal(strstr(line, "PRIVMSG"), "PRIVMSG carol :" TRICKY);
    free(line);
}

static void check_errors_and_info(mailbox_t *a)
{
    assert_int_equal(np_send(np_cmd_send_im("a@x", "nobody", "hello?")), NP_OK);
    struct np_event *ev = wait_event(a, NP_EV_IM_SEND_FAILED, "nobody");
    assert_string_equal(ev->u.send_failed.reason, "User is not logged in");
    np_event_free(ev);
    assert_int_equal(np_send(np_cmd_get_info("a@x", 7, "carol")), NP_OK);
    assert_int_equal(np_send(np_cmd_get_info("a@x", 8, "ghost")), NP_OK);
    ev = wait_event(a, NP_EV_USERINFO, "carol");
    assert_int_equal(ev->u.userinfo.request_id, 7);
    assert_int_equal(ev->u.userinfo.status, NP_REQ_OK);
    int found = 0;
    for (size_t i = 0; i < ev->u.userinfo.pair_count; i++)
        if (strcmp(ev->u.userinfo.pairs[i].name, "Real name") == 0)
            found = strcmp(ev->u.userinfo.pairs[i].value, "Carol <R> & Co") == 0;
    assert_true(found);
    np_event_free(ev);
    ev = wait_event(a, NP_EV_USERINFO, "ghost");
    assert_int_equal(ev->u.userinfo.request_id, 8);
    assert_int_equal(ev->u.userinfo.status, NP_REQ_NOT_FOUND);
    np_event_free(ev);
    assert_int_equal(np_send(np_cmd_search("a@x", 9, NULL, 0)), NP_OK);
    ev = wait_event(a, NP_EV_SEARCH_RESULTS, NULL);
    assert_int_equal(ev->u.search.request_id, 9);
    assert_int_equal(ev->u.search.status, NP_REQ_UNSUPPORTED);
    np_event_free(ev);
}

static void check_buddy(mailbox_t *a)
{
    assert_int_equal(np_send(np_cmd_add_buddy("a@x", "carol", "Carol", NULL)), NP_OK);
    struct np_event *ev = wait_event(a, NP_EV_BUDDY_PRESENCE, "carol");
    assert_int_equal(ev->u.presence.state, NP_STATE_AVAILABLE);
    assert_string_equal(ev->u.presence.alias, "Carol");
    np_event_free(ev);
}

/* The away text a WHOIS shows for nick, or NULL (caller frees). */
static char *peer_whois_away(struct peer *p, const char *nick)
{
    char *away = NULL;
    char *cmd = xasprintf("WHOIS %s\r\n", nick);
    peer_send(p, cmd);
    free(cmd);
    for (;;) {
        char *line = peer_expect(p, nick);
        char *mark = strstr(line, " 301 ");
        if (mark && !away)
            away = xstrdup(strstr(mark, " :") + 2);
        int end = strstr(line, " 318 ") != NULL;
        free(line);
        if (end)
            return away;
    }
}

/* IRC has no busy state: dnd becomes away, with the text unescaped on the wire. */
static void check_status(struct peer *carol)
{
    char *away = NULL;
    assert_int_equal(np_send(np_cmd_set_status("a@x", NP_STATE_DND, "lunch <soon> & back")), NP_OK);
    for (int i = 0; i < 50 && !away; i++) {
        usleep(100000);
        away = peer_whois_away(carol, "alice");
    }
    assert_non_null(away);
    g_strchomp(away);
    assert_string_equal(away, "lunch <soon> & back");
    free(away);
}

/* A user name may not pick another server than [legacy] server. */
static void check_bad_username(void)
{
    mailbox_t *e = mb_new(8, np_event_free_void);
    login("e@x", "eve@irc.example.net", SERVER_PASSWORD, e);
    struct np_event *ev = wait_event(e, NP_EV_CONNECTION_ERROR, NULL);
    assert_non_null(strstr(ev->u.error.reason, "names another server than 127.0.0.1"));
    assert_int_equal(ev->u.error.fatal, 1);
    np_event_free(ev);
    ev = wait_event(e, NP_EV_LOGGED_OUT, NULL);
    np_event_free(ev);
    mb_free(e);
}

static void check_wrong_password(void)
{
    mailbox_t *d = mb_new(64, np_event_free_void);
    login("d@x", "dave", "not-the-password", d);
    struct np_event *ev = wait_event(d, NP_EV_CONNECTION_ERROR, NULL);
    assert_non_null(strstr(ev->u.error.reason, "Bad password"));
    assert_int_equal(ev->u.error.fatal, 1);
    np_event_free(ev);
    logout("d@x", d);
    mb_free(d);
}

/* libpurple's files: private, and never holding the password. */
static void check_files(void)
{
    char *dir = xasprintf("%s/purple", rig.storage);
    char *path = xasprintf("%s/accounts.xml", dir);
    struct stat st;
    char *text = NULL;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_true(g_file_get_contents(path, &text, NULL, NULL));
    assert_non_null(strstr(text, "<name>bob@127.0.0.1</name>"));
    assert_null(strstr(text, SERVER_PASSWORD));
    assert_null(strstr(text, "<password>"));
    g_free(text);
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;
    while ((name = g_dir_read_name(d)) != NULL) {
        char *file = xasprintf("%s/%s", dir, name);
        gsize len = 0;
        if (g_file_get_contents(file, &text, &len, NULL)) {
            assert_null(g_strstr_len(text, (gssize)len, SERVER_PASSWORD));
            g_free(text);
        }
        free(file);
    }
    g_dir_close(d);
    free(path);
    free(dir);
}

/* Every log line of the run, libpurple's debug output included, is checked for the password. */
static struct {
    pthread_mutex_t lock;
    int lines;
    int leaks;
} logged = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void log_sink(enum log_level level, const char *line, void *ctx)
{
    pthread_mutex_lock(&logged.lock);
    logged.lines++;
    if (strstr(line, SERVER_PASSWORD) || strstr(line, "not-the-password"))
        logged.leaks++;
    pthread_mutex_unlock(&logged.lock);
    if (getenv("FERRY_TEST_DEBUG"))
        fprintf(stderr, "%s\n", line);
}

static void test_irc(void **state)
{
    struct ferry_config cfg;
    char *error = NULL;
    struct peer carol;
    log_set_level(LOG_LEVEL_DEBUG);
    log_set_sink(log_sink, NULL);
    config_init(&cfg, "prpl-irc");
    assert_int_equal(np_start(&cfg, &error), 0);
    assert_null(error);
    assert_string_equal(np_protocol_name(), "IRC");
    assert_int_equal(np_protocol_needs_authorization(), 0); /* IRC: nobody is asked */
    mailbox_t *a = mb_new(256, np_event_free_void);
    mailbox_t *b = mb_new(256, np_event_free_void);
    mailbox_t *c = mb_new(256, np_event_free_void);
    login("a@x", "alice", SERVER_PASSWORD, a);
    expect_signed_on(a, "a@x", "alice");
    login("b@x", "alice", SERVER_PASSWORD, b); /* the nick is taken: libpurple uses alice1 */
    expect_signed_on(b, "b@x", "alice1");
    login("c@x", "bob", SERVER_PASSWORD, c);
    expect_signed_on(c, "c@x", "bob");
    check_messages(a, c);
    peer_open(&carol, "carol", "Carol <R> & Co");
    check_raw_peer(a, &carol);
    check_errors_and_info(a);
    check_buddy(a);
    check_status(&carol);
    check_bad_username();
    check_wrong_password();
    logout("a@x", a);
    logout("b@x", b);
    close(carol.fd);
    np_stop(); /* c@x is still logged in: stop logs it out */
    log_set_sink(NULL, NULL);
    assert_true(logged.lines > 100); /* libpurple's debug lines came through */
    assert_int_equal(logged.leaks, 0);
    check_files();
    mb_free(a);
    mb_free(b);
    mb_free(c);
}

/* Six logins at 5 a second: the first and the last connect at least a second apart. */
static void test_login_pacing(void **state)
{
    struct ferry_config cfg;
    char *error = NULL;
    mailbox_t *mb = mb_new(256, np_event_free_void);
    config_init(&cfg, "prpl-irc");
    cfg.legacy_login_rate = 5;
    assert_int_equal(np_start(&cfg, &error), 0);
    for (int i = 0; i < 6; i++) {
        char owner[32], nick[32];
        snprintf(owner, sizeof(owner), "p%d@x", i);
        snprintf(nick, sizeof(nick), "pacer%d", i);
        login(owner, nick, SERVER_PASSWORD, mb);
    }
    int64_t first = 0, last = 0;
    for (int i = 0; i < 6; i++) {
        struct np_event *ev = wait_event(mb, NP_EV_SIGNED_ON, NULL);
        last = now_ms();
        if (i == 0)
            first = last;
        np_event_free(ev);
    }
    assert_true(last - first >= 900);
    assert_true(last - first < WAIT_MS);
    np_stop();
    mb_free(mb);
}

/* libpurple cannot be initialised twice in one process (a plugin keeps a list across the
 * reload), so each np_start runs in a child process of its own; its exit status (valgrind's
 * error exit code included) is the verdict. ngircd is shared, started by the parent. */
static int run_alone(const char *name, CMUnitTestFunction fn)
{
    const struct CMUnitTest test[] = {{name, fn, NULL, NULL, NULL}};
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0)
        exit(_cmocka_run_group_tests(name, test, 1, NULL, NULL) ? 1 : 0);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s: child failed (status %d)\n", name, status);
        return 1;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest data[] = {
        cmocka_unit_test(test_commands_round_trip),
        cmocka_unit_test(test_events_round_trip),
        cmocka_unit_test(test_reliable_post_per_mailbox),
    };
    static const struct {
        const char *name;
        CMUnitTestFunction fn;
    } live[] = {
        {"test_unknown_protocol", test_unknown_protocol},
        {"test_unknown_option", test_unknown_option},
        {"test_bad_option_values", test_bad_option_values},
        {"test_bad_list_value", test_bad_list_value},
        {"test_irc", test_irc},
        {"test_login_pacing", test_login_pacing},
    };
    int failed = cmocka_run_group_tests_name("native data", data, NULL, NULL);
    if (rig_setup() != 0) {
        rig_teardown();
        return 1;
    }
    for (size_t i = 0; i < FERRY_ARRAY_LEN(live); i++)
        failed += run_alone(live[i].name, live[i].fn);
    rig_teardown();
    return failed ? 1 : 0;
}
