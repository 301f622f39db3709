/* The store on SQLite: one connection, one mutex, statements prepared once at open.
 * Every SQL text of Ferry lives in this file. */
#include "bridge/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

#define TAG "store"
#define DB_NAME "ferry.db"
#define BUSY_TIMEOUT_MS 5000

/* Schema history. Entry i takes the database from user_version i to i + 1, inside one
 * transaction together with the new user_version, so a crash mid-migration leaves the previous
 * version whole. Never edit an entry that has shipped: append a new one. */
static const char *const migrations[] = {
    /* 1: registrations and the contacts of each owner. */
    "CREATE TABLE registrations ("
    " owner TEXT PRIMARY KEY NOT NULL,"
    " username TEXT NOT NULL,"
    " password BLOB NOT NULL," /* crypto_seal blob, AAD bound to owner */
    " created INTEGER NOT NULL,"
    " last_login INTEGER NOT NULL DEFAULT 0,"
    " settings TEXT NOT NULL DEFAULT '{}');"
    "CREATE TABLE contacts ("
    " owner TEXT NOT NULL REFERENCES registrations(owner) ON DELETE CASCADE,"
    " legacy_id TEXT NOT NULL,"
    " alias TEXT,"
    " groups TEXT,"
    " subscription TEXT NOT NULL DEFAULT 'none'"
    "  CHECK (subscription IN ('none', 'asked', 'to', 'from', 'both')),"
    " PRIMARY KEY (owner, legacy_id));",
    /* 2: what sessions need: subscribe requests already made (never repeated at each login),
     * and messages that must wait for delivery across a restart. */
    "ALTER TABLE contacts ADD COLUMN subscribe_sent INTEGER NOT NULL DEFAULT 0"
    " CHECK (subscribe_sent IN (0, 1));"
    "CREATE TABLE pending_messages ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT," /* AUTOINCREMENT: ids never reused, so ordered */
    " owner TEXT NOT NULL REFERENCES registrations(owner) ON DELETE CASCADE,"
    " direction TEXT NOT NULL CHECK (direction IN ('to-owner', 'to-legacy')),"
    " peer TEXT NOT NULL,"
    " body TEXT,"
    " stanza TEXT,"
    " created INTEGER NOT NULL);"
    "CREATE INDEX pending_messages_owner ON pending_messages(owner, id);",
};

enum stmt_id {
    ST_REG_GET,
    ST_REG_PUT,
    ST_REG_REMOVE,
    ST_REG_LIST,
    ST_REG_TOUCH,
    ST_CONTACT_PUT,
    ST_CONTACT_GET,
    ST_CONTACT_LIST,
    ST_CONTACT_REMOVE,
    ST_PENDING_ADD,
    ST_PENDING_LIST,
    ST_PENDING_REMOVE,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_REG_GET] = "SELECT username, password, created, last_login, settings"
                   " FROM registrations WHERE owner = ?1",
    /* One statement: atomic by itself, and the primary key makes concurrent puts for one
     * owner converge on one row. */
    [ST_REG_PUT] = "INSERT INTO registrations (owner, username, password, created, settings)"
                   " VALUES (?1, ?2, ?3, ?4, coalesce(?5, '{}'))"
                   " ON CONFLICT (owner) DO UPDATE SET username = excluded.username,"
                   " password = excluded.password,"
                   " settings = coalesce(?5, registrations.settings)",
    /* The foreign keys cascade to contacts and pending_messages in the same statement, so
     * removal is one transaction. */
    [ST_REG_REMOVE] = "DELETE FROM registrations WHERE owner = ?1",
    [ST_REG_LIST] = "SELECT owner FROM registrations ORDER BY owner",
    [ST_REG_TOUCH] = "UPDATE registrations SET last_login = ?2 WHERE owner = ?1",
    [ST_CONTACT_PUT] = "INSERT INTO contacts"
                       " (owner, legacy_id, alias, groups, subscription, subscribe_sent)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                       " ON CONFLICT (owner, legacy_id) DO UPDATE SET alias = excluded.alias,"
                       " groups = excluded.groups, subscription = excluded.subscription,"
                       " subscribe_sent = excluded.subscribe_sent",
    [ST_CONTACT_GET] = "SELECT legacy_id, alias, groups, subscription, subscribe_sent"
                       " FROM contacts WHERE owner = ?1 AND legacy_id = ?2",
    [ST_CONTACT_LIST] = "SELECT legacy_id, alias, groups, subscription, subscribe_sent"
                        " FROM contacts WHERE owner = ?1 ORDER BY legacy_id",
    [ST_CONTACT_REMOVE] = "DELETE FROM contacts WHERE owner = ?1 AND legacy_id = ?2",
    [ST_PENDING_ADD] = "INSERT INTO pending_messages"
                       " (owner, direction, peer, body, stanza, created)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_PENDING_LIST] = "SELECT id, direction, peer, body, stanza, created"
                        " FROM pending_messages WHERE owner = ?1 ORDER BY id",
    [ST_PENDING_REMOVE] = "DELETE FROM pending_messages WHERE id = ?1",
};

