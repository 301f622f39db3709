/* Search and contact details through the legacy network: jabber:iq:search on the transport's
 * domain and vcard-temp on a contact's JID. Private to bridge/.
 *
 * The requests run in the owner's session thread and never block it: each one waits in the
 * session's request table (struct searches) for native's answer (NP_EV_SEARCH_FORM,
 * NP_EV_SEARCH_RESULTS, NP_EV_USERINFO, matched by request id) or for its deadline ([legacy]
 * request_timeout), which the session's mailbox wait honours (searches_deadline).
 *
 * How a search runs: the protocol's own search form is fetched once per session (a SEARCH
 * command without fields) and kept; the owner's fields (plain XEP-0055 elements or an
 * XEP-0004 submission) are mapped onto it and a SEARCH command with them runs the directory
 * search; the result rows come back as items. A protocol without a directory (IRC) answers
 * the form request with NP_REQ_UNSUPPORTED: the search is then a lookup of the one name given
 * (GET_INFO, IRC's WHOIS) and answers that user when they exist.
 *
 * Ownership: every function taking an xn_t * takes the reference; strings are copied. */
#ifndef FERRY_BRIDGE_SEARCH_H
#define FERRY_BRIDGE_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "bridge/internal.h"
#include "lib/xml.h"
#include "native/native.h"

#define NS_SEARCH "jabber:iq:search"
#define NS_XDATA "jabber:x:data"
#define NS_VCARD "vcard-temp"

/* ---- bridge/search.c: one owner's requests (used by its session thread only) ---- */
struct searches;

/* owner: the session's bare JID (copied). */
struct searches *searches_new(bridge_t *b, const char *owner);
/* Frees everything; requests still waiting are dropped unanswered (see searches_abort). */
void searches_free(struct searches *ss);
/* A jabber:iq:search get/set to the transport, or a vcard-temp get to a contact, from the
 * owner (takes iq). online: the legacy side is signed on; offline_reason (may be NULL) is
 * told to the owner otherwise. Answers at once or keeps the request until native answers. */
void searches_request(struct searches *ss, xn_t *iq, int online, const char *offline_reason);
/* Native's USERINFO, SEARCH_FORM and SEARCH_RESULTS: 1 when ev was one of them (answered or
 * stale), 0 for any other event. Does not free ev. */
int searches_event(struct searches *ss, const struct np_event *ev);
/* The earliest deadline of a waiting request (now_ms() clock), or INT64_MAX. */
int64_t searches_deadline(const struct searches *ss);
/* Answers remote-server-timeout to every request whose deadline is past. */
void searches_expire(struct searches *ss, int64_t now);
/* Answers every waiting request with this error (the session ends). text may be NULL. */
void searches_abort(struct searches *ss, const char *condition, const char *text);

/* ---- bridge/search.c: the mapping between XMPP and the protocol's form (pure) ---- */

/* The name a search field or result column goes by on the XMPP side: "first", "last",
 * "nick", "email" (and "jid" when jid_too is set) for the names and labels that mean those
 * (First Name, Given Name, Nickname, E-Mail, JID, Jabber ID ...); otherwise the text made
 * lower case with every run of other characters than [a-z0-9] turned into one '_' (never
 * empty: "field"). Returns a new string. */
char *search_var(const char *name_or_label, int jid_too);
/* The XMPP-side var of a protocol form field (id, label): search_var of the id when it is a
 * well-known name, else of the label when that is, else the id itself. New string. */
char *search_field_var(const struct np_field *field);
/* The <query xmlns='jabber:iq:search'/> answering a get: instructions, the fields as plain
 * elements (those whose var is an XML name) and as an XEP-0004 form. form: the protocol's
 * fields (name: id, value: label). title and instructions may be NULL. New root. */
xn_t *search_form_query(const char *title, const char *instructions, const struct np_field *form,
                        size_t count);
/* The owner's fields from a get/set query: an XEP-0004 submission when there is one
 * (*is_form set), else the plain elements (instructions excluded). Values trimmed of white
 * space; empty ones and FORM_TYPE left out. Returns how many (*out: new array, free with
 * search_fields_free), 0 with *out NULL when none. */
size_t search_fields_from_query(const xn_t *query, struct np_field **out, int *is_form);
/* The owner's fields renamed to the protocol's field ids: a name that is the var of a form
 * field (search_field_var) takes that field's id; others stay as they are. In place. */
void search_fields_to_protocol(struct np_field *fields, size_t count, const struct np_field *form,
                               size_t form_count);
/* The <query xmlns='jabber:iq:search'/> of a result: one item per row, its JID made from the
 * row's legacy name (the cell of the first column whose var is "jid", else the first column)
 * escaped into domain (rows whose name cannot be a JID are left out). Plain variant: <item
 * jid=...> with the non-empty first/last/nick/email cells; form variant: an XEP-0004 result
 * with <reported/> (one field per distinct var) and <item/>s. Cells are legacy text (cleaned).
 * New root. */
xn_t *search_result_query(const char *domain, const char *const *columns, size_t column_count,
                          const char *const *cells, size_t row_count, int as_form);
void search_fields_free(struct np_field *fields, size_t count);

/* ---- bridge/vcard.c ---- */
/* A <vCard xmlns='vcard-temp'/> from the legacy network's user info (label/value pairs, as
 * NP_EV_USERINFO carries them): FN (real or full name, else the nickname, else who), NICKNAME,
 * N, EMAIL, URL, BDAY, ORG, TITLE, ROLE, TEL where a label says so, every other pair as a
 * "Label: value" line of DESC. Texts are cleaned (bridge/text.h). New root. */
xn_t *vcard_from_userinfo(const char *who, const struct np_field *pairs, size_t count);

#endif
