/* jabber:iq:search and contact vCards through the legacy network (bridge/search.h tells the
 * flow). The first half maps between XMPP's search forms and the protocol's (pure functions);
 * the second keeps one owner's waiting requests for its session thread. */
#include "bridge/search.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bridge/text.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/stanza.h"
#include "lib/util.h"

#define TAG "search"
/* Requests one owner may have waiting; more are refused rather than piled up. */
#define MAX_WAITING 64

/* ---- names: the protocol's fields and columns as XMPP names them ---- */

/* Keys are compared in lower case with everything but letters and digits left out. */
static const struct {
    const char *key;
    const char *var;
} well_known[] = {
    {"first", "first"},   {"firstname", "first"},    {"givenname", "first"},
    {"given", "first"},   {"forename", "first"},     {"last", "last"},
    {"lastname", "last"}, {"familyname", "last"},    {"family", "last"},
    {"surname", "last"},  {"nick", "nick"},          {"nickname", "nick"},
    {"email", "email"},   {"emailaddress", "email"}, {"mail", "email"},
    {"jid", "jid"},       {"jabberid", "jid"},       {"xmppaddress", "jid"},
    {"uin", "jid"},
};

/* The well-known var for s, or NULL. */
static const char *known_var(const char *s, int jid_too)
{
    char key[32];
    size_t n = 0;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s))
            continue;
        if (n + 1 >= sizeof(key))
            return NULL;
        key[n++] = (char)tolower((unsigned char)*s);
    }
    key[n] = '\0';
    for (size_t i = 0; i < FERRY_ARRAY_LEN(well_known); i++)
        if (strcmp(well_known[i].key, key) == 0)
            return jid_too || strcmp(well_known[i].var, "jid") != 0 ? well_known[i].var : NULL;
    return NULL;
}

char *search_var(const char *name_or_label, int jid_too)
{
    const char *known = known_var(name_or_label, jid_too);
    if (known)
        return xstrdup(known);
    size_t len = strlen(name_or_label);
    char *out = xmalloc(len + 6);
    size_t n = 0;
    for (const char *p = name_or_label; *p; p++) {
        unsigned char c = (unsigned char)tolower((unsigned char)*p);
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            out[n++] = (char)c;
        else if (n > 0 && out[n - 1] != '_')
            out[n++] = '_';
    }
    while (n > 0 && out[n - 1] == '_')
        n--;
    if (n == 0)
        strcpy(out, "field");
    else
        out[n] = '\0';
    return out;
}

char *search_field_var(const struct np_field *field)
{
    const char *id = field->name ? field->name : "";
    const char *label = field->value ? field->value : "";
    const char *known = known_var(id, 0);
    if (!known)
        known = known_var(label, 0);
    if (known)
        return xstrdup(known);
    return *id ? xstrdup(id) : search_var(label, 0);
}

/* A name that can be an element of its own in the plain variant. */
static int is_xml_name(const char *s)
{
    if (!isalpha((unsigned char)*s) && *s != '_')
        return 0;
    if (strncasecmp(s, "xml", 3) == 0)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return 0;
    return 1;
}

static int is_plain_result_var(const char *var)
{
    return strcmp(var, "first") == 0 || strcmp(var, "last") == 0 || strcmp(var, "nick") == 0 ||
           strcmp(var, "email") == 0;
}

/* ---- the form of a get ---- */

static xn_t *xdata_new(xn_t *parent, const char *type)
{
    xn_t *x = xn_add_child(parent, NS_XDATA, "x");
    xn_set_attr(x, "type", type);
    return x;
}

static void add_form_type(xn_t *x)
{
    xn_t *f = xn_add_child(x, NULL, "field");
    xn_set_attr(f, "type", "hidden");
    xn_set_attr(f, "var", "FORM_TYPE");
    xn_add_child_text(f, NULL, "value", NS_SEARCH);
}