static const char *const sub_names[] = {
    [STORE_SUB_NONE] = "none", [STORE_SUB_ASKED] = "asked", [STORE_SUB_TO] = "to",
    [STORE_SUB_FROM] = "from", [STORE_SUB_BOTH] = "both",
};
static const char *const dir_names[] = {
    [STORE_DIR_TO_OWNER] = "to-owner",
    [STORE_DIR_TO_LEGACY] = "to-legacy",
};

struct store {
    pthread_mutex_t lock; /* serializes every use of db and stmt */
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT];
    char *path;
    unsigned char key[CRYPTO_KEY_LEN];
};

static int set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int set_err(char **err, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(err, fmt, ap) < 0)
            fatalx(TAG, "out of memory formatting an error");
        va_end(ap);
    }
    return -1;
}

/* ---- files and directory ---- */

int store_prepare_dir(const char *dir, char **err)
{
    struct stat sb;
    if (err != NULL)
        *err = NULL;
    if (mkdir(dir, 0700) == 0) {
        log_info(TAG, "created data directory %s", dir);
        return 0;
    }
    if (errno != EEXIST)
        return set_err(err, "cannot create data directory %s: %s", dir, strerror(errno));
    if (stat(dir, &sb) != 0)
        return set_err(err, "cannot stat data directory %s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return set_err(err, "data directory %s is not a directory", dir);
    if ((sb.st_mode & 077) != 0) {
        if (chmod(dir, 0700) != 0)
            return set_err(err, "data directory %s has mode %04o and cannot be made 0700: %s", dir,
                           (unsigned)(sb.st_mode & 07777), strerror(errno));
        log_warnx(TAG,
                  "data directory %s had mode %04o (group or others could enter it): "
                  "changed to 0700",
                  dir, (unsigned)(sb.st_mode & 07777));
    }
    return 0;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fsync(fd) != 0)
        log_warn(TAG, "fsync of directory %s", dir);
    close(fd);
}

/* Makes path a regular file of mode 0600, creating it when create is set. SQLite gives the
 * -wal and -shm files it creates the mode of the database file, so fixing the database first
 * covers them; existing ones from an earlier run are fixed here too. */
static int secure_file(const char *path, int create, char **err)
{
    struct stat sb;
    int rc = -1;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create)
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == ENOENT && !create)
            return 0;
        return set_err(err, "cannot open %s: %s", path, strerror(errno));
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        set_err(err, "%s is not a regular file", path);
        goto out;
    }
    if ((sb.st_mode & 0777) != 0600) {
        if (fchmod(fd, 0600) != 0) {
            set_err(err, "cannot make %s mode 0600: %s", path, strerror(errno));
            goto out;
        }
        if ((sb.st_mode & 077) != 0)
            log_warnx(TAG, "%s had mode %04o (group or others could read it): changed to 0600",
                      path, (unsigned)(sb.st_mode & 07777));
    }
    rc = 0;
out:
    close(fd);
    return rc;
}

