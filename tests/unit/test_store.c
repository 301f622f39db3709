/* Unit tests for bridge/store: files and modes, migrations, registrations, contacts, pending
 * messages, passwords never in clear on disk, and consistency after kill -9 mid-write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bridge/store.h"
#include "lib/log.h"
#include "lib/util.h"

#define LATEST_VERSION 2
#define CANARY_PASSWORD "Zq7!ferry-CLEARTEXT-canary-91x"

struct fixture {
    char base[64];
    char *dir;     /* base/data: created by store_open */
    char *db_path; /* dir/ferry.db */
    unsigned char key[CRYPTO_KEY_LEN];
};

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
    struct fixture *f = xcalloc(1, sizeof(*f));
    strcpy(f->base, "/tmp/ferry-test-store-XXXXXX");
    if (mkdtemp(f->base) == NULL)
        return -1;
    f->dir = xasprintf("%s/data", f->base);
    f->db_path = xasprintf("%s/ferry.db", f->dir);
    for (int i = 0; i < CRYPTO_KEY_LEN; i++)
        f->key[i] = (unsigned char)(0xa0 + i);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    remove_tree(f->base);
    free(f->dir);
    free(f->db_path);
    free(f);
    return 0;
}

static struct store *open_ok(struct fixture *f)
{
    char *err = NULL;
    struct store *st = store_open(f->dir, f->key, &err);
    if (st == NULL)
        fail_msg("store_open: %s", err);
    assert_null(err);
    return st;
}

/* ---- direct SQLite access, to look at and to damage what the store wrote ---- */

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

/* First column of the first row as a new string ("" for NULL or no row). */
static char *raw_text(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    char *out;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL)
        out = xstrdup((const char *)sqlite3_column_text(s, 0));
    else
        out = xstrdup("");
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
}

static void assert_raw_text(const char *path, const char *sql, const char *expect)
{
    char *got = raw_text(path, sql);
    if (strcmp(got, expect) != 0)
        fail_msg("%s: got \"%s\", expected \"%s\"", sql, got, expect);
    free(got);
}

static mode_t file_mode(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_mode & 07777;
}

static void put_ok(struct store *st, const char *owner, const char *user, const char *pw,
                   const char *settings)
{
    assert_int_equal(store_registration_put(st, owner, user, pw, settings), STORE_OK);
}

static void contact_ok(struct store *st, const char *owner, const char *id, const char *alias,
                       const char *groups, enum store_subscription sub, int sent)
{
    struct store_contact c = {(char *)owner, (char *)id, (char *)alias, (char *)groups, sub, sent};
    assert_int_equal(store_contact_put(st, &c), STORE_OK);
}

/* ---- files, modes, versions ---- */

static void test_open_creates_private_files(void **state)
{
    struct fixture *f = *state;
    mode_t old = umask(0); /* a permissive umask must not widen anything */
    struct store *st = open_ok(f);
    put_ok(st, "alice@example.org", "alice", "pw", NULL);
    umask(old);

    assert_int_equal(file_mode(f->dir), 0700);
    assert_int_equal(file_mode(f->db_path), 0600);
    char *wal = xasprintf("%s-wal", f->db_path);
    char *shm = xasprintf("%s-shm", f->db_path);
    assert_int_equal(file_mode(wal), 0600);
    assert_int_equal(file_mode(shm), 0600);
    free(wal);
    free(shm);
    assert_int_equal(store_schema_version(st), LATEST_VERSION);
    assert_int_equal(store_integrity_check(st), STORE_OK);
    assert_raw_text(f->db_path, "PRAGMA journal_mode", "wal");
    store_close(st);
    assert_raw_text(f->db_path, "PRAGMA user_version", "2");
}

struct captured {
    char *text; /* every warning line, one per line */
};

static void capture_line(enum log_level level, const char *line, void *ctx)
{
    struct captured *cap = ctx;
    if (level > LOG_LEVEL_WARN)
        return;
    char *joined = xasprintf("%s%s\n", cap->text ? cap->text : "", line);
    free(cap->text);
    cap->text = joined;
}