static int seen_before(char **vars, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (strcmp(vars[k], vars[i]) == 0)
            return 1;
    return 0;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

xn_t *search_form_query(const char *title, const char *instructions, const struct np_field *form,
                        size_t count)
{
    xn_t *query = xn_new(NS_SEARCH, "query");
    char **vars = xcalloc(count + 1, sizeof(*vars));
    if (instructions)
        xn_add_child_text(query, NULL, "instructions", instructions);
    for (size_t i = 0; i < count; i++) {
        vars[i] = search_field_var(&form[i]);
        if (!seen_before(vars, i) && is_xml_name(vars[i]))
            xn_add_child(query, NULL, vars[i]);
    }
    xn_t *x = xdata_new(query, "form");
    if (title)
        xn_add_child_text(x, NULL, "title", title);
    if (instructions)
        xn_add_child_text(x, NULL, "instructions", instructions);
    add_form_type(x);
    for (size_t i = 0; i < count; i++) {
        if (seen_before(vars, i))
            continue;
        xn_t *f = xn_add_child(x, NULL, "field");
        xn_set_attr(f, "type", "text-single");
        xn_set_attr(f, "var", vars[i]);
        if (form[i].value && *form[i].value)
            xn_set_attr(f, "label", form[i].value);
    }
    free_strings(vars, count);
    return query;
}

/* ---- the owner's fields ---- */

static char *trimmed(char *s)
{
    size_t len = strlen(s), start = 0;
    while (start < len && isspace((unsigned char)s[start]))
        start++;
    while (len > start && isspace((unsigned char)s[len - 1]))
        len--;
    memmove(s, s + start, len - start);
    s[len - start] = '\0';
    return s;
}

static void push_field(struct np_field **out, size_t *n, const char *name, char *value)
{
    trimmed(value);
    if (!*name || !*value || strcmp(name, "FORM_TYPE") == 0) {
        free(value);
        return;
    }
    *out = xrealloc(*out, (*n + 1) * sizeof(**out));
    (*out)[*n].name = xstrdup(name);
    (*out)[*n].value = value;
    (*n)++;
}

size_t search_fields_from_query(const xn_t *query, struct np_field **out, int *is_form)
{
    size_t n = 0;
    *out = NULL;
    const xn_t *x = xn_child(query, NS_XDATA, "x");
    *is_form = x != NULL;
    if (x) {
        for (xn_t *f = xn_first_element(x); f; f = xn_next_element(f)) {
            const char *var = xn_attr(f, "var");
            char *value = xn_child_text(f, NULL, "value");
            if (strcmp(xn_name(f), "field") == 0 && var && value)
                push_field(out, &n, var, value);
            else
                free(value);
        }
        return n;
    }
    for (xn_t *e = xn_first_element(query); e; e = xn_next_element(e)) {
        const char *name = xn_name(e);
        if (strcmp(xn_ns(e), NS_SEARCH) != 0 || strcmp(name, "instructions") == 0 ||
            strcmp(name, "item") == 0)
            continue;
        push_field(out, &n, name, xn_text(e));
    }
    return n;
}

void search_fields_to_protocol(struct np_field *fields, size_t count, const struct np_field *form,
                               size_t form_count)
{
    for (size_t i = 0; i < count; i++) {
        for (size_t k = 0; k < form_count; k++) {
            char *var = search_field_var(&form[k]);
            int match = strcmp(var, fields[i].name) == 0 && form[k].name;
            free(var);
            if (match) {
                free(fields[i].name);
                fields[i].name = xstrdup(form[k].name);
                break;
            }
        }
    }
}

void search_fields_free(struct np_field *fields, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(fields[i].name);
        free(fields[i].value);
    }
    free(fields);
}

/* ---- results ---- */

struct table {
    const char *domain;
    char **titles; /* cleaned column titles */
    char **vars;
    size_t ncol;
    size_t name_col; /* the column holding the legacy name */
};

static void table_init(struct table *t, const char *domain, const char *const *columns, size_t ncol)
{
    t->domain = domain;
    t->ncol = ncol;
    t->titles = xcalloc(ncol + 1, sizeof(*t->titles));
    t->vars = xcalloc(ncol + 1, sizeof(*t->vars));
    t->name_col = 0;
    int found = 0;
    for (size_t c = 0; c < ncol; c++) {
        t->titles[c] = text_from_legacy_str(columns[c] ? columns[c] : "");
        t->vars[c] = search_var(t->titles[c], 1);
        if (!found && strcmp(t->vars[c], "jid") == 0) {
            t->name_col = c;
            found = 1;
        }
    }
}

