/* Sessions: one thread per online owner, and the table (bridge/sessions.c) that finds them.
 * Private to bridge/sessions.c, bridge/session.c and bridge/contacts.c.
 *
 * A session's mailbox carries two kinds of mail, told apart by their first int: native events
 * (struct np_event, NP_EVENT_KIND) and stanzas from the router (struct sess_msg,
 * SESS_MSG_KIND). The session thread alone reads and changes the owner's state; other threads
 * only post mail or set request bits.
 *
 * Life of a session: the table creates it (session_start) for an available presence from a
 * registered owner. The thread ends by itself: it sends what it must, sends LOGOUT, asks the
 * table to forget it (sessions_detach: from then on new stanzas for the owner go to a new
 * session), hands any stanza still queued or kept aside back to the table
 * (sessions_redispatch), waits for native's LOGGED_OUT (after which native never touches the
 * mailbox), and reports sessions_finished. The table then joins and frees it (session_free): a
 * session is never freed from inside its own thread. */
#ifndef FERRY_BRIDGE_SESSION_H
#define FERRY_BRIDGE_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "bridge/internal.h"
#include "lib/mailbox.h"
#include "lib/xml.h"
#include "native/native.h"

#define SESS_MSG_KIND 0x53455353 /* "SESS": differs from NP_EVENT_KIND */

enum sess_msg_type {
    SESS_MSG_OWNER_PRESENCE, /* from the owner to the transport's bare domain */
    SESS_MSG_TO_CONTACT,     /* message or presence from the owner to contact@domain */
    SESS_MSG_WAKE,           /* no stanza: look at the request bits */
    SESS_MSG_REQUEST,        /* an IQ the session answers through the legacy network:
                              * jabber:iq:search to the domain, vcard-temp to a contact */
    SESS_MSG_LINK_UP,        /* no stanza: the component link came back and the owner is
                              * being probed (posted before any answer to the probe) */
};

struct sess_msg {
    int kind; /* always SESS_MSG_KIND */
    enum sess_msg_type type;
    xn_t *stanza; /* owned; NULL for WAKE */
};

/* Request bits another thread may set on a session. */
#define SESS_REQ_SHUTDOWN 0x1 /* SIGTERM: presences to the owner, then log out */
#define SESS_REQ_END 0x2      /* end without presences (registration changed, teardown) */
#define SESS_REQ_SPILLED 0x4  /* owner presences kept aside: see session_post_presence */

/* After SESS_MSG_LINK_UP, how long the owner's resources known from before have to be
 * confirmed by a presence (the server's answer to the probe, or the client coming back)
 * before they are dropped: a server restart forgets every client, and one that does not come
 * back is never said to be gone. The answers take milliseconds; this leaves room for a
 * loaded server and for the messages kept while the link was down, which go first. They are
 * dropped only if the owner's server answered within it (an available presence, or an
 * unavailable from the bare JID); without any answer they are all kept. */
#define SESS_LINK_GRACE_MS 5000

/* Mail a session may hold before senders are refused. */
#define SESSION_MAILBOX_CAPACITY 1024

struct session;

/* ---- bridge/session.c ---- */
/* Creates the session's mailbox and starts its thread (logging in to the legacy network).
 * NULL when no mailbox or thread could be made (logged). */
struct session *session_start(struct sessions *table, bridge_t *b, const char *owner);
/* Posts a stanza (taking ownership on MB_OK only). MB_OK, MB_EFULL or MB_ECLOSED. */
int session_post(struct session *s, enum sess_msg_type type, xn_t *stanza);
/* Posts an owner presence (SESS_MSG_OWNER_PRESENCE). When the mailbox is full it is kept aside
 * instead (the latest one per full JID), and so is every later one until the thread has read
 * the mailbox's: a client flapping faster than the session keeps up never loses its last
 * presence. MB_OK, MB_EFULL (nothing could keep it) or MB_ECLOSED. The table's lock held. */