static void test_open_fixes_loose_modes(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(mkdir(f->dir, 0700), 0);
    assert_int_equal(chmod(f->dir, 0755), 0);
    int fd = open(f->db_path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, 0644), 0);
    close(fd);
    char *shm = xasprintf("%s-shm", f->db_path);
    fd = open(shm, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, 0666), 0);
    close(fd);

    struct captured cap = {0};
    log_set_sink(capture_line, &cap);
    struct store *st = open_ok(f);
    log_set_sink(NULL, NULL);
    assert_int_equal(file_mode(f->dir), 0700);
    assert_int_equal(file_mode(f->db_path), 0600);
    assert_int_equal(file_mode(shm), 0600);
    /* Each fix is logged, naming the file and the old mode. */
    assert_non_null(strstr(cap.text, "had mode 0755 (group or others could enter it)"));
    assert_non_null(strstr(cap.text, "ferry.db had mode 0644"));
    assert_non_null(strstr(cap.text, "ferry.db-shm had mode 0666"));
    free(cap.text);
    assert_int_equal(store_schema_version(st), LATEST_VERSION);
    store_close(st);
    free(shm);
}

static void test_open_refusals(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;

    /* The parent is missing. */
    char *deep = xasprintf("%s/a/b", f->base);
    assert_null(store_open(deep, f->key, &err));
    assert_non_null(strstr(err, "cannot create data directory"));
    free(err);
    free(deep);

    /* The directory is a file. */
    int fd = open(f->dir, O_CREAT | O_WRONLY, 0600);
    close(fd);
    assert_null(store_open(f->dir, f->key, &err));
    assert_non_null(strstr(err, "is not a directory"));
    free(err);
    unlink(f->dir);

    /* A schema written by a newer Ferry is not touched. */
    store_close(open_ok(f));
    raw_exec(f->db_path, "PRAGMA user_version = 99");
    assert_null(store_open(f->dir, f->key, &err));
    assert_non_null(strstr(err, "has schema version 99; this Ferry knows versions up to 2"));
    free(err);
    assert_raw_text(f->db_path, "PRAGMA user_version", "99");
    assert_null(store_open(f->dir, f->key, NULL));
}

static void test_reopen_is_idempotent(void **state)
{
    struct fixture *f = *state;
    struct store_registration reg;
    struct store *st = open_ok(f);
    put_ok(st, "alice@example.org", "alice", "pw", NULL);
    store_close(st);
    char *schema = raw_text(f->db_path, "SELECT group_concat(sql, ';') FROM sqlite_master");

    for (int i = 0; i < 3; i++) {
        st = open_ok(f);
        assert_int_equal(store_schema_version(st), LATEST_VERSION);
        assert_int_equal(store_registration_get(st, "alice@example.org", &reg), STORE_OK);
        assert_string_equal(reg.password, "pw");
        store_registration_free(&reg);
        store_close(st);
        assert_raw_text(f->db_path, "SELECT group_concat(sql, ';') FROM sqlite_master", schema);
    }
    free(schema);
}

/* A database as version 1 left it (no subscribe_sent, no pending_messages), with data, is
 * brought to the latest version without losing anything. */
static void test_migration_from_version_1(void **state)
{
    struct fixture *f = *state;
    struct store_registration reg;
    struct store_contact c;
    int64_t id = 0;

    struct store *st = open_ok(f);
    put_ok(st, "alice@example.org", "alice", "old-pw", "{\"lang\":\"fr\"}");
    contact_ok(st, "alice@example.org", "bob", "Bob", "Friends\nIRC", STORE_SUB_BOTH, 1);
    store_close(st);
    char *fresh_cols = raw_text(f->db_path, "SELECT group_concat(name || ':' || type || ':' || "
                                            "\"notnull\" || ':' || ifnull(dflt_value, '-'), ',') "
                                            "FROM pragma_table_info('contacts')");
    char *fresh_tables = raw_text(f->db_path, "SELECT group_concat(name, ',') FROM "
                                              "(SELECT name FROM sqlite_master ORDER BY name)");
    raw_exec(f->db_path, "DROP TABLE pending_messages;"
                         "ALTER TABLE contacts DROP COLUMN subscribe_sent;"
                         "PRAGMA user_version = 1;");
    assert_raw_text(f->db_path, "SELECT count(*) FROM pragma_table_info('contacts')", "5");

    st = open_ok(f);
    assert_int_equal(store_schema_version(st), LATEST_VERSION);
    assert_int_equal(store_registration_get(st, "alice@example.org", &reg), STORE_OK);
    assert_string_equal(reg.username, "alice");
    assert_string_equal(reg.password, "old-pw");
    assert_string_equal(reg.settings, "{\"lang\":\"fr\"}");
    store_registration_free(&reg);
    assert_int_equal(store_contact_get(st, "alice@example.org", "bob", &c), STORE_OK);
    assert_string_equal(c.alias, "Bob");
    assert_string_equal(c.groups, "Friends\nIRC");
    assert_int_equal(c.subscription, STORE_SUB_BOTH);
    assert_int_equal(c.subscribe_sent, 0); /* the new column's default */
    store_contact_free(&c);
    assert_int_equal(
        store_pending_add(st, "alice@example.org", STORE_DIR_TO_OWNER, "bob", "hi", NULL, &id),
        STORE_OK);
    assert_int_equal(store_integrity_check(st), STORE_OK);
    store_close(st);

    /* The migrated schema matches a fresh one. */
    assert_raw_text(f->db_path,
                    "SELECT group_concat(name || ':' || type || ':' || "
                    "\"notnull\" || ':' || ifnull(dflt_value, '-'), ',') "
                    "FROM pragma_table_info('contacts')",
                    fresh_cols);
    assert_raw_text(f->db_path,
                    "SELECT group_concat(name, ',') FROM "
                    "(SELECT name FROM sqlite_master ORDER BY name)",
                    fresh_tables);
    free(fresh_cols);
    free(fresh_tables);
}

