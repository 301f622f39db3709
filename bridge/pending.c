/* Messages from legacy contacts that wait for the link to the XMPP server.
 *
 * While the component link is down, the component keeps what it is given in a bounded queue
 * in memory: enough for a short outage, lost if Ferry dies before the link is back. So while
 * the link is down a message from a contact to an owner (a body, from a contact's JID) goes
 * to the store's pending_messages instead, stamped (XEP-0203) with the time it arrived, and
 * the store hands it on when the link comes back, oldest first, before anything sent later.
 *
 * Order: from link down to the end of the flush at link up every such message goes to the
 * store, under one lock; only once the store is empty are they sent directly again. What
 * reached the component's queue before the loss was noticed (and messages the lost link had
 * not written, which the component puts back at the head of its queue) waits there and is
 * written first at link up (it is older). A flush the component's queue cannot take whole
 * stops at the first message refused for a full queue and goes on when the component says its
 * queue drained (pending_link_up again), so it never spins and never overtakes itself. A
 * message the component refuses for itself (say its from is outside a [component] jid changed
 * since it was stored) would be refused every time, and no "drained" follows such a refusal:
 * it is deleted with a warning and the flush goes on.
 *
 * Threads: pending_keep runs on any thread (sessions), the link events and the flush on the
 * component thread only (so the component's "drained" always follows a refusal the flush
 * saw). The flag is atomic so that the usual case (link up, nothing waiting) takes no
 * lock. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge/internal.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/stanza.h"
#include "lib/util.h"
#include "lib/xstream.h"

#define TAG "pending"
#define NS_DELAY "urn:xmpp:delay"

/* What a flush step left behind. */
enum flush_rc {
    FLUSH_EDB = -1,   /* the store failed */
    FLUSH_DONE = 0,   /* nothing left (or this row is done with) */
    FLUSH_FULL = 1,   /* the component's queue is full: the rest waits for "drained" */
    FLUSH_CLOSED = 2, /* the component is shut down: the rest waits for the next start */
};

struct pending {
    bridge_t *b;
    pthread_mutex_t lock;
    atomic_int direct; /* the link is up and the store holds no message: send at once */
    int link_up;       /* under lock: the component link is up */
};

struct pending *pending_new(bridge_t *b)
{
    struct pending *p = xcalloc(1, sizeof(*p));
    p->b = b;
    pthread_mutex_init(&p->lock, NULL);
    atomic_init(&p->direct, 0); /* until the first link up: the link is not there yet */
    return p;
}

