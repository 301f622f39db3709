/* Shared between the files of native/ only; everything here runs on the native thread.
 *
 *   native.c    the thread, the GLib loop, libpurple init and quit, the command queue, and
 *               the one function that installs every UI op
 *   accounts.c  the owner table (PurpleAccount* -> owner), [legacy] checked and turned into
 *               accounts, login pacing, posting events to mailboxes
 *   handlers.c  one small function per command
 *   outbox.c    SEND_IM: every message answered, IRC paced by native/pacer.c
 *   events.c    connection, conversation, buddy list and authorization callbacks -> events
 *   requests.c  request and notify UI ops: user info, directory search, requests nobody asked */
#ifndef FERRY_NATIVE_INTERNAL_H
#define FERRY_NATIVE_INTERNAL_H

#include <purple.h>

#include "native/native.h"

#define NP_UI_ID "ferry"
#define NP_TAG "native"
/* A system line about a name counts as a delivery error within this time of a message to it. */
#define NP_SEND_ERROR_WINDOW_MS 60000

/* One owner known to the native thread: from LOGIN to LOGOUT. */
struct np_owner {
    char *id;
    mailbox_t *mailbox;       /* not owned */
    PurpleAccount *account;   /* owned through libpurple's account list */
    int queued;               /* waiting in the login pacing queue */
    int own_change;           /* our own buddy list change in progress: no echo events */
    GHashTable *sent;         /* normalized name -> last SEND_IM (ms), to spot delivery errors */
    GHashTable *presence;     /* name -> last presence posted, to drop repeats */
    GQueue infos;             /* struct np_info_req *, head is the one asked */
    guint info_timer;         /* the asked request's timeout, or the idle that asks the next */
    struct np_search *search; /* the directory search under way, or NULL */
    struct pacer *pacer;      /* IRC flood control (prpl-irc accounts), else NULL */
    guint pace_timer;         /* armed while a line waits for the bucket */
    int out_lost;             /* connection error: nothing more is handed to libpurple */
};

/* ---- accounts.c ---- */
/* Checks [legacy] against the protocol libpurple declares and keeps it for the accounts:
 * 0, or -1 with every problem appended to problems ("[legacy] key: what is wrong", g_free'd
 * by the array). libpurple must be up, on the calling thread. */
int np_legacy_load(const struct ferry_config *cfg, GPtrArray *problems);
void np_legacy_free(void);
const char *np_legacy_protocol_name(void);
int np_legacy_request_timeout_ms(void);
void np_accounts_init(void);
/* Disconnects every account and forgets every owner without events (np_stop). */
void np_accounts_shutdown(void);
/* Removes the accounts a previous run left in accounts.xml. */
void np_accounts_delete_leftovers(void);
struct np_owner *np_owner_find(const char *id);
struct np_owner *np_owner_of_account(PurpleAccount *account);
struct np_owner *np_owner_of_gc(PurpleConnection *gc);
/* Creates the owner and its account (not connected yet). NULL with a reason on failure. */
struct np_owner *np_owner_add(const char *id, mailbox_t *mailbox, const char *username,
                              const char *password, char **error);
/* Forgets the owner: no more events, account disconnected and deleted from an idle callback,
 * and NP_EV_LOGGED_OUT posted (never dropped) when post_logged_out is set. */
void np_owner_remove(struct np_owner *owner, int post_logged_out);
/* Connects the owner's account when the process-wide login rate allows. */
void np_pace_login(struct np_owner *owner);
/* Posts ev to the owner's mailbox (takes ownership); a full mailbox drops it with a warning. */
void np_post(struct np_owner *owner, struct np_event *ev);
/* Posts to a mailbox and retries while it is full, for events that must arrive (LOGGED_OUT,
 * the answers to SEND_IM). Order is kept per mailbox: a full mailbox delays only its own. */
void np_post_reliably(mailbox_t *mailbox, struct np_event *ev);
/* A copy of line with every current account's password masked (caller g_free's). */
char *np_mask_passwords(const char *line);

/* ---- handlers.c ---- */
void np_handle_command(struct np_cmd *cmd);
/* Plain text to the HTML libpurple expects: escaped, line breaks as <br> (g_free). */
char *np_text_to_html(const char *text);
/* Opens the IM conversation with who, where libpurple reports delivery problems. */
void np_ensure_conversation(PurpleAccount *account, const char *who);

/* ---- outbox.c ---- */
/* Connects to the IRC plugin's "irc-sending-text" (after purple_core_init); quit before
 * purple_core_quit. */
void np_outbox_init(void);
void np_outbox_quit(void);
/* A new owner: an IRC account gets its pacer from ratelimit-burst and ratelimit-interval, and
 * ratelimit-interval 0 for libpurple (which then writes every line at once). */
void np_outbox_attach(struct np_owner *owner);
/* SEND_IM: answered with NP_EV_IM_SENT or NP_EV_IM_SEND_FAILED (the command's id). */
void np_outbox_send(const struct np_cmd *cmd);
/* The connection failed (reported before libpurple closes it): no more lines are handed. */
void np_outbox_connection_lost(struct np_owner *owner);
/* Answers every message the pacer still holds with NP_EV_IM_SEND_FAILED, the connection having
 * been `what` ("lost", "closed"). Before the owner's LOGGED_OUT. */
