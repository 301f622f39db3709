/* The global session table: owner bare JID -> session, one lock held briefly.
 *
 * The component thread hands stanzas here; a stanza from user@host/res goes to the mailbox of
 * user@host's session. Sessions start here (available presence from a registered owner) and
 * end by themselves (bridge/session.h tells how): a session that detached is kept on the
 * "ending" list until its thread finished, then on the "dead" list until some caller of this
 * table joins and frees it. Nothing frees a session from inside its own thread.
 *
 * Stanzas for owners without a session are answered here: registration-required for an
 * unregistered sender, "come online first" for a registered one. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge/session.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/stanza.h"
#include "lib/util.h"

#define TAG "sessions"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_PING "urn:xmpp:ping"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_VCARD "vcard-temp"
/* How long SIGTERM waits for the sessions to queue their farewell presences. */
#define SHUTDOWN_WAIT_MS 5000

struct slot {
    struct session *s;
    struct slot *next;
};

struct sessions {
    bridge_t *b;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a session detached or finished */
    struct slot **buckets;  /* the live sessions, by owner */
    size_t nbuckets, count;
    struct slot *ending; /* detached, thread still running */
    struct slot *dead;   /* finished, waiting to be joined */
    int closed;          /* shutdown or teardown: no new sessions */
};

/* ---- the map (called with the lock held) ---- */

static size_t hash(const char *s)
{
    size_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static struct slot **map_find(struct sessions *t, const char *owner)
{
    struct slot **pp = &t->buckets[hash(owner) & (t->nbuckets - 1)];
    while (*pp && strcmp(session_owner((*pp)->s), owner) != 0)
        pp = &(*pp)->next;
    return pp;
}

static struct session *map_get(struct sessions *t, const char *owner)
{
    struct slot *slot = *map_find(t, owner);
    return slot ? slot->s : NULL;
}

static void map_grow(struct sessions *t)
{
    size_t n = t->nbuckets * 2;
    struct slot **buckets = xcalloc(n, sizeof(*buckets));
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct slot *slot = t->buckets[i], *next;
        for (; slot; slot = next) {
            next = slot->next;
            size_t j = hash(session_owner(slot->s)) & (n - 1);
            slot->next = buckets[j];
            buckets[j] = slot;
        }
    }
    free(t->buckets);
    t->buckets = buckets;
    t->nbuckets = n;
}

static void map_put(struct sessions *t, struct session *s)
{
    if (t->count >= 2 * t->nbuckets)
        map_grow(t);
    struct slot *slot = xmalloc(sizeof(*slot));
    slot->s = s;
    struct slot **head = &t->buckets[hash(session_owner(s)) & (t->nbuckets - 1)];
    slot->next = *head;
    *head = slot;
    t->count++;
}

/* Unlinks s from the list at *pp; returns its slot, or NULL when s is not there. */
static struct slot *list_take(struct slot **pp, const struct session *s)
{
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->s == s) {
            struct slot *slot = *pp;
            *pp = slot->next;
            slot->next = NULL;
            return slot;
        }
    }
    return NULL;
}

static int list_has_owner(const struct slot *l, const char *owner)
{
    for (; l; l = l->next)
        if (strcmp(session_owner(l->s), owner) == 0)
            return 1;
    return 0;
}

/* ---- life and death ---- */

struct sessions *sessions_new(bridge_t *b)
{
    struct sessions *t = xcalloc(1, sizeof(*t));
    t->b = b;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->changed, NULL);
    t->nbuckets = 64;
    t->buckets = xcalloc(t->nbuckets, sizeof(*t->buckets));
    return t;
}

/* Joins and frees the sessions that finished. Never called by a session about itself: a
 * session is on the dead list only after its last call into the table. */
static void reap(struct sessions *t)
{
    pthread_mutex_lock(&t->lock);
    struct slot *dead = t->dead;
    t->dead = NULL;
    pthread_mutex_unlock(&t->lock);
    while (dead) {
        struct slot *next = dead->next;
        session_free(dead->s);
        free(dead);
        dead = next;
    }
}

