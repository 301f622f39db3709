/* One small function per command, run on the native thread. A command for an owner that is not
 * logged in has no mailbox to answer to: it is logged and dropped. */
#include "native/internal.h"

#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

/* The owner, when it exists and its account is signed on. */
static struct np_owner *signed_on_owner(const struct np_cmd *cmd, struct np_owner **any)
{
    struct np_owner *owner = np_owner_find(cmd->owner);
    *any = owner;
    if (!owner) {
        log_debug(NP_TAG, "%s for %s, who is not logged in: dropped", np_cmd_type_name(cmd->type),
                  cmd->owner);
        return NULL;
    }
    return purple_account_is_connected(owner->account) ? owner : NULL;
}

char *np_text_to_html(const char *text)
{
    char *escaped = g_markup_escape_text(text, -1);
    char **lines = g_strsplit(escaped, "\n", -1);
    char *html = g_strjoinv("<br>", lines);
    g_strfreev(lines);
    g_free(escaped);
    return html;
}

static void handle_login(const struct np_cmd *cmd)
{
    mailbox_t *mailbox = cmd->u.login.mailbox;
    struct np_owner *old = np_owner_find(cmd->owner);
    if (old) /* a new login replaces the old one; its mailbox hears LOGGED_OUT if it differs */
        np_owner_remove(old, old->mailbox != mailbox);
    char *error = NULL;
    struct np_owner *owner =
        np_owner_add(cmd->owner, mailbox, cmd->u.login.username, cmd->u.login.password, &error);
    if (owner) {
        np_pace_login(owner);
        return;
    }
    log_info(NP_TAG, "%s: cannot log in: %s", cmd->owner, error);
    struct np_event *ev =
        np_event_connection_error(cmd->owner, error, PURPLE_CONNECTION_ERROR_INVALID_SETTINGS, 1);
    if (mb_send(mailbox, ev) != MB_OK) {
        log_warnx(NP_TAG, "mailbox of %s refused its login error: dropped", cmd->owner);
        np_event_free(ev);
    }
    np_post_reliably(mailbox, np_event_logged_out(cmd->owner));
    free(error);
}

static void handle_logout(const struct np_cmd *cmd)
{
    struct np_owner *owner = np_owner_find(cmd->owner);
    if (!owner) {
        log_debug(NP_TAG, "logout of %s, who is not logged in", cmd->owner);
        return;
    }
    np_owner_remove(owner, 1);
}

/* The conversation is where libpurple reports delivery problems with a name attached (IRC
 * writes "no such nick" there when one exists, and to a context-free notice otherwise). */
void np_ensure_conversation(PurpleAccount *account, const char *who)
{
    if (!purple_find_conversation_with_account(PURPLE_CONV_TYPE_IM, who, account))
        purple_conversation_new(PURPLE_CONV_TYPE_IM, account, who);
}

static PurpleStatusType *status_type_for(PurpleAccount *account, enum np_state state)
{
    static const PurpleStatusPrimitive map[] = {
        [NP_STATE_OFFLINE] = PURPLE_STATUS_OFFLINE, [NP_STATE_AVAILABLE] = PURPLE_STATUS_AVAILABLE,
        [NP_STATE_AWAY] = PURPLE_STATUS_AWAY,       [NP_STATE_XA] = PURPLE_STATUS_EXTENDED_AWAY,
        [NP_STATE_DND] = PURPLE_STATUS_UNAVAILABLE, [NP_STATE_INVISIBLE] = PURPLE_STATUS_INVISIBLE,
    };
    PurpleStatusPrimitive want =
        (size_t)state < FERRY_ARRAY_LEN(map) ? map[state] : PURPLE_STATUS_AVAILABLE;
    PurpleStatusType *type = purple_account_get_status_type_with_primitive(account, want);
    /* Protocols without extended away, busy or invisible (IRC) get the nearest: away. */
    if (!type && want != PURPLE_STATUS_AVAILABLE)
        type = purple_account_get_status_type_with_primitive(account, PURPLE_STATUS_AWAY);
    if (!type)
        type = purple_account_get_status_type_with_primitive(account, PURPLE_STATUS_AVAILABLE);
    return type;
}

static void handle_set_status(const struct np_cmd *cmd)
{
    struct np_owner *owner = np_owner_find(cmd->owner);
    if (!owner)
        return;
    PurpleAccount *account = owner->account;
    /* A status change on a disconnected, enabled account makes libpurple reconnect on its own,
     * past the login pacing: after a connection error only a new LOGIN reconnects. */
    if (!owner->queued && purple_account_is_disconnected(account)) {
        log_debug(NP_TAG, "%s: status change while disconnected ignored", owner->id);
        return;
    }
    PurpleStatusType *type = status_type_for(account, cmd->u.status.state);
    if (!type)
        return;
    const char *id = purple_status_type_get_id(type);
    const char *message = cmd->u.status.message;
    if (message && *message && purple_status_type_get_attr(type, "message")) {
        char *html = np_text_to_html(message);
        purple_account_set_status(account, id, TRUE, "message", html, NULL);
        g_free(html);
    } else {
        purple_account_set_status(account, id, TRUE, NULL);
    }
}

static PurpleGroup *group_named(const char *name)
{
    const char *wanted = name && *name ? name : "Buddies";
    PurpleGroup *group = purple_find_group(wanted);
    if (!group) {
        group = purple_group_new(wanted);
        purple_blist_add_group(group, NULL);
    }
    return group;
}

