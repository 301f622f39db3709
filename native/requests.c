/* libpurple's request and notify UI ops, for a UI with nobody in front of it.
 *
 * Requests are answered from an idle callback (never inside the op: libpurple registers the
 * request only after the op returns), then closed with purple_request_close, which lands in
 * np_on_close_request where everything kept is freed. A directory search's forms are filled in
 * from the SEARCH command's fields (or handed back as NP_EV_SEARCH_FORM); every other request
 * is cancelled, except actions, which have no cancel and are left to expire with their
 * connection (a certificate nobody accepted stays refused).
 *
 * User info requests run one at a time per owner (IRC keeps a single WHOIS in flight), each
 * with the [legacy] request timeout so that a lost answer cannot stall the next. */
#include "native/internal.h"

#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

struct np_info_req {
    uint64_t request_id;
    char *who;
};

struct np_req;

struct np_search {
    struct np_owner *owner;
    uint64_t request_id;
    struct np_field *fields; /* borrowed copy, freed with the search */
    size_t field_count;
    guint timer;
    struct np_req *request; /* the form being answered, or NULL */
};

struct np_req {
    PurpleRequestType type;
    GCallback ok_cb;
    GCallback cancel_cb;
    void *user_data;
    PurpleRequestFields *fields; /* destroyed when the request closes */
    char *value;                 /* an input request's answer */
    int choice;
    int ok;                   /* answer with ok_cb (else cancel_cb) */
    struct np_search *search; /* the search this request belongs to, or NULL */
    guint idle;
};

/* ---- user info ---- */

static gboolean info_next_cb(gpointer data);

/* The next request is asked from an idle callback: this runs inside libpurple's answer to the
 * previous one, and IRC clears its WHOIS state only after that answer returns. */
static void info_done(struct np_owner *owner)
{
    struct np_info_req *req = g_queue_pop_head(&owner->infos);
    if (owner->info_timer)
        g_source_remove(owner->info_timer);
    owner->info_timer = 0;
    if (req) {
        g_free(req->who);
        g_free(req);
    }
    if (!g_queue_is_empty(&owner->infos))
        owner->info_timer = g_idle_add(info_next_cb, owner);
}

static gboolean info_timeout_cb(gpointer data)
{
    struct np_owner *owner = data;
    struct np_info_req *req = g_queue_peek_head(&owner->infos);
    owner->info_timer = 0;
    if (req)
        log_info(NP_TAG, "%s: no user info for %s in time", owner->id, req->who);
    info_done(owner);
    return G_SOURCE_REMOVE;
}

static void info_ask(struct np_owner *owner)
{
    struct np_info_req *req = g_queue_peek_head(&owner->infos);
    owner->info_timer =
        g_timeout_add((guint)np_legacy_request_timeout_ms(), info_timeout_cb, owner);
    serv_get_info(purple_account_get_connection(owner->account), req->who);
}

static gboolean info_next_cb(gpointer data)
{
    struct np_owner *owner = data;
    owner->info_timer = 0;
    info_ask(owner);
    return G_SOURCE_REMOVE;
}

void np_info_start(struct np_owner *owner, uint64_t request_id, const char *who)
{
    struct np_info_req *req = g_new0(struct np_info_req, 1);
    req->request_id = request_id;
    req->who = g_strdup(who);
    g_queue_push_tail(&owner->infos, req);
    if (g_queue_get_length(&owner->infos) == 1)
        info_ask(owner);
}

/* The request waiting for this name's answer, if it is the one asked. */
static struct np_info_req *info_asked(struct np_owner *owner, const char *who)
{
    struct np_info_req *req = g_queue_peek_head(&owner->infos);
    if (!req || !who)
        return NULL;
    char *a = g_strdup(purple_normalize(owner->account, req->who));
    int same = g_strcmp0(a, purple_normalize(owner->account, who)) == 0;
    g_free(a);
    return same ? req : NULL;
}

int np_info_not_found(struct np_owner *owner, const char *who, const char *text)
{
    struct np_info_req *req = info_asked(owner, who);
    if (!req)
        return 0;
    np_post(owner, np_event_userinfo(owner->id, req->request_id, req->who, NP_REQ_NOT_FOUND, text,
                                     NULL, 0));
    info_done(owner);
    return 1;
}

