/* One session: a thread per online owner that blocks on its mailbox and alone owns the
 * owner's state: resources with presence and priority, contacts, the early-presence buffer,
 * messages waiting for the legacy sign-on, the reconnect timer.
 *
 * From XMPP to legacy: the owner's presence to the transport (resources, legacy status),
 * messages, chat states and presence (subscriptions, probes) to contacts.
 * From legacy to XMPP: sign-on and connection loss (the transport's own presence), contact
 * presence, messages, typing, buddy list changes and authorization requests.
 *
 * Every stanza out goes through bridge_send with a from inside the transport's domain: the
 * domain itself, or a contact's JID. */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bridge/search.h"
#include "bridge/session.h"
#include "bridge/text.h"
#include "lib/backoff.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/stanza.h"
#include "lib/util.h"

#define TAG "session"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_NICK "http://jabber.org/protocol/nick"
#define NS_IDLE "urn:xmpp:idle:1"
#define NS_DELAY "urn:xmpp:delay"
#define NS_HINTS "urn:xmpp:hints"
#define NS_XHTML_IM "http://jabber.org/protocol/xhtml-im"

#define STACK_SIZE (256 * 1024)
/* native's window for matching a delivery error to a message sent */
#define SEND_ERROR_WINDOW_MS 60000
/* How long an ending session waits for native's LOGGED_OUT before giving its mailbox up. */
#define LOGOUT_WAIT_MS 10000
#define MAX_WAITING 256 /* messages waiting for the sign-on */
#define MAX_EARLY 512   /* presences waiting for the sign-on */
/* When the owner's last resource goes, the legacy logout waits this long: a client that
 * flaps (reconnects at once, or a presence storm) keeps one legacy login instead of making
 * one per flap, which legacy servers punish as connection flooding. */
#define LINGER_MS 1000
/* Owner presences kept aside while the mailbox is full: one per full JID for availability, so a
 * flapping client needs one slot however long it flaps; subscription answers take one each. */
#define MAX_SPILLED 64

enum legacy_state {
    LEG_CONNECTING, /* LOGIN sent, no answer yet */
    LEG_ONLINE,     /* signed on */
    LEG_RETRY,      /* connection lost or login failed: waiting for retry_at */
    LEG_FAILED,     /* credentials refused: no retry while this session lives */
};

struct resource {
    char *jid; /* full JID */
    int priority;
    enum np_state show;
    char *status;
    int64_t seq; /* later presence wins a tie */
    int stale;   /* known before the link came back, not confirmed since */
};

struct early {
    xn_t *stanza;
    int64_t expires;
};

/* A message handed to native and not answered yet (NP_EV_IM_SENT, or IM_SEND_FAILED with its
 * id). IRC's flood control may hold it for minutes and for more messages than a contact's
 * ring of recent messages keeps (contact_sent_push): here it waits for its own answer. */
struct flying {
    uint64_t id;
    struct contact *c; /* contacts live as long as the session */
    xn_t *m;
};

struct session {
    struct sessions *table;
    bridge_t *b;
    const struct ferry_config *cfg;
    char *owner;
    const char *domain;
    mailbox_t *mb;
    pthread_t thread;
    atomic_int requests;
    int mailbox_lost; /* native may still post to mb: never free it */
    /* Owner presences that found the mailbox full (spill_lock; see session_post_presence) */
    pthread_mutex_t spill_lock;
    xn_t **spilled; /* MAX_SPILLED slots, made on first use */
    size_t nspilled;
    atomic_uint_fast64_t presences_posted; /* owner presences that went into the mailbox */
    uint64_t presences_read;               /* ... and that the thread has read (its own) */

    /* owned by the thread */
    struct resource *res;
    size_t nres;
    int64_t seq;
    struct contacts *contacts;
    enum legacy_state leg;
    int logged_in; /* LOGIN sent and LOGGED_OUT not seen */
    char *username;
    char *display_name;
    char *reason; /* why the legacy side is not signed on; NULL when it is */
    int64_t login_deadline, retry_at;
    int attempts;
    int status_sent;
    enum np_state sent_state;
    char *sent_status;
    xn_t **waiting; /* MAX_WAITING slots, made on first use: 2 kB most sessions never need */
    size_t nwaiting;
    struct early *early;
    size_t nearly;
    int ending, announce;
    int64_t linger_until;      /* the last resource left: end then, unless one comes back */
    int64_t recheck_at;        /* the link came back: stale resources are dropped then */
    int link_answered;         /* ... if the owner's server said since which ones are online */
    struct searches *searches; /* search and user info requests waiting for native */
    struct flying *flying;     /* oldest first */
    size_t nflying, flying_cap;
    uint64_t last_im_id;
};

/* ---- small builders ---- */

static xn_t *stanza_new(const char *name, const char *from, const char *to, const char *type)
{
    xn_t *x = xn_new(XN_NS_COMPONENT, name);
    xn_set_attr(x, "from", from);
    xn_set_attr(x, "to", to);
    if (type)
        xn_set_attr(x, "type", type);
    return x;
}

static void set_random_id(xn_t *x)
{
    char id[17];
    random_id(id, sizeof(id));
    xn_set_attr(x, "id", id);
}