static void test_migration_from_empty_file(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(mkdir(f->dir, 0700), 0);
    int fd = open(f->db_path, O_CREAT | O_WRONLY, 0600); /* 0 bytes: a valid empty database */
    assert_true(fd >= 0);
    close(fd);
    struct store *st = open_ok(f);
    assert_int_equal(store_schema_version(st), LATEST_VERSION);
    store_close(st);
    assert_raw_text(f->db_path,
                    "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master "
                    "WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY name)",
                    "contacts,pending_messages,pending_messages_owner,registrations");
}

/* ---- registrations ---- */

static void test_registration_lifecycle(void **state)
{
    struct fixture *f = *state;
    struct store_registration reg;
    struct store *st = open_ok(f);
    int64_t t0 = (int64_t)time(NULL);

    assert_int_equal(store_registration_get(st, "alice@example.org", &reg), STORE_ENOTFOUND);
    assert_null(reg.password);
    put_ok(st, "alice@example.org", "alice", "first", NULL);
    assert_int_equal(store_registration_get(st, "alice@example.org", &reg), STORE_OK);
    assert_string_equal(reg.owner, "alice@example.org");
    assert_string_equal(reg.username, "alice");
    assert_string_equal(reg.password, "first");
    assert_string_equal(reg.settings, "{}");
    assert_true(reg.created >= t0 && reg.created <= (int64_t)time(NULL));
    assert_int_equal(reg.last_login, 0);
    int64_t created = reg.created;
    store_registration_free(&reg);
    assert_null(reg.owner);

    /* Update: new credentials, settings kept when NULL, created and last_login kept. */
    assert_int_equal(store_touch_login(st, "alice@example.org"), STORE_OK);
    put_ok(st, "alice@example.org", "alice2", "", NULL); /* an empty password is allowed */
    assert_int_equal(store_registration_get(st, "alice@example.org", &reg), STORE_OK);
    assert_string_equal(reg.username, "alice2");
    assert_string_equal(reg.password, "");
    assert_string_equal(reg.settings, "{}");
    assert_int_equal(reg.created, created);
    assert_true(reg.last_login >= t0);
    store_registration_free(&reg);
    put_ok(st, "alice@example.org", "alice2", "third", "{\"a\":1}");
    assert_int_equal(store_registration_get(st, "alice@example.org", &reg), STORE_OK);
    assert_string_equal(reg.password, "third");
    assert_string_equal(reg.settings, "{\"a\":1}");
    store_registration_free(&reg);
    assert_raw_text(f->db_path, "SELECT count(*) FROM registrations", "1");

    /* List, sorted. */
    put_ok(st, "carol@example.org", "carol", "c", NULL);
    put_ok(st, "bob@example.net", "bob", "b", NULL);
    char **owners = NULL;
    size_t n = 0;
    assert_int_equal(store_registration_list(st, &owners, &n), STORE_OK);
    assert_int_equal(n, 3);
    assert_string_equal(owners[0], "alice@example.org");
    assert_string_equal(owners[1], "bob@example.net");
    assert_string_equal(owners[2], "carol@example.org");
    store_strings_free(owners, n);

    /* Remove. */
    assert_int_equal(store_registration_remove(st, "alice@example.org"), STORE_OK);
    assert_int_equal(store_registration_get(st, "alice@example.org", &reg), STORE_ENOTFOUND);
    assert_int_equal(store_registration_remove(st, "alice@example.org"), STORE_ENOTFOUND);
    assert_int_equal(store_touch_login(st, "alice@example.org"), STORE_ENOTFOUND);
    assert_int_equal(store_registration_put(st, "x@y", "x", NULL, NULL), STORE_EINVAL);
    assert_int_equal(store_registration_list(st, &owners, &n), STORE_OK);
    assert_int_equal(n, 2);
    store_strings_free(owners, n);
    store_close(st);
}

