/* Owners and their libpurple accounts: the table that maps a PurpleAccount* back to its owner,
 * the [legacy] section checked against what the protocol declares and turned into accounts,
 * the process-wide login pacing, and posting events to the owners' mailboxes. */
#include "native/internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

/* One [legacy] option, checked and converted to the type the protocol declares. */
struct legacy_option {
    char *key;
    PurplePrefType type;
    char *text; /* string and list options */
    int number; /* int options; bool options as 0 or 1 */
};

static struct {
    char *protocol_id;
    char *protocol_name;
    char *server;
    int port; /* 0: the protocol's default */
    int request_timeout_ms;
    int64_t login_interval_ms; /* 0: no pacing */
    char separator;            /* between user name and server in the account name; 0: none */
    int password_optional;
    int needs_authorization;
    struct legacy_option *options;
    size_t option_count;
} legacy;

static GHashTable *owners_by_id;         /* id -> struct np_owner * (owns the owner) */
static GHashTable *owners_by_account;    /* PurpleAccount * -> struct np_owner * */
static GQueue pace_queue = G_QUEUE_INIT; /* owners waiting for a login slot */
static int64_t pace_next_ms;
static guint pace_timer;
static GSList *graveyard; /* accounts to delete from an idle callback */
static guint graveyard_idle;

/* Events that must arrive and found their mailbox full, kept per mailbox: each owner's events stay
 * in order, and one owner's full mailbox holds up nobody else's. */
struct backlog {
    mailbox_t *mailbox;
    GQueue events; /* struct np_event *, oldest first */
};
static GHashTable *backlogs;               /* mailbox_t * -> struct backlog * (owns it) */
static GQueue backlog_ring = G_QUEUE_INIT; /* the same backlogs, in the order retries visit */
static guint retry_timer;
/* Sends a retry tick tries at most, full mailboxes included: a tick stays short however many
 * owners wait, and the backlog it stopped at goes to the end of the ring. */
#define RETRY_SENDS_PER_TICK 1024
#define RETRY_INTERVAL_MS 100

/* ---- [legacy] ---- */