static void table_free(struct table *t)
{
    free_strings(t->titles, t->ncol);
    free_strings(t->vars, t->ncol);
}

/* The transport JID of row r's legacy name (new string), or NULL. */
static char *row_jid(const struct table *t, const char *const *row)
{
    const char *name = row[t->name_col] ? row[t->name_col] : "";
    char *clean = text_from_legacy_str(name);
    char *node = *clean ? jid_node_from_legacy(clean) : NULL;
    char *jid = node ? xasprintf("%s@%s", node, t->domain) : NULL;
    if (*clean && !node)
        log_info(TAG, "result %s left out: no JID can carry that name", clean);
    free(node);
    free(clean);
    return jid;
}

static void plain_item(xn_t *query, const struct table *t, const char *const *row, const char *jid)
{
    xn_t *item = xn_add_child(query, NULL, "item");
    xn_set_attr(item, "jid", jid);
    for (size_t c = 0; c < t->ncol; c++) {
        if (!is_plain_result_var(t->vars[c]) || seen_before(t->vars, c) || !row[c] || !*row[c])
            continue;
        char *value = text_from_legacy_str(row[c]);
        xn_add_child_text(item, NULL, t->vars[c], value);
        free(value);
    }
}

static void add_value_field(xn_t *item, const char *var, const char *value)
{
    xn_t *f = xn_add_child(item, NULL, "field");
    xn_set_attr(f, "var", var);
    if (value && *value) {
        char *clean = text_from_legacy_str(value);
        xn_add_child_text(f, NULL, "value", clean);
        free(clean);
    }
}

static xn_t *form_result(xn_t *query, const struct table *t)
{
    xn_t *x = xdata_new(query, "result");
    add_form_type(x);
    xn_t *reported = xn_add_child(x, NULL, "reported");
    xn_t *f = xn_add_child(reported, NULL, "field");
    xn_set_attr(f, "var", "jid");
    xn_set_attr(f, "label", "JID");
    xn_set_attr(f, "type", "jid-single");
    for (size_t c = 0; c < t->ncol; c++) {
        if (strcmp(t->vars[c], "jid") == 0 || seen_before(t->vars, c))
            continue;
        f = xn_add_child(reported, NULL, "field");
        xn_set_attr(f, "var", t->vars[c]);
        xn_set_attr(f, "label", t->titles[c]);
        xn_set_attr(f, "type", "text-single");
    }
    return x;
}

static void form_item(xn_t *x, const struct table *t, const char *const *row, const char *jid)
{
    xn_t *item = xn_add_child(x, NULL, "item");
    add_value_field(item, "jid", jid);
    for (size_t c = 0; c < t->ncol; c++)
        if (strcmp(t->vars[c], "jid") != 0 && !seen_before(t->vars, c))
            add_value_field(item, t->vars[c], row[c]);
}

xn_t *search_result_query(const char *domain, const char *const *columns, size_t column_count,
                          const char *const *cells, size_t row_count, int as_form)
{
    xn_t *query = xn_new(NS_SEARCH, "query");
    struct table t;
    table_init(&t, domain, columns, column_count);
    xn_t *x = as_form ? form_result(query, &t) : NULL;
    for (size_t r = 0; r < row_count && column_count > 0; r++) {
        const char *const *row = cells + r * column_count;
        char *jid = row_jid(&t, row);
        if (jid && x)
            form_item(x, &t, row, jid);
        else if (jid)
            plain_item(query, &t, row, jid);
        free(jid);
    }
    table_free(&t);
    return query;
}

/* ---- one owner's requests ---- */

enum req_kind {
    REQ_FORM,   /* jabber:iq:search get */
    REQ_SEARCH, /* jabber:iq:search set */
    REQ_VCARD,  /* vcard-temp get to a contact */
};

enum req_step {
    STEP_FORM,   /* waiting for the protocol's form (id 0: another request fetches it) */
    STEP_QUEUED, /* a directory search of this owner runs: waiting for its turn */
    STEP_SEARCH, /* SEARCH with the fields sent */
    STEP_INFO,   /* GET_INFO sent */
};

