/* native/: the one libpurple thread.
 *
 * libpurple is not thread-safe, so it runs headless on exactly one thread with its GLib main
 * loop. Other threads talk to it only through typed commands (np_send) and hear back through
 * typed events posted to the mailbox each owner gave at LOGIN. Commands and events are plain
 * structs that own all their strings: no pointer into either side's memory crosses, except the
 * owner's mailbox (thread-safe, lib/mailbox.h).
 *
 * An owner is identified by a string chosen by the caller (the session's bare JID, or a
 * registration check's private id). Every command names its owner; every event carries it.
 *
 * Mailbox lifetime: native posts to an owner's mailbox from LOGIN until it posts
 * NP_EV_LOGGED_OUT (the answer to LOGOUT; also after the CONNECTION_ERROR of a LOGIN refused
 * before connecting, and to the old mailbox when a LOGIN replaced it). That event, and the
 * answers to SEND_IM (IM_SENT, and IM_SEND_FAILED with an id), are never dropped (retried
 * while the mailbox is full, in order); after LOGGED_OUT native never touches the mailbox
 * again, so the owner may free it then (or after np_stop returned). Every other event is
 * dropped with a warning when the mailbox is full: native never blocks.
 *
 * Names are the network's own, as libpurple gives them: prpl-jabber reports messages and
 * typing from full JIDs. A server-side contact list (prpl-jabber) may arrive as BUDDY_ADDED
 * before SIGNED_ON; the owner's own ADD_BUDDY and REMOVE_BUDDY are not echoed. */
#ifndef FERRY_NATIVE_NATIVE_H
#define FERRY_NATIVE_NATIVE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/config.h"
#include "lib/mailbox.h"

enum np_result {
    NP_OK = 0,
    NP_ESTOPPED = -1, /* native thread not running: the command was freed unhandled */
};

/* Starts the native thread: private libpurple directory <storage_path>/purple (mode 0700;
 * the data directory itself is made 0700 when missing, its parent must exist), GStreamer
 * kept from loading plugins, libpurple initialised headless, and [legacy] checked (the
 * protocol exists, every option is one the protocol declares, with a value of its type).
 * Returns only once initialisation finished: 0, or -1 with *error set to a new message
 * (caller frees) naming what is wrong and what would be valid. A failed start removes the
 * directories it created: call it before anything else writes to [storage] path, and a bad
 * [legacy] leaves nothing behind. Once per process: libpurple cannot be initialised again
 * after np_stop (or after a failed start). Call it before other threads run: it sets
 * GStreamer's environment variables. */
int np_start(const struct ferry_config *cfg, char **error);
/* For `ferry --check` only: checks [legacy] with the same code as np_start (the protocol
 * exists, every option is declared, every value has its type) without touching [storage]:
 * libpurple comes up headless on the calling thread in a private temporary directory (under
 * $TMPDIR or /tmp, removed before returning), GStreamer kept off, and goes down again.
 * Returns 0, or -1 with every problem in *problems ("[legacy] key: what is wrong", naming
 * what would be valid), *count of them; caller frees each string and the array.
 * Since libpurple can come up only once per process, np_start must never be called in the
 * same process afterwards (asserted; without assertions np_start refuses): call it in a
 * process that exits after the check, before any other thread runs (it sets GStreamer's
 * environment variables). */
int np_check_config(const struct ferry_config *cfg, char ***problems, size_t *count);
/* Logs every account out, stops the loop, joins the thread and frees everything. Owners get no
 * further events (not even LOGGED_OUT); their mailboxes may be freed once this returns. */
void np_stop(void);

/* The protocol's display name ("IRC"), valid between np_start and np_stop, or NULL. */
const char *np_protocol_name(void);
/* 0 when the protocol logs in without a password (libpurple's OPT_PROTO_PASSWORD_OPTIONAL or
 * OPT_PROTO_NO_PASSWORD: IRC), else 1; known from np_start to np_stop (1 outside). Any thread. */
