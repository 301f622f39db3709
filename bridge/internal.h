/* What the modules of bridge/ share among themselves. Not for transport/. */
#ifndef FERRY_BRIDGE_INTERNAL_H
#define FERRY_BRIDGE_INTERNAL_H

#include "bridge/bridge.h"
#include "bridge/store.h"
#include "lib/config.h"
#include "lib/xml.h"

struct sessions; /* bridge/sessions.c: the global table, owner bare JID -> session */

struct bridge {
    const struct ferry_config *cfg;
    struct bridge_sink sink;
    struct store *store;
    struct sessions *sessions;
    struct pending *pending; /* bridge/pending.c */
};

/* Sends a stanza through the sink (takes ownership); 0 or negative when dropped. */
int bridge_send(bridge_t *b, xn_t *stanza);
/* Answers stanza with a stanza error through the sink, unless it must not be answered
 * (stanza_may_bounce). Does not take ownership. text may be NULL. */
void bridge_bounce(bridge_t *b, const xn_t *stanza, const char *condition, const char *text);

/* ---- bridge/pending.c: messages to owners kept in the store while the link is down ---- */
struct pending *pending_new(bridge_t *b);
void pending_free(struct pending *p);
/* Called by bridge_send for every stanza: 1 when it took the stanza (a contact's message to
 * an owner, kept in the store while the link is down), 0 when the caller sends it. */
int pending_keep(struct pending *p, xn_t *stanza);
/* The link is up: hands on what the store kept, oldest first, then lets messages through. */
void pending_link_up(struct pending *p);
void pending_link_down(struct pending *p);

/* ---- bridge/contacts.c ---- */
/* The JID node (new string, caller frees) a contact with this legacy name goes by: its
 * XEP-0106 escaping, or a digest node when nodeprep refuses that (as contacts_by_legacy
 * gives it). NULL for an empty name. For stored contacts without a session (<remove/>). */
char *contacts_node_of(const char *legacy);

/* ---- bridge/register.c ---- */
/* A presence from an owner to the transport's bare domain about the subscription between
 * them (subscribe, subscribed, unsubscribe, unsubscribed). Returns 1 when it handled (and took
 * ownership of) the stanza, 0 when it is not a subscription presence (caller keeps it). */
int register_presence(bridge_t *b, xn_t *presence);
/* jabber:iq:register get/set: see bridge_iq_register. */
void register_iq(bridge_t *b, xn_t *iq);
/* Waits for every registration thread to finish (bounded by the registration timeout). */
void register_shutdown(bridge_t *b);

/* ---- bridge/sessions.c: the session table and the session threads ---- */
struct sessions *sessions_new(bridge_t *b);
/* Ends every session (no presences sent) and frees the table. */
void sessions_free(struct sessions *s);
/* Availability, unavailability or probe from an owner to the transport (takes ownership). */
void sessions_presence(struct sessions *s, xn_t *presence);
/* Any stanza for contact@domain (takes ownership). */
void sessions_to_contact(struct sessions *s, xn_t *stanza);
/* An IQ the owner's session answers through the legacy network (jabber:iq:search to the
 * domain, vcard-temp get to a contact; takes ownership). Without a session: an error saying
 * to come online first, or registration-required. */
void sessions_request(struct sessions *s, xn_t *iq);
/* The link came up: tell every running session (its owner's resources are rechecked, see
 * SESS_LINK_GRACE_MS), then probe every registered owner. */
void sessions_probe_all(struct sessions *s);
/* SIGTERM: unavailable from every contact and the transport to every online owner, then
 * legacy logout; returns when the presences are queued. */
void sessions_shutdown(struct sessions *s);
/* Ends owner's session if one runs (legacy logout, no presences): registration removal and
 * credential changes. Returns when the session is gone. */
void sessions_end_owner(struct sessions *s, const char *owner_bare);

#endif
