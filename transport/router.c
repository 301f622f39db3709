/* The stanza router: checks, one static dispatch table, exactly one answer per IQ get/set. */
#include "transport/router.h"

#include <stdlib.h>
#include <string.h>

#include "lib/jid.h"
#include "lib/log.h"
#include "lib/util.h"
#include "transport/service.h"

#define TAG "router"

struct router {
    char *domain; /* normalized component domain */
    struct service *service;
    struct router_sink sink;
    struct router_hooks hooks;
};

#define NS_REGISTER "jabber:iq:register"
#define NS_SEARCH "jabber:iq:search"

/* Registration waits for a legacy login: the bridge answers later, from its own thread. */
static void route_register(const struct router_call *call, struct router_reply *reply)
{
    const struct router_hooks *hooks = &call->router->hooks;
    if (hooks->register_iq == NULL) {
        reply->condition = "service-unavailable";
        return;
    }
    hooks->register_iq(hooks->ctx, xn_ref(call->stanza));
    reply->deferred = 1;
}

/* A search waits for the legacy network: the owner's session answers later. */
static void route_search(const struct router_call *call, struct router_reply *reply)
{
    const struct router_hooks *hooks = &call->router->hooks;
    if (hooks->search_iq == NULL) {
        reply->condition = "service-unavailable";
        return;
    }
    hooks->search_iq(hooks->ctx, xn_ref(call->stanza));
    reply->deferred = 1;
}

/* The transport's own answers and the bridge's entry points. Each row's namespace is
 * advertised in disco#info, so a row is the whole of "supporting" a namespace. */
static const struct router_route routes[] = {
    {STANZA_IQ, "get", SERVICE_NS_DISCO_INFO, "query", service_disco_info, NULL},
    {STANZA_IQ, "get", SERVICE_NS_DISCO_ITEMS, "query", service_disco_items, NULL},
    {STANZA_IQ, "get", SERVICE_NS_AGENTS, "query", service_agents, NULL},
    {STANZA_IQ, "get", SERVICE_NS_AGENT, "query", service_agent, NULL},
    {STANZA_IQ, "get", SERVICE_NS_GATEWAY, "query", service_gateway_get, NULL},
    {STANZA_IQ, "set", SERVICE_NS_GATEWAY, "query", service_gateway_set, NULL},
    {STANZA_IQ, "get", NS_REGISTER, "query", route_register, NULL},
    {STANZA_IQ, "set", NS_REGISTER, "query", route_register, NULL},
    {STANZA_IQ, "get", NS_SEARCH, "query", route_search, NULL},
    {STANZA_IQ, "set", NS_SEARCH, "query", route_search, NULL},
    {STANZA_IQ, "get", SERVICE_NS_VERSION, "query", service_version, NULL},
    {STANZA_IQ, "get", SERVICE_NS_TIME, "time", service_time, NULL},
    {STANZA_IQ, "get", SERVICE_NS_TIME_LEGACY, "query", service_time_legacy, NULL},
    {STANZA_IQ, "get", SERVICE_NS_LAST, "query", service_last, NULL},
    {STANZA_IQ, "get", SERVICE_NS_VCARD, "vCard", service_vcard, NULL},
    {STANZA_IQ, "get", SERVICE_NS_PING, "ping", service_ping, NULL},
};

size_t router_route_count(void)
{
    return FERRY_ARRAY_LEN(routes);
}

const struct router_route *router_route_at(size_t i)
{
    return i < FERRY_ARRAY_LEN(routes) ? &routes[i] : NULL;
}

/* Walks the features in order, each once; returns the i-th (NULL past the end) and, through
 * count, how many there are. */
static const char *walk_features(size_t want, size_t *count)
{
    const char *seen[2 * FERRY_ARRAY_LEN(routes) + 64];
    size_t n = 0;
    for (size_t i = 0; i < FERRY_ARRAY_LEN(routes); i++) {
        const char *const *extra = routes[i].extra_features;
        size_t extra_count = 0;
        while (extra && extra[extra_count])
            extra_count++;
        for (size_t e = 0; e <= extra_count; e++) {
            const char *feature = e == 0 ? routes[i].ns : extra[e - 1];
            int known = 0;
            for (size_t k = 0; k < n && !known; k++)
                known = strcmp(seen[k], feature) == 0;
            if (!known && n < FERRY_ARRAY_LEN(seen))
                seen[n++] = feature;
        }
    }
    if (count)
        *count = n;
    return want < n ? seen[want] : NULL;
}