int np_password_required(void);
/* 1 when the owner's ADD_BUDDY asks the contact's consent and native reports the answer as
 * NP_EV_BUDDY_AUTHORIZED (prpl-jabber), else 0: the buddy is simply added (IRC) or the
 * protocol's answer is not visible to native. Known from np_start to np_stop (0 outside).
 * Any thread. */
int np_protocol_needs_authorization(void);

/* ---- commands: any thread -> native thread ---- */

enum np_cmd_type {
    NP_CMD_LOGIN,        /* connect the owner's legacy account */
    NP_CMD_LOGOUT,       /* disconnect; answered by NP_EV_LOGGED_OUT */
    NP_CMD_SEND_IM,      /* plain UTF-8 text, native escapes it for libpurple; answered */
    NP_CMD_SET_STATUS,   /* the owner's own legacy status */
    NP_CMD_ADD_BUDDY,    /* add to the legacy contact list (may ask the contact's consent) */
    NP_CMD_REMOVE_BUDDY, /* remove from the legacy contact list */
    NP_CMD_AUTHORIZE,    /* accept or deny an NP_EV_AUTH_REQUEST */
    NP_CMD_SEND_TYPING,  /* typing notification to a contact, where the protocol has them */
    NP_CMD_GET_INFO,     /* answered by NP_EV_USERINFO with the same request id */
    NP_CMD_SEARCH,       /* answered by NP_EV_SEARCH_FORM or NP_EV_SEARCH_RESULTS */
};

enum np_state {
    NP_STATE_OFFLINE = 0,
    NP_STATE_AVAILABLE,
    NP_STATE_AWAY,
    NP_STATE_XA,
    NP_STATE_DND,
    NP_STATE_INVISIBLE, /* own status only; contacts never appear invisible */
};

enum np_typing {
    NP_TYPING_STOPPED = 0, /* not typing (any more) */
    NP_TYPING_ACTIVE,      /* typing now */
    NP_TYPING_PAUSED,      /* typed something, then stopped */
};

/* A name/value pair: search fields in, user info pairs out. */
struct np_field {
    char *name;
    char *value;
};

struct np_cmd {
    enum np_cmd_type type;
    char *owner;
    union {
        struct {
            char *username;     /* legacy user name without server part ("alice") */
            char *password;     /* may be empty; wiped when the command is freed */
            mailbox_t *mailbox; /* not owned: the owner's event port */
        } login;
        struct {
            char *to;
            char *text;
            /* The caller's name for this message (0 by the constructor; set it before np_send):
             * NP_EV_IM_SENT or NP_EV_IM_SEND_FAILED with this id answers it, exactly once,
             * unless the owner is not logged in (no mailbox to answer to). IRC lines may wait
             * for flood control ([legacy] ratelimit-burst, ratelimit-interval) for minutes;
             * when the connection goes, every message still waiting is answered with
             * SEND_FAILED. */
            uint64_t id;
        } im;
        struct {
            enum np_state state;
            char *message; /* may be NULL */
        } status;
        struct {
            char *who;
            char *alias; /* may be NULL */
            char *group; /* may be NULL: the protocol's default group */
        } buddy;
        struct {
            uint64_t id; /* from NP_EV_AUTH_REQUEST */
            int accept;
        } authorize;
        struct {
            char *who;
            enum np_typing state;
        } typing;
        struct {
            uint64_t request_id;
            char *who;
        } info;
        struct {
            uint64_t request_id;
            struct np_field *fields; /* none: ask for the form only (NP_EV_SEARCH_FORM) */
            size_t field_count;
        } search;
    } u;
};

/* Constructors copy every string (NULL allowed where noted above) and return a new command
 * (caller owns it until np_send). */
struct np_cmd *np_cmd_login(const char *owner, const char *username, const char *password,
                            mailbox_t *mailbox);