struct req {
    struct req *next;
    xn_t *iq;
    enum req_kind kind;
    enum req_step step;
    uint64_t id; /* of the native command awaited; 0: none */
    int64_t deadline;
    int as_form; /* answer with an XEP-0004 result */
    struct np_field *fields;
    size_t nfields;
};

struct searches {
    bridge_t *b;
    char *owner;
    const char *domain;
    uint64_t next_id;
    struct req *reqs; /* in arrival order */
    /* the protocol's search form, once fetched */
    int form_known;
    int lookup; /* no directory: a search looks one name up */
    char *instructions;
    struct np_field *form;
    size_t nform;
};

static const char *network(const struct searches *ss)
{
    if (ss->b->cfg->legacy_name)
        return ss->b->cfg->legacy_name;
    return np_protocol_name() ? np_protocol_name() : "the legacy network";
}

struct searches *searches_new(bridge_t *b, const char *owner)
{
    struct searches *ss = xcalloc(1, sizeof(*ss));
    ss->b = b;
    ss->owner = xstrdup(owner);
    ss->domain = b->cfg->component_jid;
    ss->next_id = 1;
    return ss;
}

static void req_free(struct req *r)
{
    xn_unref(r->iq);
    search_fields_free(r->fields, r->nfields);
    free(r);
}

void searches_free(struct searches *ss)
{
    if (!ss)
        return;
    while (ss->reqs) {
        struct req *r = ss->reqs;
        ss->reqs = r->next;
        req_free(r);
    }
    search_fields_free(ss->form, ss->nform);
    free(ss->instructions);
    free(ss->owner);
    free(ss);
}

static void unlink_req(struct searches *ss, struct req *r)
{
    for (struct req **pp = &ss->reqs; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            return;
        }
    }
}

/* Answers r with reply (taken) and forgets r. */
static void answer(struct searches *ss, struct req *r, xn_t *reply)
{
    unlink_req(ss, r);
    bridge_send(ss->b, reply);
    req_free(r);
}

static void answer_query(struct searches *ss, struct req *r, xn_t *payload)
{
    xn_t *reply = stanza_iq_result(r->iq);
    xn_append(reply, payload);
    answer(ss, r, reply);
}

static void answer_error(struct searches *ss, struct req *r, const char *condition,
                         const char *text)
{
    log_info(TAG, "%s: %s answered %s%s%s", ss->owner, xn_attr(r->iq, "id"), condition,
             text ? ": " : "", text ? text : "");
    answer(ss, r, stanza_error(r->iq, condition, text));
}

static struct req *find_step(struct searches *ss, enum req_step step)
{
    struct req *r = ss->reqs;
    while (r && r->step != step)
        r = r->next;
    return r;
}

static struct req *find_id(struct searches *ss, uint64_t id)
{
    struct req *r = ss->reqs;
    while (r && r->id != id)
        r = r->next;
    return id ? r : NULL;
}

static int form_fetching(struct searches *ss)
{
    for (struct req *r = ss->reqs; r; r = r->next)
        if (r->step == STEP_FORM && r->id)
            return 1;
    return 0;
}

/* Sends cmd for r, awaiting its answer in step. 0, or -1 when r was answered with an error. */
static int send_for(struct searches *ss, struct req *r, struct np_cmd *cmd, enum req_step step,
                    uint64_t id)
{
    r->step = step;
    r->id = id;
    if (np_send(cmd) == NP_OK)
        return 0;
    answer_error(ss, r, "service-unavailable", "the gateway is stopping");
    return -1;
}

static void fetch_form(struct searches *ss, struct req *r)
{
    if (form_fetching(ss)) {
        r->step = STEP_FORM;
        r->id = 0;
        return;
    }
    uint64_t id = ss->next_id++;
    send_for(ss, r, np_cmd_search(ss->owner, id, NULL, 0), STEP_FORM, id);
}

