/* The transport's own answers: disco, agents, gateway, version, time, last, vCard, ping. */
#include "transport/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "lib/jid.h"
#include "lib/util.h"
#include "lib/stanza.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "unknown"
#endif

struct service {
    const struct ferry_config *cfg;
    struct service_clock clock;
    int64_t start_ms;
    char *os;          /* "Linux 6.1.0-18-amd64": uname's system and release */
    char *description; /* "IRC gateway to irc.example.net" */
};

/* XEP-0030 registry types of the "gateway" category, and how each network names an address.
 * GroupWise, Bonjour and Zephyr have no registered type: they fall back to the bare id. */
static const struct {
    const char *protocol;
    const char *type;
    const char *prompt;
} protocols[] = {
    {"prpl-irc", "irc", "IRC nickname"},
    {"prpl-jabber", "xmpp", "XMPP address"},
    {"prpl-simple", "simple", "SIP address"},
    {"prpl-gg", "gadu-gadu", "Gadu-Gadu number"},
    {"prpl-meanwhile", "sametime", "Sametime user ID"},
    {"prpl-novell", "novell", "GroupWise user ID"},
    {"prpl-bonjour", "bonjour", "Bonjour name"},
    {"prpl-zephyr", "zephyr", "Zephyr user name"},
    {"prpl-aim", "aim", "AIM screen name"},
    {"prpl-icq", "icq", "ICQ number"},
    {"prpl-yahoo", "yahoo", "Yahoo! ID"},
    {"prpl-msn", "msn", "Messenger address"},
    {"prpl-qq", "qq", "QQ number"},
    {"prpl-myspace", "myspaceim", "MySpaceIM name"},
};

const char *service_gateway_type(const char *protocol)
{
    for (size_t i = 0; i < FERRY_ARRAY_LEN(protocols); i++)
        if (strcmp(protocols[i].protocol, protocol) == 0)
            return protocols[i].type;
    return strncmp(protocol, "prpl-", 5) == 0 && protocol[5] ? protocol + 5 : protocol;
}

const char *service_prompt(const char *protocol)
{
    for (size_t i = 0; i < FERRY_ARRAY_LEN(protocols); i++)
        if (strcmp(protocols[i].protocol, protocol) == 0)
            return protocols[i].prompt;
    return NULL;
}

static int64_t mono_ms(const service_t *svc)
{
    return svc->clock.monotonic_ms ? svc->clock.monotonic_ms(svc->clock.ctx) : now_ms();
}

static time_t wall_time(const service_t *svc)
{
    return svc->clock.wall ? svc->clock.wall(svc->clock.ctx) : time(NULL);
}

static const char *legacy_name(const service_t *svc)
{
    return svc->cfg->legacy_name ? svc->cfg->legacy_name : svc->cfg->legacy_protocol;
}

/* The prompt, or "<name> address" for protocols this table does not know. */
static char *prompt_text(const service_t *svc)
{
    const char *prompt = service_prompt(svc->cfg->legacy_protocol);
    return prompt ? xstrdup(prompt) : xasprintf("%s address", legacy_name(svc));
}

service_t *service_new(const struct ferry_config *cfg, const struct service_clock *clock)
{
    service_t *svc = xcalloc(1, sizeof(*svc));
    struct utsname un;

    svc->cfg = cfg;
    if (clock)
        svc->clock = *clock;
    svc->start_ms = mono_ms(svc);
    svc->os = uname(&un) == 0 ? xasprintf("%s %s", un.sysname, un.release) : xstrdup("unknown");
    if (cfg->legacy_server)
        svc->description = xasprintf("%s gateway to %s", legacy_name(svc), cfg->legacy_server);
    else
        svc->description = xasprintf("%s gateway", legacy_name(svc));
    return svc;
}

void service_free(service_t *svc)
{
    if (svc == NULL)
        return;
    free(svc->os);
    free(svc->description);
    free(svc);
}

void service_disco_info(const struct router_call *call, struct router_reply *reply)
{
    const service_t *svc = call->service;
    xn_t *query;

    if (xn_attr(call->payload, "node")) {
        reply->condition = "item-not-found";
        return;
    }
    reply->stanza = stanza_iq_result_with(call->stanza, SERVICE_NS_DISCO_INFO, "query", &query);
    xn_t *identity = xn_add_child(query, NULL, "identity");
    xn_set_attr(identity, "category", "gateway");
    xn_set_attr(identity, "type", service_gateway_type(svc->cfg->legacy_protocol));
    xn_set_attr(identity, "name", legacy_name(svc));
    for (size_t i = 0; i < router_feature_count(); i++)
        xn_set_attr(xn_add_child(query, NULL, "feature"), "var", router_feature_at(i));
}

void service_disco_items(const struct router_call *call, struct router_reply *reply)
{
    if (xn_attr(call->payload, "node")) {
        reply->condition = "item-not-found";
        return;
    }
    reply->stanza = stanza_iq_result_with(call->stanza, SERVICE_NS_DISCO_ITEMS, "query", NULL);
}

/* <agent jid=domain> as the white paper's jabber:iq:agents and jabber:iq:agent give it. */
static void add_agent(const service_t *svc, xn_t *query)
{
    char *prompt = prompt_text(svc);
    xn_t *agent = xn_add_child(query, NULL, "agent");
    xn_set_attr(agent, "jid", svc->cfg->component_jid);
    xn_add_child_text(agent, NULL, "name", legacy_name(svc));
    xn_add_child_text(agent, NULL, "description", svc->description);
    xn_add_child_text(agent, NULL, "transport", prompt);
    xn_add_child_text(agent, NULL, "service", service_gateway_type(svc->cfg->legacy_protocol));
    xn_add_child(agent, NULL, "register");
    xn_add_child(agent, NULL, "search");
    free(prompt);
}

