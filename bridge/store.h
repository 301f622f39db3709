/* The store: what Ferry remembers across restarts. Registrations (legacy credentials, the
 * password sealed with lib/crypto), the legacy contacts of each owner with their subscription
 * state, and messages that must survive a restart while they wait for delivery.
 *
 * The interface is narrow and says nothing of SQL, so that a PostgreSQL backend can implement
 * it later for several Ferry processes; today it is one SQLite file, <dir>/ferry.db (WAL),
 * directory 0700, files 0600.
 *
 * Durability: every call that writes is one transaction, committed with synchronous=FULL
 * before it returns. After a crash (kill -9, or power loss) a registration is there whole or
 * not at all, and one that was acknowledged stays.
 *
 * Threads: any thread may call any function; calls are serialized on one connection by a
 * mutex held for the duration of the call. Do not use a store across fork(); open a new one.
 *
 * Owners are bare JIDs, compared byte for byte: callers pass them normalized (lib/jid.h).
 * Times are Unix seconds. Returned structs own their strings; free them with the matching
 * _free function. */
#ifndef FERRY_BRIDGE_STORE_H
#define FERRY_BRIDGE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/crypto.h"

enum store_result {
    STORE_OK = 0,
    STORE_ENOTFOUND = -1, /* no such row; for a put or add: the owner is not registered */
    STORE_EDB = -2,       /* the database failed (logged) */
    STORE_ECRYPTO = -3,   /* a stored password does not open: other key, or the row was altered */
    STORE_EINVAL = -4,    /* an argument out of range */
};

struct store;

struct store_registration {
    char *owner;        /* bare JID */
    char *username;     /* legacy account name */
    char *password;     /* in clear; store_registration_free wipes it */
    int64_t created;    /* first registration */
    int64_t last_login; /* last successful legacy login; 0: never */
    char *settings;     /* the owner's settings, opaque text (JSON); "{}" when none were set */
};

/* Subscription between the owner and one legacy contact, as the owner's roster sees the
 * contact's JID (RFC 6121 section 2.1.2.5), plus ASKED: Ferry sent the owner a subscribe
 * from this contact and has no answer yet. */
enum store_subscription {
    STORE_SUB_NONE = 0,
    STORE_SUB_ASKED, /* subscribe sent to the owner, no answer yet */
    STORE_SUB_TO,    /* the owner receives the contact's presence */
    STORE_SUB_FROM,  /* the contact receives the owner's presence */
    STORE_SUB_BOTH,
};

struct store_contact {
    char *owner;     /* bare JID */
    char *legacy_id; /* the contact's name on the legacy network (not escaped) */
    char *alias;     /* nickname; NULL: none */
    char *groups;    /* group names, one per line; NULL: none */
    enum store_subscription subscription;
    /* 1 once Ferry sent the owner a subscribe from this contact: it is never sent again at
     * the next login, whatever the owner answered. */
    int subscribe_sent;
};

enum store_direction {
    STORE_DIR_TO_OWNER = 0, /* from a legacy contact, waiting for the owner */
    STORE_DIR_TO_LEGACY,    /* from the owner, waiting for the legacy network */
};

struct store_pending {
    int64_t id;  /* increasing: a later message has a larger id */
    char *owner; /* bare JID */
    enum store_direction direction;
    char *peer;      /* the contact's legacy id */
    char *body;      /* plain text body; NULL: none */
    char *stanza;    /* the serialized stanza, if the caller keeps one; NULL: none */
    int64_t created; /* when it was added (for an XEP-0203 delay stamp) */
};

/* Creates dir with mode 0700 when missing (its parent must exist); an existing dir that
 * group or others can access is chmod-ed to 0700 with a log line. Called by store_open;
 * public so the key file can be put in dir before the store is opened.
 * 0, or -1 with *err set to a new message (caller frees). */
int store_prepare_dir(const char *dir, char **err);

/* Opens (creating when missing) the store in dir, migrating its schema to the latest version.
 * The key seals and opens passwords; the store keeps a copy and wipes it on close.
 * Returns a new store (close with store_close) or NULL with *err set to a new message
 * (caller frees): unusable directory, database not openable, a schema newer than this
 * program, a failed migration (rolled back). */
