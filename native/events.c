/* libpurple callbacks that become events: connection state, conversation lines, typing, the
 * buddy list, authorization requests. Each finds its owner through the account table; a
 * callback for an account without an owner (logged out, being deleted) is ignored. */
#include "native/internal.h"

#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

static int signals_handle; /* the address identifies our signal connections */
static PurpleAccount *context_account;

char *np_html_to_text(const char *html)
{
    return html ? purple_markup_strip_html(html) : g_strdup("");
}

PurpleAccount *np_context_account(void)
{
    return context_account;
}

void np_set_context_account(PurpleAccount *account)
{
    context_account = account;
}

/* XMPP names a sender with its resource ("bob@host/phone"), but a contact is one JID on the
 * owner's side whatever device writes: a known buddy is reported by its own name, an unknown
 * XMPP sender by its bare JID. Other protocols' names are kept as the network spells them.
 * Returns a new string (g_free). */
char *np_contact_name(PurpleAccount *account, const char *who)
{
    PurpleBuddy *buddy = purple_find_buddy(account, who);
    if (buddy)
        return g_strdup(purple_buddy_get_name(buddy));
    const char *slash = strchr(who, '/');
    if (slash && strcmp(purple_account_get_protocol_id(account), "prpl-jabber") == 0)
        return g_strndup(who, (gsize)(slash - who));
    return g_strdup(who);
}

/* ---- connection ---- */

void np_on_connected(PurpleConnection *gc)
{
    struct np_owner *owner = np_owner_of_gc(gc);
    if (!owner)
        return;
    const char *name = purple_connection_get_display_name(gc);
    if (!name)
        name = purple_account_get_username(owner->account);
    log_info(NP_TAG, "%s: signed on as %s", owner->id, name);
    np_post(owner, np_event_signed_on(owner->id, name));
}

void np_on_disconnected(PurpleConnection *gc)
{
    struct np_owner *owner = np_owner_of_gc(gc);
    if (!owner)
        return;
    g_hash_table_remove_all(owner->presence);
    /* libpurple closed the connection (irc_close ran): what is still held will never go. */
    np_outbox_bounce(owner, owner->out_lost ? "lost" : "closed");
    np_post(owner, np_event_signed_off(owner->id));
}

/* Some servers say "wrong password" only in words, under a network error: ngircd answers a bad
 * server password with "ERROR :Access denied: Bad password?". */
static int says_credentials_are_wrong(const char *text)
{
    static const char *const phrases[] = {
        "bad password",     "wrong password",        "incorrect password",
        "invalid password", "password incorrect",    "access denied",
        "not authorized",   "authentication failed", "login incorrect",
    };
    if (!text)
        return 0;
    char *lower = g_utf8_strdown(text, -1);
    int found = 0;
    for (size_t i = 0; i < FERRY_ARRAY_LEN(phrases) && !found; i++)
        found = strstr(lower, phrases[i]) != NULL;
    g_free(lower);
    return found;
}

void np_on_disconnect_reason(PurpleConnection *gc, PurpleConnectionError reason, const char *text)
{
    struct np_owner *owner = np_owner_of_gc(gc);
    if (!owner)
        return;
    int fatal = purple_connection_error_is_fatal(reason) || says_credentials_are_wrong(text);
    log_info(NP_TAG, "%s: connection error %d (%s): %s", owner->id, (int)reason,
             fatal ? "fatal" : "temporary", text ? text : "");
    np_outbox_connection_lost(owner);
    np_post(owner, np_event_connection_error(owner->id, text, (int)reason, fatal));
}

/* ---- authorization requests: kept by id until answered or withdrawn ---- */

struct np_auth {
    uint64_t id;
    struct np_owner *owner; /* NULL once the owner is gone: left for libpurple to close */
    PurpleAccountRequestAuthorizationCb authorize_cb;
    PurpleAccountRequestAuthorizationCb deny_cb;
    void *user_data;
};

static GList *auths;
static uint64_t last_auth_id;

void *np_on_request_authorize(PurpleAccount *account, const char *remote_user, const char *id,
                              const char *alias, const char *message, gboolean on_list,
                              PurpleAccountRequestAuthorizationCb authorize_cb,
                              PurpleAccountRequestAuthorizationCb deny_cb, void *user_data)
{
    struct np_auth *auth = g_new0(struct np_auth, 1);
    auth->id = ++last_auth_id;
    auth->owner = np_owner_of_account(account);
    auth->authorize_cb = authorize_cb;
    auth->deny_cb = deny_cb;
    auth->user_data = user_data;
    auths = g_list_prepend(auths, auth);
    if (auth->owner)
        np_post(auth->owner,
                np_event_auth_request(auth->owner->id, auth->id, remote_user, alias, message));
    return auth;
}