static int secure_db_files(const char *dir, const char *path, char **err)
{
    static const char *const companions[] = {"-wal", "-shm", "-journal"};
    int existed = access(path, F_OK) == 0;
    if (secure_file(path, 1, err) != 0)
        return -1;
    if (!existed)
        fsync_dir(dir); /* the new file's name must survive a power loss too */
    for (size_t i = 0; i < FERRY_ARRAY_LEN(companions); i++) {
        char *p = xasprintf("%s%s", path, companions[i]);
        int rc = secure_file(p, 0, err);
        free(p);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* ---- connection set-up and migrations ---- */

static int exec_sql(struct store *st, const char *sql, char **err, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    set_err(err, "%s: %s: %s", st->path, what, msg ? msg : sqlite3_errmsg(st->db));
    sqlite3_free(msg);
    return -1;
}

/* Runs a statement returning one row and gives its first column as text (new string). */
static char *query_text(struct store *st, const char *sql)
{
    sqlite3_stmt *s = NULL;
    char *out = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL)
        out = xstrdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return out;
}

static int query_int(struct store *st, const char *sql, int *out)
{
    char *text = query_text(st, sql);
    if (text == NULL)
        return -1;
    *out = atoi(text);
    free(text);
    return 0;
}

/* synchronous=FULL with WAL: atomicity after kill -9 holds in any mode (the OS keeps what was
 * written), and NORMAL would keep the database consistent after a power loss too, but could
 * lose the last commits: a registration already answered with a result would vanish. FULL
 * syncs the WAL at each commit; registrations are rare, so the cost does not matter. */
static int configure(struct store *st, char **err)
{
    char *mode = NULL;
    int fk = 0, rc = -1;
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    if (exec_sql(st,
                 "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                 " PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;"
                 " PRAGMA temp_store = MEMORY;",
                 err, "setting pragmas") != 0)
        return -1;
    mode = query_text(st, "PRAGMA journal_mode");
    if (mode == NULL || strcmp(mode, "wal") != 0) {
        set_err(err, "%s: cannot switch to WAL mode (mode is %s)", st->path, mode ? mode : "?");
        goto out;
    }
    if (query_int(st, "PRAGMA foreign_keys", &fk) != 0 || fk != 1) {
        set_err(err, "%s: this SQLite does not enforce foreign keys", st->path);
        goto out;
    }
    rc = 0;
out:
    free(mode);
    return rc;
}

/* One step under an immediate (write) transaction, re-reading the version inside it so that
 * two processes opening the same database never apply a migration twice.
 * Returns 1 when a migration ran, 0 when the schema is current, -1 on error. */
static int migrate_step(struct store *st, char **err)
{
    const int latest = (int)FERRY_ARRAY_LEN(migrations);
    int version = -1;
    if (exec_sql(st, "BEGIN IMMEDIATE", err, "starting a migration") != 0)
        return -1;
    if (query_int(st, "PRAGMA user_version", &version) != 0) {
        set_err(err, "%s: cannot read the schema version: %s", st->path, sqlite3_errmsg(st->db));
        goto fail;
    }
    if (version > latest || version < 0) {
        set_err(err,
                "%s has schema version %d; this Ferry knows versions up to %d: refusing to "
                "open it",
                st->path, version, latest);
        goto fail;
    }
    if (version == latest)
        return exec_sql(st, "COMMIT", err, "ending the schema check") == 0 ? 0 : -1;
    char *sql = xasprintf("%s PRAGMA user_version = %d;", migrations[version], version + 1);
    char *what = xasprintf("migration to schema version %d", version + 1);
    int rc = exec_sql(st, sql, err, what);
    free(sql);
    free(what);
    if (rc != 0 || exec_sql(st, "COMMIT", err, "committing a migration") != 0)
        goto fail;
    log_info(TAG, "%s: schema migrated to version %d", st->path, version + 1);
    return 1;
fail:
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static int migrate(struct store *st, char **err)
{
    int rc;
    while ((rc = migrate_step(st, err)) > 0)
        ;
    return rc;
}

static int prepare_statements(struct store *st, char **err)
{
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i],
                               NULL) != SQLITE_OK)
            return set_err(err, "%s: preparing statement %d: %s", st->path, i,
                           sqlite3_errmsg(st->db));
    }
    return 0;
}