void np_outbox_bounce(struct np_owner *owner, const char *what);
/* Frees the pacer (messages left are only logged: at np_stop nobody listens any more). */
void np_outbox_detach(struct np_owner *owner);

/* ---- events.c ---- */
void np_on_connected(PurpleConnection *gc);
void np_on_disconnected(PurpleConnection *gc);
void np_on_disconnect_reason(PurpleConnection *gc, PurpleConnectionError reason, const char *text);
void *np_on_request_authorize(PurpleAccount *account, const char *remote_user, const char *id,
                              const char *alias, const char *message, gboolean on_list,
                              PurpleAccountRequestAuthorizationCb authorize_cb,
                              PurpleAccountRequestAuthorizationCb deny_cb, void *user_data);
void np_on_close_account_request(void *ui_handle);
void np_on_write_conv(PurpleConversation *conv, const char *name, const char *alias,
                      const char *message, PurpleMessageFlags flags, time_t mtime);
void np_events_connect_signals(void);
/* Disconnects them and drops the authorization requests still kept (at quit). */
void np_events_disconnect_signals(void);
/* Answers a pending authorization request of this owner; -1 when the id is unknown. */
int np_auth_answer(struct np_owner *owner, uint64_t id, int accept);
/* Drops the owner's pending authorization requests (the owner is going away). */
void np_auth_forget_owner(struct np_owner *owner);
/* Plain text from libpurple's HTML (caller g_free's). */
/* The name a contact is known by on the owner's side (see events.c). New string, g_free. */
char *np_contact_name(PurpleAccount *account, const char *who);
char *np_html_to_text(const char *html);
/* The libpurple account whose packet is being handled right now, or NULL; request ops that
 * arrive without an account use it. */
PurpleAccount *np_context_account(void);
void np_set_context_account(PurpleAccount *account);

/* ---- loop.c: libpurple's socket watches on one epoll set (native thread only) ---- */
/* Creates the epoll set and its source: before purple_core_init. 0, or -1 (errno set). */
int np_loop_init(void);
guint np_input_add(gint fd, PurpleInputCondition cond, PurpleInputFunction fn, gpointer data);
gboolean np_input_remove(guint handle);
/* Drops every watch and the epoll source: after purple_core_quit. */
void np_loop_free(void);

/* ---- requests.c ---- */
void *np_on_request_input(const char *title, const char *primary, const char *secondary,
                          const char *default_value, gboolean multiline, gboolean masked,
                          gchar *hint, const char *ok_text, GCallback ok_cb,
                          const char *cancel_text, GCallback cancel_cb, PurpleAccount *account,
                          const char *who, PurpleConversation *conv, void *user_data);
void *np_on_request_choice(const char *title, const char *primary, const char *secondary,
                           int default_value, const char *ok_text, GCallback ok_cb,
                           const char *cancel_text, GCallback cancel_cb, PurpleAccount *account,
                           const char *who, PurpleConversation *conv, void *user_data,
                           va_list choices);
void *np_on_request_action(const char *title, const char *primary, const char *secondary,
                           int default_action, PurpleAccount *account, const char *who,
                           PurpleConversation *conv, void *user_data, size_t action_count,
                           va_list actions);
void *np_on_request_fields(const char *title, const char *primary, const char *secondary,
                           PurpleRequestFields *fields, const char *ok_text, GCallback ok_cb,
                           const char *cancel_text, GCallback cancel_cb, PurpleAccount *account,
                           const char *who, PurpleConversation *conv, void *user_data);
void *np_on_request_file(const char *title, const char *filename, gboolean savedialog,
                         GCallback ok_cb, GCallback cancel_cb, PurpleAccount *account,
                         const char *who, PurpleConversation *conv, void *user_data);
void *np_on_request_folder(const char *title, const char *dirname, GCallback ok_cb,
                           GCallback cancel_cb, PurpleAccount *account, const char *who,
                           PurpleConversation *conv, void *user_data);
void np_on_close_request(PurpleRequestType type, void *ui_handle);
void *np_on_notify_message(PurpleNotifyMsgType type, const char *title, const char *primary,
                           const char *secondary);
void *np_on_notify_formatted(const char *title, const char *primary, const char *secondary,
                             const char *text);
void *np_on_notify_searchresults(PurpleConnection *gc, const char *title, const char *primary,
                                 const char *secondary, PurpleNotifySearchResults *results,
                                 gpointer user_data);
void *np_on_notify_userinfo(PurpleConnection *gc, const char *who, PurpleNotifyUserInfo *user_info);
void np_info_start(struct np_owner *owner, uint64_t request_id, const char *who);
void np_search_start(struct np_owner *owner, const struct np_cmd *cmd);
/* A system or error line in an IM conversation: answers a user info request for that name
 * (IRC's "no such nick"). Returns 1 when it did. */
int np_info_not_found(struct np_owner *owner, const char *who, const char *text);
/* Ends the owner's pending user info and search requests without events. */
void np_requests_forget_owner(struct np_owner *owner);

#endif