void np_on_close_account_request(void *ui_handle)
{
    GList *link = g_list_find(auths, ui_handle);
    if (!link)
        return;
    auths = g_list_delete_link(auths, link);
    g_free(ui_handle);
}

int np_auth_answer(struct np_owner *owner, uint64_t id, int accept)
{
    for (GList *l = auths; l; l = l->next) {
        struct np_auth *auth = l->data;
        if (auth->id != id || auth->owner != owner)
            continue;
        auths = g_list_delete_link(auths, l);
        /* libpurple frees its own record in the callback and does not close ours. */
        PurpleAccountRequestAuthorizationCb cb = accept ? auth->authorize_cb : auth->deny_cb;
        void *user_data = auth->user_data;
        g_free(auth);
        if (cb)
            cb(user_data);
        return 0;
    }
    return -1;
}

void np_auth_forget_owner(struct np_owner *owner)
{
    for (GList *l = auths; l; l = l->next) {
        struct np_auth *auth = l->data;
        if (auth->owner == owner)
            auth->owner = NULL;
    }
}

/* ---- conversations ---- */

static unsigned im_flags(PurpleMessageFlags flags)
{
    unsigned out = 0;
    if (flags & PURPLE_MESSAGE_AUTO_RESP)
        out |= NP_IM_AUTO_REPLY;
    if (flags & PURPLE_MESSAGE_DELAYED)
        out |= NP_IM_DELAYED;
    if (flags & (PURPLE_MESSAGE_SYSTEM | PURPLE_MESSAGE_NOTIFY))
        out |= NP_IM_NOTICE;
    return out;
}

static int sent_recently(struct np_owner *owner, const char *who)
{
    gint64 *when = g_hash_table_lookup(owner->sent, purple_normalize(owner->account, who));
    return when && now_ms() - *when <= NP_SEND_ERROR_WINDOW_MS;
}

/* A system or error line in an IM conversation: IRC's "User is not logged in" after a message
 * or a WHOIS to a nick that does not exist, a protocol's delivery error. */
static void on_system_line(struct np_owner *owner, PurpleConversation *conv, const char *text,
                           PurpleMessageFlags flags)
{
    const char *target = purple_conversation_get_name(conv);
    if (np_info_not_found(owner, target, text))
        return;
    if ((flags & PURPLE_MESSAGE_ERROR) || sent_recently(owner, target)) {
        np_post(owner, np_event_im_send_failed(owner->id, target, text));
        g_hash_table_remove(owner->sent, purple_normalize(owner->account, target));
        return;
    }
    log_debug(NP_TAG, "%s: notice about %s: %s", owner->id, target, text);
}

void np_on_write_conv(PurpleConversation *conv, const char *name, const char *alias,
                      const char *message, PurpleMessageFlags flags, time_t mtime)
{
    /* libpurple appends every line written to a conversation to its in-memory history, for a
     * UI to redraw, and keeps it until the conversation closes; nothing here reads it, and
     * with long-lived conversations it grew with every message received. Cleared before each
     * write, it holds at most the last line. */
    purple_conversation_clear_message_history(conv);
    if (purple_conversation_get_type(conv) != PURPLE_CONV_TYPE_IM)
        return;
    struct np_owner *owner = np_owner_of_account(purple_conversation_get_account(conv));
    if (!owner || (flags & PURPLE_MESSAGE_SEND))
        return;
    char *text = np_html_to_text(message);
    if (flags & PURPLE_MESSAGE_RECV) {
        char *from = np_contact_name(purple_conversation_get_account(conv),
                                     name && *name ? name : purple_conversation_get_name(conv));
        np_post(owner, np_event_im_received(owner->id, from, text, im_flags(flags), mtime));
        g_free(from);
    } else if (flags & (PURPLE_MESSAGE_SYSTEM | PURPLE_MESSAGE_ERROR)) {
        on_system_line(owner, conv, text, flags);
    }
    g_free(text);
}

static void post_typing(PurpleAccount *account, const char *who, enum np_typing state)
{
    struct np_owner *owner = np_owner_of_account(account);
    if (!owner)
        return;
    char *name = np_contact_name(account, who);
    np_post(owner, np_event_typing(owner->id, name, state));
    g_free(name);
}

static void on_typing(PurpleAccount *account, const char *who, gpointer data)
{
    post_typing(account, who, NP_TYPING_ACTIVE);
}

