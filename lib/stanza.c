/* Replies and RFC 6120 stanza errors. */
#include "lib/stanza.h"

#include <string.h>

#include "lib/util.h"

enum stanza_kind stanza_kind(const xn_t *stanza)
{
    if (strcmp(xn_ns(stanza), XN_NS_COMPONENT) != 0)
        return STANZA_OTHER;
    const char *name = xn_name(stanza);
    if (strcmp(name, "message") == 0)
        return STANZA_MESSAGE;
    if (strcmp(name, "presence") == 0)
        return STANZA_PRESENCE;
    if (strcmp(name, "iq") == 0)
        return STANZA_IQ;
    return STANZA_OTHER;
}

/* A new element named like stanza, addressed back to its sender. */
static xn_t *reply_to(const xn_t *stanza, const char *type)
{
    xn_t *reply = xn_new(XN_NS_COMPONENT, xn_name(stanza));
    xn_set_attr(reply, "type", type);
    xn_set_attr(reply, "id", xn_attr(stanza, "id"));
    xn_set_attr(reply, "from", xn_attr(stanza, "to"));
    xn_set_attr(reply, "to", xn_attr(stanza, "from"));
    return reply;
}

xn_t *stanza_iq_result(const xn_t *iq)
{
    return reply_to(iq, "result");
}

xn_t *stanza_iq_result_with(const xn_t *iq, const char *ns, const char *name, xn_t **payload)
{
    xn_t *reply = reply_to(iq, "result");
    xn_t *child = xn_add_child(reply, ns, name);
    if (payload)
        *payload = child;
    return reply;
}

/* RFC 6120 section 8.3.3: the type each defined condition is usually sent with. */
static const struct {
    const char *condition;
    const char *type;
} error_types[] = {
    {"bad-request", "modify"},
    {"conflict", "cancel"},
    {"feature-not-implemented", "cancel"},
    {"forbidden", "auth"},
    {"gone", "cancel"},
    {"internal-server-error", "cancel"},
    {"item-not-found", "cancel"},
    {"jid-malformed", "modify"},
    {"not-acceptable", "modify"},
    {"not-allowed", "cancel"},
    {"not-authorized", "auth"},
    {"policy-violation", "modify"},
    {"recipient-unavailable", "wait"},
    {"redirect", "modify"},
    {"registration-required", "auth"},
    {"remote-server-not-found", "cancel"},
    {"remote-server-timeout", "wait"},
    {"resource-constraint", "wait"},
    {"service-unavailable", "cancel"},
    {"subscription-required", "auth"},
    {"undefined-condition", "cancel"},
    {"unexpected-request", "wait"},
};

const char *stanza_error_type(const char *condition)
{
    for (size_t i = 0; i < FERRY_ARRAY_LEN(error_types); i++)
        if (strcmp(error_types[i].condition, condition) == 0)
            return error_types[i].type;
    return "cancel";
}

xn_t *stanza_error(const xn_t *stanza, const char *condition, const char *text)
{
    xn_t *reply = reply_to(stanza, "error");
    xn_t *error = xn_add_child(reply, NULL, "error");
    xn_set_attr(error, "type", stanza_error_type(condition));
    xn_add_child(error, XN_NS_STANZAS, condition);
    if (text)
        xn_add_child_text(error, XN_NS_STANZAS, "text", text);
    return reply;
}

int stanza_may_bounce(const xn_t *stanza)
{
    const char *type = xn_attr(stanza, "type");
    if (type == NULL)
        return 1;
    if (strcmp(type, "error") == 0)
        return 0;
    return !(stanza_kind(stanza) == STANZA_IQ && strcmp(type, "result") == 0);
}