static void answer_form(struct searches *ss, struct req *r)
{
    char *title = xasprintf("Search for users on %s", network(ss));
    char *fallback = ss->lookup ? xasprintf("%s has no user directory: enter a nickname and "
                                            "Ferry looks that user up.",
                                            network(ss))
                                : xasprintf("Fill in one or more fields to search for users "
                                            "on %s.",
                                            network(ss));
    const char *instructions = ss->instructions && *ss->instructions ? ss->instructions : fallback;
    answer_query(ss, r, search_form_query(title, instructions, ss->form, ss->nform));
    free(title);
    free(fallback);
}

/* The one name a lookup asks for: the nick field, or the only field given. */
static const char *lookup_name(const struct req *r)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (strcmp(r->fields[i].name, "nick") == 0)
            return r->fields[i].value;
    return r->nfields == 1 ? r->fields[0].value : NULL;
}

/* A name with a control character is refused: over IRC a CR or LF in it would end the WHOIS
 * line and the rest would run as the owner's own command. */
static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static int search_running(struct searches *ss)
{
    return find_step(ss, STEP_SEARCH) != NULL;
}

static void send_search(struct searches *ss, struct req *r)
{
    uint64_t id = ss->next_id++;
    search_fields_to_protocol(r->fields, r->nfields, ss->form, ss->nform);
    send_for(ss, r, np_cmd_search(ss->owner, id, r->fields, r->nfields), STEP_SEARCH, id);
}

/* A set with the protocol's form known: a lookup, or the directory search (one at a time:
 * the protocol keeps one search form open per account). */
static void start_search(struct searches *ss, struct req *r)
{
    if (!ss->lookup) {
        if (search_running(ss))
            r->step = STEP_QUEUED;
        else
            send_search(ss, r);
        return;
    }
    const char *name = lookup_name(r);
    if (!name) {
        char *text =
            xasprintf("%s has no user directory: fill in the nickname to look up", network(ss));
        answer_error(ss, r, "not-acceptable", text);
        free(text);
        return;
    }
    if (has_control(name)) {
        answer_error(ss, r, "bad-request", "a nickname cannot contain control characters");
        return;
    }
    uint64_t id = ss->next_id++;
    send_for(ss, r, np_cmd_get_info(ss->owner, id, name), STEP_INFO, id);
}

static void next_queued(struct searches *ss)
{
    struct req *r = search_running(ss) ? NULL : find_step(ss, STEP_QUEUED);
    if (r)
        send_search(ss, r);
}

/* The form is known: every request waiting for it goes on. */
static void form_arrived(struct searches *ss)
{
    struct req *r;
    while ((r = find_step(ss, STEP_FORM))) {
        if (r->kind == REQ_FORM)
            answer_form(ss, r);
        else
            start_search(ss, r);
    }
}

static void keep_form(struct searches *ss, const char *instructions, const struct np_field *fields,
                      size_t count, int lookup)
{
    search_fields_free(ss->form, ss->nform);
    free(ss->instructions);
    ss->form = xcalloc(count + 1, sizeof(*ss->form));
    for (size_t i = 0; i < count; i++) {
        ss->form[i].name = xstrdup(fields[i].name ? fields[i].name : "");
        ss->form[i].value = text_from_legacy_str(fields[i].value ? fields[i].value : "");
    }
    ss->nform = count;
    ss->instructions = instructions ? text_from_legacy_str(instructions) : NULL;
    ss->lookup = lookup;
    ss->form_known = 1;
}

/* The XMPP error for a request native could not carry out. */
static void answer_status(struct searches *ss, struct req *r, enum np_req_status status,
                          const char *error)
{
    char *legacy = error ? text_from_legacy_str(error) : NULL;
    char *text = NULL;
    const char *condition = "service-unavailable";
    switch (status) {
    case NP_REQ_NOT_FOUND:
        condition = "item-not-found";
        text = xasprintf("no such user on %s", network(ss));
        break;
    case NP_REQ_UNSUPPORTED:
        condition = "feature-not-implemented";
        text = xasprintf("%s cannot do this", network(ss));
        break;
    case NP_REQ_OFFLINE:
        condition = "recipient-unavailable";
        text = xasprintf("not signed on to %s", network(ss));
        break;
    case NP_REQ_BUSY:
        condition = "resource-constraint";
        text = xasprintf("another search on %s is still running: try again when it is done",
                         network(ss));
        break;
    default:
        text = xasprintf("%s answered with an error%s%s", network(ss), legacy ? ": " : "",
                         legacy ? legacy : "");
        break;
    }
    answer_error(ss, r, condition, text);
    free(text);
    free(legacy);
}