static void utc_stamp(int64_t when, char out[32])
{
    time_t t = (time_t)when;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *network(const struct session *s)
{
    if (s->cfg->legacy_name)
        return s->cfg->legacy_name;
    return np_protocol_name() ? np_protocol_name() : "the legacy network";
}

static int is(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

static void set_str(char **slot, const char *value)
{
    free(*slot);
    *slot = value ? xstrdup(value) : NULL;
}

/* A message from the transport itself to the owner. */
static void notify_owner(struct session *s, const char *text)
{
    xn_t *m = stanza_new("message", s->domain, s->owner, NULL);
    set_random_id(m);
    xn_add_child_text(m, NULL, "body", text);
    bridge_send(s->b, m);
}

/* ---- presence out ---- */

static const char *show_name(enum np_state state)
{
    switch (state) {
    case NP_STATE_AWAY:
        return "away";
    case NP_STATE_XA:
        return "xa";
    case NP_STATE_DND:
        return "dnd";
    default:
        return NULL;
    }
}

/* The contact's current legacy presence, to the owner (to NULL: the bare JID). */
static void send_contact_presence(struct session *s, struct contact *c, const char *to)
{
    int offline = c->state == NP_STATE_OFFLINE;
    xn_t *p = stanza_new("presence", c->jid, to ? to : s->owner, offline ? "unavailable" : NULL);
    const char *show = show_name(c->state);
    if (show && !offline)
        xn_add_child_text(p, NULL, "show", show);
    if (c->status)
        xn_add_child_text(p, NULL, "status", c->status);
    if (c->idle_since > 0 && !offline) {
        char stamp[32];
        utc_stamp(c->idle_since, stamp);
        xn_set_attr(xn_add_child(p, NS_IDLE, "idle"), "since", stamp);
    }
    if (!to || !offline)
        c->shown = !offline;
    bridge_send(s->b, p);
}

/* Unavailable from every contact the owner sees available; their state is forgotten. */
static void contacts_gone(struct session *s)
{
    for (size_t i = 0; i < contacts_count(s->contacts); i++) {
        struct contact *c = contacts_at(s->contacts, i);
        int shown = c->shown;
        contact_set_status(c, NP_STATE_OFFLINE, NULL, 0);
        if (shown)
            send_contact_presence(s, c, NULL);
        c->shown = 0;
    }
}

/* The transport's own presence reflects the legacy connection. */
static void send_transport_presence(struct session *s, const char *to)
{
    int up = s->leg == LEG_ONLINE && !s->ending;
    xn_t *p = stanza_new("presence", s->domain, to ? to : s->owner, up ? NULL : "unavailable");
    char *status = up          ? xasprintf("Connected to %s as %s", network(s),
                                  s->display_name ? s->display_name : s->username)
                   : s->reason ? xstrdup(s->reason)
                               : NULL;
    if (status)
        xn_add_child_text(p, NULL, "status", status);
    free(status);
    bridge_send(s->b, p);
}

static void send_subscription(struct session *s, struct contact *c, const char *type,
                              const char *status)
{
    xn_t *p = stanza_new("presence", c->jid, s->owner, type);
    if (is(type, "subscribe") && c->alias) {
        char *nick = text_from_legacy_str(c->alias);
        if (*nick)
            xn_add_child_text(p, NS_NICK, "nick", nick);
        free(nick);
    }
    if (status && *status) {
        char *clean = text_from_legacy_str(status);
        xn_add_child_text(p, NULL, "status", clean);
        free(clean);
    }
    bridge_send(s->b, p);
}

/* ---- messages out ---- */

/* Answers the owner's message m with an error carrying its body, to the full JID it came
 * from (Prosody drops an error addressed to a bare JID). */
static void bounce_message(struct session *s, const xn_t *m, const char *condition,
                           const char *text)
{
    if (!stanza_may_bounce(m))
        return;
    xn_t *err = stanza_error(m, condition, text);
    char *body = xn_child_text(m, NULL, "body");
    char *thread = xn_child_text(m, NULL, "thread");
    if (body)
        xn_add_child_text(err, NULL, "body", body);
    if (thread)
        xn_add_child_text(err, NULL, "thread", thread);
    free(body);
    free(thread);
    bridge_send(s->b, err);
}

/* The defined condition of an error stanza, for a log line. */
static const char *error_condition(const xn_t *stanza)
{
    const xn_t *err = xn_child(stanza, NULL, "error");
    for (const xn_t *e = err ? xn_first_element(err) : NULL; e; e = xn_next_element(e))
        if (strcmp(xn_ns(e), XN_NS_STANZAS) == 0 && strcmp(xn_name(e), "text") != 0)
            return xn_name(e);
    return "no condition given";
}

static void bounce_waiting(struct session *s, const char *condition, const char *text)
{
    for (size_t i = 0; i < s->nwaiting; i++) {
        bounce_message(s, s->waiting[i], condition, text);
        xn_unref(s->waiting[i]);
    }
    s->nwaiting = 0;
}

/* The XMPP condition for a legacy delivery error, from its words. */
static const char *send_error_condition(const char *reason)
{
    static const char *const not_found[] = {"no such",        "not logged in", "not found",
                                            "does not exist", "unknown user",  "invalid user"};
    static const char *const away[] = {"offline", "not online", "unavailable", "not available",
                                       "the connection to"};
    /* native's refusal when too much waits for IRC flood control */
    if (reason && strcasestr(reason, "flood control"))
        return "resource-constraint";
    for (size_t i = 0; reason && i < FERRY_ARRAY_LEN(not_found); i++)
        if (strcasestr(reason, not_found[i]))
            return "item-not-found";
    for (size_t i = 0; reason && i < FERRY_ARRAY_LEN(away); i++)
        if (strcasestr(reason, away[i]))
            return "recipient-unavailable";
    return "service-unavailable";
}

/* ---- the owner's resources and the legacy status ---- */

static struct resource *resource_find(struct session *s, const char *jid)
{
    for (size_t i = 0; i < s->nres; i++)
        if (strcmp(s->res[i].jid, jid) == 0)
            return &s->res[i];
    return NULL;
}

static enum np_state show_state(const char *show)
{
    if (is(show, "away"))
        return NP_STATE_AWAY;
    if (is(show, "xa"))
        return NP_STATE_XA;
    if (is(show, "dnd"))
        return NP_STATE_DND;
    return NP_STATE_AVAILABLE; /* none, chat, or anything unknown */
}

static void resource_update(struct session *s, const char *jid, const xn_t *p)
{
    struct resource *r = resource_find(s, jid);
    if (!r) {
        s->res = xrealloc(s->res, (s->nres + 1) * sizeof(*s->res));
        r = &s->res[s->nres++];
        memset(r, 0, sizeof(*r));
        r->jid = xstrdup(jid);
        log_info(TAG, "%s: resource %s online", s->owner, jid);
    }
    char *prio = xn_child_text(p, NULL, "priority");
    char *show = xn_child_text(p, NULL, "show");
    long v = prio ? strtol(prio, NULL, 10) : 0;
    r->priority = v < -128 ? -128 : v > 127 ? 127 : (int)v;
    r->show = show_state(show);
    free(r->status);
    /* The legacy away message: no CR may reach native (see send_im); libpurple's IRC makes
     * the line breaks of an AWAY spaces. */
    char *status = xn_child_text(p, NULL, "status");
    r->status = status ? text_line_breaks(status) : NULL;
    free(status);
    r->seq = ++s->seq;
    r->stale = 0;
    free(prio);
    free(show);
}

/* Removes jid's resource, every resource when jid is the bare JID, or (jid NULL) the stale
 * ones. Returns how many went. */
static size_t resource_remove(struct session *s, const char *jid)
{
    int all = jid && strcmp(jid, s->owner) == 0;
    size_t kept = 0, before = s->nres;
    for (size_t i = 0; i < s->nres; i++) {
        struct resource *r = &s->res[i];
        if (all || (jid && strcmp(r->jid, jid) == 0) || (!jid && r->stale)) {
            log_info(TAG, "%s: resource %s offline%s", s->owner, r->jid,
                     jid ? "" : ": no presence since the link came back");
            free(r->jid);
            free(r->status);
        } else {
            s->res[kept++] = *r;
        }
    }
    s->nres = kept;
    return before - kept;
}

static const struct resource *best_resource(const struct session *s)
{
    const struct resource *best = NULL;
    for (size_t i = 0; i < s->nres; i++) {
        const struct resource *r = &s->res[i];
        if (!best || r->priority > best->priority ||
            (r->priority == best->priority && r->seq > best->seq))
            best = r;
    }
    return best;
}

/* The legacy status follows the highest-priority available resource. */
static void update_legacy_status(struct session *s)
{
    const struct resource *r = best_resource(s);
    if (!r || s->leg != LEG_ONLINE)
        return;
    const char *status = r->status && *r->status ? r->status : NULL;
    if (s->status_sent && s->sent_state == r->show &&
        ((!status && !s->sent_status) ||
         (status && s->sent_status && strcmp(status, s->sent_status) == 0)))
        return;
    s->status_sent = 1;
    s->sent_state = r->show;
    set_str(&s->sent_status, status);
    log_debug(TAG, "%s: legacy status %s (from %s)", s->owner, np_state_name(r->show), r->jid);
    np_send(np_cmd_set_status(s->owner, r->show, status));
}

/* Resources went: the legacy status follows those left; when none is left the logout waits
 * LINGER_MS (maybe only a flap). */
static void resources_gone(struct session *s)
{
    if (s->nres == 0)
        s->linger_until = now_ms() + LINGER_MS;
    else
        update_legacy_status(s);
}

/* The component link came back, maybe from a server restart that took every client with it.
 * The probe sent with SESS_MSG_LINK_UP brings a presence from each resource still (or again)
 * online, or an unavailable from the bare JID when there is none (owner_presence); the rest
 * are dropped at recheck_at, but only if such an answer came (see recheck_resources). */
static void on_link_up(struct session *s)
{
    for (size_t i = 0; i < s->nres; i++)
        s->res[i].stale = 1;
    s->recheck_at = s->nres ? now_ms() + SESS_LINK_GRACE_MS : 0;
    s->link_answered = 0;
}

/* Whether an owner's presence of type from jid tells which resources are online: an available
 * one from any resource (a server answers a probe with one per resource), an unavailable or
 * error from the bare JID (none is). An 'unsubscribed' (Prosody's answer to a probe from a
 * transport without a subscription) tells nothing about resources. */
static int answers_probe(const char *type, const jid_t *jid)
{
    if (!type)
        return 1;
    return (strcmp(type, "unavailable") == 0 || strcmp(type, "error") == 0) && !jid_resource(jid);
}

/* The grace period after link-up is over. Without an answer from the owner's server (a remote
 * server slower than the grace period, or one that tells this transport nothing) the
 * resources stay as they were: dropping them would log the owner out of the legacy network
 * and in again once the answer comes (the flapping LINGER_MS avoids), or for good while the
 * owner's client is still online. */
static void recheck_resources(struct session *s)
{
    s->recheck_at = 0;
    if (!s->link_answered) {
        for (size_t i = 0; i < s->nres; i++)
            s->res[i].stale = 0;
        log_info(TAG,
                 "%s: no presence from the owner's server since the link came back: "
                 "%zu resource(s) kept",
                 s->owner, s->nres);
        return;
    }
    if (resource_remove(s, NULL) > 0)
        resources_gone(s);
}

/* ---- the legacy connection ---- */

static void end_session(struct session *s, int announce, const char *reason)
{
    if (s->ending)
        return;
    s->ending = 1;
    s->announce = announce;
    if (reason)
        set_str(&s->reason, reason);
}

/* Re-adds the contacts the owner follows: the legacy account is made afresh at each login. */
static void readd_buddies(struct session *s)
{
    for (size_t i = 0; i < contacts_count(s->contacts); i++) {
        struct contact *c = contacts_at(s->contacts, i);
        if (c->sub == STORE_SUB_TO || c->sub == STORE_SUB_BOTH)
            np_send(np_cmd_add_buddy(s->owner, c->legacy, c->alias, NULL));
    }
}

static void fail_fatally(struct session *s, const char *why);
static void connection_lost(struct session *s, const char *why);

static void login(struct session *s)
{
    struct store_registration reg = {0};
    int rc = store_registration_get(s->b->store, s->owner, &reg);
    if (rc == STORE_ENOTFOUND) {
        log_info(TAG, "%s: not registered any more: session ends", s->owner);
        end_session(s, 1, "You are not registered");
    } else if (rc == STORE_ECRYPTO) {
        fail_fatally(s, "the stored password cannot be read (the gateway's key changed)");
    } else if (rc != STORE_OK) {
        connection_lost(s, "the gateway's store failed");
    } else if (np_send(np_cmd_login(s->owner, reg.username, reg.password, s->mb)) != NP_OK) {
        connection_lost(s, "the gateway is stopping");
    } else {
        s->logged_in = 1;
        s->leg = LEG_CONNECTING;
        s->login_deadline = now_ms() + s->cfg->legacy_login_timeout_ms;
        set_str(&s->username, reg.username);
        log_info(TAG, "%s: logging in to %s as %s", s->owner, network(s), reg.username);
        readd_buddies(s);
    }
    store_registration_free(&reg);
}

/* The delay before the next login (lib/backoff.h: reconnect_min doubling up to reconnect_max,
 * with jitter). Owners who lost the network together are spread by the jitter from the
 * second retry on, and at every retry by native's login pacing. */
static int64_t backoff_ms(const struct session *s)
{
    uint32_t r = 0;
    if (random_bytes(&r, sizeof(r)) != 0)
        r = 0; /* no jitter this time: still the right schedule */
    return backoff_delay(s->cfg->legacy_reconnect_min_ms, s->cfg->legacy_reconnect_max_ms,
                         s->attempts > 0 ? (unsigned)(s->attempts - 1) : 0, r);
}

static void connection_lost(struct session *s, const char *why)
{
    if (s->leg == LEG_RETRY || s->leg == LEG_FAILED)
        return;
    s->attempts++;
    int64_t delay = backoff_ms(s);
    s->leg = LEG_RETRY;
    s->retry_at = now_ms() + delay;
    s->status_sent = 0;
    free(s->reason);
    s->reason = xasprintf("Not connected to %s: %s. Trying again in %lld s.", network(s), why,
                          (long long)((delay + 999) / 1000));
    log_info(TAG, "%s: %s", s->owner, s->reason);
    contacts_gone(s);
    send_transport_presence(s, NULL);
    bounce_waiting(s, "recipient-unavailable", s->reason);
}

static void fail_fatally(struct session *s, const char *why)
{
    if (s->leg == LEG_FAILED)
        return;
    s->leg = LEG_FAILED;
    free(s->reason);
    s->reason = xasprintf("%s refused the login: %s", network(s), why);
    log_info(TAG, "%s: %s; no retry", s->owner, s->reason);
    contacts_gone(s);
    send_transport_presence(s, NULL);
    bounce_waiting(s, "not-authorized", s->reason);
    char *text = xasprintf("%s refused your login: %s.\nFerry will not try again. To fix it, "
                           "register again with %s (your client's \"register\" or \"edit "
                           "registration\" on that service) with the right user name and "
                           "password, then come online again.",
                           network(s), why, s->domain);
    notify_owner(s, text);
    free(text);
}

static void send_im(struct session *s, struct contact *c, xn_t *m, const char *body);
static void contact_presence(struct session *s, xn_t *p);

/* The nick we got is not the one registered (IRC hands out alice1 when alice is taken). */
static void check_nick(struct session *s)
{
    const char *want = s->username, *got = s->display_name;
    if (!want || !got)
        return;
    size_t len = strcspn(want, "@");
    if (strncasecmp(want, got, len) == 0 &&
        (got[len] == '\0' || got[len] == '@' || got[len] == '/'))
        return;
    char *text = xasprintf("The name %.*s is taken on %s: you are connected as %s.", (int)len, want,
                           network(s), got);
    notify_owner(s, text);
    free(text);
}

static void flush_waiting(struct session *s)
{
    size_t n = s->nwaiting;
    s->nwaiting = 0;
    for (size_t i = 0; i < n; i++) {
        xn_t *m = s->waiting[i];
        jid_t *to = jid_parse(xn_attr(m, "to"));
        struct contact *c =
            to && jid_node(to) ? contacts_by_node(s->contacts, jid_node(to), 1) : NULL;
        char *body = xn_child_text(m, NULL, "body");
        if (c && body)
            send_im(s, c, m, body);
        free(body);
        jid_free(to);
        xn_unref(m);
    }
}

static void replay_early(struct session *s)
{
    size_t n = s->nearly;
    struct early *early = s->early;
    s->early = NULL;
    s->nearly = 0;
    for (size_t i = 0; i < n; i++)
        contact_presence(s, early[i].stanza); /* takes the stanza */
    free(early);
}

static void on_signed_on(struct session *s, const struct np_event *ev)
{
    s->leg = LEG_ONLINE;
    s->attempts = 0;
    free(s->reason);
    s->reason = NULL;
    set_str(&s->display_name, ev->u.signed_on.display_name);
    log_info(TAG, "%s: signed on to %s as %s", s->owner, network(s), s->display_name);
    if (store_touch_login(s->b->store, s->owner) != STORE_OK)
        log_debug(TAG, "%s: last login not recorded", s->owner);
    s->status_sent = 0;
    update_legacy_status(s);
    send_transport_presence(s, NULL);
    check_nick(s);
    flush_waiting(s);
    replay_early(s);
}

static void on_connection_error(struct session *s, const struct np_event *ev)
{
    const char *why =
        ev->u.error.reason && *ev->u.error.reason ? ev->u.error.reason : "connection error";
    char *clean = text_from_legacy_str(why);
    if (ev->u.error.fatal)
        fail_fatally(s, clean);
    else
        connection_lost(s, clean);
    free(clean);
}

static void check_timers(struct session *s)
{
    int64_t now = now_ms();
    if (s->recheck_at && now >= s->recheck_at)
        recheck_resources(s);
    if (s->linger_until && now >= s->linger_until && s->nres == 0) {
        end_session(s, 1, NULL);
        return;
    }
    if (s->leg == LEG_CONNECTING && now >= s->login_deadline) {
        char *why = xasprintf("no answer within %d s", s->cfg->legacy_login_timeout_ms / 1000);
        connection_lost(s, why);
        free(why);
    } else if (s->leg == LEG_RETRY && now >= s->retry_at && !s->ending) {
        s->leg = LEG_CONNECTING; /* a failure in login() schedules the next try */
        login(s);
    }
    size_t kept = 0;
    for (size_t i = 0; i < s->nearly; i++) {
        if (now >= s->early[i].expires) {
            log_info(TAG, "%s: presence %s to %s from before the sign-on expired", s->owner,
                     xn_attr(s->early[i].stanza, "type"), xn_attr(s->early[i].stanza, "to"));
            xn_unref(s->early[i].stanza);
        } else {
            s->early[kept++] = s->early[i];
        }
    }
    s->nearly = kept;
    searches_expire(s->searches, now);
}

static int next_timeout(const struct session *s)
{
    int64_t next = INT64_MAX;
    if (s->leg == LEG_CONNECTING)
        next = s->login_deadline;
    else if (s->leg == LEG_RETRY)
        next = s->retry_at;
    if (s->linger_until && s->linger_until < next)
        next = s->linger_until;
    if (s->recheck_at && s->recheck_at < next)
        next = s->recheck_at;
    for (size_t i = 0; i < s->nearly; i++)
        if (s->early[i].expires < next)
            next = s->early[i].expires;
    if (searches_deadline(s->searches) < next)
        next = searches_deadline(s->searches);
    if (next == INT64_MAX)
        return -1;
    int64_t wait = next - now_ms();
    return wait < 0 ? 0 : wait > INT_MAX ? INT_MAX : (int)wait;
}

/* ---- the owner's presence to the transport ---- */

static void owner_presence(struct session *s, xn_t *p)
{
    const char *type = xn_attr(p, "type"), *from = xn_attr(p, "from");
    jid_t *jid = jid_parse(from ? from : "");
    if (!jid)
        goto done;
    if (s->recheck_at && answers_probe(type, jid))
        s->link_answered = 1;
    if (!type) {
        resource_update(s, jid_full(jid), p);
        s->linger_until = 0;
        update_legacy_status(s);
    } else if (is(type, "unavailable") || is(type, "error")) {
        /* An error presence from the owner's server: that resource (or the whole user, when
         * it comes from the bare JID) is gone. An unavailable from the bare JID is the
         * server's answer to a probe when no resource is online (Prosody 0.12: when the
         * owner's roster lets the transport see the owner's presence). */
        resource_remove(s, jid_full(jid));
        if (s->nres == 0 && is(type, "error"))
            end_session(s, 1, NULL);
        else
            resources_gone(s);
    } else if (is(type, "probe")) {
        send_transport_presence(s, from);
    } else {
        log_debug(TAG, "%s: presence %s to the transport ignored", s->owner, type);
    }
done:
    jid_free(jid);
    xn_unref(p);
}

/* ---- stanzas from the owner to a contact ---- */

/* The contact a stanza is addressed to (created when new), or NULL. */
static struct contact *addressee(struct session *s, const xn_t *stanza)
{
    jid_t *to = jid_parse(xn_attr(stanza, "to") ? xn_attr(stanza, "to") : "");
    struct contact *c = to && jid_node(to) ? contacts_by_node(s->contacts, jid_node(to), 1) : NULL;
    jid_free(to);
    return c;
}

/* IRC servers cut a relayed line at 512 bytes, their prefix ":nick!user@host " included,
 * and libpurple leaves only 64 bytes for it: long lines are broken here, with room for a
 * prefix of 120 bytes, so that no server ever cuts one. */
static char *legacy_lines(const struct session *s, const struct contact *c, const char *body)
{
    if (!s->cfg->legacy_protocol || strcmp(s->cfg->legacy_protocol, "prpl-irc") != 0)
        return xstrdup(body);
    size_t overhead = 512 - 120 - strlen("PRIVMSG  :\r\n") - strlen(c->legacy);
    return text_wrap(body, strlen(c->legacy) < 200 ? overhead : 100);
}

static uint64_t flying_add(struct session *s, struct contact *c, xn_t *m)
{
    if (s->nflying == s->flying_cap) {
        s->flying_cap = s->flying_cap ? 2 * s->flying_cap : 8;
        s->flying = xrealloc(s->flying, s->flying_cap * sizeof(*s->flying));
    }
    s->flying[s->nflying++] = (struct flying){++s->last_im_id, c, xn_ref(m)};
    return s->last_im_id;
}

/* The message native answered with id, or (id 0) the oldest one to c, taken off the list
 * (caller owns the reference); NULL when there is none. */
static xn_t *flying_take(struct session *s, uint64_t id, const struct contact *c)
{
    for (size_t i = 0; i < s->nflying; i++) {
        struct flying *f = &s->flying[i];
        if (id ? f->id != id : f->c != c)
            continue;
        xn_t *m = f->m;
        memmove(f, f + 1, (s->nflying - i - 1) * sizeof(*f));
        s->nflying--;
        return m;
    }
    return NULL;
}

static void send_im(struct session *s, struct contact *c, xn_t *m, const char *body)
{
    /* A CR (&#13; in the XML) becomes a line break: native and libpurple cut lines at LF
     * only, and a CR left inside a PRIVMSG ends the line for IRC servers that take a lone CR
     * as a line end: the rest would run as a command of the owner's, past the pacing. */
    char *breaks = text_line_breaks(body);
    char *text = legacy_lines(s, c, breaks);
    free(breaks);
    struct np_cmd *cmd = np_cmd_send_im(s->owner, c->legacy, text);
    free(text);
    cmd->u.im.id = flying_add(s, c, m);
    uint64_t id = cmd->u.im.id;
    if (np_send(cmd) != NP_OK) {
        xn_unref(flying_take(s, id, c));
        bounce_message(s, m, "service-unavailable", "the gateway is stopping");
    }
}

static void send_typing(struct session *s, struct contact *c, const xn_t *m)
{
    static const struct {
        const char *name;
        enum np_typing state;
    } states[] = {
        {"composing", NP_TYPING_ACTIVE}, {"paused", NP_TYPING_PAUSED},
        {"active", NP_TYPING_STOPPED},   {"inactive", NP_TYPING_STOPPED},
        {"gone", NP_TYPING_STOPPED},
    };
    for (size_t i = 0; i < FERRY_ARRAY_LEN(states); i++) {
        if (xn_child(m, NS_CHATSTATES, states[i].name)) {
            np_send(np_cmd_send_typing(s->owner, c->legacy, states[i].state));
            return;
        }
    }
}

static void contact_message(struct session *s, xn_t *m)
{
    const char *type = xn_attr(m, "type");
    char *body = NULL, *thread = NULL;
    struct contact *c = NULL;
    if (is(type, "error")) {
        /* The owner's server refused a message from the contact (the owner is offline and
         * nothing stores it, say): nobody to answer, but it is not lost silently. */
        log_info(TAG, "%s: a message from %s was refused by the owner's server (%s)", s->owner,
                 xn_attr(m, "to"), error_condition(m));
        goto done;
    }
    if (is(type, "groupchat")) {
        bounce_message(s, m, "bad-request", "this address is not a group chat");
        goto done;
    }
    c = addressee(s, m);
    if (!c) {
        bounce_message(s, m, "jid-malformed", "no legacy name has this address");
        goto done;
    }
    if (s->leg == LEG_ONLINE)
        send_typing(s, c, m);
    body = xn_child_text(m, NULL, "body");
    if ((!body || !*body) && xn_child(m, NS_XHTML_IM, "html")) {
        bounce_message(s, m, "not-acceptable",
                       "this gateway carries plain text: the message "
                       "has rich text but no plain-text <body/>");
        goto done;
    }
    if (!body || !*body) /* chat states, receipts, markers: nothing to deliver */
        goto done;
    thread = xn_child_text(m, NULL, "thread");
    contact_set_reply(c, type && !is(type, "headline") ? type : "normal", thread);
    if (s->leg == LEG_ONLINE) {
        send_im(s, c, m, body);
    } else if (s->leg == LEG_CONNECTING && s->nwaiting < MAX_WAITING) {
        if (!s->waiting)
            s->waiting = xcalloc(MAX_WAITING, sizeof(*s->waiting));
        s->waiting[s->nwaiting++] = xn_ref(m); /* sent after the sign-on */
    } else {
        bounce_message(s, m, s->leg == LEG_FAILED ? "not-authorized" : "recipient-unavailable",
                       s->reason ? s->reason : "not connected to the legacy network");
    }
done:
    free(body);
    free(thread);
    xn_unref(m);
}

static void subscription_changed(struct session *s, struct contact *c, enum store_subscription sub)
{
    if (c->sub == sub && c->stored_id)
        return;
    c->sub = sub;
    contacts_save(s->contacts, s->b->store, s->owner, c);
}

static void owner_subscribes(struct session *s, struct contact *c)
{
    np_send(np_cmd_add_buddy(s->owner, c->legacy, c->alias, NULL));
    subscription_changed(
        s, c, c->sub == STORE_SUB_FROM || c->sub == STORE_SUB_BOTH ? STORE_SUB_BOTH : STORE_SUB_TO);
    /* Where the legacy contact must consent (prpl-jabber), the answer comes later as
     * NP_EV_BUDDY_AUTHORIZED (on_buddy_authorized; at once when it had consented before). The
     * stored "to" is the memory of the request: an answer that arrives at a later login is
     * still passed on, and a refusal takes it back. */
    if (np_protocol_needs_authorization())
        return;
    /* The legacy side accepts at once where it has no consent step (IRC). */
    send_subscription(s, c, "subscribed", NULL);
    send_contact_presence(s, c, NULL);
}

static void owner_unsubscribes(struct session *s, struct contact *c)
{
    np_send(np_cmd_remove_buddy(s->owner, c->legacy));
    subscription_changed(s, c, c->sub == STORE_SUB_BOTH ? STORE_SUB_FROM : STORE_SUB_NONE);
    if (c->shown) {
        send_subscription(s, c, "unavailable", NULL);
        c->shown = 0;
    }
}

/* The owner's answer to a subscribe from the contact (a legacy authorization request, or a
 * buddy the legacy list announced). */
static void owner_answers(struct session *s, struct contact *c, int accept)
{
    if (c->auth_pending) {
        np_send(np_cmd_authorize(s->owner, c->auth_id, accept));
        c->auth_pending = 0;
    }
    enum store_subscription sub = c->sub;
    if (accept)
        sub = sub == STORE_SUB_TO || sub == STORE_SUB_BOTH ? STORE_SUB_BOTH : STORE_SUB_FROM;
    else
        sub = sub == STORE_SUB_BOTH || sub == STORE_SUB_TO ? STORE_SUB_TO : STORE_SUB_NONE;
    subscription_changed(s, c, sub);
}

static int buffered_type(const char *type)
{
    return is(type, "probe") || is(type, "subscribe") || is(type, "subscribed") ||
           is(type, "unsubscribe") || is(type, "unsubscribed");
}

/* Keeps a presence for a contact until the sign-on (the white paper's early-presence
 * buffer): a probe can only be answered from the contact's real legacy state. */
static void keep_early(struct session *s, xn_t *p)
{
    if (s->nearly == MAX_EARLY) {
        log_info(TAG, "%s: early-presence buffer full: oldest presence to %s dropped", s->owner,
                 xn_attr(s->early[0].stanza, "to"));
        xn_unref(s->early[0].stanza);
        memmove(s->early, s->early + 1, (MAX_EARLY - 1) * sizeof(*s->early));
        s->nearly--;
    }
    s->early = xrealloc(s->early, (s->nearly + 1) * sizeof(*s->early));
    s->early[s->nearly].stanza = p;
    s->early[s->nearly].expires = now_ms() + s->cfg->legacy_early_presence_ms;
    s->nearly++;
}

static void contact_presence(struct session *s, xn_t *p)
{
    const char *type = xn_attr(p, "type");
    if (!buffered_type(type)) {
        log_debug(TAG, "%s: presence %s to %s ignored", s->owner, type ? type : "available",
                  xn_attr(p, "to"));
        xn_unref(p);
        return;
    }
    if (s->leg != LEG_ONLINE) {
        keep_early(s, p);
        return;
    }
    struct contact *c = addressee(s, p);
    if (!c)
        log_info(TAG, "%s: presence %s to %s: no such contact", s->owner, type, xn_attr(p, "to"));
    else if (is(type, "probe"))
        send_contact_presence(s, c, xn_attr(p, "from"));
    else if (is(type, "subscribe"))
        owner_subscribes(s, c);
    else if (is(type, "unsubscribe"))
        owner_unsubscribes(s, c);
    else
        owner_answers(s, c, is(type, "subscribed"));
    xn_unref(p);
}

/* ---- native events ---- */

static void on_buddy_presence(struct session *s, const struct np_event *ev)
{
    struct contact *c = contacts_by_legacy(s->contacts, ev->u.presence.who, 1);
    if (!c)
        return;
    if (ev->u.presence.alias && *ev->u.presence.alias)
        set_str(&c->alias, ev->u.presence.alias);
    contact_set_status(c, ev->u.presence.state, ev->u.presence.message,
                       ev->u.presence.idle_seconds);
    if (s->leg == LEG_ONLINE)
        send_contact_presence(s, c, NULL);
}

/* A buddy on the legacy list the owner has not been asked about: one subscribe, ever. */
static void on_buddy_added(struct session *s, const struct np_event *ev)
{
    struct contact *c = contacts_by_legacy(s->contacts, ev->u.buddy.who, 1);
    if (!c)
        return;
    if (ev->u.buddy.alias && *ev->u.buddy.alias)
        set_str(&c->alias, ev->u.buddy.alias);
    if (c->subscribe_sent || c->sub == STORE_SUB_TO || c->sub == STORE_SUB_BOTH)
        return;
    send_subscription(s, c, "subscribe", NULL);
    c->subscribe_sent = 1;
    if (c->sub == STORE_SUB_NONE)
        c->sub = STORE_SUB_ASKED;
    contacts_save(s->contacts, s->b->store, s->owner, c);
}

static void on_buddy_removed(struct session *s, const struct np_event *ev)
{
    struct contact *c = contacts_by_legacy(s->contacts, ev->u.buddy.who, 0);
    if (!c)
        return;
    if (c->shown)
        send_subscription(s, c, "unavailable", NULL);
    c->shown = 0;
    send_subscription(s, c, "unsubscribe", NULL);
    send_subscription(s, c, "unsubscribed", NULL);
    contacts_forget(s->contacts, s->b->store, s->owner, c);
}

/* The legacy contact's answer to the owner's subscribe, or its later withdrawal. Passed on
 * only while the owner follows (or asked to follow) the contact: anything else is an answer
 * to a request the owner never made here. A refusal leaves the legacy buddy where the
 * protocol leaves it (prpl-jabber: on the roster with no subscription, as the owner's server
 * keeps the owner's roster item): removing it would also cancel the contact's subscription to
 * the owner's presence, which the owner granted and the contact did not refuse. */
static void on_buddy_authorized(struct session *s, const struct np_event *ev)
{
    struct contact *c = contacts_by_legacy(s->contacts, ev->u.authorized.who, 0);
    if (!c || (c->sub != STORE_SUB_TO && c->sub != STORE_SUB_BOTH)) {
        log_debug(TAG, "%s: %s from %s without a request: ignored", s->owner,
                  ev->u.authorized.accepted ? "subscribed" : "unsubscribed", ev->u.authorized.who);
        return;
    }
    if (ev->u.authorized.accepted) {
        send_subscription(s, c, "subscribed", NULL);
        send_contact_presence(s, c, NULL);
        return;
    }
    if (c->shown)
        send_subscription(s, c, "unavailable", NULL);
    c->shown = 0;
    send_subscription(s, c, "unsubscribed", NULL);
    c->subscribe_sent = 1; /* the buddy stays listed: never offered to the owner again */
    subscription_changed(s, c, c->sub == STORE_SUB_BOTH ? STORE_SUB_FROM : STORE_SUB_NONE);
}

static void on_auth_request(struct session *s, const struct np_event *ev)
{
    struct contact *c = contacts_by_legacy(s->contacts, ev->u.auth.who, 1);
    if (!c) {
        np_send(np_cmd_authorize(s->owner, ev->u.auth.id, 0));
        return;
    }
    if (ev->u.auth.alias && *ev->u.auth.alias)
        set_str(&c->alias, ev->u.auth.alias);
    if (c->sub == STORE_SUB_FROM || c->sub == STORE_SUB_BOTH) {
        np_send(np_cmd_authorize(s->owner, ev->u.auth.id, 1)); /* the owner agreed before */
        return;
    }
    c->auth_pending = 1;
    c->auth_id = ev->u.auth.id;
    send_subscription(s, c, "subscribe", ev->u.auth.message);
    c->subscribe_sent = 1;
    if (c->sub == STORE_SUB_NONE)
        c->sub = STORE_SUB_ASKED;
    contacts_save(s->contacts, s->b->store, s->owner, c);
}

/* One message from c to the owner carrying text. */
static xn_t *im_stanza(struct session *s, struct contact *c, const char *text,
                       const struct np_event *ev)
{
    xn_t *m = stanza_new("message", c->jid, s->owner, c->reply_type ? c->reply_type : "chat");
    set_random_id(m);
    xn_add_child_text(m, NULL, "body", text);
    if (c->reply_thread)
        xn_add_child_text(m, NULL, "thread", c->reply_thread);
    if (c->chat_states)
        xn_add_child(m, NS_CHATSTATES, "active");
    if (c->mapped) { /* its JID is a digest: the nickname says who it is */
        char *nick = text_from_legacy_str(c->legacy);
        xn_add_child_text(m, NS_NICK, "nick", nick);
        free(nick);
    }
    if ((ev->u.im.flags & NP_IM_DELAYED) && ev->u.im.when > 0) {
        char stamp[32];
        utc_stamp(ev->u.im.when, stamp);
        xn_t *delay = xn_add_child(m, NS_DELAY, "delay");
        xn_set_attr(delay, "stamp", stamp);
        xn_set_attr(delay, "from", s->domain);
    }
    return m;
}

/* How much body text fits one stanza: the server's limit less the rest of the stanza, every
 * other part counted as if each byte were escaped to five. */
static size_t body_budget(const struct session *s, const struct contact *c)
{
    size_t rest = 1024 + 5 * (strlen(c->jid) + strlen(s->owner) +
                              (c->reply_thread ? strlen(c->reply_thread) : 0) +
                              (c->mapped ? strlen(c->legacy) : 0));
    size_t max = s->cfg->component_max_stanza_bytes;
    return max > rest + 1024 ? max - rest : 1024;
}

static void on_im_received(struct session *s, const struct np_event *ev)
{
    struct contact *c = contacts_by_legacy(s->contacts, ev->u.im.from, 1);
    char *text = text_from_legacy_str(ev->u.im.text ? ev->u.im.text : "");
    if (!c) {
        log_warnx(TAG, "%s: message from a sender without a name refused", s->owner);
        goto done;
    }
    if (!*text) {
        log_info(TAG, "%s: message from %s dropped: no text left once cleaned", s->owner, c->jid);
        goto done;
    }
    /* Longer than the server takes in one stanza: several messages, in order, that join up
     * to the whole text (one stanza too large would be refused, or cost the whole link). */
    char **pieces = text_split(text, body_budget(s, c));
    size_t n = 0;
    while (pieces[n])
        n++;
    if (n > 1)
        log_info(TAG, "%s: message of %zu bytes from %s sent as %zu messages", s->owner,
                 strlen(text), c->jid, n);
    for (size_t i = 0; i < n; i++)
        bridge_send(s->b, im_stanza(s, c, pieces[i], ev));
    text_pieces_free(pieces);
done:
    free(text);
}

/* Native wrote the message (for IRC: every line, maybe long after): a delivery error may
 * still follow within SEND_ERROR_WINDOW_MS from now. */
static void on_im_sent(struct session *s, const struct np_event *ev)
{
    xn_t *m = flying_take(s, ev->u.sent.id, NULL);
    struct contact *c = contacts_by_legacy(s->contacts, ev->u.sent.to, 0);
    if (m && c)
        contact_sent_push(c, m, now_ms());
    xn_unref(m);
}

static void on_im_send_failed(struct session *s, const struct np_event *ev)
{
    struct contact *c = contacts_by_legacy(s->contacts, ev->u.send_failed.to, 0);
    xn_t *m = NULL;
    if (ev->u.send_failed.id) { /* native's answer to that very message */
        m = flying_take(s, ev->u.send_failed.id, NULL);
    } else if (c) {
        /* The network's answer to a line already written ("no such nick"). Native writes an
         * owner's lines first in, first out, and posts IM_SENT once a message's last line is
         * out, before any reply to that line can come back: the message is one written whole
         * (on c's ring), else one partly written, which can only be the oldest unanswered to
         * c. A newer one may still wait in native's pacer and be delivered later: bouncing it
         * would report a delivered message as failed (its IM_SENT then finds nothing). */
        m = contact_sent_pop(c, now_ms(), SEND_ERROR_WINDOW_MS);
        if (!m)
            m = flying_take(s, 0, c);
    }
    char *reason =
        text_from_legacy_str(ev->u.send_failed.reason ? ev->u.send_failed.reason : "not delivered");
    if (m) {
        bounce_message(s, m, send_error_condition(reason), reason);
        xn_unref(m);
    } else {
        log_info(TAG, "%s: delivery error for %s without a message to answer: %s", s->owner,
                 c ? c->jid : "an unknown contact", reason);
    }
    free(reason);
}

static void on_typing(struct session *s, const struct np_event *ev)
{
    static const char *const names[] = {[NP_TYPING_STOPPED] = "active",
                                        [NP_TYPING_ACTIVE] = "composing",
                                        [NP_TYPING_PAUSED] = "paused"};
    struct contact *c = contacts_by_legacy(s->contacts, ev->u.typing.who, 1);
    if (!c || (size_t)ev->u.typing.state >= FERRY_ARRAY_LEN(names))
        return;
    c->chat_states = 1;
    xn_t *m = stanza_new("message", c->jid, s->owner, "chat");
    xn_add_child(m, NS_CHATSTATES, names[ev->u.typing.state]);
    xn_add_child(m, NS_HINTS, "no-store");
    bridge_send(s->b, m);
}

static void on_event(struct session *s, struct np_event *ev)
{
    switch (ev->type) {
    case NP_EV_SIGNED_ON:
        on_signed_on(s, ev);
        break;
    case NP_EV_SIGNED_OFF:
        if (s->leg == LEG_ONLINE || s->leg == LEG_CONNECTING)
            connection_lost(s, "the connection closed");
        break;
    case NP_EV_CONNECTION_ERROR:
        on_connection_error(s, ev);
        break;
    case NP_EV_LOGGED_OUT:
        s->logged_in = 0;
        if (s->leg == LEG_ONLINE || s->leg == LEG_CONNECTING)
            connection_lost(s, "logged out");
        break;
    case NP_EV_BUDDY_PRESENCE:
        on_buddy_presence(s, ev);
        break;
    case NP_EV_BUDDY_ADDED:
        on_buddy_added(s, ev);
        break;
    case NP_EV_BUDDY_REMOVED:
        on_buddy_removed(s, ev);
        break;
    case NP_EV_IM_RECEIVED:
        on_im_received(s, ev);
        break;
    case NP_EV_IM_SEND_FAILED:
        on_im_send_failed(s, ev);
        break;
    case NP_EV_IM_SENT:
        on_im_sent(s, ev);
        break;
    case NP_EV_TYPING:
        on_typing(s, ev);
        break;
    case NP_EV_AUTH_REQUEST:
        on_auth_request(s, ev);
        break;
    case NP_EV_BUDDY_AUTHORIZED:
        on_buddy_authorized(s, ev);
        break;
    case NP_EV_USERINFO:
    case NP_EV_SEARCH_FORM:
    case NP_EV_SEARCH_RESULTS:
        searches_event(s->searches, ev);
        break;
    default:
        log_debug(TAG, "%s: %s event ignored", s->owner, np_event_type_name(ev->type));
        break;
    }
    np_event_free(ev);
}

/* ---- the thread ---- */

static void on_mail(struct session *s, void *mail)
{
    if (*(int *)mail == NP_EVENT_KIND) {
        on_event(s, mail);
        return;
    }
    struct sess_msg *msg = mail;
    xn_t *stanza = msg->stanza;
    enum sess_msg_type type = msg->type;
    free(msg);
    if (type == SESS_MSG_OWNER_PRESENCE) {
        s->presences_read++;
        owner_presence(s, stanza);
    } else if (type == SESS_MSG_TO_CONTACT && stanza_kind(stanza) == STANZA_MESSAGE)
        contact_message(s, stanza);
    else if (type == SESS_MSG_TO_CONTACT)
        contact_presence(s, stanza);
    else if (type == SESS_MSG_REQUEST)
        searches_request(s->searches, stanza, s->leg == LEG_ONLINE, s->reason);
    else if (type == SESS_MSG_LINK_UP)
        on_link_up(s);
}

/* Empties the spilled list; the caller owns what it held (*n presences). */
static xn_t **spilled_take(struct session *s, size_t *n)
{
    pthread_mutex_lock(&s->spill_lock);
    xn_t **spilled = s->spilled;
    *n = s->nspilled;
    s->spilled = NULL;
    s->nspilled = 0;
    pthread_mutex_unlock(&s->spill_lock);
    return spilled;
}

/* The spilled presences are newer than every owner presence posted to the mailbox before them
 * (none is posted while any is spilled): they are taken in only once all of those are read,
 * so that an older presence never overrides the last one. Until then the bit stays set; the
 * presences still to be read are mail, so the thread comes back here without waiting. */
static void take_spilled(struct session *s)
{
    if (s->presences_read != atomic_load(&s->presences_posted)) {
        atomic_fetch_or(&s->requests, SESS_REQ_SPILLED);
        return;
    }
    size_t n;
    xn_t **spilled = spilled_take(s, &n);
    if (n == 0)
        return; /* taken with an earlier batch */
    log_info(TAG, "%s: %zu presence(s) kept aside while the mailbox was full taken in", s->owner,
             n);
    for (size_t i = 0; i < n; i++)
        owner_presence(s, spilled[i]);
    free(spilled);
}

static void check_requests(struct session *s)
{
    int bits = atomic_exchange(&s->requests, 0);
    if ((bits & SESS_REQ_SPILLED) && !(bits & SESS_REQ_END))
        take_spilled(s);
    if (bits & SESS_REQ_END)
        end_session(s, 0, NULL);
    else if (bits & SESS_REQ_SHUTDOWN)
        end_session(s, 1, "The gateway is shutting down");
}

/* After the session left the table: mail still queued goes back to the table, and (with
 * wait) native's LOGGED_OUT is awaited (after it native never touches the mailbox). */
static void drain(struct session *s, int wait)
{
    int64_t deadline = now_ms() + LOGOUT_WAIT_MS;
    for (;;) {
        int64_t left = deadline - now_ms();
        void *mail;
        int rc = mb_recv(s->mb, &mail, wait && s->logged_in ? (int)(left > 0 ? left : 0) : 0);
        if (rc != MB_OK) {
            if (wait && s->logged_in) {
                log_warnx(TAG, "%s: no logout confirmation from the native thread", s->owner);
                s->mailbox_lost = 1;
            }
            return;
        }
        if (*(int *)mail == NP_EVENT_KIND) {
            struct np_event *ev = mail;
            if (ev->type == NP_EV_LOGGED_OUT)
                s->logged_in = 0;
            /* Native answers the messages it still held (IRC flood control) before
             * LOGGED_OUT: the owner hears of each. */
            if (ev->type == NP_EV_IM_SEND_FAILED || ev->type == NP_EV_IM_SENT)
                on_event(s, ev);
            else
                np_event_free(ev);
            continue;
        }
        struct sess_msg *msg = mail;
        xn_t *stanza = msg->stanza;
        enum sess_msg_type type = msg->type;
        free(msg);
        sessions_redispatch(s->table, type, stanza);
    }
}

/* After the session left the table nothing more is spilled: what was goes back to the table,
 * after the mailbox (it is newer). */
static void redispatch_spilled(struct session *s)
{
    size_t n;
    xn_t **spilled = spilled_take(s, &n);
    if (n)
        log_info(TAG, "%s: %zu presence(s) kept aside handed back: the session ends", s->owner, n);
    for (size_t i = 0; i < n; i++)
        sessions_redispatch(s->table, SESS_MSG_OWNER_PRESENCE, spilled[i]);
    free(spilled);
}

static void finish(struct session *s)
{
    if (s->announce) {
        contacts_gone(s);
        send_transport_presence(s, NULL);
    }
    bounce_waiting(s, "recipient-unavailable", "the session with the legacy network ended");
    searches_abort(s->searches, "recipient-unavailable",
                   "the session with the legacy network ended");
    for (size_t i = 0; i < s->nearly; i++)
        xn_unref(s->early[i].stanza);
    if (s->nearly)
        log_info(TAG, "%s: %zu early presence(s) dropped: session ended", s->owner, s->nearly);
    s->nearly = 0;
    /* LOGOUT before leaving the table, so that it reaches native before the LOGIN of any
     * session started for the same owner afterwards. */
    if (s->logged_in && np_send(np_cmd_logout(s->owner)) != NP_OK)
        s->logged_in = 0;
    sessions_detach(s->table, s);
    /* The owner's stanzas go back to the table before native's LOGGED_OUT is awaited (up to
     * LOGOUT_WAIT_MS): from detach on, the owner's new stanzas start a new session, and
     * whatever this one still holds is older, so it must get there first (a spilled
     * unavailable after the new session's available would drop a live resource). The table
     * posts nothing more to a detached session: only native does. */
    drain(s, 0);
    redispatch_spilled(s);
    drain(s, 1);
    /* Only when native stopped before answering (or never heard of the owner). */
    for (size_t i = 0; i < s->nflying; i++) {
        bounce_message(s, s->flying[i].m, "recipient-unavailable",
                       "the session with the legacy network ended");
        xn_unref(s->flying[i].m);
    }
    s->nflying = 0;
    log_info(TAG, "%s: session ended", s->owner);
}

static void *session_main(void *arg)
{
    struct session *s = arg;
    pthread_setname_np(pthread_self(), "ferry-session"); /* for top -H, perf, the bench */
    if (contacts_load(s->contacts, s->b->store, s->owner) < 0)
        log_warnx(TAG, "%s: stored contacts could not be read", s->owner);
    login(s);
    while (!s->ending) {
        void *mail;
        if (mb_recv(s->mb, &mail, next_timeout(s)) == MB_OK)
            on_mail(s, mail);
        check_requests(s);
        if (!s->ending)
            check_timers(s);
    }
    finish(s);
    sessions_finished(s->table, s);
    return NULL;
}

/* ---- the table's side ---- */

void session_mail_free(void *mail)
{
    if (!mail)
        return;
    if (*(int *)mail == NP_EVENT_KIND) {
        np_event_free(mail);
        return;
    }
    struct sess_msg *msg = mail;
    xn_unref(msg->stanza);
    free(msg);
}

struct session *session_start(struct sessions *table, bridge_t *b, const char *owner)
{
    mailbox_t *mb = mb_new(SESSION_MAILBOX_CAPACITY, session_mail_free);
    if (!mb)
        return NULL;
    struct session *s = xcalloc(1, sizeof(*s));
    s->table = table;
    s->b = b;
    s->cfg = b->cfg;
    s->owner = xstrdup(owner);
    s->domain = b->cfg->component_jid;
    s->mb = mb;
    atomic_init(&s->requests, 0);
    pthread_mutex_init(&s->spill_lock, NULL);
    atomic_init(&s->presences_posted, 0);
    s->contacts = contacts_new(s->domain);
    s->searches = searches_new(b, owner);
    s->leg = LEG_CONNECTING;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, STACK_SIZE);
    int rc = pthread_create(&s->thread, &attr, session_main, s);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        log_errorx(TAG, "%s: cannot create a session thread: %s", owner, strerror(rc));
        contacts_free(s->contacts);
        searches_free(s->searches);
        pthread_mutex_destroy(&s->spill_lock);
        mb_free(mb);
        free(s->owner);
        free(s);
        return NULL;
    }
    log_info(TAG, "%s: session started", owner);
    return s;
}