void service_agents(const struct router_call *call, struct router_reply *reply)
{
    xn_t *query;
    reply->stanza = stanza_iq_result_with(call->stanza, SERVICE_NS_AGENTS, "query", &query);
    add_agent(call->service, query);
}

void service_agent(const struct router_call *call, struct router_reply *reply)
{
    xn_t *query;
    reply->stanza = stanza_iq_result_with(call->stanza, SERVICE_NS_AGENT, "query", &query);
    add_agent(call->service, query);
}

void service_gateway_get(const struct router_call *call, struct router_reply *reply)
{
    const service_t *svc = call->service;
    char *prompt = prompt_text(svc);
    char *desc = xasprintf("Enter the %s of the contact you would like to add.", prompt);
    xn_t *query;

    reply->stanza = stanza_iq_result_with(call->stanza, SERVICE_NS_GATEWAY, "query", &query);
    xn_add_child_text(query, NULL, "desc", desc);
    xn_add_child_text(query, NULL, "prompt", prompt);
    free(desc);
    free(prompt);
}

void service_gateway_set(const struct router_call *call, struct router_reply *reply)
{
    const service_t *svc = call->service;
    char *legacy = xn_child_text(call->payload, SERVICE_NS_GATEWAY, "prompt");
    char *node = legacy && legacy[0] ? jid_node_from_legacy(legacy) : NULL;
    jid_t *jid = node ? jid_new(node, svc->cfg->component_jid, NULL) : NULL;
    xn_t *query;

    if (jid == NULL) {
        reply->condition = "bad-request";
        reply->text = legacy && legacy[0] ? "this address cannot be mapped to a JID"
                                          : "a <prompt/> with the legacy address is required";
        goto done;
    }
    reply->stanza = stanza_iq_result_with(call->stanza, SERVICE_NS_GATEWAY, "query", &query);
    xn_add_child_text(query, NULL, "jid", jid_bare(jid));
done:
    jid_free(jid);
    free(node);
    free(legacy);
}

void service_version(const struct router_call *call, struct router_reply *reply)
{
    xn_t *query;
    reply->stanza = stanza_iq_result_with(call->stanza, SERVICE_NS_VERSION, "query", &query);
    xn_add_child_text(query, NULL, "name", "Ferry");
    xn_add_child_text(query, NULL, "version", FERRY_VERSION);
    xn_add_child_text(query, NULL, "os", call->service->os);
}

/* XEP-0202: the offset from UTC as "+hh:mm" / "-hh:mm". */
static void format_tzo(long gmtoff, char out[8])
{
    char sign = gmtoff < 0 ? '-' : '+';
    long off = gmtoff < 0 ? -gmtoff : gmtoff;
    snprintf(out, 8, "%c%02ld:%02ld", sign, (off / 3600) % 100, (off / 60) % 60);
}

void service_time(const struct router_call *call, struct router_reply *reply)
{
    time_t now = wall_time(call->service);
    struct tm utc, local;
    char utc_text[32], tzo[8];
    xn_t *time_el;

    gmtime_r(&now, &utc);
    localtime_r(&now, &local);
    strftime(utc_text, sizeof(utc_text), "%Y-%m-%dT%H:%M:%SZ", &utc);
    format_tzo(local.tm_gmtoff, tzo);
    reply->stanza = stanza_iq_result_with(call->stanza, SERVICE_NS_TIME, "time", &time_el);
    xn_add_child_text(time_el, NULL, "tzo", tzo);
    xn_add_child_text(time_el, NULL, "utc", utc_text);
}

void service_time_legacy(const struct router_call *call, struct router_reply *reply)
{
    time_t now = wall_time(call->service);
    struct tm utc, local;
    char utc_text[32], display[64];
    xn_t *query;

    gmtime_r(&now, &utc);
    localtime_r(&now, &local);
    /* XEP-0090: CCYYMMDDThh:mm:ss in UTC, the zone's abbreviation, and a readable local time. */
    strftime(utc_text, sizeof(utc_text), "%Y%m%dT%H:%M:%S", &utc);
    strftime(display, sizeof(display), "%a %b %d %H:%M:%S %Y", &local);
    reply->stanza = stanza_iq_result_with(call->stanza, SERVICE_NS_TIME_LEGACY, "query", &query);
    xn_add_child_text(query, NULL, "utc", utc_text);
    xn_add_child_text(query, NULL, "tz", local.tm_zone ? local.tm_zone : "UTC");
    xn_add_child_text(query, NULL, "display", display);
}

void service_last(const struct router_call *call, struct router_reply *reply)
{
    const service_t *svc = call->service;
    int64_t up = (mono_ms(svc) - svc->start_ms) / 1000;
    char seconds[24];
    xn_t *query;

    snprintf(seconds, sizeof(seconds), "%lld", (long long)(up > 0 ? up : 0));
    reply->stanza = stanza_iq_result_with(call->stanza, SERVICE_NS_LAST, "query", &query);
    xn_set_attr(query, "seconds", seconds);
}

void service_vcard(const struct router_call *call, struct router_reply *reply)
{
    const service_t *svc = call->service;
    char *url = xasprintf("xmpp:%s", svc->cfg->component_jid);
    xn_t *vcard;

    reply->stanza = stanza_iq_result_with(call->stanza, SERVICE_NS_VCARD, "vCard", &vcard);
    xn_add_child_text(vcard, NULL, "FN", legacy_name(svc));
    xn_add_child_text(vcard, NULL, "DESC", svc->description);
    xn_add_child_text(vcard, NULL, "URL", url);
    free(url);
}

void service_ping(const struct router_call *call, struct router_reply *reply)
{
    reply->stanza = stanza_iq_result(call->stanza);
}