size_t router_feature_count(void)
{
    size_t n;
    walk_features(0, &n);
    return n;
}

const char *router_feature_at(size_t i)
{
    return walk_features(i, NULL);
}

router_t *router_new(const char *domain, struct service *svc, const struct router_sink *sink,
                     const struct router_hooks *hooks)
{
    jid_t *jid = jid_parse(domain);
    if (jid == NULL || jid_node(jid) || jid_resource(jid)) {
        log_errorx(TAG, "'%s' is not a valid component domain", domain);
        jid_free(jid);
        return NULL;
    }
    router_t *r = xcalloc(1, sizeof(*r));
    r->domain = xstrdup(jid_domain(jid));
    r->service = svc;
    if (sink)
        r->sink = *sink;
    if (hooks)
        r->hooks = *hooks;
    jid_free(jid);
    return r;
}

void router_free(router_t *router)
{
    if (router == NULL)
        return;
    free(router->domain);
    free(router);
}

int router_send(router_t *router, xn_t *stanza)
{
    if (router->sink.send == NULL) {
        xn_unref(stanza);
        return -1;
    }
    return router->sink.send(router->sink.ctx, stanza);
}

void router_bounce(router_t *router, const xn_t *stanza, const char *condition, const char *text)
{
    if (!stanza_may_bounce(stanza)) {
        log_debug(TAG, "not answering <%s type='%s'> from %s with %s", xn_name(stanza),
                  xn_attr(stanza, "type"), xn_attr(stanza, "from"), condition);
        return;
    }
    router_send(router, stanza_error(stanza, condition, text));
}

static const struct router_route *lookup(enum stanza_kind kind, const char *type,
                                         const xn_t *payload)
{
    for (size_t i = 0; i < FERRY_ARRAY_LEN(routes); i++) {
        const struct router_route *rt = &routes[i];
        if (rt->kind != kind || strcmp(rt->ns, xn_ns(payload)) != 0 ||
            strcmp(rt->element, xn_name(payload)) != 0)
            continue;
        if (rt->type == NULL || (type && strcmp(rt->type, type) == 0))
            return rt;
    }
    return NULL;
}

static void run_handler(router_t *r, const struct router_route *route, xn_t *stanza,
                        const xn_t *payload)
{
    struct router_call call = {
        .router = r, .service = r->service, .stanza = stanza, .payload = payload};
    struct router_reply reply = {0};

    route->handler(&call, &reply);
    if (reply.deferred) {
        xn_unref(reply.stanza);
    } else if (reply.stanza) {
        router_send(r, reply.stanza);
    } else if (reply.condition) {
        router_bounce(r, stanza, reply.condition, reply.text);
    } else if (route->kind == STANZA_IQ) {
        /* A handler bug must not leave the requester waiting forever. */
        log_warnx(TAG, "handler for %s gave no answer", route->ns);
        router_bounce(r, stanza, "internal-server-error", NULL);
    }
}

/* Hands the stanza to a hook (which gets its own reference); 0 when there is no hook. */
static int to_hook(void (*hook)(void *, xn_t *), void *ctx, xn_t *stanza)
{
    if (hook == NULL)
        return 0;
    hook(ctx, xn_ref(stanza));
    return 1;
}

static int is_type(const char *type, const char *want)
{
    return type && strcmp(type, want) == 0;
}