static void test_remove_cascades(void **state)
{
    struct fixture *f = *state;
    struct store *st = open_ok(f);
    struct store_contact *contacts;
    struct store_pending *pending;
    size_t n;

    put_ok(st, "alice@example.org", "alice", "pw", NULL);
    put_ok(st, "bob@example.org", "bob", "pw", NULL);
    contact_ok(st, "alice@example.org", "x", NULL, NULL, STORE_SUB_BOTH, 1);
    contact_ok(st, "alice@example.org", "y", NULL, NULL, STORE_SUB_NONE, 0);
    contact_ok(st, "bob@example.org", "x", NULL, NULL, STORE_SUB_TO, 1);
    assert_int_equal(
        store_pending_add(st, "alice@example.org", STORE_DIR_TO_OWNER, "x", "1", NULL, NULL),
        STORE_OK);
    assert_int_equal(
        store_pending_add(st, "bob@example.org", STORE_DIR_TO_LEGACY, "x", "2", NULL, NULL),
        STORE_OK);

    assert_int_equal(store_registration_remove(st, "alice@example.org"), STORE_OK);
    assert_int_equal(store_contact_list(st, "alice@example.org", &contacts, &n), STORE_OK);
    assert_int_equal(n, 0);
    assert_null(contacts);
    assert_int_equal(store_pending_list(st, "alice@example.org", &pending, &n), STORE_OK);
    assert_int_equal(n, 0);
    assert_raw_text(f->db_path,
                    "SELECT (SELECT count(*) FROM contacts WHERE owner = 'alice@example.org') + "
                    "(SELECT count(*) FROM pending_messages WHERE owner = 'alice@example.org')",
                    "0");
    /* Bob keeps everything. */
    assert_int_equal(store_contact_list(st, "bob@example.org", &contacts, &n), STORE_OK);
    assert_int_equal(n, 1);
    store_contact_list_free(contacts, n);
    assert_int_equal(store_pending_list(st, "bob@example.org", &pending, &n), STORE_OK);
    assert_int_equal(n, 1);
    store_pending_list_free(pending, n);
    store_close(st);
}

/* ---- contacts and pending messages ---- */