struct np_cmd *np_cmd_logout(const char *owner);
struct np_cmd *np_cmd_send_im(const char *owner, const char *to, const char *text);
struct np_cmd *np_cmd_set_status(const char *owner, enum np_state state, const char *message);
struct np_cmd *np_cmd_add_buddy(const char *owner, const char *who, const char *alias,
                                const char *group);
struct np_cmd *np_cmd_remove_buddy(const char *owner, const char *who);
struct np_cmd *np_cmd_authorize(const char *owner, uint64_t id, int accept);
struct np_cmd *np_cmd_send_typing(const char *owner, const char *who, enum np_typing state);
struct np_cmd *np_cmd_get_info(const char *owner, uint64_t request_id, const char *who);
struct np_cmd *np_cmd_search(const char *owner, uint64_t request_id, const struct np_field *fields,
                             size_t field_count);
void np_cmd_free(struct np_cmd *cmd);
const char *np_cmd_type_name(enum np_cmd_type type);

/* Queues cmd for the native thread and takes ownership of it in every case. Thread-safe.
 * NP_OK, or NP_ESTOPPED when the thread is not running (cmd freed). */
int np_send(struct np_cmd *cmd);

/* ---- events: native thread -> the owner's mailbox ---- */

/* Every event starts with this value, so a mailbox that also carries other kinds of message
 * can tell an np_event apart by its first int. */
#define NP_EVENT_KIND 0x4e504556 /* "NPEV" */

enum np_event_type {
    NP_EV_SIGNED_ON,        /* connected; display_name is the name really used (nick1) */
    NP_EV_SIGNED_OFF,       /* the connection is gone (after an error, or a status offline) */
    NP_EV_CONNECTION_ERROR, /* reason text, libpurple's code, fatal: do not retry */
    NP_EV_LOGGED_OUT,       /* last event for this owner and mailbox (see top of file) */
    NP_EV_BUDDY_PRESENCE,
    NP_EV_BUDDY_ADDED, /* a contact appeared in the legacy contact list */
    NP_EV_BUDDY_REMOVED,
    NP_EV_IM_RECEIVED,    /* text is plain UTF-8 (libpurple's HTML removed) */
    NP_EV_IM_SEND_FAILED, /* the legacy side refused or could not deliver to `to` */
    NP_EV_TYPING,
    NP_EV_AUTH_REQUEST, /* someone asks to add the owner; answer with NP_CMD_AUTHORIZE */
    NP_EV_USERINFO,
    NP_EV_SEARCH_FORM, /* the fields the protocol's directory can search */
    NP_EV_SEARCH_RESULTS,
    /* the answer to the owner's ADD_BUDDY where np_protocol_needs_authorization(): the
     * contact accepted (also at once when it had already) or refused; also a contact that
     * withdraws an earlier consent (accepted 0) */
    NP_EV_BUDDY_AUTHORIZED,
    NP_EV_IM_SENT, /* the answer to a SEND_IM: written to the network (every line, for IRC) */
};

/* Outcome of a request (GET_INFO, SEARCH). */
enum np_req_status {
    NP_REQ_OK = 0,
    NP_REQ_NOT_FOUND,   /* no such user */
    NP_REQ_UNSUPPORTED, /* the protocol cannot do this (IRC has no directory search) */
    NP_REQ_OFFLINE,     /* the owner is not signed on */
    NP_REQ_BUSY,        /* another search of this owner is still running */
    NP_REQ_FAILED,      /* the legacy side answered with an error (see `error`) */
};

/* Flags of a received message. */
#define NP_IM_AUTO_REPLY 0x1 /* an automatic answer (IRC away message) */
#define NP_IM_DELAYED 0x2    /* stored and delivered late (offline message) */
#define NP_IM_NOTICE 0x4     /* a notice or system text rather than a person's message */