int session_post(struct session *s, enum sess_msg_type type, xn_t *stanza)
{
    struct sess_msg *msg = xmalloc(sizeof(*msg));
    msg->kind = SESS_MSG_KIND;
    msg->type = type;
    msg->stanza = stanza;
    int rc = mb_send(s->mb, msg);
    if (rc != MB_OK)
        free(msg);
    return rc;
}

/* Presences of which only the latest per full JID matters: availability (the resource's
 * state) and probes (one answer does for many). Subscription requests and answers are kept
 * each, in order. */
static const char *coalescing_class(const xn_t *presence)
{
    const char *type = xn_attr(presence, "type");
    if (!type || strcmp(type, "unavailable") == 0)
        return "availability";
    return strcmp(type, "probe") == 0 ? "probe" : NULL;
}

/* Keeps p aside: in place of the spilled presence of the same full JID and class, else in a
 * free slot. 0, or -1 when no slot is left. */
static int spill(struct session *s, xn_t *p)
{
    const char *from = xn_attr(p, "from"), *class = coalescing_class(p);
    for (size_t i = 0; class && from && i < s->nspilled; i++) {
        const char *other = xn_attr(s->spilled[i], "from");
        const char *other_class = coalescing_class(s->spilled[i]);
        if (other && other_class && strcmp(other, from) == 0 && strcmp(other_class, class) == 0) {
            xn_unref(s->spilled[i]);
            s->spilled[i] = p;
            return 0;
        }
    }
    if (s->nspilled == MAX_SPILLED)
        return -1;
    if (!s->spilled)
        s->spilled = xcalloc(MAX_SPILLED, sizeof(*s->spilled));
    s->spilled[s->nspilled++] = p;
    return 0;
}