static void test_contacts(void **state)
{
    struct fixture *f = *state;
    struct store *st = open_ok(f);
    struct store_contact c, *list;
    size_t n;

    put_ok(st, "alice@example.org", "alice", "pw", NULL);
    contact_ok(st, "alice@example.org", "zed", "Zed", "Work", STORE_SUB_ASKED, 1);
    contact_ok(st, "alice@example.org", "[bob]", NULL, NULL, STORE_SUB_NONE, 0);
    assert_int_equal(store_contact_get(st, "alice@example.org", "zed", &c), STORE_OK);
    assert_string_equal(c.owner, "alice@example.org");
    assert_string_equal(c.legacy_id, "zed");
    assert_string_equal(c.alias, "Zed");
    assert_string_equal(c.groups, "Work");
    assert_int_equal(c.subscription, STORE_SUB_ASKED);
    assert_int_equal(c.subscribe_sent, 1);
    store_contact_free(&c);

    /* Put replaces every field. */
    contact_ok(st, "alice@example.org", "zed", NULL, "Work\nFriends", STORE_SUB_BOTH, 1);
    assert_int_equal(store_contact_get(st, "alice@example.org", "zed", &c), STORE_OK);
    assert_null(c.alias);
    assert_string_equal(c.groups, "Work\nFriends");
    assert_int_equal(c.subscription, STORE_SUB_BOTH);
    store_contact_free(&c);

    assert_int_equal(store_contact_list(st, "alice@example.org", &list, &n), STORE_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].legacy_id, "[bob]");
    assert_null(list[0].alias);
    assert_int_equal(list[0].subscription, STORE_SUB_NONE);
    assert_int_equal(list[0].subscribe_sent, 0);
    assert_string_equal(list[1].legacy_id, "zed");
    store_contact_list_free(list, n);

    /* Refusals. */
    struct store_contact orphan = {"nobody@example.org", "x", NULL, NULL, STORE_SUB_NONE, 0};
    assert_int_equal(store_contact_put(st, &orphan), STORE_ENOTFOUND);
    struct store_contact bad = {"alice@example.org",        "x", NULL, NULL,
                                (enum store_subscription)9, 0};
    assert_int_equal(store_contact_put(st, &bad), STORE_EINVAL);
    assert_int_equal(store_contact_get(st, "alice@example.org", "nope", &c), STORE_ENOTFOUND);

    assert_int_equal(store_contact_remove(st, "alice@example.org", "zed"), STORE_OK);
    assert_int_equal(store_contact_remove(st, "alice@example.org", "zed"), STORE_ENOTFOUND);
    assert_int_equal(store_contact_get(st, "alice@example.org", "zed", &c), STORE_ENOTFOUND);

    assert_string_equal(store_subscription_name(STORE_SUB_NONE), "none");
    assert_string_equal(store_subscription_name(STORE_SUB_ASKED), "asked");
    assert_string_equal(store_subscription_name(STORE_SUB_TO), "to");
    assert_string_equal(store_subscription_name(STORE_SUB_FROM), "from");
    assert_string_equal(store_subscription_name(STORE_SUB_BOTH), "both");
    assert_null(store_subscription_name((enum store_subscription)5));
    store_close(st);
}

static void test_pending_messages(void **state)
{
    struct fixture *f = *state;
    struct store *st = open_ok(f);
    struct store_pending *list;
    size_t n;
    int64_t id1, id2, id3;
    int64_t t0 = (int64_t)time(NULL);
    const char *stanza = "<message to='alice@example.org' from='bob@irc.example.org'>"
                         "<body>a &lt; b</body></message>";

    put_ok(st, "alice@example.org", "alice", "pw", NULL);
    assert_int_equal(store_pending_add(st, "alice@example.org", STORE_DIR_TO_OWNER, "bob", "a < b",
                                       stanza, &id1),
                     STORE_OK);
    assert_int_equal(store_pending_add(st, "alice@example.org", STORE_DIR_TO_LEGACY, "carol",
                                       "hello", NULL, &id2),
                     STORE_OK);
    assert_int_equal(
        store_pending_add(st, "alice@example.org", STORE_DIR_TO_OWNER, "bob", NULL, NULL, &id3),
        STORE_OK);
    assert_true(id1 < id2 && id2 < id3);

    store_close(st); /* they survive a restart */
    st = open_ok(f);
    assert_int_equal(store_pending_list(st, "alice@example.org", &list, &n), STORE_OK);
    assert_int_equal(n, 3);
    assert_int_equal(list[0].id, id1);
    assert_string_equal(list[0].owner, "alice@example.org");
    assert_int_equal(list[0].direction, STORE_DIR_TO_OWNER);
    assert_string_equal(list[0].peer, "bob");
    assert_string_equal(list[0].body, "a < b");
    assert_string_equal(list[0].stanza, stanza);
    assert_true(list[0].created >= t0);
    assert_int_equal(list[1].direction, STORE_DIR_TO_LEGACY);
    assert_string_equal(list[1].peer, "carol");
    assert_null(list[1].stanza);
    assert_null(list[2].body);
    store_pending_list_free(list, n);

    assert_int_equal(store_pending_remove(st, id2), STORE_OK);
    assert_int_equal(store_pending_remove(st, id2), STORE_ENOTFOUND);
    assert_int_equal(store_pending_list(st, "alice@example.org", &list, &n), STORE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, id1);
    assert_int_equal(list[1].id, id3);
    store_pending_list_free(list, n);

    /* A new message after a removal still sorts last. */
    int64_t id4 = 0;
    assert_int_equal(
        store_pending_add(st, "alice@example.org", STORE_DIR_TO_OWNER, "x", "4", NULL, &id4),
        STORE_OK);
    assert_true(id4 > id3);
    assert_int_equal(
        store_pending_add(st, "nobody@example.org", STORE_DIR_TO_OWNER, "x", "y", NULL, NULL),
        STORE_ENOTFOUND);
    assert_int_equal(
        store_pending_add(st, "alice@example.org", (enum store_direction)7, "x", "y", NULL, NULL),
        STORE_EINVAL);
    store_close(st);
}

