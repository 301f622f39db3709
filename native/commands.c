/* Typed commands and events: plain structs that own every string they hold, so they can cross
 * threads (and later processes) without pointing into the other side's memory. */
#include "native/native.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static struct np_field *fields_copy(const struct np_field *fields, size_t count)
{
    if (count == 0)
        return NULL;
    struct np_field *out = xcalloc(count, sizeof(*out));
    for (size_t i = 0; i < count; i++) {
        out[i].name = xstrdup(fields[i].name ? fields[i].name : "");
        out[i].value = xstrdup(fields[i].value ? fields[i].value : "");
    }
    return out;
}

static void fields_free(struct np_field *fields, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(fields[i].name);
        free(fields[i].value);
    }
    free(fields);
}

static char **strings_copy(const char *const *strings, size_t count)
{
    if (count == 0)
        return NULL;
    char **out = xcalloc(count, sizeof(*out));
    for (size_t i = 0; i < count; i++)
        out[i] = xstrdup(strings[i] ? strings[i] : "");
    return out;
}

static void strings_free(char **strings, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(strings[i]);
    free(strings);
}

/* ---- commands ---- */

static struct np_cmd *cmd_new(enum np_cmd_type type, const char *owner)
{
    struct np_cmd *cmd = xcalloc(1, sizeof(*cmd));
    cmd->type = type;
    cmd->owner = xstrdup(owner);
    return cmd;
}

struct np_cmd *np_cmd_login(const char *owner, const char *username, const char *password,
                            mailbox_t *mailbox)
{
    struct np_cmd *cmd = cmd_new(NP_CMD_LOGIN, owner);
    cmd->u.login.username = xstrdup(username);
    cmd->u.login.password = xstrdup(password ? password : "");
    cmd->u.login.mailbox = mailbox;
    return cmd;
}

struct np_cmd *np_cmd_logout(const char *owner)
{
    return cmd_new(NP_CMD_LOGOUT, owner);
}

struct np_cmd *np_cmd_send_im(const char *owner, const char *to, const char *text)
{
    struct np_cmd *cmd = cmd_new(NP_CMD_SEND_IM, owner);
    cmd->u.im.to = xstrdup(to);
    cmd->u.im.text = xstrdup(text);
    return cmd;
}

struct np_cmd *np_cmd_set_status(const char *owner, enum np_state state, const char *message)
{
    struct np_cmd *cmd = cmd_new(NP_CMD_SET_STATUS, owner);
    cmd->u.status.state = state;
    cmd->u.status.message = dup_or_null(message);
    return cmd;
}

struct np_cmd *np_cmd_add_buddy(const char *owner, const char *who, const char *alias,
                                const char *group)
{
    struct np_cmd *cmd = cmd_new(NP_CMD_ADD_BUDDY, owner);
    cmd->u.buddy.who = xstrdup(who);
    cmd->u.buddy.alias = dup_or_null(alias);
    cmd->u.buddy.group = dup_or_null(group);
    return cmd;
}

struct np_cmd *np_cmd_remove_buddy(const char *owner, const char *who)
{
    struct np_cmd *cmd = cmd_new(NP_CMD_REMOVE_BUDDY, owner);
    cmd->u.buddy.who = xstrdup(who);
    return cmd;
}

struct np_cmd *np_cmd_authorize(const char *owner, uint64_t id, int accept)
{
    struct np_cmd *cmd = cmd_new(NP_CMD_AUTHORIZE, owner);
    cmd->u.authorize.id = id;
    cmd->u.authorize.accept = accept ? 1 : 0;
    return cmd;
}

struct np_cmd *np_cmd_send_typing(const char *owner, const char *who, enum np_typing state)
{
    struct np_cmd *cmd = cmd_new(NP_CMD_SEND_TYPING, owner);
    cmd->u.typing.who = xstrdup(who);
    cmd->u.typing.state = state;
    return cmd;
}

struct np_cmd *np_cmd_get_info(const char *owner, uint64_t request_id, const char *who)
{
    struct np_cmd *cmd = cmd_new(NP_CMD_GET_INFO, owner);
    cmd->u.info.request_id = request_id;
    cmd->u.info.who = xstrdup(who);
    return cmd;
}