static void on_typed(PurpleAccount *account, const char *who, gpointer data)
{
    post_typing(account, who, NP_TYPING_PAUSED);
}

static void on_typing_stopped(PurpleAccount *account, const char *who, gpointer data)
{
    post_typing(account, who, NP_TYPING_STOPPED);
}

/* ---- the buddy list ---- */

static enum np_state state_of(PurplePresence *presence, PurpleStatus *status)
{
    if (!purple_presence_is_online(presence))
        return NP_STATE_OFFLINE;
    switch (purple_status_type_get_primitive(purple_status_get_type(status))) {
    case PURPLE_STATUS_AWAY:
        return NP_STATE_AWAY;
    case PURPLE_STATUS_EXTENDED_AWAY:
        return NP_STATE_XA;
    case PURPLE_STATUS_UNAVAILABLE:
        return NP_STATE_DND;
    case PURPLE_STATUS_OFFLINE:
    case PURPLE_STATUS_UNSET:
        return NP_STATE_OFFLINE;
    default: /* available, invisible (seen by us), mobile, tune, mood */
        return NP_STATE_AVAILABLE;
    }
}

/* Posts the buddy's presence as it is now, unless it is what was posted last. */
static void post_presence(PurpleBuddy *buddy)
{
    struct np_owner *owner = np_owner_of_account(purple_buddy_get_account(buddy));
    if (!owner)
        return;
    PurplePresence *presence = purple_buddy_get_presence(buddy);
    PurpleStatus *status = purple_presence_get_active_status(presence);
    enum np_state state = state_of(presence, status);
    /* Plain text, not HTML: prpl-jabber and the others store the network's status text as it
     * came ("<soon>" would be lost to an HTML stripper). */
    const char *text = status ? purple_status_get_attr_string(status, "message") : NULL;
    char *message = text && *text ? g_strdup(text) : NULL;
    time_t idle_since =
        purple_presence_is_idle(presence) ? purple_presence_get_idle_time(presence) : 0;
    int idle = 0;
    if (purple_presence_is_idle(presence))
        idle = idle_since > 0 && time(NULL) > idle_since ? (int)(time(NULL) - idle_since) : 1;
    const char *who = purple_buddy_get_name(buddy);
    char *signature =
        g_strdup_printf("%d|%lld|%s", (int)state, (long long)idle_since, message ? message : "");
    if (g_strcmp0(g_hash_table_lookup(owner->presence, who), signature) == 0) {
        g_free(signature);
    } else {
        g_hash_table_replace(owner->presence, g_strdup(who), signature);
        np_post(owner, np_event_presence(owner->id, who, purple_buddy_get_alias_only(buddy), state,
                                         message, idle));
    }
    g_free(message);
}

static void on_buddy_status(PurpleBuddy *buddy, PurpleStatus *old, PurpleStatus *status,
                            gpointer data)
{
    post_presence(buddy);
}

static void on_buddy_signed(PurpleBuddy *buddy, gpointer data)
{
    post_presence(buddy);
}

static void on_buddy_idle(PurpleBuddy *buddy, gboolean old_idle, gboolean idle, gpointer data)
{
    post_presence(buddy);
}

static void on_buddy_added(PurpleBuddy *buddy, gpointer data)
{
    struct np_owner *owner = np_owner_of_account(purple_buddy_get_account(buddy));
    if (!owner || owner->own_change)
        return;
    PurpleGroup *group = purple_buddy_get_group(buddy);
    np_post(owner, np_event_buddy_added(owner->id, purple_buddy_get_name(buddy),
                                        purple_buddy_get_alias_only(buddy),
                                        group ? purple_group_get_name(group) : NULL));
}

static void on_buddy_removed(PurpleBuddy *buddy, gpointer data)
{
    struct np_owner *owner = np_owner_of_account(purple_buddy_get_account(buddy));
    if (!owner)
        return;
    g_hash_table_remove(owner->presence, purple_buddy_get_name(buddy));
    if (!owner->own_change)
        np_post(owner, np_event_buddy_removed(owner->id, purple_buddy_get_name(buddy)));
}

/* "service-unavailable: text" from a stanza's <error/>. */
static char *stanza_error_text(xmlnode *error)
{
    const char *condition = NULL;
    char *text = NULL;
    for (xmlnode *c = error ? error->child : NULL; c; c = c->next) {
        if (c->type != XMLNODE_TYPE_TAG)
            continue;
        if (strcmp(c->name, "text") == 0 && !text)
            text = xmlnode_get_data(c);
        else if (!condition)
            condition = c->name;
    }
    char *out = g_strdup_printf("%s%s%s", condition ? condition : "undefined-condition",
                                text ? ": " : "", text ? text : "");
    g_free(text);
    return out;
}