/* ---- secrecy and keys ---- */

/* 1 when needle appears in any file of dir. */
static int found_in_dir(const char *dir, const char *needle)
{
    int found = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL && !found) {
        char *p = xasprintf("%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
            char *buf = xmalloc((size_t)sb.st_size);
            int fd = open(p, O_RDONLY);
            assert_true(fd >= 0);
            assert_int_equal(read(fd, buf, (size_t)sb.st_size), sb.st_size);
            close(fd);
            found = memmem(buf, (size_t)sb.st_size, needle, strlen(needle)) != NULL;
            free(buf);
        }
        free(p);
    }
    closedir(d);
    return found;
}

static void test_password_never_in_clear(void **state)
{
    struct fixture *f = *state;
    struct store *st = open_ok(f);
    struct store_registration reg;
    char *wal = xasprintf("%s-wal", f->db_path);

    put_ok(st, "alice@example.org", "visible-username-4711", CANARY_PASSWORD, NULL);
    put_ok(st, "bob@example.org", "bob", CANARY_PASSWORD "-2", NULL);
    put_ok(st, "alice@example.org", "visible-username-4711", CANARY_PASSWORD "-3", NULL);
    assert_int_equal(store_registration_remove(st, "bob@example.org"), STORE_OK);
    assert_int_equal(store_registration_get(st, "alice@example.org", &reg), STORE_OK);
    assert_string_equal(reg.password, CANARY_PASSWORD "-3");
    store_registration_free(&reg);

    /* The WAL holds the writes: the scan sees the username, never the password. */
    assert_int_equal(access(wal, F_OK), 0);
    assert_true(found_in_dir(f->dir, "visible-username-4711"));
    assert_false(found_in_dir(f->dir, CANARY_PASSWORD));
    store_close(st);
    assert_true(found_in_dir(f->dir, "visible-username-4711"));
    assert_false(found_in_dir(f->dir, CANARY_PASSWORD));
    free(wal);
}

static void test_wrong_key_and_moved_blob(void **state)
{
    struct fixture *f = *state;
    struct store_registration reg;
    struct store *st = open_ok(f);
    put_ok(st, "alice@example.org", "alice", "alice-pw", NULL);
    put_ok(st, "bob@example.org", "bob", "bob-pw", NULL);
    store_close(st);

    /* Another key: the rows are there, the passwords do not open. */
    f->key[0] ^= 0xff;
    st = open_ok(f);
    assert_int_equal(store_registration_get(st, "alice@example.org", &reg), STORE_ECRYPTO);
    assert_null(reg.password);
    assert_null(reg.username);
    char **owners;
    size_t n;
    assert_int_equal(store_registration_list(st, &owners, &n), STORE_OK);
    assert_int_equal(n, 2);
    store_strings_free(owners, n);
    store_close(st);
    f->key[0] ^= 0xff;

    /* Alice's blob copied into Bob's row does not open there. */
    raw_exec(f->db_path, "UPDATE registrations SET password = (SELECT password FROM "
                         "registrations WHERE owner = 'alice@example.org') "
                         "WHERE owner = 'bob@example.org'");
    st = open_ok(f);
    assert_int_equal(store_registration_get(st, "bob@example.org", &reg), STORE_ECRYPTO);
    assert_int_equal(store_registration_get(st, "alice@example.org", &reg), STORE_OK);
    assert_string_equal(reg.password, "alice-pw");
    store_registration_free(&reg);
    store_close(st);
}

/* ---- threads ---- */

struct worker {
    struct store *st;
    int index;
    int failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 20; i++) {
        char *owner = xasprintf("user%d-%d@example.org", w->index, i % 3);
        char *pw = xasprintf("pw-%d-%d", w->index, i);
        struct store_registration reg;
        w->failures += store_registration_put(w->st, owner, "u", pw, NULL) != STORE_OK;
        w->failures +=
            store_registration_get(w->st, owner, &reg) != STORE_OK || strcmp(reg.password, pw) != 0;
        store_registration_free(&reg);
        struct store_contact c = {owner, "buddy", NULL, NULL, STORE_SUB_BOTH, 1};
        w->failures += store_contact_put(w->st, &c) != STORE_OK;
        free(owner);
        free(pw);
    }
    return NULL;
}