struct store *store_open(const char *dir, const unsigned char key[CRYPTO_KEY_LEN], char **err)
{
    struct store *st = NULL;
    if (err != NULL)
        *err = NULL;
    if (store_prepare_dir(dir, err) != 0)
        return NULL;
    st = xcalloc(1, sizeof(*st));
    pthread_mutex_init(&st->lock, NULL);
    memcpy(st->key, key, CRYPTO_KEY_LEN);
    st->path = xasprintf("%s/%s", dir, DB_NAME);
    if (secure_db_files(dir, st->path, err) != 0)
        goto fail;
    /* NOMUTEX: our own mutex already serializes every use of the connection. */
    if (sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        set_err(err, "cannot open database %s: %s", st->path,
                st->db ? sqlite3_errmsg(st->db) : "out of memory");
        goto fail;
    }
    if (configure(st, err) != 0 || migrate(st, err) != 0 || prepare_statements(st, err) != 0)
        goto fail;
    return st;
fail:
    store_close(st);
    return NULL;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    /* The last connection to close checkpoints the WAL into the database and removes it. */
    if (sqlite3_close(st->db) != SQLITE_OK)
        log_warnx(TAG, "closing %s: %s", st->path, sqlite3_errmsg(st->db));
    crypto_wipe(st->key, sizeof(st->key));
    pthread_mutex_destroy(&st->lock);
    free(st->path);
    free(st);
}

int store_schema_version(struct store *st)
{
    int version = -1;
    pthread_mutex_lock(&st->lock);
    if (query_int(st, "PRAGMA user_version", &version) != 0)
        version = -1;
    pthread_mutex_unlock(&st->lock);
    return version;
}

int store_integrity_check(struct store *st)
{
    pthread_mutex_lock(&st->lock);
    char *result = query_text(st, "PRAGMA integrity_check");
    pthread_mutex_unlock(&st->lock);
    int rc = result != NULL && strcmp(result, "ok") == 0 ? STORE_OK : STORE_EDB;
    if (rc != STORE_OK)
        log_errorx(TAG, "%s: integrity check failed: %s", st->path, result ? result : "no answer");
    free(result);
    return rc;
}

/* ---- statement helpers: take the lock with the statement, release both together ---- */

static sqlite3_stmt *stmt_begin(struct store *st, enum stmt_id id)
{
    pthread_mutex_lock(&st->lock);
    return st->stmt[id];
}

static void stmt_end(struct store *st, sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    pthread_mutex_unlock(&st->lock);
}

/* Binds text or NULL. The caller's string stays valid until stmt_end, so no copy. */
static int bind_text(sqlite3_stmt *s, int idx, const char *text)
{
    if (text == NULL)
        return sqlite3_bind_null(s, idx);
    return sqlite3_bind_text(s, idx, text, -1, SQLITE_STATIC);
}

/* Maps a failed step (or bind) to a store code; constraint failures are the caller's
 * mistakes and are not logged as database errors. */