void *np_on_notify_userinfo(PurpleConnection *gc, const char *who, PurpleNotifyUserInfo *user_info)
{
    struct np_owner *owner = np_owner_of_gc(gc);
    struct np_info_req *req = owner ? info_asked(owner, who) : NULL;
    if (!req)
        return NULL;
    GArray *pairs = g_array_new(FALSE, TRUE, sizeof(struct np_field));
    for (GList *l = purple_notify_user_info_get_entries(user_info); l; l = l->next) {
        PurpleNotifyUserInfoEntry *entry = l->data;
        if (purple_notify_user_info_entry_get_type(entry) ==
            PURPLE_NOTIFY_USER_INFO_ENTRY_SECTION_BREAK)
            continue;
        const char *label = purple_notify_user_info_entry_get_label(entry);
        struct np_field f = {np_html_to_text(label ? label : ""),
                             np_html_to_text(purple_notify_user_info_entry_get_value(entry))};
        g_array_append_val(pairs, f);
    }
    np_post(owner, np_event_userinfo(owner->id, req->request_id, req->who, NP_REQ_OK, NULL,
                                     (struct np_field *)(void *)pairs->data, pairs->len));
    for (guint i = 0; i < pairs->len; i++) {
        g_free(g_array_index(pairs, struct np_field, i).name);
        g_free(g_array_index(pairs, struct np_field, i).value);
    }
    g_array_free(pairs, TRUE);
    info_done(owner);
    return NULL; /* nothing kept open */
}

/* ---- directory search ---- */

static void search_end(struct np_owner *owner)
{
    struct np_search *s = owner->search;
    if (!s)
        return;
    owner->search = NULL;
    if (s->timer)
        g_source_remove(s->timer);
    if (s->request)
        s->request->search = NULL;
    for (size_t i = 0; i < s->field_count; i++) {
        g_free(s->fields[i].name);
        g_free(s->fields[i].value);
    }
    g_free(s->fields);
    g_free(s);
}

static gboolean search_timeout_cb(gpointer data)
{
    struct np_owner *owner = data;
    owner->search->timer = 0;
    log_info(NP_TAG, "%s: search %llu got no answer in time", owner->id,
             (unsigned long long)owner->search->request_id);
    search_end(owner);
    return G_SOURCE_REMOVE;
}

/* The protocol's "Search for Users..." account action, if it has one (prpl-jabber). */
static PurplePluginAction *find_search_action(PurpleConnection *gc, GList **all)
{
    PurplePlugin *prpl = purple_connection_get_prpl(gc);
    *all = PURPLE_PLUGIN_HAS_ACTIONS(prpl) ? PURPLE_PLUGIN_ACTIONS(prpl, gc) : NULL;
    for (GList *l = *all; l; l = l->next) {
        PurplePluginAction *action = l->data;
        if (action && action->label && strstr(action->label, "Search for"))
            return action;
    }
    return NULL;
}

static void free_actions(GList *actions)
{
    for (GList *l = actions; l; l = l->next)
        if (l->data)
            purple_plugin_action_free(l->data);
    g_list_free(actions);
}

static struct np_search *search_new(struct np_owner *owner, const struct np_cmd *cmd)
{
    struct np_search *s = g_new0(struct np_search, 1);
    s->owner = owner;
    s->request_id = cmd->u.search.request_id;
    s->field_count = cmd->u.search.field_count;
    s->fields = g_new0(struct np_field, s->field_count + 1);
    for (size_t i = 0; i < s->field_count; i++) {
        s->fields[i].name = g_strdup(cmd->u.search.fields[i].name);
        s->fields[i].value = g_strdup(cmd->u.search.fields[i].value);
    }
    s->timer = g_timeout_add((guint)np_legacy_request_timeout_ms(), search_timeout_cb, owner);
    return s;
}

void np_search_start(struct np_owner *owner, const struct np_cmd *cmd)
{
    uint64_t id = cmd->u.search.request_id;
    if (owner->search) {
        np_post(owner,
                np_event_search_results(owner->id, id, NP_REQ_BUSY,
                                        "another search is still running", NULL, 0, NULL, 0));
        return;
    }
    PurpleConnection *gc = purple_account_get_connection(owner->account);
    GList *actions = NULL;
    PurplePluginAction *action = find_search_action(gc, &actions);
    if (!action) {
        np_post(owner,
                np_event_search_results(owner->id, id, NP_REQ_UNSUPPORTED,
                                        "this network has no user directory", NULL, 0, NULL, 0));
        free_actions(actions);
        return;
    }
    owner->search = search_new(owner, cmd);
    /* The action asks for the directory through a request op that names no account. */
    action->context = gc;
    np_set_context_account(owner->account);
    action->callback(action);
    np_set_context_account(NULL);
    free_actions(actions);
}

