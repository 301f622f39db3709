/* JIDs (RFC 7622 with the stringprep profiles of RFC 6122: nodeprep, nameprep, resourceprep,
 * through libidn) and XEP-0106 escaping of legacy names into JID nodes. */
#ifndef FERRY_LIB_JID_H
#define FERRY_LIB_JID_H

#include <stddef.h>

#define JID_PART_MAX 1023 /* bytes per part after preparation */

typedef struct jid jid_t;

/* Parses and normalizes "node@domain/resource" (node and resource optional).
 * Returns a new jid (caller frees with jid_free), or NULL when s is not a valid JID. */
jid_t *jid_parse(const char *s);
/* Builds a JID from parts (node and resource may be NULL); same validation as jid_parse. */
jid_t *jid_new(const char *node, const char *domain, const char *resource);
jid_t *jid_copy(const jid_t *jid);
void jid_free(jid_t *jid);

/* Parts, normalized; node and resource are NULL when absent. Owned by the jid. */
const char *jid_node(const jid_t *jid);
const char *jid_domain(const jid_t *jid);
const char *jid_resource(const jid_t *jid);
/* "node@domain/resource" and "node@domain", owned by the jid. */
const char *jid_full(const jid_t *jid);
const char *jid_bare(const jid_t *jid);

/* 1 when equal (all parts, or node and domain only), else 0. */
int jid_equal(const jid_t *a, const jid_t *b);
int jid_bare_equal(const jid_t *a, const jid_t *b);

/* XEP-0106: escapes a legacy name (UTF-8) into JID node syntax: space " & ' / : < > @ become
 * \20 \22 \26 \27 \2f \3a \3c \3e \40, and a backslash becomes \5c where it would otherwise
 * start one of those sequences (or \5c itself). A pure string map: injective, and
 * jid_unescape_node(jid_escape_node(x)) is x for every x. No stringprep is applied.
 * Returns a new string, or NULL on invalid UTF-8. */
char *jid_escape_node(const char *legacy_name);
/* The inverse: returns a new string, the legacy name. NULL on invalid UTF-8. */
char *jid_unescape_node(const char *node);

/* The JID node for a legacy name: jid_escape_node() then nodeprep. Returns a new string, or NULL
 * when no valid node results (nodeprep rejects it, or it is empty or longer than JID_PART_MAX).
 * Nodeprep folds case, so names that differ only in case (as IRC nicks are equal) share a node;
 * any two names that nodeprep leaves unchanged keep distinct nodes. */
char *jid_node_from_legacy(const char *legacy_name);

#endif