struct store *store_open(const char *dir, const unsigned char key[CRYPTO_KEY_LEN], char **err);
/* Closes the connection (checkpointing the WAL) and wipes the key. NULL is fine. */
void store_close(struct store *st);
/* The schema version of the open database (the latest one after store_open). */
int store_schema_version(struct store *st);
/* Runs SQLite's integrity check. STORE_OK when it reports "ok", else STORE_EDB (logged). */
int store_integrity_check(struct store *st);

/* Registrations. */
/* Fills *out (caller frees with store_registration_free). STORE_OK, STORE_ENOTFOUND,
 * STORE_ECRYPTO (the password does not open with this key; *out is left empty) or STORE_EDB. */
int store_registration_get(struct store *st, const char *owner, struct store_registration *out);
/* Frees the strings of reg, wiping the password first, and zeroes reg. NULL is fine. */
void store_registration_free(struct store_registration *reg);
/* Creates the owner's registration, or replaces username, password and (when not NULL)
 * settings of an existing one, keeping created, last_login and the contacts: one statement,
 * so a concurrent put for the same owner never produces two registrations. settings NULL:
 * keep (or "{}" for a new one). password may be empty, not NULL.
 * STORE_OK, STORE_EINVAL or STORE_EDB. */
int store_registration_put(struct store *st, const char *owner, const char *username,
                           const char *password, const char *settings);
/* Deletes the registration with the owner's contacts and pending messages, in one
 * transaction. STORE_OK, STORE_ENOTFOUND or STORE_EDB. */
int store_registration_remove(struct store *st, const char *owner);
/* Every registered owner, sorted: *owners is a new array of *count new strings (caller frees
 * with store_strings_free). STORE_OK or STORE_EDB. */
int store_registration_list(struct store *st, char ***owners, size_t *count);
void store_strings_free(char **strings, size_t count);
/* Sets last_login to now. STORE_OK, STORE_ENOTFOUND or STORE_EDB. */
int store_touch_login(struct store *st, const char *owner);

/* Contacts, keyed by (owner, legacy_id). */
/* Inserts or replaces every field of the contact. STORE_OK, STORE_ENOTFOUND (owner not
 * registered), STORE_EINVAL (bad subscription value) or STORE_EDB. */
int store_contact_put(struct store *st, const struct store_contact *contact);
/* Fills *out (caller frees with store_contact_free). STORE_OK, STORE_ENOTFOUND, STORE_EDB. */
int store_contact_get(struct store *st, const char *owner, const char *legacy_id,
                      struct store_contact *out);
/* The owner's contacts sorted by legacy_id: *out is a new array of *count contacts (caller
 * frees with store_contact_list_free; NULL when count is 0). STORE_OK or STORE_EDB. */
int store_contact_list(struct store *st, const char *owner, struct store_contact **out,
                       size_t *count);
/* STORE_OK, STORE_ENOTFOUND or STORE_EDB. */
int store_contact_remove(struct store *st, const char *owner, const char *legacy_id);
void store_contact_free(struct store_contact *contact);
void store_contact_list_free(struct store_contact *contacts, size_t count);
/* "none", "asked", "to", "from", "both"; NULL for a value out of range. */
const char *store_subscription_name(enum store_subscription sub);

/* Messages waiting for delivery across a restart. */
/* Adds one (body and stanza may be NULL); *id (may be NULL) receives its id.
 * STORE_OK, STORE_ENOTFOUND (owner not registered), STORE_EINVAL or STORE_EDB. */
int store_pending_add(struct store *st, const char *owner, enum store_direction direction,
                      const char *peer, const char *body, const char *stanza, int64_t *id);
/* The owner's waiting messages, oldest first: *out is a new array of *count (caller frees
 * with store_pending_list_free; NULL when count is 0). STORE_OK or STORE_EDB. */
int store_pending_list(struct store *st, const char *owner, struct store_pending **out,
                       size_t *count);
/* Removes one once it is delivered (or answered with an error). STORE_OK, STORE_ENOTFOUND,
 * STORE_EDB. */
int store_pending_remove(struct store *st, int64_t id);
void store_pending_list_free(struct store_pending *pending, size_t count);

#endif