static PurpleRequestField *field_named(PurpleRequestFields *fields, const char *name)
{
    PurpleRequestField *f = purple_request_fields_get_field(fields, name);
    for (GList *g = purple_request_fields_get_groups(fields); g && !f; g = g->next)
        for (GList *l = purple_request_field_group_get_fields(g->data); l && !f; l = l->next)
            if (g_strcmp0(purple_request_field_get_label(l->data), name) == 0)
                f = l->data;
    return f;
}

static void choose_label(PurpleRequestField *f, const char *value)
{
    int i = 0;
    for (GList *l = purple_request_field_choice_get_labels(f); l; l = l->next, i++)
        if (g_ascii_strcasecmp(l->data, value) == 0)
            purple_request_field_choice_set_value(f, i);
}

static void fill_field(PurpleRequestField *f, const char *value)
{
    switch (purple_request_field_get_type(f)) {
    case PURPLE_REQUEST_FIELD_STRING:
        purple_request_field_string_set_value(f, value);
        break;
    case PURPLE_REQUEST_FIELD_INTEGER:
        purple_request_field_int_set_value(f, atoi(value));
        break;
    case PURPLE_REQUEST_FIELD_BOOLEAN:
        purple_request_field_bool_set_value(f, g_ascii_strcasecmp(value, "true") == 0 ||
                                                   strcmp(value, "1") == 0);
        break;
    case PURPLE_REQUEST_FIELD_CHOICE:
        choose_label(f, value);
        break;
    case PURPLE_REQUEST_FIELD_LIST:
        purple_request_field_list_add_selected(f, value);
        break;
    default:
        break;
    }
}

static void fill_form(PurpleRequestFields *fields, const struct np_search *s)
{
    for (size_t i = 0; i < s->field_count; i++) {
        PurpleRequestField *f = field_named(fields, s->fields[i].name);
        if (f)
            fill_field(f, s->fields[i].value);
        else
            log_debug(NP_TAG, "search field %s is not in the form", s->fields[i].name);
    }
}

/* A search without fields only wants to know what can be searched. */
static void post_form(struct np_search *s, PurpleRequestFields *fields, const char *instructions)
{
    GArray *out = g_array_new(FALSE, TRUE, sizeof(struct np_field));
    for (GList *g = purple_request_fields_get_groups(fields); g; g = g->next) {
        for (GList *l = purple_request_field_group_get_fields(g->data); l; l = l->next) {
            PurpleRequestField *f = l->data;
            if (purple_request_field_get_type(f) == PURPLE_REQUEST_FIELD_LABEL ||
                !purple_request_field_is_visible(f))
                continue;
            const char *id = purple_request_field_get_id(f);
            const char *label = purple_request_field_get_label(f);
            struct np_field nf = {(char *)id, (char *)(label ? label : id)};
            g_array_append_val(out, nf);
        }
    }
    np_post(s->owner, np_event_search_form(s->owner->id, s->request_id, instructions,
                                           (struct np_field *)(void *)out->data, out->len));
    g_array_free(out, TRUE);
}

/* ---- requests ---- */

static void answer_input(struct np_req *req)
{
    PurpleRequestInputCb cb = (PurpleRequestInputCb)(req->ok ? req->ok_cb : req->cancel_cb);
    if (cb)
        cb(req->user_data, req->value);
}

static void answer_fields(struct np_req *req)
{
    struct np_search *s = req->search;
    if (s && s->field_count > 0) {
        fill_form(req->fields, s);
        req->ok = 1;
    }
    PurpleRequestFieldsCb cb = (PurpleRequestFieldsCb)(req->ok ? req->ok_cb : req->cancel_cb);
    if (cb)
        cb(req->user_data, req->fields);
    if (s && s->field_count == 0)
        search_end(s->owner); /* the form was all it wanted */
}

static gboolean answer_cb(gpointer data)
{
    struct np_req *req = data;
    req->idle = 0;
    np_set_context_account(req->search ? req->search->owner->account : NULL);
    if (req->type == PURPLE_REQUEST_INPUT) {
        answer_input(req);
    } else if (req->type == PURPLE_REQUEST_FIELDS) {
        answer_fields(req);
    } else if (req->type == PURPLE_REQUEST_CHOICE || req->type == PURPLE_REQUEST_ACTION) {
        PurpleRequestChoiceCb cb = (PurpleRequestChoiceCb)req->cancel_cb;
        if (cb)
            cb(req->user_data, req->choice);
    } else if (req->cancel_cb) { /* file, folder */
        ((PurpleRequestFileCb)req->cancel_cb)(req->user_data, NULL);
    }
    np_set_context_account(NULL);
    purple_request_close(req->type, req); /* -> np_on_close_request frees req */
    return G_SOURCE_REMOVE;
}

