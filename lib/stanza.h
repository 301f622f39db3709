/* Building replies to stanzas: IQ results and RFC 6120 stanza errors, with to and from swapped.
 *
 * Ownership: every function returning xn_t * returns a new root (one reference, caller owns);
 * the stanza being answered is only read. */
#ifndef FERRY_LIB_STANZA_H
#define FERRY_LIB_STANZA_H

#include "lib/xml.h"

/* Stanza kinds as the router and the component see them. */
enum stanza_kind { STANZA_OTHER = 0, STANZA_MESSAGE, STANZA_PRESENCE, STANZA_IQ };

/* The kind of a top-level element of the component stream (message, presence, iq in
 * jabber:component:accept); STANZA_OTHER for anything else. */
enum stanza_kind stanza_kind(const xn_t *stanza);

/* <iq type='result'/> answering iq: same id, from = iq's to, to = iq's from. */
xn_t *stanza_iq_result(const xn_t *iq);

/* The same, with a new payload child <name xmlns=ns/>; *payload (when not NULL) receives it
 * (owned by the returned stanza). */
xn_t *stanza_iq_result_with(const xn_t *iq, const char *ns, const char *name, xn_t **payload);

/* An error reply to stanza (same element name and id, to and from swapped, type='error') with
 * <error type=...><condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>[<text/>]</error>.
 * condition is an RFC 6120 defined condition ("service-unavailable", ...); the error type
 * (cancel, modify, auth, wait) follows RFC 6120 section 8.3.3. text may be NULL. The
 * original payload is not echoed: a reply to an oversized stanza must not be oversized. */
xn_t *stanza_error(const xn_t *stanza, const char *condition, const char *text);

/* The RFC 6120 error type for a defined condition ("cancel" for unknown conditions). */
const char *stanza_error_type(const char *condition);

/* 1 when stanza may be answered with an error: not of type error, and not an IQ result. */
int stanza_may_bounce(const xn_t *stanza);

#endif