void sessions_detach(struct sessions *t, struct session *s)
{
    pthread_mutex_lock(&t->lock);
    struct slot **pp = map_find(t, session_owner(s));
    if (*pp && (*pp)->s == s) {
        struct slot *slot = *pp;
        *pp = slot->next;
        t->count--;
        slot->next = t->ending;
        t->ending = slot;
    }
    pthread_cond_broadcast(&t->changed);
    pthread_mutex_unlock(&t->lock);
}

void sessions_finished(struct sessions *t, struct session *s)
{
    pthread_mutex_lock(&t->lock);
    struct slot *slot = list_take(&t->ending, s);
    if (!slot) { /* it never detached: take it out of the map */
        struct slot **pp = map_find(t, session_owner(s));
        if (*pp && (*pp)->s == s) {
            slot = *pp;
            *pp = slot->next;
            t->count--;
        }
    }
    if (!slot) {
        slot = xmalloc(sizeof(*slot));
        slot->s = s;
    }
    slot->next = t->dead;
    t->dead = slot;
    pthread_cond_broadcast(&t->changed);
    pthread_mutex_unlock(&t->lock);
}

/* Asks every live session for bits and waits (up to wait_ms, or forever when negative) until
 * none is left in the map, and with all_gone until none is still ending either. */
static void end_all(struct sessions *t, int bits, int all_gone, int wait_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += wait_ms / 1000;
    deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&t->lock);
    t->closed = 1;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct slot *slot = t->buckets[i]; slot; slot = slot->next)
            session_request(slot->s, bits);
    while (t->count > 0 || (all_gone && t->ending)) {
        if (wait_ms < 0) {
            pthread_cond_wait(&t->changed, &t->lock);
        } else if (pthread_cond_timedwait(&t->changed, &t->lock, &deadline) == ETIMEDOUT) {
            log_warnx(TAG, "%zu session(s) still busy after %d ms", t->count, wait_ms);
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
}

void sessions_shutdown(struct sessions *t)
{
    /* Until every session finished, not only left the table: after leaving it a session
     * still hears native answer the messages IRC flood control held (before LOGGED_OUT), and
     * its error stanzas must be queued before the stream closes. */
    end_all(t, SESS_REQ_SHUTDOWN, 1, SHUTDOWN_WAIT_MS);
    reap(t);
}

void sessions_free(struct sessions *t)
{
    if (!t)
        return;
    /* Each session bounds its own wait for the native thread, so this ends. */
    end_all(t, SESS_REQ_END, 1, -1);
    reap(t);
    free(t->buckets);
    pthread_cond_destroy(&t->changed);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

void sessions_end_owner(struct sessions *t, const char *owner_bare)
{
    pthread_mutex_lock(&t->lock);
    struct session *s = map_get(t, owner_bare);
    if (s)
        session_request(s, SESS_REQ_END);
    while (map_get(t, owner_bare) || list_has_owner(t->ending, owner_bare))
        pthread_cond_wait(&t->changed, &t->lock);
    pthread_mutex_unlock(&t->lock);
    reap(t);
}

/* ---- stanzas in ---- */

/* The sender's bare JID (new string), or NULL when from is missing or invalid. */
static char *sender_bare(const xn_t *stanza)
{
    jid_t *from = jid_parse(xn_attr(stanza, "from") ? xn_attr(stanza, "from") : "");
    char *bare = from ? xstrdup(jid_bare(from)) : NULL;
    jid_free(from);
    return bare;
}

static int is_registered(struct sessions *t, const char *owner)
{
    struct store_registration reg = {0};
    int rc = store_registration_get(t->b->store, owner, &reg);
    store_registration_free(&reg);
    /* A password that no longer opens is still a registration: the session says so. */
    return rc == STORE_OK || rc == STORE_ECRYPTO;
}

/* A stanza the owner's session could not take: messages are answered, the rest dropped. */
static void refuse(struct sessions *t, xn_t *stanza, const char *condition, const char *text)
{
    if (stanza_kind(stanza) != STANZA_PRESENCE)
        bridge_bounce(t->b, stanza, condition, text);
    else
        log_warnx(TAG, "presence from %s dropped: %s", xn_attr(stanza, "from"), text);
    xn_unref(stanza);
}

/* Posts to owner's session if one runs (1: the stanza was taken), else 0. With start set, a
 * missing session is started first (unless the table is closed). */
static int post(struct sessions *t, const char *owner, enum sess_msg_type type, xn_t *stanza,
                int start)
{
    pthread_mutex_lock(&t->lock);
    struct session *s = map_get(t, owner);
    if (!s && start && !t->closed) {
        s = session_start(t, t->b, owner);
        if (s)
            map_put(t, s);
    }
    int rc = !s                                ? MB_ECLOSED
             : type == SESS_MSG_OWNER_PRESENCE ? session_post_presence(s, stanza)
                                               : session_post(s, type, stanza);
    pthread_mutex_unlock(&t->lock);
    if (s && rc != MB_OK) {
        log_warnx(TAG, "session of %s cannot take more (%d)", owner, rc);
        refuse(t, stanza, "resource-constraint", "the gateway is too busy for this user");
    }
    return s != NULL;
}

static void send_presence(struct sessions *t, const char *from, const char *to, const char *type)
{
    xn_t *p = xn_new(XN_NS_COMPONENT, "presence");
    xn_set_attr(p, "from", from);
    xn_set_attr(p, "to", to);
    xn_set_attr(p, "type", type);
    bridge_send(t->b, p);
}

void sessions_presence(struct sessions *t, xn_t *presence)
{
    reap(t);
    char *owner = sender_bare(presence);
    const char *type = xn_attr(presence, "type");
    const char *domain = t->b->cfg->component_jid;
    if (!owner) {
        xn_unref(presence);
        return;
    }
    if (post(t, owner, SESS_MSG_OWNER_PRESENCE, presence, 0))
        goto done;
    if (!type && is_registered(t, owner)) {
        if (post(t, owner, SESS_MSG_OWNER_PRESENCE, presence, 1))
            goto done;
        log_info(TAG, "presence from %s: no session can start now", owner);
    } else if (type && strcmp(type, "probe") == 0 && is_registered(t, owner)) {
        send_presence(t, domain, xn_attr(presence, "from"), "unavailable");
    } else {
        log_debug(TAG, "presence %s from %s: no session", type ? type : "available",
                  xn_attr(presence, "from"));
    }
    xn_unref(presence);
done:
    free(owner);
}

/* IQs to a contact need no session state: a few answers, an error for the rest. */
static void contact_iq(struct sessions *t, xn_t *iq, const char *owner)
{
    const char *type = xn_attr(iq, "type") ? xn_attr(iq, "type") : "";
    const xn_t *payload = xn_first_element(iq);
    if (strcmp(type, "result") == 0 || strcmp(type, "error") == 0)
        goto done;
    if (!is_registered(t, owner)) {
        bridge_bounce(t->b, iq, "registration-required", NULL);
    } else if (payload && strcmp(type, "get") == 0 && strcmp(xn_ns(payload), NS_DISCO_INFO) == 0 &&
               strcmp(xn_name(payload), "query") == 0 && !xn_attr(payload, "node")) {
        xn_t *query;
        xn_t *reply = stanza_iq_result_with(iq, NS_DISCO_INFO, "query", &query);
        xn_t *identity = xn_add_child(query, NULL, "identity");
        xn_set_attr(identity, "category", "client");
        xn_set_attr(identity, "type", "pc");
        xn_set_attr(xn_add_child(query, NULL, "feature"), "var", NS_DISCO_INFO);
        xn_set_attr(xn_add_child(query, NULL, "feature"), "var", NS_CHATSTATES);
        xn_set_attr(xn_add_child(query, NULL, "feature"), "var", NS_PING);
        xn_set_attr(xn_add_child(query, NULL, "feature"), "var", NS_VCARD);
        bridge_send(t->b, reply);
    } else if (payload && strcmp(type, "get") == 0 && strcmp(xn_ns(payload), NS_PING) == 0) {
        bridge_send(t->b, stanza_iq_result(iq));
    } else {
        bridge_bounce(t->b, iq, "service-unavailable", NULL);
    }
done:
    xn_unref(iq);
}

/* A message or presence to a contact from an owner without a session. */
static void no_session(struct sessions *t, xn_t *stanza, const char *owner)
{
    const char *domain = t->b->cfg->component_jid;
    const char *type = xn_attr(stanza, "type");
    if (stanza_kind(stanza) != STANZA_MESSAGE) {
        log_debug(TAG, "presence %s from %s to %s: no session", type ? type : "available",
                  xn_attr(stanza, "from"), xn_attr(stanza, "to"));
    } else if (type && strcmp(type, "error") == 0) {
        /* A message from the contact bounced by the owner's server: said, not answered. */
        log_info(TAG, "%s: a message from %s was refused by the owner's server", owner,
                 xn_attr(stanza, "to"));
    } else if (!is_registered(t, owner)) {
        bridge_bounce(t->b, stanza, "registration-required", NULL);
    } else {
        char *text = xasprintf("You are not online with %s: send it your presence (come "
                               "online) first, then send the message again.",
                               domain);
        bridge_bounce(t->b, stanza, "recipient-unavailable", text);
        free(text);
    }
    xn_unref(stanza);
}

void sessions_to_contact(struct sessions *t, xn_t *stanza)
{
    reap(t);
    char *owner = sender_bare(stanza);
    if (!owner) {
        xn_unref(stanza);
        return;
    }
    enum stanza_kind kind = stanza_kind(stanza);
    const xn_t *payload = kind == STANZA_IQ ? xn_first_element(stanza) : NULL;
    if (payload && strcmp(xn_ns(payload), NS_VCARD) == 0 && xn_attr(stanza, "type") &&
        strcmp(xn_attr(stanza, "type"), "get") == 0)
        sessions_request(t, stanza); /* the contact's details come from the legacy side */
    else if (kind == STANZA_IQ)
        contact_iq(t, stanza, owner);
    else if (kind == STANZA_OTHER)
        xn_unref(stanza);
    else if (!post(t, owner, SESS_MSG_TO_CONTACT, stanza, 0))
        no_session(t, stanza, owner);
    free(owner);
}

void sessions_redispatch(struct sessions *t, enum sess_msg_type type, xn_t *stanza)
{
    if (type == SESS_MSG_OWNER_PRESENCE)
        sessions_presence(t, stanza);
    else if (type == SESS_MSG_TO_CONTACT)
        sessions_to_contact(t, stanza);
    else if (type == SESS_MSG_REQUEST)
        sessions_request(t, stanza);
    else
        xn_unref(stanza);
}

void sessions_request(struct sessions *t, xn_t *iq)
{
    reap(t);
    char *owner = sender_bare(iq);
    if (owner && !post(t, owner, SESS_MSG_REQUEST, iq, 0)) {
        if (!is_registered(t, owner)) {
            bridge_bounce(t->b, iq, "registration-required", NULL);
        } else {
            char *text = xasprintf("You are not online with %s: send it your presence (come "
                                   "online) first, then ask again.",
                                   t->b->cfg->component_jid);
            bridge_bounce(t->b, iq, "recipient-unavailable", text);
            free(text);
        }
        xn_unref(iq);
    } else if (!owner) {
        xn_unref(iq);
    }
    free(owner);
}

/* Tells every live session that the link is back. Called on the component thread before
 * the probes go out: as every stanza of the new link reaches a session through its mailbox
 * too, the session sees this before any answer to its probe. */
static void link_up_all(struct sessions *t)
{
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (struct slot *slot = t->buckets[i]; slot; slot = slot->next)
            if (session_post(slot->s, SESS_MSG_LINK_UP, NULL) != MB_OK)
                log_warnx(TAG, "session of %s is too busy: its resources are not rechecked",
                          session_owner(slot->s));
    }
    pthread_mutex_unlock(&t->lock);
}

void sessions_probe_all(struct sessions *t)
{
    char **owners = NULL;
    size_t count = 0;
    reap(t);
    link_up_all(t);
    if (store_registration_list(t->b->store, &owners, &count) != STORE_OK) {
        log_warnx(TAG, "cannot list the registered owners: no presence probes sent");
        return;
    }
    for (size_t i = 0; i < count; i++)
        send_presence(t, t->b->cfg->component_jid, owners[i], "probe");
    log_info(TAG, "presence probe sent to %zu registered owner(s)", count);
    store_strings_free(owners, count);
}