static struct np_req *req_new(PurpleRequestType type, GCallback ok_cb, GCallback cancel_cb,
                              void *user_data, int answer)
{
    struct np_req *req = g_new0(struct np_req, 1);
    req->type = type;
    req->ok_cb = ok_cb;
    req->cancel_cb = cancel_cb;
    req->user_data = user_data;
    if (answer)
        req->idle = g_idle_add(answer_cb, req);
    return req;
}

/* The search of the account this request is about, while it waits for a form. */
static struct np_search *search_for(PurpleAccount *account)
{
    struct np_owner *owner = np_owner_of_account(account ? account : np_context_account());
    return owner && owner->search && !owner->search->request ? owner->search : NULL;
}

static void refused(const char *what, const char *title, const char *primary)
{
    log_debug(NP_TAG, "%s request refused: %s%s%s", what, title ? title : "",
              title && primary ? ": " : "", primary ? primary : "");
}

void *np_on_request_input(const char *title, const char *primary, const char *secondary,
                          const char *default_value, gboolean multiline, gboolean masked,
                          gchar *hint, const char *ok_text, GCallback ok_cb,
                          const char *cancel_text, GCallback cancel_cb, PurpleAccount *account,
                          const char *who, PurpleConversation *conv, void *user_data)
{
    struct np_search *s = search_for(account);
    struct np_req *req = req_new(PURPLE_REQUEST_INPUT, ok_cb, cancel_cb, user_data, 1);
    req->value = g_strdup(default_value ? default_value : "");
    /* A search first asks which directory to search: the protocol's own suggestion. */
    req->ok = s && *req->value;
    if (s && !req->ok) {
        np_post(s->owner, np_event_search_results(s->owner->id, s->request_id, NP_REQ_FAILED,
                                                  "no user directory known", NULL, 0, NULL, 0));
        search_end(s->owner);
    }
    if (!req->ok)
        refused("input", title, primary);
    return req;
}

void *np_on_request_choice(const char *title, const char *primary, const char *secondary,
                           int default_value, const char *ok_text, GCallback ok_cb,
                           const char *cancel_text, GCallback cancel_cb, PurpleAccount *account,
                           const char *who, PurpleConversation *conv, void *user_data,
                           va_list choices)
{
    struct np_req *req = req_new(PURPLE_REQUEST_CHOICE, ok_cb, cancel_cb, user_data, 1);
    req->choice = default_value;
    refused("choice", title, primary);
    return req;
}

/* The refusing answer of a question (a certificate nobody vouched for: "Cancel"), or -1. */
static int refusal(size_t count, va_list actions, GCallback *cb)
{
    static const char *const words[] = {"cancel", "reject", "deny", "no"};
    int found = -1;
    for (size_t i = 0; i < count; i++) {
        const char *label = va_arg(actions, const char *);
        GCallback action = va_arg(actions, GCallback);
        char *plain = g_strdup(label ? label : "");
        g_strdelimit(plain, "_", ' ');
        g_strstrip(plain);
        for (size_t w = 0; w < FERRY_ARRAY_LEN(words) && found < 0; w++)
            if (g_ascii_strcasecmp(plain, words[w]) == 0) {
                found = (int)i;
                *cb = action;
            }
        g_free(plain);
    }
    return found;
}

void *np_on_request_action(const char *title, const char *primary, const char *secondary,
                           int default_action, PurpleAccount *account, const char *who,
                           PurpleConversation *conv, void *user_data, size_t action_count,
                           va_list actions)
{
    GCallback cb = NULL;
    int choice = refusal(action_count, actions, &cb);
    log_info(NP_TAG, "question %s: %s%s%s", choice < 0 ? "left unanswered" : "refused",
             title ? title : "", primary ? ": " : "", primary ? primary : "");
    struct np_req *req = req_new(PURPLE_REQUEST_ACTION, NULL, cb, user_data, choice >= 0);
    req->choice = choice;
    return req;
}