int session_post_presence(struct session *s, xn_t *presence)
{
    pthread_mutex_lock(&s->spill_lock);
    int rc = MB_EFULL;
    if (s->nspilled == 0) {
        rc = session_post(s, SESS_MSG_OWNER_PRESENCE, presence);
        if (rc == MB_OK)
            atomic_fetch_add(&s->presences_posted, 1);
    }
    int spilled = rc == MB_EFULL && spill(s, presence) == 0;
    pthread_mutex_unlock(&s->spill_lock);
    if (spilled) {
        rc = MB_OK;
        /* No wake-up mail: the mailbox is full or its presences still to be read are. */
        atomic_fetch_or(&s->requests, SESS_REQ_SPILLED);
    }
    return rc;
}

void session_request(struct session *s, int bits)
{
    atomic_fetch_or(&s->requests, bits);
    /* A full mailbox wakes the thread anyway: it looks at the bits after every mail. */
    if (session_post(s, SESS_MSG_WAKE, NULL) != MB_OK)
        log_debug(TAG, "%s: request %d noted without a wake-up", s->owner, bits);
}

const char *session_owner(const struct session *s)
{
    return s->owner;
}

void session_free(struct session *s)
{
    pthread_join(s->thread, NULL);
    if (s->mailbox_lost)
        log_warnx(TAG, "%s: mailbox left allocated: the native thread may still use it", s->owner);
    else
        mb_free(s->mb);
    for (size_t i = 0; i < s->nres; i++) {
        free(s->res[i].jid);
        free(s->res[i].status);
    }
    free(s->res);
    for (size_t i = 0; i < s->nwaiting; i++)
        xn_unref(s->waiting[i]);
    free(s->waiting);
    for (size_t i = 0; i < s->nflying; i++)
        xn_unref(s->flying[i].m);
    free(s->flying);
    for (size_t i = 0; i < s->nspilled; i++)
        xn_unref(s->spilled[i]);
    free(s->spilled);
    pthread_mutex_destroy(&s->spill_lock);
    for (size_t i = 0; i < s->nearly; i++)
        xn_unref(s->early[i].stanza);
    free(s->early);
    contacts_free(s->contacts);
    searches_free(s->searches);
    free(s->username);
    free(s->display_name);
    free(s->reason);
    free(s->sent_status);
    free(s->owner);
    free(s);
}
