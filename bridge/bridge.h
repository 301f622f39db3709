/* bridge/: everything that needs both sides. The only header transport/ includes from here.
 *
 * transport/ creates the bridge at start with a sink (how stanzas reach the XMPP server: the
 * component's outbound queue), then hands it the stanzas that belong to it. Every entry point
 * takes ownership of the stanza reference it is given, returns at once (work that waits runs
 * on registration or session threads), and guarantees that every IQ get/set it was handed gets
 * exactly one answer through the sink. */
#ifndef FERRY_BRIDGE_BRIDGE_H
#define FERRY_BRIDGE_BRIDGE_H

#include "lib/config.h"
#include "lib/xml.h"

/* Where stanzas go. send takes ownership of the stanza in every case and may be called from
 * any thread; it returns BRIDGE_SINK_OK, or one of the codes below when the stanza was
 * dropped: the store-backed outbox keeps a message refused as full or closed ("not now") and
 * deletes one refused as invalid ("never"). */
enum {
    BRIDGE_SINK_OK = 0,
    BRIDGE_SINK_EINVAL = -2, /* no valid to, or from outside the transport's domain */
    BRIDGE_SINK_EFULL = -3,  /* the outbound queue is full: a drained notice follows */
    BRIDGE_SINK_ECLOSED = -4 /* the link is shut down for good (Ferry is stopping) */
};
struct bridge_sink {
    int (*send)(void *ctx, xn_t *stanza);
    void *ctx;
};

typedef struct bridge bridge_t;

/* Starts the native (libpurple) thread, which checks [legacy], then opens the store under
 * [storage] path (creating the key file on first start): a bad [legacy] leaves nothing
 * there. cfg and sink are borrowed and must outlive the bridge. Returns NULL with *error set
 * to a new message (caller frees) when anything is wrong. */
bridge_t *bridge_new(const struct ferry_config *cfg, const struct bridge_sink *sink, char **error);
/* `ferry --check`: [legacy] checked against libpurple without touching [storage] (see
 * np_check_config). 0, or -1 with every problem in *problems ("[legacy] key: ...", *count of
 * them; caller frees each and the array). The process must exit afterwards: bridge_new
 * cannot follow it. */
int bridge_check_config(const struct ferry_config *cfg, char ***problems, size_t *count);
/* Ends every session and registration thread, stops the native thread, closes the store. */
void bridge_free(bridge_t *b);

/* The component link came up (first time, or again after a loss): probe every registered
 * owner's presence so those online get their sessions back without doing anything. */
void bridge_link_up(bridge_t *b);
/* The component link was lost: messages from contacts to owners wait in the store (and so
 * survive a restart) until it is back. */
void bridge_link_down(bridge_t *b);
/* The link's outbound queue, which refused a stanza because it was full, has room again
 * (component thread): messages the store still holds for owners go on, in order. */
void bridge_link_drained(bridge_t *b);
/* Shutdown (SIGTERM): tell every online owner their contacts and the transport are going
 * unavailable (through the sink), then log everybody out. Returns when the presences are
 * queued. */
void bridge_shutdown(bridge_t *b);

/* jabber:iq:register get or set to the transport's domain. */
void bridge_iq_register(bridge_t *b, xn_t *iq);
/* jabber:iq:search get or set to the transport's domain. */
void bridge_iq_search(bridge_t *b, xn_t *iq);
/* A presence addressed to the transport's bare domain (an owner's availability, a
 * subscription request to the transport, a probe). */
void bridge_presence(bridge_t *b, xn_t *presence);
/* Any stanza addressed to contact@domain (message, presence, iq). */
void bridge_to_contact(bridge_t *b, xn_t *stanza);

#endif