/* Whether the owner already sees buddy's presence on a network with a consent step. Then
 * prpl-jabber sends no new request (its roster says subscription to or both) and no answer
 * would come: the answer is posted at once. libpurple keeps the subscription private; what it
 * shows is that the buddy is online, or (offline) the "not-authorized" emblem that prpl-jabber
 * puts on a buddy whose subscription is missing or still pending. */
static int already_authorized(PurpleAccount *account, PurpleBuddy *buddy)
{
    if (PURPLE_BUDDY_IS_ONLINE(buddy))
        return 1;
    PurplePlugin *prpl = purple_find_prpl(purple_account_get_protocol_id(account));
    PurplePluginProtocolInfo *info = prpl ? PURPLE_PLUGIN_PROTOCOL_INFO(prpl) : NULL;
    if (!info || !info->list_emblem)
        return 0;
    return g_strcmp0(info->list_emblem(buddy), "not-authorized") != 0;
}

static void handle_add_buddy(const struct np_cmd *cmd)
{
    struct np_owner *owner = np_owner_find(cmd->owner);
    if (!owner)
        return;
    PurpleAccount *account = owner->account;
    const char *who = cmd->u.buddy.who;
    PurpleBuddy *buddy = purple_find_buddy(account, who);
    int known = buddy != NULL && purple_account_is_connected(account) &&
                np_protocol_needs_authorization() && already_authorized(account, buddy);
    owner->own_change = 1;
    /* A buddy already on the local list (from a roster push) is sent to the server again:
     * the owner's subscribe must still reach the network, which asks the contact's consent. */
    if (buddy == NULL) {
        buddy = purple_buddy_new(account, who, cmd->u.buddy.alias);
        purple_blist_add_buddy(buddy, NULL, group_named(cmd->u.buddy.group), NULL);
    }
    if (purple_account_is_connected(account))
        purple_account_add_buddy(account, buddy);
    owner->own_change = 0;
    if (known)
        np_post(owner, np_event_buddy_authorized(owner->id, purple_buddy_get_name(buddy), 1));
}

static void handle_remove_buddy(const struct np_cmd *cmd)
{
    struct np_owner *owner = np_owner_find(cmd->owner);
    if (!owner)
        return;
    PurpleBuddy *buddy = purple_find_buddy(owner->account, cmd->u.buddy.who);
    if (!buddy)
        return;
    g_hash_table_remove(owner->presence, purple_buddy_get_name(buddy));
    owner->own_change = 1;
    if (purple_account_is_connected(owner->account))
        purple_account_remove_buddy(owner->account, buddy, purple_buddy_get_group(buddy));
    purple_blist_remove_buddy(buddy);
    owner->own_change = 0;
}

static void handle_authorize(const struct np_cmd *cmd)
{
    struct np_owner *owner = np_owner_find(cmd->owner);
    if (owner && np_auth_answer(owner, cmd->u.authorize.id, cmd->u.authorize.accept) < 0)
        log_debug(NP_TAG, "%s: no authorization request %llu", owner->id,
                  (unsigned long long)cmd->u.authorize.id);
}

static void handle_send_typing(const struct np_cmd *cmd)
{
    struct np_owner *any;
    struct np_owner *owner = signed_on_owner(cmd, &any);
    if (!owner)
        return;
    PurpleTypingState state = cmd->u.typing.state == NP_TYPING_ACTIVE   ? PURPLE_TYPING
                              : cmd->u.typing.state == NP_TYPING_PAUSED ? PURPLE_TYPED
                                                                        : PURPLE_NOT_TYPING;
    serv_send_typing(purple_account_get_connection(owner->account), cmd->u.typing.who, state);
}

static void handle_get_info(const struct np_cmd *cmd)
{
    struct np_owner *any;
    struct np_owner *owner = signed_on_owner(cmd, &any);
    if (!owner) {
        if (any)
            np_post(any, np_event_userinfo(any->id, cmd->u.info.request_id, cmd->u.info.who,
                                           NP_REQ_OFFLINE, "not signed on", NULL, 0));
        return;
    }
    np_ensure_conversation(owner->account, cmd->u.info.who);
    np_info_start(owner, cmd->u.info.request_id, cmd->u.info.who);
}

static void handle_search(const struct np_cmd *cmd)
{
    struct np_owner *any;
    struct np_owner *owner = signed_on_owner(cmd, &any);
    if (!owner) {
        if (any)
            np_post(any, np_event_search_results(any->id, cmd->u.search.request_id, NP_REQ_OFFLINE,
                                                 "not signed on", NULL, 0, NULL, 0));
        return;
    }
    np_search_start(owner, cmd);
}

void np_handle_command(struct np_cmd *cmd)
{
    switch (cmd->type) {
    case NP_CMD_LOGIN:
        handle_login(cmd);
        break;
    case NP_CMD_LOGOUT:
        handle_logout(cmd);
        break;
    case NP_CMD_SEND_IM:
        np_outbox_send(cmd);
        break;
    case NP_CMD_SET_STATUS:
        handle_set_status(cmd);
        break;
    case NP_CMD_ADD_BUDDY:
        handle_add_buddy(cmd);
        break;
    case NP_CMD_REMOVE_BUDDY:
        handle_remove_buddy(cmd);
        break;
    case NP_CMD_AUTHORIZE:
        handle_authorize(cmd);
        break;
    case NP_CMD_SEND_TYPING:
        handle_send_typing(cmd);
        break;
    case NP_CMD_GET_INFO:
        handle_get_info(cmd);
        break;
    case NP_CMD_SEARCH:
        handle_search(cmd);
        break;
    }
}
