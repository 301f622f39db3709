/* The transport's own answers on its bare domain: service discovery, the white paper's
 * jabber:iq:agents and jabber:iq:agent, XEP-0100's jabber:iq:gateway, version, time (XEP-0202
 * and the old jabber:iq:time), last activity (uptime), the service's vCard and ping.
 *
 * Each handler has the router's handler signature and is listed in the router's table; the
 * service object holds what the answers need (configuration, start time, clocks). */
#ifndef FERRY_TRANSPORT_SERVICE_H
#define FERRY_TRANSPORT_SERVICE_H

#include <stdint.h>
#include <time.h>

#include "lib/config.h"
#include "transport/router.h"

#define SERVICE_NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define SERVICE_NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define SERVICE_NS_AGENTS "jabber:iq:agents"
#define SERVICE_NS_AGENT "jabber:iq:agent"
#define SERVICE_NS_GATEWAY "jabber:iq:gateway"
#define SERVICE_NS_VERSION "jabber:iq:version"
#define SERVICE_NS_TIME "urn:xmpp:time"
#define SERVICE_NS_TIME_LEGACY "jabber:iq:time"
#define SERVICE_NS_LAST "jabber:iq:last"
#define SERVICE_NS_VCARD "vcard-temp"
#define SERVICE_NS_PING "urn:xmpp:ping"

typedef struct service service_t;

/* Clocks, injectable for tests; NULL members mean now_ms() and time(NULL). */
struct service_clock {
    int64_t (*monotonic_ms)(void *ctx);
    time_t (*wall)(void *ctx);
    void *ctx;
};

/* New service for cfg (borrowed: must outlive the service). clock may be NULL. The start
 * time for jabber:iq:last is taken now. Caller frees with service_free. */
service_t *service_new(const struct ferry_config *cfg, const struct service_clock *clock);
void service_free(service_t *svc);

/* The XEP-0030 gateway identity type for a libpurple protocol id ("prpl-irc" -> "irc"); for a
 * protocol with no registered type, the id without its "prpl-" prefix. */
const char *service_gateway_type(const char *protocol);
/* The name of a legacy address on that network ("IRC nickname"); NULL when unknown. */
const char *service_prompt(const char *protocol);

/* Handlers for the router's table (see router.h for the contract). */
void service_disco_info(const struct router_call *call, struct router_reply *reply);
void service_disco_items(const struct router_call *call, struct router_reply *reply);
void service_agents(const struct router_call *call, struct router_reply *reply);
void service_agent(const struct router_call *call, struct router_reply *reply);
void service_gateway_get(const struct router_call *call, struct router_reply *reply);
void service_gateway_set(const struct router_call *call, struct router_reply *reply);
void service_version(const struct router_call *call, struct router_reply *reply);
void service_time(const struct router_call *call, struct router_reply *reply);
void service_time_legacy(const struct router_call *call, struct router_reply *reply);
void service_last(const struct router_call *call, struct router_reply *reply);
void service_vcard(const struct router_call *call, struct router_reply *reply);
void service_ping(const struct router_call *call, struct router_reply *reply);

#endif