struct np_cmd *np_cmd_search(const char *owner, uint64_t request_id, const struct np_field *fields,
                             size_t field_count)
{
    struct np_cmd *cmd = cmd_new(NP_CMD_SEARCH, owner);
    cmd->u.search.request_id = request_id;
    cmd->u.search.fields = fields_copy(fields, field_count);
    cmd->u.search.field_count = field_count;
    return cmd;
}

/* Passwords are wiped before their memory goes back to the allocator. */
static void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void np_cmd_free(struct np_cmd *cmd)
{
    if (!cmd)
        return;
    switch (cmd->type) {
    case NP_CMD_LOGIN:
        free(cmd->u.login.username);
        free_secret(cmd->u.login.password);
        break;
    case NP_CMD_SEND_IM:
        free(cmd->u.im.to);
        free(cmd->u.im.text);
        break;
    case NP_CMD_SET_STATUS:
        free(cmd->u.status.message);
        break;
    case NP_CMD_ADD_BUDDY:
    case NP_CMD_REMOVE_BUDDY:
        free(cmd->u.buddy.who);
        free(cmd->u.buddy.alias);
        free(cmd->u.buddy.group);
        break;
    case NP_CMD_SEND_TYPING:
        free(cmd->u.typing.who);
        break;
    case NP_CMD_GET_INFO:
        free(cmd->u.info.who);
        break;
    case NP_CMD_SEARCH:
        fields_free(cmd->u.search.fields, cmd->u.search.field_count);
        break;
    case NP_CMD_LOGOUT:
    case NP_CMD_AUTHORIZE:
        break;
    }
    free(cmd->owner);
    free(cmd);
}

const char *np_cmd_type_name(enum np_cmd_type type)
{
    static const char *const names[] = {
        [NP_CMD_LOGIN] = "login",         [NP_CMD_LOGOUT] = "logout",
        [NP_CMD_SEND_IM] = "send-im",     [NP_CMD_SET_STATUS] = "set-status",
        [NP_CMD_ADD_BUDDY] = "add-buddy", [NP_CMD_REMOVE_BUDDY] = "remove-buddy",
        [NP_CMD_AUTHORIZE] = "authorize", [NP_CMD_SEND_TYPING] = "send-typing",
        [NP_CMD_GET_INFO] = "get-info",   [NP_CMD_SEARCH] = "search",
    };
    if ((size_t)type >= FERRY_ARRAY_LEN(names) || !names[type])
        return "unknown";
    return names[type];
}

/* ---- events ---- */

static struct np_event *event_new(enum np_event_type type, const char *owner)
{
    struct np_event *ev = xcalloc(1, sizeof(*ev));
    ev->kind = NP_EVENT_KIND;
    ev->type = type;
    ev->owner = xstrdup(owner);
    return ev;
}

struct np_event *np_event_signed_on(const char *owner, const char *display_name)
{
    struct np_event *ev = event_new(NP_EV_SIGNED_ON, owner);
    ev->u.signed_on.display_name = xstrdup(display_name ? display_name : "");
    return ev;
}

struct np_event *np_event_signed_off(const char *owner)
{
    return event_new(NP_EV_SIGNED_OFF, owner);
}

struct np_event *np_event_connection_error(const char *owner, const char *reason, int code,
                                           int fatal)
{
    struct np_event *ev = event_new(NP_EV_CONNECTION_ERROR, owner);
    ev->u.error.reason = xstrdup(reason ? reason : "");
    ev->u.error.code = code;
    ev->u.error.fatal = fatal ? 1 : 0;
    return ev;
}

struct np_event *np_event_logged_out(const char *owner)
{
    return event_new(NP_EV_LOGGED_OUT, owner);
}

struct np_event *np_event_presence(const char *owner, const char *who, const char *alias,
                                   enum np_state state, const char *message, int idle_seconds)
{
    struct np_event *ev = event_new(NP_EV_BUDDY_PRESENCE, owner);
    ev->u.presence.who = xstrdup(who);
    ev->u.presence.alias = dup_or_null(alias);
    ev->u.presence.state = state;
    ev->u.presence.message = dup_or_null(message);
    ev->u.presence.idle_seconds = idle_seconds;
    return ev;
}