static void test_threads_share_one_store(void **state)
{
    struct fixture *f = *state;
    struct store *st = open_ok(f);
    enum { THREADS = 4 };
    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (struct worker){st, i, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, worker_main, &workers[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(workers[i].failures, 0);
    }
    char **owners;
    size_t n;
    assert_int_equal(store_registration_list(st, &owners, &n), STORE_OK);
    assert_int_equal(n, THREADS * 3);
    store_strings_free(owners, n);
    store_close(st);
}

/* ---- kill -9 in the middle of writes ---- */

#define KILL_ROUNDS 6
#define KILL_OWNERS 12

static char *expected_password(const char *owner, const char *username)
{
    return xasprintf("pw|%s|%s", owner, username);
}

/* Runs in a forked child until killed: registrations put, updated and removed at random, each
 * with a password derived from its owner and username so that a torn row would show. */
static _Noreturn void writer_child(struct fixture *f, int ready_fd, unsigned seed)
{
    struct store *st = store_open(f->dir, f->key, NULL);
    if (st == NULL)
        _exit(2);
    srand(seed);
    for (int n = 0; n < 1000000; n++) {
        int k = rand() % KILL_OWNERS;
        char *owner = xasprintf("user%d@example.org", k);
        char *user = xasprintf("legacy%d-%u-%d", k, seed, n);
        char *pw = expected_password(owner, user);
        char *settings = xasprintf("{\"n\":%d,\"user\":\"%s\"}", n, user);
        if (rand() % 8 == 0) {
            store_registration_remove(st, owner);
        } else {
            struct store_contact c = {owner, user, user, "G", STORE_SUB_ASKED, 1};
            store_registration_put(st, owner, user, pw, settings);
            store_contact_put(st, &c);
            store_pending_add(st, owner, STORE_DIR_TO_OWNER, user, user, settings, NULL);
        }
        if (n == 0 && write(ready_fd, "r", 1) != 1)
            _exit(3);
        free(owner);
        free(user);
        free(pw);
        free(settings);
    }
    _exit(0);
}

static void check_every_row_whole(struct fixture *f, size_t *total)
{
    struct store *st = open_ok(f);
    char **owners;
    size_t n;
    assert_int_equal(store_integrity_check(st), STORE_OK);
    assert_int_equal(store_registration_list(st, &owners, &n), STORE_OK);
    for (size_t i = 0; i < n; i++) {
        struct store_registration reg;
        assert_int_equal(store_registration_get(st, owners[i], &reg), STORE_OK);
        char *pw = expected_password(owners[i], reg.username);
        char *settings_tail = xasprintf("\"user\":\"%s\"}", reg.username);
        assert_string_equal(reg.password, pw);
        assert_non_null(strstr(reg.settings, settings_tail)); /* written with the same put */
        assert_true(reg.created > 0);
        free(pw);
        free(settings_tail);
        store_registration_free(&reg);
    }
    *total += n;
    store_strings_free(owners, n);
    store_close(st);
}

static void test_kill_during_writes(void **state)
{
    struct fixture *f = *state;
    size_t total = 0;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    store_close(open_ok(f));

    for (int round = 0; round < KILL_ROUNDS; round++) {
        int fds[2];
        char c;
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            writer_child(f, fds[1], (unsigned)rand());
        }
        close(fds[1]);
        assert_int_equal(read(fds[0], &c, 1), 1); /* the child has written something */
        close(fds[0]);
        usleep((useconds_t)(rand() % 60000)); /* then dies at a random moment */
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        check_every_row_whole(f, &total);
    }
    assert_true(total > 0);
}

int main(void)
{
    log_set_level(LOG_LEVEL_WARN);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_creates_private_files),
        T(test_open_fixes_loose_modes),
        T(test_open_refusals),
        T(test_reopen_is_idempotent),
        T(test_migration_from_version_1),
        T(test_migration_from_empty_file),
        T(test_registration_lifecycle),
        T(test_remove_cascades),
        T(test_contacts),
        T(test_pending_messages),
        T(test_password_never_in_clear),
        T(test_wrong_key_and_moved_blob),
        T(test_threads_share_one_store),
        T(test_kill_during_writes),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