static int db_error(struct store *st, int code, const char *what)
{
    if (code == SQLITE_CONSTRAINT_FOREIGNKEY)
        return STORE_ENOTFOUND;
    if (code == SQLITE_CONSTRAINT_CHECK || code == SQLITE_CONSTRAINT_NOTNULL)
        return STORE_EINVAL;
    log_errorx(TAG, "%s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
    return STORE_EDB;
}

/* Steps a statement that returns no rows. STORE_OK, or STORE_ENOTFOUND when need_change is
 * set and no row changed. */
static int step_write(struct store *st, sqlite3_stmt *s, int need_change, const char *what)
{
    int code = sqlite3_step(s);
    if (code != SQLITE_DONE)
        return db_error(st, code, what);
    if (need_change && sqlite3_changes(st->db) == 0)
        return STORE_ENOTFOUND;
    return STORE_OK;
}

static char *col_text(sqlite3_stmt *s, int col)
{
    const unsigned char *text = sqlite3_column_text(s, col);
    return text == NULL ? NULL : xstrdup((const char *)text);
}

void store_strings_free(char **strings, size_t count)
{
    for (size_t i = 0; strings != NULL && i < count; i++)
        free(strings[i]);
    free(strings);
}

/* ---- registrations ---- */

/* The password blob is bound to its row: a blob copied to another owner does not open. */
static char *password_aad(const char *owner)
{
    return xasprintf("ferry/registrations/password\n%s", owner);
}

static int open_password(struct store *st, const char *owner, sqlite3_stmt *s, int col,
                         char **password)
{
    char *aad = password_aad(owner);
    unsigned char *plain = NULL;
    size_t len = 0;
    int rc = crypto_open(st->key, sqlite3_column_blob(s, col), (size_t)sqlite3_column_bytes(s, col),
                         aad, strlen(aad), &plain, &len);
    free(aad);
    if (rc != CRYPTO_OK) {
        log_errorx(TAG, "the stored password of %s does not open with this key (%s)", owner,
                   rc == CRYPTO_EAUTH ? "wrong key or altered row" : "bad format");
        return STORE_ECRYPTO;
    }
    *password = (char *)plain;
    return STORE_OK;
}

int store_registration_get(struct store *st, const char *owner, struct store_registration *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *s = stmt_begin(st, ST_REG_GET);
    int rc = bind_text(s, 1, owner);
    if (rc != SQLITE_OK) {
        rc = db_error(st, rc, "reading a registration");
        goto out;
    }
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? STORE_ENOTFOUND : db_error(st, rc, "reading a registration");
        goto out;
    }
    rc = open_password(st, owner, s, 1, &out->password);
    if (rc != STORE_OK)
        goto out;
    out->owner = xstrdup(owner);
    out->username = col_text(s, 0);
    out->created = sqlite3_column_int64(s, 2);
    out->last_login = sqlite3_column_int64(s, 3);
    out->settings = col_text(s, 4);
out:
    stmt_end(st, s);
    return rc;
}

void store_registration_free(struct store_registration *reg)
{
    if (reg == NULL)
        return;
    crypto_secret_free_str(reg->password);
    free(reg->owner);
    free(reg->username);
    free(reg->settings);
    memset(reg, 0, sizeof(*reg));
}

int store_registration_put(struct store *st, const char *owner, const char *username,
                           const char *password, const char *settings)
{
    unsigned char *blob = NULL;
    size_t blob_len = 0;
    if (owner == NULL || username == NULL || password == NULL)
        return STORE_EINVAL;
    char *aad = password_aad(owner);
    int rc = crypto_seal(st->key, password, strlen(password), aad, strlen(aad), &blob, &blob_len);
    free(aad);
    if (rc != CRYPTO_OK)
        return STORE_EDB;
    sqlite3_stmt *s = stmt_begin(st, ST_REG_PUT);
    rc = bind_text(s, 1, owner);
    rc = rc ? rc : bind_text(s, 2, username);
    rc = rc ? rc : sqlite3_bind_blob(s, 3, blob, (int)blob_len, SQLITE_STATIC);
    rc = rc ? rc : sqlite3_bind_int64(s, 4, (sqlite3_int64)time(NULL));
    rc = rc ? rc : bind_text(s, 5, settings);
    rc = rc ? db_error(st, rc, "binding a registration")
            : step_write(st, s, 0, "writing a registration");
    stmt_end(st, s);
    free(blob);
    return rc;
}

static int write_by_owner(struct store *st, enum stmt_id id, const char *owner, const char *what)
{
    sqlite3_stmt *s = stmt_begin(st, id);
    int rc = bind_text(s, 1, owner);
    if (id == ST_REG_TOUCH && rc == SQLITE_OK)
        rc = sqlite3_bind_int64(s, 2, (sqlite3_int64)time(NULL));
    rc = rc ? db_error(st, rc, what) : step_write(st, s, 1, what);
    stmt_end(st, s);
    return rc;
}

int store_registration_remove(struct store *st, const char *owner)
{
    return write_by_owner(st, ST_REG_REMOVE, owner, "removing a registration");
}

int store_touch_login(struct store *st, const char *owner)
{
    return write_by_owner(st, ST_REG_TOUCH, owner, "recording a login");
}