struct np_event *np_event_buddy_added(const char *owner, const char *who, const char *alias,
                                      const char *group)
{
    struct np_event *ev = event_new(NP_EV_BUDDY_ADDED, owner);
    ev->u.buddy.who = xstrdup(who);
    ev->u.buddy.alias = dup_or_null(alias);
    ev->u.buddy.group = dup_or_null(group);
    return ev;
}

struct np_event *np_event_buddy_removed(const char *owner, const char *who)
{
    struct np_event *ev = event_new(NP_EV_BUDDY_REMOVED, owner);
    ev->u.buddy.who = xstrdup(who);
    return ev;
}

struct np_event *np_event_im_received(const char *owner, const char *from, const char *text,
                                      unsigned flags, time_t when)
{
    struct np_event *ev = event_new(NP_EV_IM_RECEIVED, owner);
    ev->u.im.from = xstrdup(from);
    ev->u.im.text = xstrdup(text ? text : "");
    ev->u.im.flags = flags;
    ev->u.im.when = when;
    return ev;
}

struct np_event *np_event_im_send_failed(const char *owner, const char *to, const char *reason)
{
    struct np_event *ev = event_new(NP_EV_IM_SEND_FAILED, owner);
    ev->u.send_failed.to = xstrdup(to);
    ev->u.send_failed.reason = xstrdup(reason ? reason : "");
    return ev;
}

struct np_event *np_event_im_sent(const char *owner, const char *to, uint64_t id)
{
    struct np_event *ev = event_new(NP_EV_IM_SENT, owner);
    ev->u.sent.to = xstrdup(to);
    ev->u.sent.id = id;
    return ev;
}

struct np_event *np_event_typing(const char *owner, const char *who, enum np_typing state)
{
    struct np_event *ev = event_new(NP_EV_TYPING, owner);
    ev->u.typing.who = xstrdup(who);
    ev->u.typing.state = state;
    return ev;
}

struct np_event *np_event_auth_request(const char *owner, uint64_t id, const char *who,
                                       const char *alias, const char *message)
{
    struct np_event *ev = event_new(NP_EV_AUTH_REQUEST, owner);
    ev->u.auth.id = id;
    ev->u.auth.who = xstrdup(who);
    ev->u.auth.alias = dup_or_null(alias);
    ev->u.auth.message = dup_or_null(message);
    return ev;
}

struct np_event *np_event_buddy_authorized(const char *owner, const char *who, int accepted)
{
    struct np_event *ev = event_new(NP_EV_BUDDY_AUTHORIZED, owner);
    ev->u.authorized.who = xstrdup(who);
    ev->u.authorized.accepted = accepted ? 1 : 0;
    return ev;
}

struct np_event *np_event_userinfo(const char *owner, uint64_t request_id, const char *who,
                                   enum np_req_status status, const char *error,
                                   const struct np_field *pairs, size_t pair_count)
{
    struct np_event *ev = event_new(NP_EV_USERINFO, owner);
    ev->u.userinfo.request_id = request_id;
    ev->u.userinfo.who = xstrdup(who);
    ev->u.userinfo.status = status;
    ev->u.userinfo.error = dup_or_null(error);
    ev->u.userinfo.pairs = fields_copy(pairs, pair_count);
    ev->u.userinfo.pair_count = pair_count;
    return ev;
}

struct np_event *np_event_search_form(const char *owner, uint64_t request_id,
                                      const char *instructions, const struct np_field *fields,
                                      size_t field_count)
{
    struct np_event *ev = event_new(NP_EV_SEARCH_FORM, owner);
    ev->u.search_form.request_id = request_id;
    ev->u.search_form.instructions = dup_or_null(instructions);
    ev->u.search_form.fields = fields_copy(fields, field_count);
    ev->u.search_form.field_count = field_count;
    return ev;
}

struct np_event *np_event_search_results(const char *owner, uint64_t request_id,
                                         enum np_req_status status, const char *error,
                                         const char *const *columns, size_t column_count,
                                         const char *const *cells, size_t row_count)
{
    struct np_event *ev = event_new(NP_EV_SEARCH_RESULTS, owner);
    ev->u.search.request_id = request_id;
    ev->u.search.status = status;
    ev->u.search.error = dup_or_null(error);
    ev->u.search.columns = strings_copy(columns, column_count);
    ev->u.search.column_count = column_count;
    ev->u.search.cells = strings_copy(cells, row_count * column_count);
    ev->u.search.row_count = column_count ? row_count : 0;
    return ev;
}