/* ---- native's answers ---- */

static void on_search_form(struct searches *ss, const struct np_event *ev)
{
    keep_form(ss, ev->u.search_form.instructions, ev->u.search_form.fields,
              ev->u.search_form.field_count, 0);
    form_arrived(ss);
}

/* A lookup's one row: the name asked, then what the network said about the user. */
static xn_t *lookup_result(struct searches *ss, const struct np_event *ev, int as_form)
{
    size_t n = ev->u.userinfo.pair_count, ncol = n + 2;
    const char **columns = xcalloc(ncol, sizeof(*columns));
    const char **cells = xcalloc(ncol, sizeof(*cells));
    columns[0] = "JID";
    cells[0] = ev->u.userinfo.who;
    for (size_t i = 0; i < n; i++) {
        columns[i + 1] = ev->u.userinfo.pairs[i].name;
        cells[i + 1] = ev->u.userinfo.pairs[i].value;
    }
    /* Where the network named no nickname, the name asked is one. */
    columns[n + 1] = "Nickname";
    cells[n + 1] = ev->u.userinfo.who;
    xn_t *query = search_result_query(ss->domain, columns, ncol, cells, 1, as_form);
    free(columns);
    free(cells);
    return query;
}

static void on_userinfo(struct searches *ss, const struct np_event *ev)
{
    struct req *r = find_id(ss, ev->u.userinfo.request_id);
    enum np_req_status status = ev->u.userinfo.status;
    if (!r || r->step != STEP_INFO)
        return;
    if (r->kind == REQ_VCARD && status == NP_REQ_OK)
        answer_query(ss, r,
                     vcard_from_userinfo(ev->u.userinfo.who, ev->u.userinfo.pairs,
                                         ev->u.userinfo.pair_count));
    else if (r->kind == REQ_SEARCH && status == NP_REQ_OK)
        answer_query(ss, r, lookup_result(ss, ev, r->as_form));
    else if (r->kind == REQ_SEARCH && status == NP_REQ_NOT_FOUND)
        answer_query(ss, r, search_result_query(ss->domain, NULL, 0, NULL, 0, r->as_form));
    else
        answer_status(ss, r, status, ev->u.userinfo.error);
}

static void on_search_results(struct searches *ss, const struct np_event *ev)
{
    struct req *r = find_id(ss, ev->u.search.request_id);
    enum np_req_status status = ev->u.search.status;
    if (r && r->step == STEP_FORM && status == NP_REQ_UNSUPPORTED) {
        static const struct np_field nick = {"nick", "Nickname"};
        keep_form(ss, NULL, &nick, 1, 1);
        form_arrived(ss);
    } else if (r && r->step == STEP_FORM) {
        /* every request waiting for this form shares the failure */
        while ((r = find_step(ss, STEP_FORM)))
            answer_status(ss, r, status, ev->u.search.error);
    } else if (r && r->step == STEP_SEARCH && status == NP_REQ_OK) {
        xn_t *query = search_result_query(
            ss->domain, (const char *const *)ev->u.search.columns, ev->u.search.column_count,
            (const char *const *)ev->u.search.cells, ev->u.search.row_count, r->as_form);
        answer_query(ss, r, query);
    } else if (r && r->step == STEP_SEARCH) {
        answer_status(ss, r, status, ev->u.search.error);
    }
    next_queued(ss);
}

int searches_event(struct searches *ss, const struct np_event *ev)
{
    switch (ev->type) {
    case NP_EV_USERINFO:
        on_userinfo(ss, ev);
        return 1;
    case NP_EV_SEARCH_FORM:
        on_search_form(ss, ev);
        return 1;
    case NP_EV_SEARCH_RESULTS:
        on_search_results(ss, ev);
        return 1;
    default:
        return 0;
    }
}

/* ---- requests in ---- */

