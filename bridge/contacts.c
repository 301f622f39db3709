/* One owner's legacy contacts: legacy name <-> contact JID (XEP-0106 escaping, then nodeprep),
 * the subscription state kept in the store, and the live legacy presence. Used only by the
 * owner's session thread, so nothing here locks.
 *
 * The table remembers how the network spelled a name: nodeprep folds case, so "Bob" and "bob"
 * share the node "bob", and a reply to bob@domain must go to the spelling the network used
 * (IRC does not care, other networks do). Lists are small (a buddy list): lookups are
 * linear. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge/session.h"
#include "bridge/text.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/util.h"

#define TAG "session"

struct contacts {
    char *domain;
    struct contact **items;
    size_t count, cap;
};

struct contacts *contacts_new(const char *domain)
{
    struct contacts *cs = xcalloc(1, sizeof(*cs));
    cs->domain = xstrdup(domain);
    return cs;
}

static void contact_free(struct contact *c)
{
    free(c->legacy);
    free(c->node);
    free(c->jid);
    free(c->alias);
    free(c->stored_id);
    free(c->status);
    free(c->reply_type);
    free(c->reply_thread);
    for (size_t i = 0; i < c->sent_count; i++)
        xn_unref(c->sent[i]);
    free(c);
}

void contacts_free(struct contacts *cs)
{
    if (!cs)
        return;
    for (size_t i = 0; i < cs->count; i++)
        contact_free(cs->items[i]);
    free(cs->items);
    free(cs->domain);
    free(cs);
}

static struct contact *find_node(struct contacts *cs, const char *node)
{
    for (size_t i = 0; i < cs->count; i++)
        if (strcmp(cs->items[i]->node, node) == 0)
            return cs->items[i];
    return NULL;
}

/* Adds a contact (taking legacy and node). */
static struct contact *add(struct contacts *cs, char *legacy, char *node)
{
    if (cs->count == cs->cap) {
        cs->cap = cs->cap ? 2 * cs->cap : 16;
        cs->items = xrealloc(cs->items, cs->cap * sizeof(*cs->items));
    }
    struct contact *c = xcalloc(1, sizeof(*c));
    c->legacy = legacy;
    c->node = node;
    c->jid = xasprintf("%s@%s", node, cs->domain);
    c->state = NP_STATE_OFFLINE;
    cs->items[cs->count++] = c;
    return c;
}

/* A legacy name fit for a log line: the network chose it, so it may hold anything. */
static char *loggable(const char *name)
{
    return text_from_legacy_str(name ? name : "(none)");
}

/* The node of a legacy name that has none of its own (nodeprep refuses its escaping: the
 * bidi rule, a prohibited character, or more than 1023 bytes): "\5cx" and a digest of the
 * name. Deterministic, valid, and never the node of another name: escaping writes "\5c" only
 * before an escape code, never before "x". Replies find the name in the table. */
static char *mapped_node(const char *legacy)
{
    char digest[41];
    sha1_hex(legacy, strlen(legacy), digest);
    return xasprintf("\\5cx%.24s", digest);
}

char *contacts_node_of(const char *legacy)
{
    char *node = legacy ? jid_node_from_legacy(legacy) : NULL;
    return node || !legacy || !*legacy ? node : mapped_node(legacy);
}

struct contact *contacts_by_legacy(struct contacts *cs, const char *legacy, int create)
{
    char *node = legacy ? jid_node_from_legacy(legacy) : NULL;
    int mapped = 0;
    if (!node && legacy && *legacy) {
        node = mapped_node(legacy);
        mapped = 1;
    }
    if (!node) {
        log_warnx(TAG, "an empty legacy name cannot be written as a JID node: refused");
        return NULL;
    }
    struct contact *c = find_node(cs, node);
    if (c) {
        free(node);
        if (strcmp(c->legacy, legacy) != 0) {
            free(c->legacy);
            c->legacy = xstrdup(legacy);
        }
        return c;
    }
    if (!create) {
        free(node);
        return NULL;
    }
    c = add(cs, xstrdup(legacy), node);
    c->mapped = mapped;
    if (mapped) {
        char *shown = loggable(legacy);
        log_info(TAG, "legacy name '%s' has no JID node of its own: it is %s", shown, c->jid);
        free(shown);
    }
    return c;
}