static void event_free_body(struct np_event *ev)
{
    switch (ev->type) {
    case NP_EV_SIGNED_ON:
        free(ev->u.signed_on.display_name);
        break;
    case NP_EV_CONNECTION_ERROR:
        free(ev->u.error.reason);
        break;
    case NP_EV_BUDDY_PRESENCE:
        free(ev->u.presence.who);
        free(ev->u.presence.alias);
        free(ev->u.presence.message);
        break;
    case NP_EV_BUDDY_ADDED:
    case NP_EV_BUDDY_REMOVED:
        free(ev->u.buddy.who);
        free(ev->u.buddy.alias);
        free(ev->u.buddy.group);
        break;
    case NP_EV_IM_RECEIVED:
        free(ev->u.im.from);
        free(ev->u.im.text);
        break;
    case NP_EV_IM_SEND_FAILED:
        free(ev->u.send_failed.to);
        free(ev->u.send_failed.reason);
        break;
    case NP_EV_IM_SENT:
        free(ev->u.sent.to);
        break;
    case NP_EV_TYPING:
        free(ev->u.typing.who);
        break;
    case NP_EV_AUTH_REQUEST:
        free(ev->u.auth.who);
        free(ev->u.auth.alias);
        free(ev->u.auth.message);
        break;
    case NP_EV_BUDDY_AUTHORIZED:
        free(ev->u.authorized.who);
        break;
    case NP_EV_USERINFO:
        free(ev->u.userinfo.who);
        free(ev->u.userinfo.error);
        fields_free(ev->u.userinfo.pairs, ev->u.userinfo.pair_count);
        break;
    case NP_EV_SEARCH_FORM:
        free(ev->u.search_form.instructions);
        fields_free(ev->u.search_form.fields, ev->u.search_form.field_count);
        break;
    case NP_EV_SEARCH_RESULTS:
        free(ev->u.search.error);
        strings_free(ev->u.search.columns, ev->u.search.column_count);
        strings_free(ev->u.search.cells, ev->u.search.row_count * ev->u.search.column_count);
        break;
    case NP_EV_SIGNED_OFF:
    case NP_EV_LOGGED_OUT:
        break;
    }
}

void np_event_free(struct np_event *ev)
{
    if (!ev)
        return;
    event_free_body(ev);
    free(ev->owner);
    free(ev);
}

void np_event_free_void(void *ev)
{
    np_event_free(ev);
}

const char *np_event_type_name(enum np_event_type type)
{
    static const char *const names[] = {
        [NP_EV_SIGNED_ON] = "signed-on",
        [NP_EV_SIGNED_OFF] = "signed-off",
        [NP_EV_CONNECTION_ERROR] = "connection-error",
        [NP_EV_LOGGED_OUT] = "logged-out",
        [NP_EV_BUDDY_PRESENCE] = "buddy-presence",
        [NP_EV_BUDDY_ADDED] = "buddy-added",
        [NP_EV_BUDDY_REMOVED] = "buddy-removed",
        [NP_EV_IM_RECEIVED] = "im-received",
        [NP_EV_IM_SEND_FAILED] = "im-send-failed",
        [NP_EV_TYPING] = "typing",
        [NP_EV_AUTH_REQUEST] = "auth-request",
        [NP_EV_USERINFO] = "userinfo",
        [NP_EV_SEARCH_FORM] = "search-form",
        [NP_EV_SEARCH_RESULTS] = "search-results",
        [NP_EV_BUDDY_AUTHORIZED] = "buddy-authorized",
        [NP_EV_IM_SENT] = "im-sent",
    };
    if ((size_t)type >= FERRY_ARRAY_LEN(names) || !names[type])
        return "unknown";
    return names[type];
}

const char *np_state_name(enum np_state state)
{
    static const char *const names[] = {
        [NP_STATE_OFFLINE] = "offline", [NP_STATE_AVAILABLE] = "available",
        [NP_STATE_AWAY] = "away",       [NP_STATE_XA] = "xa",
        [NP_STATE_DND] = "dnd",         [NP_STATE_INVISIBLE] = "invisible",
    };
    if ((size_t)state >= FERRY_ARRAY_LEN(names) || !names[state])
        return "unknown";
    return names[state];
}