int session_post_presence(struct session *s, xn_t *presence);
/* Sets request bits and wakes the thread. Any thread. */
void session_request(struct session *s, int bits);
const char *session_owner(const struct session *s);
/* Joins the finished thread and frees everything. Only the table calls it. */
void session_free(struct session *s);
/* For a mailbox's free function: frees either kind of mail. */
void session_mail_free(void *mail);

/* ---- bridge/sessions.c: what session threads call back ---- */
/* Forgets s in the table (under its lock): later stanzas for the owner start a new session. */
void sessions_detach(struct sessions *table, struct session *s);
/* s has finished (after LOGGED_OUT): the table may join and free it. Last call of the thread. */
void sessions_finished(struct sessions *table, struct session *s);
/* Routes a stanza that reached s after it detached as if it had just arrived (takes it). */
void sessions_redispatch(struct sessions *table, enum sess_msg_type type, xn_t *stanza);

/* ---- bridge/contacts.c: one owner's legacy contacts (used by its session thread only) ---- */
struct contact {
    char *legacy; /* the legacy name, as the network spelled it last */
    char *node;   /* its JID node (XEP-0106 escaped, nodeprepped) */
    char *jid;    /* node@domain */
    char *alias;  /* nickname, or NULL */
    int mapped;   /* the name has no node of its own: node is a digest (contacts.c) */
    enum store_subscription sub;
    int subscribe_sent;
    char *stored_id; /* the legacy_id of its row in the store, or NULL: no row */
    /* live legacy state */
    enum np_state state;
    char *status;       /* plain, XML-safe, or NULL */
    int64_t idle_since; /* Unix seconds; 0: not idle */
    int shown;          /* the owner was sent a presence other than unavailable */
    /* a legacy authorization request waiting for the owner's answer */
    int auth_pending;
    uint64_t auth_id;
    /* what the owner's last message carried, for the reply */
    char *reply_type;
    char *reply_thread;
    int chat_states; /* the contact sent typing notifications */
    /* messages sent to the contact lately, oldest first, for a delivery error to bounce */
    xn_t *sent[8];
    int64_t sent_at[8];
    size_t sent_count;
};

struct contacts;

/* domain: the transport's JID (copied). */
struct contacts *contacts_new(const char *domain);
void contacts_free(struct contacts *cs);
/* Loads the owner's stored contacts (subscription state, aliases). 0, or -1 (logged). */
int contacts_load(struct contacts *cs, struct store *st, const char *owner);
/* The contact for a legacy name, created when missing (and create is set). The spelling is
 * remembered, so replies go to the name the network used. A name whose escaping nodeprep
 * refuses gets a digest node instead (mapped set, logged). NULL for an empty name. */
struct contact *contacts_by_legacy(struct contacts *cs, const char *legacy, int create);
/* The contact for a JID node (as jid_node() gives it), created when missing (and create is
 * set) with the unescaped node as its legacy name. NULL when the node unescapes to nothing
 * usable. */
struct contact *contacts_by_node(struct contacts *cs, const char *node, int create);
size_t contacts_count(const struct contacts *cs);
struct contact *contacts_at(struct contacts *cs, size_t i);
/* Writes the contact's subscription state and alias to the store. 0 or -1 (logged). */
int contacts_save(struct contacts *cs, struct store *st, const char *owner, struct contact *c);
/* Deletes the contact's row (the contact stays in memory with sub NONE). */
void contacts_forget(struct contacts *cs, struct store *st, const char *owner, struct contact *c);
/* Remembers a message sent to c (takes a reference) for a later delivery error. */
void contact_sent_push(struct contact *c, const xn_t *message, int64_t now);
/* The newest message sent to c within max_age_ms, taken off the list (caller owns the
 * reference), or NULL. */
xn_t *contact_sent_pop(struct contact *c, int64_t now, int64_t max_age_ms);
void contact_set_status(struct contact *c, enum np_state state, const char *status,
                        int idle_seconds);
void contact_set_reply(struct contact *c, const char *type, const char *thread);

#endif