void *np_on_request_fields(const char *title, const char *primary, const char *secondary,
                           PurpleRequestFields *fields, const char *ok_text, GCallback ok_cb,
                           const char *cancel_text, GCallback cancel_cb, PurpleAccount *account,
                           const char *who, PurpleConversation *conv, void *user_data)
{
    struct np_search *s = search_for(account);
    struct np_req *req = req_new(PURPLE_REQUEST_FIELDS, ok_cb, cancel_cb, user_data, 1);
    req->fields = fields;
    if (!s) {
        refused("form", title, primary);
        return req;
    }
    req->search = s;
    s->request = req;
    if (s->field_count == 0)
        post_form(s, fields, secondary ? secondary : primary);
    return req;
}

void *np_on_request_file(const char *title, const char *filename, gboolean savedialog,
                         GCallback ok_cb, GCallback cancel_cb, PurpleAccount *account,
                         const char *who, PurpleConversation *conv, void *user_data)
{
    refused("file", title, NULL);
    return req_new(PURPLE_REQUEST_FILE, ok_cb, cancel_cb, user_data, 1);
}

void *np_on_request_folder(const char *title, const char *dirname, GCallback ok_cb,
                           GCallback cancel_cb, PurpleAccount *account, const char *who,
                           PurpleConversation *conv, void *user_data)
{
    refused("folder", title, NULL);
    return req_new(PURPLE_REQUEST_FOLDER, ok_cb, cancel_cb, user_data, 1);
}

void np_on_close_request(PurpleRequestType type, void *ui_handle)
{
    struct np_req *req = ui_handle;
    if (req->idle)
        g_source_remove(req->idle);
    if (req->search)
        req->search->request = NULL;
    if (req->fields)
        purple_request_fields_destroy(req->fields);
    g_free(req->value);
    g_free(req);
}

/* ---- notices ---- */

void *np_on_notify_message(PurpleNotifyMsgType type, const char *title, const char *primary,
                           const char *secondary)
{
    struct np_owner *owner = np_owner_of_account(np_context_account());
    char *text = g_strdup_printf("%s%s%s", primary ? primary : "", primary && secondary ? ": " : "",
                                 secondary ? secondary : "");
    if (owner && owner->search && type == PURPLE_NOTIFY_MSG_ERROR) {
        np_post(owner, np_event_search_results(owner->id, owner->search->request_id, NP_REQ_FAILED,
                                               text, NULL, 0, NULL, 0));
        search_end(owner);
    } else {
        log_info(NP_TAG, "notice from libpurple: %s%s%s", title ? title : "", title ? ": " : "",
                 text);
    }
    g_free(text);
    return NULL;
}

void *np_on_notify_formatted(const char *title, const char *primary, const char *secondary,
                             const char *text)
{
    char *plain = np_html_to_text(text);
    log_info(NP_TAG, "notice from libpurple: %s: %s", primary ? primary : "", plain);
    g_free(plain);
    return NULL;
}

static void post_results(struct np_owner *owner, PurpleNotifySearchResults *results)
{
    guint cols = purple_notify_searchresults_get_columns_count(results);
    guint rows = purple_notify_searchresults_get_rows_count(results);
    const char **columns = g_new0(const char *, cols + 1);
    const char **cells = g_new0(const char *, (gsize)cols *rows + 1);
    for (guint c = 0; c < cols; c++)
        columns[c] = purple_notify_searchresults_column_get_title(results, c);
    for (guint r = 0; r < rows; r++) {
        GList *cell = purple_notify_searchresults_row_get(results, r);
        for (guint c = 0; c < cols && cell; c++, cell = cell->next)
            cells[r * cols + c] = cell->data;
    }
    np_post(owner, np_event_search_results(owner->id, owner->search->request_id, NP_REQ_OK, NULL,
                                           columns, cols, cells, rows));
    g_free(columns);
    g_free(cells);
}

void *np_on_notify_searchresults(PurpleConnection *gc, const char *title, const char *primary,
                                 const char *secondary, PurpleNotifySearchResults *results,
                                 gpointer user_data)
{
    struct np_owner *owner = np_owner_of_gc(gc);
    if (owner && owner->search) {
        post_results(owner, results);
        search_end(owner);
    }
    /* Nothing is kept open, so the results are ours to free (a windowed UI frees them when
     * its window closes). */
    purple_notify_searchresults_free(results);
    return NULL;
}

void np_requests_forget_owner(struct np_owner *owner)
{
    while (!g_queue_is_empty(&owner->infos)) {
        struct np_info_req *req = g_queue_pop_head(&owner->infos);
        g_free(req->who);
        g_free(req);
    }
    if (owner->info_timer)
        g_source_remove(owner->info_timer);
    owner->info_timer = 0;
    search_end(owner);
}