struct np_event {
    int kind; /* always NP_EVENT_KIND */
    enum np_event_type type;
    char *owner;
    union {
        struct {
            char *display_name;
        } signed_on;
        struct {
            char *reason;
            int code;  /* PurpleConnectionError */
            int fatal; /* credentials or settings wrong: retrying cannot help */
        } error;
        struct {
            char *who;
            char *alias; /* may be NULL */
            enum np_state state;
            char *message;    /* status text, plain; may be NULL */
            int idle_seconds; /* 0: not idle */
        } presence;
        struct {
            char *who;
            char *alias; /* may be NULL */
            char *group; /* may be NULL */
        } buddy;
        struct {
            char *from;
            char *text;
            unsigned flags; /* NP_IM_* */
            time_t when;
        } im;
        struct {
            char *to;
            char *reason;
            uint64_t id; /* the SEND_IM answered; 0: a later delivery error (IRC's "no such
                          * nick"), about the latest message to `to` */
        } send_failed;
        struct {
            char *to;
            uint64_t id;
        } sent;
        struct {
            char *who;
            enum np_typing state;
        } typing;
        struct {
            uint64_t id;
            char *who;
            char *alias;   /* may be NULL */
            char *message; /* may be NULL */
        } auth;
        struct {
            char *who;
            int accepted; /* 1: the owner may see who's presence; 0: refused or withdrawn */
        } authorized;
        struct {
            uint64_t request_id;
            char *who;
            enum np_req_status status;
            char *error;            /* may be NULL */
            struct np_field *pairs; /* label/value in the network's order, values plain */
            size_t pair_count;
        } userinfo;
        struct {
            uint64_t request_id;
            char *instructions;      /* may be NULL */
            struct np_field *fields; /* name: field id to fill in; value: its label */
            size_t field_count;
        } search_form;
        struct {
            uint64_t request_id;
            enum np_req_status status;
            char *error; /* may be NULL */
            char **columns;
            size_t column_count;
            char **cells; /* row_count * column_count, row by row; NULL cells become "" */
            size_t row_count;
        } search;
    } u;
};

/* Constructors copy every string and return a new event (caller frees). Lists are copied too. */
struct np_event *np_event_signed_on(const char *owner, const char *display_name);
struct np_event *np_event_signed_off(const char *owner);
struct np_event *np_event_connection_error(const char *owner, const char *reason, int code,
                                           int fatal);
struct np_event *np_event_logged_out(const char *owner);
struct np_event *np_event_presence(const char *owner, const char *who, const char *alias,
                                   enum np_state state, const char *message, int idle_seconds);
struct np_event *np_event_buddy_added(const char *owner, const char *who, const char *alias,
                                      const char *group);
struct np_event *np_event_buddy_removed(const char *owner, const char *who);
struct np_event *np_event_im_received(const char *owner, const char *from, const char *text,
                                      unsigned flags, time_t when);
/* id 0; set u.send_failed.id for an answer to a SEND_IM. */
struct np_event *np_event_im_send_failed(const char *owner, const char *to, const char *reason);
struct np_event *np_event_im_sent(const char *owner, const char *to, uint64_t id);
struct np_event *np_event_typing(const char *owner, const char *who, enum np_typing state);
struct np_event *np_event_auth_request(const char *owner, uint64_t id, const char *who,
                                       const char *alias, const char *message);
struct np_event *np_event_userinfo(const char *owner, uint64_t request_id, const char *who,
                                   enum np_req_status status, const char *error,
                                   const struct np_field *pairs, size_t pair_count);
struct np_event *np_event_search_form(const char *owner, uint64_t request_id,
                                      const char *instructions, const struct np_field *fields,
                                      size_t field_count);
struct np_event *np_event_search_results(const char *owner, uint64_t request_id,
                                         enum np_req_status status, const char *error,
                                         const char *const *columns, size_t column_count,
                                         const char *const *cells, size_t row_count);
struct np_event *np_event_buddy_authorized(const char *owner, const char *who, int accepted);
void np_event_free(struct np_event *ev);
/* For a mailbox's mb_free_fn. */
void np_event_free_void(void *ev);
const char *np_event_type_name(enum np_event_type type);
const char *np_state_name(enum np_state state);

#endif