/* One problem of [legacy], "[legacy] key: what is wrong", appended to problems (g_free'd). */
static void G_GNUC_PRINTF(2, 3) add_problem(GPtrArray *problems, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_ptr_array_add(problems, g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

static char *protocol_ids(void)
{
    GString *s = g_string_new(NULL);
    for (GList *l = purple_plugins_get_protocols(); l; l = l->next) {
        PurplePlugin *p = l->data;
        g_string_append_printf(s, "%s%s", s->len ? ", " : "", purple_plugin_get_id(p));
    }
    return g_string_free(s, FALSE);
}

static char *option_keys(PurplePluginProtocolInfo *info)
{
    GString *s = g_string_new(NULL);
    for (GList *l = info->protocol_options; l; l = l->next)
        g_string_append_printf(s, "%s%s", s->len ? ", " : "",
                               purple_account_option_get_setting(l->data));
    if (s->len == 0)
        g_string_append(s, "(none)");
    return g_string_free(s, FALSE);
}

static PurpleAccountOption *find_option(PurplePluginProtocolInfo *info, const char *key)
{
    for (GList *l = info->protocol_options; l; l = l->next)
        if (strcmp(purple_account_option_get_setting(l->data), key) == 0)
            return l->data;
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < FERRY_ARRAY_LEN(yes); i++) {
        if (g_ascii_strcasecmp(v, yes[i]) == 0)
            return *out = 1, 0;
        if (g_ascii_strcasecmp(v, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

static int parse_int(const char *v, int *out)
{
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < G_MININT || n > G_MAXINT)
        return -1;
    *out = (int)n;
    return 0;
}

/* A list option's value must be one of the values it offers (labels are accepted too). */
static int parse_list(PurpleAccountOption *opt, const char *v, GPtrArray *problems, const char *key)
{
    GString *valid = g_string_new(NULL);
    int found = 0;
    for (GList *l = purple_account_option_get_list(opt); l; l = l->next) {
        PurpleKeyValuePair *kv = l->data;
        if (g_strcmp0(kv->value, v) == 0 || g_strcmp0(kv->key, v) == 0)
            found = 1;
        g_string_append_printf(valid, "%s%s", valid->len ? ", " : "", (const char *)kv->value);
    }
    if (!found)
        add_problem(problems, "[legacy] %s: '%s' is not one of: %s", key, v, valid->str);
    g_string_free(valid, TRUE);
    return found ? 0 : -1;
}

static void convert_option(PurpleAccountOption *opt, const struct config_option *in,
                           struct legacy_option *out, GPtrArray *problems)
{
    out->key = xstrdup(in->key);
    out->type = purple_account_option_get_type(opt);
    switch (out->type) {
    case PURPLE_PREF_BOOLEAN:
        if (parse_bool(in->value, &out->number) < 0)
            add_problem(problems, "[legacy] %s: '%s' is not a boolean (true/false)", in->key,
                        in->value);
        break;
    case PURPLE_PREF_INT:
        if (parse_int(in->value, &out->number) < 0)
            add_problem(problems, "[legacy] %s: '%s' is not an integer", in->key, in->value);
        break;
    case PURPLE_PREF_STRING_LIST:
        if (parse_list(opt, in->value, problems, in->key) == 0)
            out->text = xstrdup(in->value);
        break;
    default:
        out->text = xstrdup(in->value);
        break;
    }
}

/* List values given by label are stored by value, as libpurple expects. */
static void normalize_list_value(PurpleAccountOption *opt, struct legacy_option *o)
{
    for (GList *l = purple_account_option_get_list(opt); l && o->text; l = l->next) {
        PurpleKeyValuePair *kv = l->data;
        if (g_strcmp0(kv->key, o->text) == 0) {
            free(o->text);
            o->text = xstrdup(kv->value);
            return;
        }
    }
}

static void load_options(const struct ferry_config *cfg, PurplePluginProtocolInfo *info,
                         GPtrArray *problems)
{
    legacy.options = xcalloc(cfg->legacy_option_count + 1, sizeof(*legacy.options));
    for (size_t i = 0; i < cfg->legacy_option_count; i++) {
        const struct config_option *in = &cfg->legacy_options[i];
        PurpleAccountOption *opt = find_option(info, in->key);
        if (!opt) {
            char *keys = option_keys(info);
            add_problem(problems, "[legacy] %s: not an option of %s; valid: %s", in->key,
                        legacy.protocol_id, keys);
            g_free(keys);
            continue;
        }
        struct legacy_option *o = &legacy.options[legacy.option_count++];
        convert_option(opt, in, o, problems);
        if (o->type == PURPLE_PREF_STRING_LIST)
            normalize_list_value(opt, o);
    }
    if (cfg->legacy_port > 0) {
        PurpleAccountOption *port = find_option(info, "port");
        if (!port || purple_account_option_get_type(port) != PURPLE_PREF_INT)
            add_problem(problems, "[legacy] port: %s has no port option", legacy.protocol_id);
    }
}

int np_legacy_load(const struct ferry_config *cfg, GPtrArray *problems)
{
    guint before = problems->len;
    const char *id = cfg->legacy_protocol ? cfg->legacy_protocol : "";
    PurplePlugin *plugin = purple_find_prpl(id);
    if (!plugin) {
        char *ids = protocol_ids();
        add_problem(problems, "[legacy] protocol: unknown protocol '%s'; available: %s", id, ids);
        g_free(ids);
        return -1;
    }
    PurplePluginProtocolInfo *info = PURPLE_PLUGIN_PROTOCOL_INFO(plugin);
    legacy.protocol_id = xstrdup(id);
    legacy.protocol_name =
        xstrdup(cfg->legacy_name ? cfg->legacy_name : purple_plugin_get_name(plugin));
    legacy.server = xstrdup(cfg->legacy_server ? cfg->legacy_server : "");
    legacy.port = cfg->legacy_port;
    legacy.request_timeout_ms =
        cfg->legacy_request_timeout_ms > 0 ? cfg->legacy_request_timeout_ms : 30000;
    legacy.login_interval_ms =
        cfg->legacy_login_rate > 0 ? (int64_t)(1000.0 / cfg->legacy_login_rate) : 0;
    if (info->user_splits)
        legacy.separator = purple_account_user_split_get_separator(info->user_splits->data);
    legacy.password_optional =
        (info->options & (OPT_PROTO_NO_PASSWORD | OPT_PROTO_PASSWORD_OPTIONAL)) != 0;
    /* libpurple has no flag for "adding a buddy asks the contact": the answer is known only
     * where native watches for it (events.c, the jabber-receiving-presence signal). Other
     * protocols with a consent step (prpl-gg, prpl-novell) keep the old behaviour: the owner
     * is answered at once. */
    legacy.needs_authorization = strcmp(id, "prpl-jabber") == 0;
    load_options(cfg, info, problems);
    return problems->len == before ? 0 : -1;
}

void np_legacy_free(void)
{
    for (size_t i = 0; i < legacy.option_count; i++) {
        free(legacy.options[i].key);
        free(legacy.options[i].text);
    }
    free(legacy.options);
    free(legacy.protocol_id);
    free(legacy.protocol_name);
    free(legacy.server);
    memset(&legacy, 0, sizeof(legacy));
}

const char *np_legacy_protocol_name(void)
{
    return legacy.protocol_name;
}

int np_legacy_request_timeout_ms(void)
{
    return legacy.request_timeout_ms;
}

/* Written on the native thread before np_start returns (its lock orders that), then only
 * read until np_stop: other threads may read it without a lock. */
int np_password_required(void)
{
    return legacy.protocol_id == NULL || !legacy.password_optional;
}

/* Written and read like password_optional. */
int np_protocol_needs_authorization(void)
{
    return legacy.protocol_id != NULL && legacy.needs_authorization;
}

/* "alice" becomes "alice@server" for protocols whose account names carry the server. A user
 * name may not choose another server than the operator's. */
static char *account_name(const char *username, char **error)
{
    if (!legacy.separator || !*legacy.server)
        return xstrdup(username);
    const char *sep = strchr(username, legacy.separator);
    if (!sep)
        return xasprintf("%s%c%s", username, legacy.separator, legacy.server);
    if (g_ascii_strcasecmp(sep + 1, legacy.server) == 0 && sep != username)
        return xstrdup(username);
    *error = xasprintf("user name '%s' names another server than %s", username, legacy.server);
    return NULL;
}

static void apply_options(PurpleAccount *account)
{
    for (size_t i = 0; i < legacy.option_count; i++) {
        const struct legacy_option *o = &legacy.options[i];
        if (o->type == PURPLE_PREF_BOOLEAN)
            purple_account_set_bool(account, o->key, o->number);
        else if (o->type == PURPLE_PREF_INT)
            purple_account_set_int(account, o->key, o->number);
        else
            purple_account_set_string(account, o->key, o->text);
    }
    if (legacy.port > 0)
        purple_account_set_int(account, "port", legacy.port);
}

static PurpleAccount *account_build(const char *username, const char *password, char **error)
{
    if ((!password || !*password) && !legacy.password_optional) {
        *error = xasprintf("%s needs a password", legacy.protocol_name);
        return NULL;
    }
    char *name = account_name(username, error);
    if (!name)
        return NULL;
    /* purple_account_new hands back an existing account of the same name, but two owners
     * may use the same legacy name (a registration check while the owner is online, two
     * users of one nick): create under a name nobody has, then rename. */
    static unsigned long created;
    char *unique = xasprintf("ferry-account-%lu", ++created);
    PurpleAccount *account = purple_account_new(unique, legacy.protocol_id);
    purple_account_set_username(account, name);
    free(unique);
    free(name);
    /* Never let libpurple write the password to accounts.xml. */
    purple_account_set_remember_password(account, FALSE);
    purple_account_set_password(account, password && *password ? password : NULL);
    apply_options(account);
    purple_accounts_add(account);
    return account;
}

/* ---- the owner table ---- */

static void owner_free(struct np_owner *owner)
{
    np_outbox_detach(owner);
    g_hash_table_destroy(owner->sent);
    g_hash_table_destroy(owner->presence);
    free(owner->id);
    free(owner);
}

void np_accounts_init(void)
{
    owners_by_id = g_hash_table_new(g_str_hash, g_str_equal);
    owners_by_account = g_hash_table_new(g_direct_hash, g_direct_equal);
}

struct np_owner *np_owner_find(const char *id)
{
    return owners_by_id ? g_hash_table_lookup(owners_by_id, id) : NULL;
}

struct np_owner *np_owner_of_account(PurpleAccount *account)
{
    if (!account || !owners_by_account)
        return NULL;
    return g_hash_table_lookup(owners_by_account, account);
}

struct np_owner *np_owner_of_gc(PurpleConnection *gc)
{
    return gc ? np_owner_of_account(purple_connection_get_account(gc)) : NULL;
}

struct np_owner *np_owner_add(const char *id, mailbox_t *mailbox, const char *username,
                              const char *password, char **error)
{
    PurpleAccount *account = account_build(username, password, error);
    if (!account)
        return NULL;
    struct np_owner *owner = xcalloc(1, sizeof(*owner));
    owner->id = xstrdup(id);
    owner->mailbox = mailbox;
    owner->account = account;
    owner->sent = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    owner->presence = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_queue_init(&owner->infos);
    np_outbox_attach(owner);
    g_hash_table_insert(owners_by_id, owner->id, owner);
    g_hash_table_insert(owners_by_account, account, owner);
    return owner;
}

static gboolean graveyard_cb(gpointer data)
{
    graveyard_idle = 0;
    GSList *accounts = graveyard;
    graveyard = NULL;
    for (GSList *l = accounts; l; l = l->next)
        purple_accounts_delete(l->data);
    g_slist_free(accounts);
    return G_SOURCE_REMOVE;
}

/* The account is deleted from an idle callback: never from inside one of its own callbacks. */
static void account_bury(PurpleAccount *account)
{
    purple_account_set_enabled(account, NP_UI_ID, FALSE);
    graveyard = g_slist_prepend(graveyard, account);
    if (!graveyard_idle)
        graveyard_idle = g_idle_add(graveyard_cb, NULL);
}

static void owner_detach(struct np_owner *owner)
{
    g_hash_table_remove(owners_by_id, owner->id);
    g_hash_table_remove(owners_by_account, owner->account);
    if (owner->queued)
        g_queue_remove(&pace_queue, owner);
    np_requests_forget_owner(owner);
    np_auth_forget_owner(owner);
}

static gboolean retry_cb(gpointer data);

/* LOGGED_OUT (the owner's signal that its mailbox is free again) and the answers to SEND_IM
 * must arrive: what finds the mailbox full waits behind that mailbox's earlier events only. */
void np_post_reliably(mailbox_t *mailbox, struct np_event *ev)
{
    struct backlog *b = backlogs ? g_hash_table_lookup(backlogs, mailbox) : NULL;
    if (!b) {
        int rc = mb_send(mailbox, ev);
        if (rc == MB_OK)
            return;
        if (rc == MB_ECLOSED) {
            np_event_free(ev);
            return;
        }
        if (!backlogs)
            backlogs = g_hash_table_new(g_direct_hash, g_direct_equal);
        b = xcalloc(1, sizeof(*b));
        b->mailbox = mailbox;
        g_queue_init(&b->events);
        g_hash_table_insert(backlogs, mailbox, b);
        g_queue_push_tail(&backlog_ring, b);
    }
    g_queue_push_tail(&b->events, ev);
    if (!retry_timer)
        retry_timer = g_timeout_add(RETRY_INTERVAL_MS, retry_cb, NULL);
}

/* Sends from the head of b until its mailbox is full or the budget is spent; 1 once b is
 * empty. After the last send the mailbox may be freed by its owner: it is not touched again. */
static int backlog_flush(struct backlog *b, int *budget)
{
    while (*budget > 0 && !g_queue_is_empty(&b->events)) {
        (*budget)--;
        int rc = mb_send(b->mailbox, g_queue_peek_head(&b->events));
        if (rc == MB_EFULL)
            return 0;
        struct np_event *ev = g_queue_pop_head(&b->events);
        if (rc != MB_OK)
            np_event_free(ev); /* closed: nobody reads it any more */
    }
    return g_queue_is_empty(&b->events);
}

static void backlog_free(struct backlog *b)
{
    g_hash_table_remove(backlogs, b->mailbox);
    g_queue_clear_full(&b->events, np_event_free_void);
    free(b);
}

/* Every backlog at most once a tick, in turn; one whose mailbox is full is passed over. */
static gboolean retry_cb(gpointer data)
{
    int budget = RETRY_SENDS_PER_TICK;
    for (guint n = g_queue_get_length(&backlog_ring); n > 0 && budget > 0; n--) {
        struct backlog *b = g_queue_pop_head(&backlog_ring);
        if (backlog_flush(b, &budget))
            backlog_free(b);
        else
            g_queue_push_tail(&backlog_ring, b);
    }
    if (!g_queue_is_empty(&backlog_ring))
        return G_SOURCE_CONTINUE;
    retry_timer = 0;
    return G_SOURCE_REMOVE;
}

void np_owner_remove(struct np_owner *owner, int post_logged_out)
{
    /* Messages still held for flood control are answered before LOGGED_OUT (the logout
     * closes the connection they waited for). */
    np_outbox_bounce(owner, "closed");
    owner_detach(owner);
    account_bury(owner->account);
    if (post_logged_out)
        np_post_reliably(owner->mailbox, np_event_logged_out(owner->id));
    owner_free(owner);
}

void np_accounts_delete_leftovers(void)
{
    GList *all = g_list_copy(purple_accounts_get_all());
    for (GList *l = all; l; l = l->next)
        purple_accounts_delete(l->data);
    g_list_free(all);
}

void np_accounts_shutdown(void)
{
    GList *owners = owners_by_id ? g_hash_table_get_values(owners_by_id) : NULL;
    for (GList *l = owners; l; l = l->next) {
        struct np_owner *owner = l->data;
        owner_detach(owner);
        /* Disconnected but kept: accounts.xml keeps the name (never the password) until the
         * next start deletes it. */
        purple_account_set_enabled(owner->account, NP_UI_ID, FALSE);
        owner_free(owner);
    }
    g_list_free(owners);
    if (graveyard_idle)
        g_source_remove(graveyard_idle);
    graveyard_cb(NULL);
    if (pace_timer)
        g_source_remove(pace_timer);
    pace_timer = 0;
    if (retry_timer)
        g_source_remove(retry_timer);
    retry_timer = 0;
    retry_cb(NULL); /* one last try, then drop */
    while (!g_queue_is_empty(&backlog_ring))
        backlog_free(g_queue_pop_head(&backlog_ring));
    if (backlogs)
        g_hash_table_destroy(backlogs);
    backlogs = NULL;
    if (owners_by_id)
        g_hash_table_destroy(owners_by_id);
    if (owners_by_account)
        g_hash_table_destroy(owners_by_account);
    owners_by_id = owners_by_account = NULL;
}

/* ---- login pacing: one login every login_interval_ms, the excess waits in order ---- */

static void account_connect(struct np_owner *owner)
{
    PurpleAccount *account = owner->account;
    log_debug(NP_TAG, "%s: connecting %s", owner->id, purple_account_get_username(account));
    purple_account_set_enabled(account, NP_UI_ID, TRUE);
    if (purple_account_is_disconnected(account))
        purple_account_connect(account);
}

static gboolean pace_timer_cb(gpointer data);

static void pace_run(void)
{
    int64_t now = now_ms();
    while (!g_queue_is_empty(&pace_queue) && now >= pace_next_ms) {
        struct np_owner *owner = g_queue_pop_head(&pace_queue);
        owner->queued = 0;
        pace_next_ms = now + legacy.login_interval_ms;
        account_connect(owner);
    }
    if (!g_queue_is_empty(&pace_queue) && !pace_timer)
        pace_timer = g_timeout_add((guint)(pace_next_ms - now), pace_timer_cb, NULL);
}

static gboolean pace_timer_cb(gpointer data)
{
    pace_timer = 0;
    pace_run();
    return G_SOURCE_REMOVE;
}

void np_pace_login(struct np_owner *owner)
{
    owner->queued = 1;
    g_queue_push_tail(&pace_queue, owner);
    pace_run();
}

/* ---- events out ---- */

void np_post(struct np_owner *owner, struct np_event *ev)
{
    int rc = mb_send(owner->mailbox, ev);
    if (rc == MB_EFULL)
        log_warnx(NP_TAG, "mailbox of %s is full: dropped a %s event", owner->id,
                  np_event_type_name(ev->type));
    else if (rc != MB_OK)
        log_debug(NP_TAG, "mailbox of %s is closed: dropped a %s event", owner->id,
                  np_event_type_name(ev->type));
    if (rc != MB_OK)
        np_event_free(ev);
}

char *np_mask_passwords(const char *line)
{
    char *out = g_strdup(line);
    GHashTableIter it;
    gpointer key, value;
    if (!owners_by_account)
        return out;
    g_hash_table_iter_init(&it, owners_by_account);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        const char *pw = purple_account_get_password(key);
        if (!pw || !*pw || !strstr(out, pw))
            continue;
        char **parts = g_strsplit(out, pw, -1);
        g_free(out);
        out = g_strjoinv("****", parts);
        g_strfreev(parts);
    }
    return out;
}