int store_registration_list(struct store *st, char ***owners, size_t *count)
{
    size_t n = 0, cap = 0;
    char **list = NULL;
    int code, rc = STORE_OK;
    sqlite3_stmt *s = stmt_begin(st, ST_REG_LIST);
    while ((code = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            list = xrealloc(list, cap * sizeof(*list));
        }
        list[n++] = col_text(s, 0);
    }
    if (code != SQLITE_DONE) {
        rc = db_error(st, code, "listing registrations");
        store_strings_free(list, n);
        list = NULL;
        n = 0;
    }
    stmt_end(st, s);
    *owners = list;
    *count = n;
    return rc;
}

/* ---- contacts ---- */

const char *store_subscription_name(enum store_subscription sub)
{
    if ((unsigned)sub >= FERRY_ARRAY_LEN(sub_names))
        return NULL;
    return sub_names[sub];
}

static enum store_subscription subscription_parse(const unsigned char *name)
{
    for (size_t i = 0; name != NULL && i < FERRY_ARRAY_LEN(sub_names); i++) {
        if (strcmp((const char *)name, sub_names[i]) == 0)
            return (enum store_subscription)i;
    }
    return STORE_SUB_NONE; /* the CHECK constraint keeps other values out */
}

int store_contact_put(struct store *st, const struct store_contact *c)
{
    const char *sub = store_subscription_name(c->subscription);
    if (sub == NULL || c->owner == NULL || c->legacy_id == NULL)
        return STORE_EINVAL;
    sqlite3_stmt *s = stmt_begin(st, ST_CONTACT_PUT);
    int rc = bind_text(s, 1, c->owner);
    rc = rc ? rc : bind_text(s, 2, c->legacy_id);
    rc = rc ? rc : bind_text(s, 3, c->alias);
    rc = rc ? rc : bind_text(s, 4, c->groups);
    rc = rc ? rc : bind_text(s, 5, sub);
    rc = rc ? rc : sqlite3_bind_int(s, 6, c->subscribe_sent ? 1 : 0);
    rc = rc ? db_error(st, rc, "binding a contact") : step_write(st, s, 0, "writing a contact");
    stmt_end(st, s);
    return rc;
}

/* Fills c from a row of ST_CONTACT_GET or ST_CONTACT_LIST (same columns). */
static void contact_from_row(sqlite3_stmt *s, const char *owner, struct store_contact *c)
{
    c->owner = xstrdup(owner);
    c->legacy_id = col_text(s, 0);
    c->alias = col_text(s, 1);
    c->groups = col_text(s, 2);
    c->subscription = subscription_parse(sqlite3_column_text(s, 3));
    c->subscribe_sent = sqlite3_column_int(s, 4) != 0;
}

int store_contact_get(struct store *st, const char *owner, const char *legacy_id,
                      struct store_contact *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *s = stmt_begin(st, ST_CONTACT_GET);
    int rc = bind_text(s, 1, owner);
    rc = rc ? rc : bind_text(s, 2, legacy_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        contact_from_row(s, owner, out);
        rc = STORE_OK;
    } else {
        rc = rc == SQLITE_DONE ? STORE_ENOTFOUND : db_error(st, rc, "reading a contact");
    }
    stmt_end(st, s);
    return rc;
}

int store_contact_list(struct store *st, const char *owner, struct store_contact **out,
                       size_t *count)
{
    size_t n = 0, cap = 0;
    struct store_contact *list = NULL;
    sqlite3_stmt *s = stmt_begin(st, ST_CONTACT_LIST);
    int code = bind_text(s, 1, owner);
    while (code == SQLITE_OK && (code = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            list = xrealloc(list, cap * sizeof(*list));
        }
        contact_from_row(s, owner, &list[n++]);
        code = SQLITE_OK;
    }
    int rc = code == SQLITE_DONE ? STORE_OK : db_error(st, code, "listing contacts");
    stmt_end(st, s);
    if (rc != STORE_OK) {
        store_contact_list_free(list, n);
        list = NULL;
        n = 0;
    }
    *out = list;
    *count = n;
    return rc;
}

