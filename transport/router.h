/* The stanza router: every stanza that arrives on the component link goes through
 * router_route(), which checks it, picks a handler from one static table keyed by
 * (stanza kind, type, payload namespace, payload element), and sends exactly one answer to
 * every IQ get/set. disco#info's feature list is generated from the same table
 * (router_feature_at), so what Ferry advertises cannot drift from what it answers.
 *
 * Rules (RFC 6120 section 8): an IQ get/set without a handler gets service-unavailable; an IQ
 * without id or with an unknown type gets bad-request; an IQ result/error or a message of type
 * error is never answered with an error; a stanza without from or to is dropped and logged.
 * Stanzas to the bare domain go to the table; stanzas to node@domain go to the to_contact hook
 * (sessions, a later issue) or, without it, are answered service-unavailable (IQ get/set and
 * messages) or ignored (presence).
 *
 * Threads: the router runs on the component thread; handlers run there and must not block.
 * A handler that must wait (a legacy login) sets reply->deferred and answers later through
 * router_send(), which any thread may call. */
#ifndef FERRY_TRANSPORT_ROUTER_H
#define FERRY_TRANSPORT_ROUTER_H

#include <stddef.h>

#include "lib/xml.h"
#include "lib/stanza.h"

typedef struct router router_t;
struct service;

/* Where answers go; send takes ownership of the stanza in every case (component_send). */
struct router_sink {
    int (*send)(void *ctx, xn_t *stanza);
    void *ctx;
};

/* The entry points a later issue fills (sessions, registration). Each takes ownership of the
 * stanza. A NULL hook gets the default behaviour written next to it. */
struct router_hooks {
    /* Any stanza for node@domain. NULL: IQ get/set and messages not of type error are answered
     * service-unavailable, everything else is dropped (debug log). */
    void (*to_contact)(void *ctx, xn_t *stanza);
    /* A presence to the bare domain (an owner coming online). NULL: ignored (debug log). */
    void (*presence)(void *ctx, xn_t *stanza);
    /* An IQ result or error to the domain: the answer to a request Ferry sent. NULL: dropped. */
    void (*iq_response)(void *ctx, xn_t *stanza);
    void *ctx;
    /* jabber:iq:register get/set to the bare domain (the table's rows for it defer to this,
     * which must answer). NULL: service-unavailable. */
    void (*register_iq)(void *ctx, xn_t *stanza);
    /* jabber:iq:search get/set to the bare domain (deferred like register_iq: the search runs
     * on the legacy network). NULL: service-unavailable. */
    void (*search_iq)(void *ctx, xn_t *stanza);
};

/* What a handler is called with. The stanza belongs to the router for the call; a deferred
 * handler that needs it later takes its own reference with xn_ref(). */
struct router_call {
    router_t *router;
    struct service *service;
    xn_t *stanza;
    const xn_t *payload; /* the child element that matched the table */
};

/* What a handler answers: exactly one of stanza (the reply, which the router sends),
 * condition (the router sends that stanza error), or deferred. A handler that sets nothing
 * gets internal-server-error sent for it, so every IQ gets its one answer. */
struct router_reply {
    xn_t *stanza;
    const char *condition;
    const char *text; /* optional, with condition */
    int deferred;
};

typedef void (*router_handler_fn)(const struct router_call *call, struct router_reply *reply);

/* One row of the dispatch table. */
struct router_route {
    enum stanza_kind kind;
    const char *type;    /* "get", "set" (IQ), a message or presence type, or NULL: any */
    const char *ns;      /* the payload's namespace: also advertised in disco#info */
    const char *element; /* the payload's element name */
    router_handler_fn handler;
    const char *const *extra_features; /* further disco#info features, NULL-terminated */
};

/* New router for the component domain (copied). svc, sink and hooks are borrowed (hooks may
 * be NULL) and must outlive the router. Returns NULL when domain is not a valid JID. */
router_t *router_new(const char *domain, struct service *svc, const struct router_sink *sink,
                     const struct router_hooks *hooks);
void router_free(router_t *router);

/* Routes one stanza from the server; takes ownership of the reference. */
void router_route(router_t *router, xn_t *stanza);

/* Sends a stanza through the sink; takes ownership. Returns the sink's result. */
int router_send(router_t *router, xn_t *stanza);

/* Answers stanza with a stanza error unless it must not be answered (stanza_may_bounce).
 * Does not take ownership of stanza. */
void router_bounce(router_t *router, const xn_t *stanza, const char *condition, const char *text);

/* The dispatch table, for tests and documentation. */
size_t router_route_count(void);
const struct router_route *router_route_at(size_t i);

/* disco#info features: every namespace of the table, then the extra features, each once, in
 * table order. NULL when i is out of range. */
size_t router_feature_count(void);
const char *router_feature_at(size_t i);

#endif