/* prpl-jabber drops a bounced message without a body (what servers send back) in silence. */
static gboolean on_jabber_message(PurpleConnection *gc, const char *type, const char *id,
                                  const char *from, const char *to, xmlnode *packet, gpointer data)
{
    struct np_owner *owner = np_owner_of_gc(gc);
    if (!owner || !from || g_strcmp0(type, "error") != 0)
        return FALSE;
    char *bare = g_strdup(from);
    char *slash = strchr(bare, '/');
    if (slash)
        *slash = '\0';
    char *reason = stanza_error_text(xmlnode_get_child(packet, "error"));
    np_post(owner, np_event_im_send_failed(owner->id, bare, reason));
    g_free(reason);
    g_free(bare);
    return FALSE; /* libpurple may still handle it */
}

/* A contact's answer to a subscription request (the owner's ADD_BUDDY): prpl-jabber takes it
 * in silence (the roster push that follows changes nothing we report), so the session would
 * never know whether to tell the owner subscribed or unsubscribed. Also a contact that later
 * withdraws the owner's subscription sends unsubscribed. */
static gboolean on_jabber_presence(PurpleConnection *gc, const char *type, const char *from,
                                   xmlnode *presence, gpointer data)
{
    struct np_owner *owner = np_owner_of_gc(gc);
    int accepted = g_strcmp0(type, "subscribed") == 0;
    if (!owner || !from || (!accepted && g_strcmp0(type, "unsubscribed") != 0))
        return FALSE;
    char *who = np_contact_name(owner->account, from);
    log_info(NP_TAG, "%s: %s %s the subscription", owner->id, who,
             accepted ? "accepted" : "refused or withdrew");
    np_post(owner, np_event_buddy_authorized(owner->id, who, accepted));
    g_free(who);
    return FALSE; /* libpurple handles it as before */
}

/* prpl-jabber opens its search form and reports search errors without saying for which
 * account; this signal fires before each stanza is handled and names the connection. */
static void on_jabber_stanza(PurpleConnection *gc, gpointer packet, gpointer data)
{
    np_set_context_account(purple_connection_get_account(gc));
}

void np_events_connect_signals(void)
{
    void *conv = purple_conversations_get_handle();
    void *blist = purple_blist_get_handle();
    void *h = &signals_handle;
    purple_signal_connect(conv, "buddy-typing", h, PURPLE_CALLBACK(on_typing), NULL);
    purple_signal_connect(conv, "buddy-typed", h, PURPLE_CALLBACK(on_typed), NULL);
    purple_signal_connect(conv, "buddy-typing-stopped", h, PURPLE_CALLBACK(on_typing_stopped),
                          NULL);
    purple_signal_connect(blist, "buddy-status-changed", h, PURPLE_CALLBACK(on_buddy_status), NULL);
    purple_signal_connect(blist, "buddy-signed-on", h, PURPLE_CALLBACK(on_buddy_signed), NULL);
    purple_signal_connect(blist, "buddy-signed-off", h, PURPLE_CALLBACK(on_buddy_signed), NULL);
    purple_signal_connect(blist, "buddy-idle-changed", h, PURPLE_CALLBACK(on_buddy_idle), NULL);
    purple_signal_connect(blist, "buddy-added", h, PURPLE_CALLBACK(on_buddy_added), NULL);
    purple_signal_connect(blist, "buddy-removed", h, PURPLE_CALLBACK(on_buddy_removed), NULL);
    PurplePlugin *jabber = purple_find_prpl("prpl-jabber");
    if (jabber) {
        purple_signal_connect(jabber, "jabber-receiving-xmlnode", h,
                              PURPLE_CALLBACK(on_jabber_stanza), NULL);
        purple_signal_connect(jabber, "jabber-receiving-message", h,
                              PURPLE_CALLBACK(on_jabber_message), NULL);
        purple_signal_connect(jabber, "jabber-receiving-presence", h,
                              PURPLE_CALLBACK(on_jabber_presence), NULL);
    }
}

void np_events_disconnect_signals(void)
{
    purple_signals_disconnect_by_handle(&signals_handle);
    /* Requests libpurple never closed die with the core; ours go with them. */
    g_list_free_full(auths, g_free);
    auths = NULL;
    context_account = NULL;
}