int store_contact_remove(struct store *st, const char *owner, const char *legacy_id)
{
    sqlite3_stmt *s = stmt_begin(st, ST_CONTACT_REMOVE);
    int rc = bind_text(s, 1, owner);
    rc = rc ? rc : bind_text(s, 2, legacy_id);
    rc = rc ? db_error(st, rc, "binding a contact") : step_write(st, s, 1, "removing a contact");
    stmt_end(st, s);
    return rc;
}

void store_contact_free(struct store_contact *c)
{
    if (c == NULL)
        return;
    free(c->owner);
    free(c->legacy_id);
    free(c->alias);
    free(c->groups);
    memset(c, 0, sizeof(*c));
}

void store_contact_list_free(struct store_contact *contacts, size_t count)
{
    for (size_t i = 0; contacts != NULL && i < count; i++)
        store_contact_free(&contacts[i]);
    free(contacts);
}

/* ---- pending messages ---- */

int store_pending_add(struct store *st, const char *owner, enum store_direction direction,
                      const char *peer, const char *body, const char *stanza, int64_t *id)
{
    if ((unsigned)direction >= FERRY_ARRAY_LEN(dir_names) || owner == NULL || peer == NULL)
        return STORE_EINVAL;
    sqlite3_stmt *s = stmt_begin(st, ST_PENDING_ADD);
    int rc = bind_text(s, 1, owner);
    rc = rc ? rc : bind_text(s, 2, dir_names[direction]);
    rc = rc ? rc : bind_text(s, 3, peer);
    rc = rc ? rc : bind_text(s, 4, body);
    rc = rc ? rc : bind_text(s, 5, stanza);
    rc = rc ? rc : sqlite3_bind_int64(s, 6, (sqlite3_int64)time(NULL));
    rc = rc ? db_error(st, rc, "binding a message") : step_write(st, s, 0, "storing a message");
    if (rc == STORE_OK && id != NULL)
        *id = sqlite3_last_insert_rowid(st->db);
    stmt_end(st, s);
    return rc;
}

static void pending_from_row(sqlite3_stmt *s, const char *owner, struct store_pending *p)
{
    const unsigned char *dir = sqlite3_column_text(s, 1);
    p->id = sqlite3_column_int64(s, 0);
    p->owner = xstrdup(owner);
    p->direction = dir != NULL && strcmp((const char *)dir, dir_names[STORE_DIR_TO_LEGACY]) == 0
                       ? STORE_DIR_TO_LEGACY
                       : STORE_DIR_TO_OWNER;
    p->peer = col_text(s, 2);
    p->body = col_text(s, 3);
    p->stanza = col_text(s, 4);
    p->created = sqlite3_column_int64(s, 5);
}

int store_pending_list(struct store *st, const char *owner, struct store_pending **out,
                       size_t *count)
{
    size_t n = 0, cap = 0;
    struct store_pending *list = NULL;
    sqlite3_stmt *s = stmt_begin(st, ST_PENDING_LIST);
    int code = bind_text(s, 1, owner);
    while (code == SQLITE_OK && (code = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            list = xrealloc(list, cap * sizeof(*list));
        }
        pending_from_row(s, owner, &list[n++]);
        code = SQLITE_OK;
    }
    int rc = code == SQLITE_DONE ? STORE_OK : db_error(st, code, "listing messages");
    stmt_end(st, s);
    if (rc != STORE_OK) {
        store_pending_list_free(list, n);
        list = NULL;
        n = 0;
    }
    *out = list;
    *count = n;
    return rc;
}

int store_pending_remove(struct store *st, int64_t id)
{
    sqlite3_stmt *s = stmt_begin(st, ST_PENDING_REMOVE);
    int rc = sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
    rc = rc ? db_error(st, rc, "binding a message") : step_write(st, s, 1, "removing a message");
    stmt_end(st, s);
    return rc;
}

void store_pending_list_free(struct store_pending *pending, size_t count)
{
    for (size_t i = 0; pending != NULL && i < count; i++) {
        free(pending[i].owner);
        free(pending[i].peer);
        free(pending[i].body);
        free(pending[i].stanza);
    }
    free(pending);
}