static void route_iq(router_t *r, xn_t *iq, int to_contact)
{
    const char *type = xn_attr(iq, "type");
    if (is_type(type, "result") || is_type(type, "error")) {
        if (!to_hook(to_contact ? r->hooks.to_contact : r->hooks.iq_response, r->hooks.ctx, iq))
            log_debug(TAG, "dropping IQ %s from %s: nothing waits for it", type,
                      xn_attr(iq, "from"));
        return;
    }
    if (!is_type(type, "get") && !is_type(type, "set")) {
        router_bounce(r, iq, "bad-request", "unknown IQ type");
        return;
    }
    if (xn_attr(iq, "id") == NULL) {
        router_bounce(r, iq, "bad-request", "IQ without id");
        return;
    }
    if (to_contact) {
        if (!to_hook(r->hooks.to_contact, r->hooks.ctx, iq))
            router_bounce(r, iq, "service-unavailable", NULL);
        return;
    }
    const xn_t *payload = xn_first_element(iq);
    if (payload == NULL || xn_next_element(payload) != NULL) {
        router_bounce(r, iq, "bad-request", "an IQ carries exactly one payload");
        return;
    }
    const struct router_route *route = lookup(STANZA_IQ, type, payload);
    if (route == NULL) {
        log_debug(TAG, "no handler for IQ %s %s:%s from %s", type, xn_ns(payload), xn_name(payload),
                  xn_attr(iq, "from"));
        router_bounce(r, iq, "service-unavailable", NULL);
        return;
    }
    run_handler(r, route, iq, payload);
}

static void route_message(router_t *r, xn_t *msg, int to_contact)
{
    const char *type = xn_attr(msg, "type");
    if (to_contact && to_hook(r->hooks.to_contact, r->hooks.ctx, msg))
        return;
    if (!to_contact) {
        const char *lookup_type = type ? type : "normal";
        for (const xn_t *p = xn_first_element(msg); p; p = xn_next_element(p)) {
            const struct router_route *route = lookup(STANZA_MESSAGE, lookup_type, p);
            if (route) {
                run_handler(r, route, msg, p);
                return;
            }
        }
    }
    router_bounce(r, msg, "service-unavailable", NULL);
}

static void route_presence(router_t *r, xn_t *presence, int to_contact)
{
    void (*hook)(void *, xn_t *) = to_contact ? r->hooks.to_contact : r->hooks.presence;
    if (!to_hook(hook, r->hooks.ctx, presence))
        log_debug(TAG, "ignoring presence from %s to %s", xn_attr(presence, "from"),
                  xn_attr(presence, "to"));
}

/* 1 when from and to are present, valid, and to is inside our domain; *to_contact tells
 * whether to names a node. Logs and returns 0 otherwise. */
static int check_addresses(router_t *r, const xn_t *stanza, int *to_contact)
{
    const char *from_s = xn_attr(stanza, "from"), *to_s = xn_attr(stanza, "to");
    jid_t *from = NULL, *to = NULL;
    int ok = 0;

    if (from_s == NULL || to_s == NULL) {
        log_warnx(TAG, "dropping <%s> without %s", xn_name(stanza), from_s ? "to" : "from");
        goto done;
    }
    from = jid_parse(from_s);
    to = jid_parse(to_s);
    if (from == NULL || to == NULL) {
        log_warnx(TAG, "dropping <%s> with an invalid %s address", xn_name(stanza),
                  from ? "to" : "from");
        goto done;
    }
    if (strcmp(jid_domain(to), r->domain) != 0) {
        log_warnx(TAG, "dropping <%s> for %s: not in %s", xn_name(stanza), to_s, r->domain);
        goto done;
    }
    *to_contact = jid_node(to) != NULL;
    ok = 1;
done:
    jid_free(from);
    jid_free(to);
    return ok;
}

void router_route(router_t *router, xn_t *stanza)
{
    int to_contact = 0;
    enum stanza_kind kind = stanza_kind(stanza);

    if (kind == STANZA_OTHER) {
        log_warnx(TAG, "dropping unknown top-level element <%s xmlns='%s'>", xn_name(stanza),
                  xn_ns(stanza));
        goto done;
    }
    if (!check_addresses(router, stanza, &to_contact))
        goto done;
    switch (kind) {
    case STANZA_IQ:
        route_iq(router, stanza, to_contact);
        break;
    case STANZA_MESSAGE:
        route_message(router, stanza, to_contact);
        break;
    case STANZA_PRESENCE:
        route_presence(router, stanza, to_contact);
        break;
    case STANZA_OTHER:
        break;
    }
done:
    xn_unref(stanza);
}