void pending_free(struct pending *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* The owner (bare JID, new string) of a message a contact sends, or NULL when stanza is not
 * one that waits in the store. */
static char *kept_owner(const bridge_t *b, const xn_t *stanza)
{
    const char *type = xn_attr(stanza, "type");
    if (stanza_kind(stanza) != STANZA_MESSAGE || (type && strcmp(type, "error") == 0) ||
        !xn_child(stanza, NULL, "body"))
        return NULL;
    jid_t *from = jid_parse(xn_attr(stanza, "from") ? xn_attr(stanza, "from") : "");
    jid_t *to = jid_parse(xn_attr(stanza, "to") ? xn_attr(stanza, "to") : "");
    char *owner = NULL;
    if (from && to && jid_node(from) && jid_node(to) &&
        strcmp(jid_domain(from), b->cfg->component_jid) == 0)
        owner = xstrdup(jid_bare(to));
    jid_free(from);
    jid_free(to);
    return owner;
}

static void add_delay(const bridge_t *b, xn_t *stanza)
{
    time_t t = time(NULL);
    struct tm tm;
    char stamp[32];
    if (xn_child(stanza, NS_DELAY, "delay"))
        return;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    xn_t *delay = xn_add_child(stanza, NS_DELAY, "delay");
    xn_set_attr(delay, "from", b->cfg->component_jid);
    xn_set_attr(delay, "stamp", stamp);
}

/* Under lock: writes stanza to the store. 0, or -1 when the store would not take it. */
static int store_message(struct pending *p, const char *owner, xn_t *stanza)
{
    add_delay(p->b, stanza);
    char *text = xn_serialize(stanza, XN_NS_COMPONENT, XN_SER_DEFAULT, NULL);
    char *body = xn_child_text(stanza, NULL, "body");
    int rc = store_pending_add(p->b->store, owner, STORE_DIR_TO_OWNER, xn_attr(stanza, "from"),
                               body, text, NULL);
    free(text);
    free(body);
    if (rc != STORE_OK) {
        log_warnx(TAG, "%s: message from %s not kept in the store (%d): it waits in memory only",
                  owner, xn_attr(stanza, "from"), rc);
        return -1;
    }
    log_info(TAG, "%s: message from %s kept in the store until the XMPP server is back", owner,
             xn_attr(stanza, "from"));
    return 0;
}

/* ---- reading a stored stanza back ---- */

static void take_stanza(void *ctx, xn_t *stanza)
{
    xn_t **out = ctx;
    if (*out)
        xn_unref(stanza);
    else
        *out = stanza;
}

static xn_t *parse_stanza(const char *text)
{
    static const char open[] = "<stream:stream xmlns='" XN_NS_COMPONENT "' "
                               "xmlns:stream='" XN_NS_STREAMS "'>";
    struct xs_callbacks cb = {NULL, take_stanza, NULL, NULL};
    struct xs_limits limits = {strlen(text) + 1, XS_DEFAULT_MAX_DEPTH};
    xn_t *out = NULL;
    xs_parser_t *parser = xs_new(&cb, &out, &limits);
    if (xs_feed(parser, open, strlen(open)) != XS_OK ||
        xs_feed(parser, text, strlen(text)) != XS_OK) {
        xn_unref(out);
        out = NULL;
    }
    xs_free(parser);
    return out;
}

/* ---- handing on ---- */

/* Under lock: hands one stored row on. FLUSH_DONE when the row is done with (sent, or
 * deleted because it can never be sent), else FLUSH_FULL or FLUSH_CLOSED (it stays). */
static enum flush_rc flush_row(struct pending *p, const char *owner,
                               const struct store_pending *row)
{
    xn_t *m = row->stanza ? parse_stanza(row->stanza) : NULL;
    int rc = 0;
    if (!m) {
        log_warnx(TAG, "%s: stored message %lld from %s is unreadable: dropped", owner,
                  (long long)row->id, row->peer);
    } else if ((rc = p->b->sink.send(p->b->sink.ctx, m)) == BRIDGE_SINK_EFULL) {
        return FLUSH_FULL;
    } else if (rc == BRIDGE_SINK_ECLOSED) {
        return FLUSH_CLOSED;
    } else if (rc != 0) { /* refused for itself: it would stop the flush for good */
        log_warnx(TAG, "%s: stored message %lld from %s refused by the component (%s): deleted",
                  owner, (long long)row->id, row->peer,
                  rc == BRIDGE_SINK_EINVAL ? "no valid to, or from outside its domain" : "error");
    }
    store_pending_remove(p->b->store, row->id);
    return FLUSH_DONE;
}

/* Under lock: sends owner's stored messages, oldest first, stopping at the first that must
 * wait (it and the rest stay stored). *left counts what stays. */
static enum flush_rc flush_owner(struct pending *p, const char *owner, size_t *left)
{
    struct store_pending *rows = NULL;
    size_t count = 0, i;
    enum flush_rc rc = FLUSH_DONE;
    if (store_pending_list(p->b->store, owner, &rows, &count) != STORE_OK)
        return FLUSH_EDB;
    for (i = 0; i < count && rc == FLUSH_DONE; i++) {
        if (rows[i].direction == STORE_DIR_TO_OWNER)
            rc = flush_row(p, owner, &rows[i]);
    }
    *left += rc != FLUSH_DONE ? count - i + 1 : 0;
    store_pending_list_free(rows, count);
    return rc;
}

/* Under lock: hands on everything stored while the link is up; direct sending resumes once
 * the store is empty. A store that fails lets messages through directly (out of order
 * rather than stuck: nothing would retry), the rest waiting for the next link up. */
static void flush(struct pending *p)
{
    char **owners = NULL;
    size_t count = 0, left = 0;
    enum flush_rc rc = FLUSH_DONE;
    if (!p->link_up)
        return;
    if (store_registration_list(p->b->store, &owners, &count) != STORE_OK)
        rc = FLUSH_EDB;
    for (size_t i = 0; i < count && rc == FLUSH_DONE; i++)
        rc = flush_owner(p, owners[i], &left);
    store_strings_free(owners, count);
    if (rc == FLUSH_FULL)
        log_info(TAG, "the outbound queue is full: %zu or more stored message(s) wait for room",
                 left);
    else if (rc == FLUSH_CLOSED)
        log_info(TAG,
                 "the component is closed: %zu or more stored message(s) wait for the next "
                 "start",
                 left);
    else if (rc == FLUSH_EDB)
        log_warnx(TAG, "the store failed during the flush: what it still holds waits for the "
                       "next link up");
    if (rc == FLUSH_DONE || rc == FLUSH_EDB)
        atomic_store(&p->direct, 1);
}

int pending_keep(struct pending *p, xn_t *stanza)
{
    if (atomic_load(&p->direct))
        return 0;
    char *owner = kept_owner(p->b, stanza);
    int kept = 0;
    pthread_mutex_lock(&p->lock);
    /* Stored behind what waits (a flush the queue cut short goes on when it drains). */
    if (owner && !atomic_load(&p->direct))
        kept = store_message(p, owner, stanza) == 0;
    pthread_mutex_unlock(&p->lock);
    free(owner);
    if (kept)
        xn_unref(stanza);
    return kept;
}

void pending_link_up(struct pending *p)
{
    pthread_mutex_lock(&p->lock);
    p->link_up = 1;
    if (!atomic_load(&p->direct)) /* else the store holds nothing of ours: no scan */
        flush(p);
    pthread_mutex_unlock(&p->lock);
}

void pending_link_down(struct pending *p)
{
    pthread_mutex_lock(&p->lock);
    p->link_up = 0;
    atomic_store(&p->direct, 0);
    pthread_mutex_unlock(&p->lock);
}