struct contact *contacts_by_node(struct contacts *cs, const char *node, int create)
{
    struct contact *c = find_node(cs, node);
    if (c || !create)
        return c;
    char *legacy = jid_unescape_node(node);
    char *again = legacy ? jid_node_from_legacy(legacy) : NULL;
    /* A node that is not the escaping of its own unescaping ("a\5cb" written by hand) would
     * give the same legacy name two JIDs. */
    if (!again || strcmp(again, node) != 0) {
        log_info(TAG, "contact node '%s' is not a legacy name's escaping: refused", node);
        free(legacy);
        free(again);
        return NULL;
    }
    free(again);
    return add(cs, legacy, xstrdup(node));
}

size_t contacts_count(const struct contacts *cs)
{
    return cs->count;
}

struct contact *contacts_at(struct contacts *cs, size_t i)
{
    return i < cs->count ? cs->items[i] : NULL;
}

int contacts_load(struct contacts *cs, struct store *st, const char *owner)
{
    struct store_contact *rows = NULL;
    size_t count = 0;
    if (store_contact_list(st, owner, &rows, &count) != STORE_OK)
        return -1;
    for (size_t i = 0; i < count; i++) {
        struct contact *c = contacts_by_legacy(cs, rows[i].legacy_id, 1);
        if (!c)
            continue;
        free(c->stored_id);
        c->stored_id = xstrdup(rows[i].legacy_id);
        free(c->alias);
        c->alias = rows[i].alias ? xstrdup(rows[i].alias) : NULL;
        c->sub = rows[i].subscription;
        c->subscribe_sent = rows[i].subscribe_sent;
    }
    store_contact_list_free(rows, count);
    return 0;
}

int contacts_save(struct contacts *cs, struct store *st, const char *owner, struct contact *c)
{
    struct store_contact row = {
        .owner = (char *)owner,
        .legacy_id = c->stored_id ? c->stored_id : c->legacy,
        .alias = c->alias,
        .groups = NULL,
        .subscription = c->sub,
        .subscribe_sent = c->subscribe_sent,
    };
    int rc = store_contact_put(st, &row);
    if (rc != STORE_OK) {
        log_warnx(TAG, "%s: contact %s not saved (store error %d)", owner, c->jid, rc);
        return -1;
    }
    if (!c->stored_id)
        c->stored_id = xstrdup(c->legacy);
    return 0;
}

void contacts_forget(struct contacts *cs, struct store *st, const char *owner, struct contact *c)
{
    if (c->stored_id && store_contact_remove(st, owner, c->stored_id) == STORE_EDB)
        log_warnx(TAG, "%s: contact %s not removed from the store", owner, c->jid);
    free(c->stored_id);
    c->stored_id = NULL;
    c->sub = STORE_SUB_NONE;
    c->subscribe_sent = 0;
}

void contact_sent_push(struct contact *c, const xn_t *message, int64_t now)
{
    const size_t max = FERRY_ARRAY_LEN(c->sent);
    if (c->sent_count == max) {
        xn_unref(c->sent[0]);
        memmove(c->sent, c->sent + 1, (max - 1) * sizeof(c->sent[0]));
        memmove(c->sent_at, c->sent_at + 1, (max - 1) * sizeof(c->sent_at[0]));
        c->sent_count--;
    }
    c->sent[c->sent_count] = xn_ref((xn_t *)message);
    c->sent_at[c->sent_count] = now;
    c->sent_count++;
}

xn_t *contact_sent_pop(struct contact *c, int64_t now, int64_t max_age_ms)
{
    /* The newest first: a network without delivery receipts (IRC) reports only failures, so
     * earlier messages still listed were most likely delivered, and the one that failed is
     * the one just sent. A contact that vanished after a few delivered messages must not
     * get the error pinned on a delivered one while the lost one passes for delivered. */
    while (c->sent_count > 0) {
        c->sent_count--;
        xn_t *m = c->sent[c->sent_count];
        if (now - c->sent_at[c->sent_count] <= max_age_ms)
            return m;
        xn_unref(m);
    }
    return NULL;
}

void contact_set_status(struct contact *c, enum np_state state, const char *status,
                        int idle_seconds)
{
    c->state = state;
    free(c->status);
    c->status = status && *status ? text_from_legacy_str(status) : NULL;
    c->idle_since = idle_seconds > 0 ? (int64_t)time(NULL) - idle_seconds : 0;
}

void contact_set_reply(struct contact *c, const char *type, const char *thread)
{
    free(c->reply_type);
    free(c->reply_thread);
    c->reply_type = type ? xstrdup(type) : NULL;
    c->reply_thread = thread ? xstrdup(thread) : NULL;
}