/* The legacy name a vcard-temp get is addressed to (new string), or NULL. */
static char *addressee(const xn_t *iq)
{
    jid_t *to = jid_parse(xn_attr(iq, "to") ? xn_attr(iq, "to") : "");
    char *name = to && jid_node(to) ? jid_unescape_node(jid_node(to)) : NULL;
    jid_free(to);
    return name;
}

static void start_vcard(struct searches *ss, struct req *r)
{
    char *who = addressee(r->iq);
    if (!who || !*who) {
        answer_error(ss, r, "jid-malformed", "no legacy name has this address");
    } else {
        uint64_t id = ss->next_id++;
        send_for(ss, r, np_cmd_get_info(ss->owner, id, who), STEP_INFO, id);
    }
    free(who);
}

static void not_online(struct searches *ss, struct req *r, const char *reason)
{
    char *text =
        reason && *reason
            ? xstrdup(reason)
            : xasprintf("The login to %s is still under way: try again in a moment.", network(ss));
    answer_error(ss, r, "recipient-unavailable", text);
    free(text);
}

static void start(struct searches *ss, struct req *r, int online, const char *reason)
{
    if (r->kind == REQ_SEARCH && r->nfields == 0)
        answer_error(ss, r, "not-acceptable", "fill in at least one field");
    else if (r->kind == REQ_FORM && ss->form_known)
        answer_form(ss, r);
    else if (!online)
        not_online(ss, r, reason);
    else if (r->kind == REQ_VCARD)
        start_vcard(ss, r);
    else if (!ss->form_known)
        fetch_form(ss, r);
    else
        start_search(ss, r);
}

void searches_request(struct searches *ss, xn_t *iq, int online, const char *offline_reason)
{
    const xn_t *payload = xn_first_element(iq);
    const char *type = xn_attr(iq, "type") ? xn_attr(iq, "type") : "";
    struct req *r = xcalloc(1, sizeof(*r));
    r->iq = iq;
    r->deadline = now_ms() + ss->b->cfg->legacy_request_timeout_ms;
    /* arrival order: appended last */
    size_t waiting = 0;
    struct req **tail = &ss->reqs;
    for (; *tail; tail = &(*tail)->next)
        waiting++;
    *tail = r;
    if (waiting >= MAX_WAITING) {
        answer_error(ss, r, "resource-constraint", "too many searches waiting: try again later");
        return;
    }
    if (payload && strcmp(xn_ns(payload), NS_VCARD) == 0 && strcmp(type, "get") == 0) {
        r->kind = REQ_VCARD;
    } else if (payload && strcmp(xn_ns(payload), NS_SEARCH) == 0 && strcmp(type, "get") == 0) {
        r->kind = REQ_FORM;
    } else if (payload && strcmp(xn_ns(payload), NS_SEARCH) == 0 && strcmp(type, "set") == 0) {
        r->kind = REQ_SEARCH;
        r->nfields = search_fields_from_query(payload, &r->fields, &r->as_form);
    } else {
        answer_error(ss, r, "service-unavailable", NULL);
        return;
    }
    start(ss, r, online, offline_reason);
}

/* ---- time ---- */

int64_t searches_deadline(const struct searches *ss)
{
    int64_t next = INT64_MAX;
    for (const struct req *r = ss->reqs; r; r = r->next)
        if (r->deadline < next)
            next = r->deadline;
    return next;
}

void searches_expire(struct searches *ss, int64_t now)
{
    struct req *r = ss->reqs;
    int expired = 0;
    while (r) {
        struct req *next = r->next;
        if (now >= r->deadline) {
            char *text = xasprintf("%s did not answer within %d s", network(ss),
                                   ss->b->cfg->legacy_request_timeout_ms / 1000);
            answer_error(ss, r, "remote-server-timeout", text);
            free(text);
            expired = 1;
        }
        r = next;
    }
    if (!expired)
        return;
    /* requests that waited on an expired one go on by themselves */
    struct req *waiting = form_fetching(ss) ? NULL : find_step(ss, STEP_FORM);
    if (waiting)
        fetch_form(ss, waiting);
    next_queued(ss);
}

void searches_abort(struct searches *ss, const char *condition, const char *text)
{
    while (ss->reqs)
        answer_error(ss, ss->reqs, condition, text);
}
