/* jabber:iq:register on the transport's JID (XEP-0077, XEP-0100 sections 4.1 to 4.3) and the
 * presence subscription between an owner and the transport.
 *
 * A get is answered at once on the component thread. Every set runs on a registration thread
 * of its own (the white paper's design): it may wait for a real legacy login, which the
 * component thread must never do.
 *
 * Decisions, where the XEPs leave a choice:
 * - Two sets from the same owner at once: the second is answered `conflict` while the first
 *   runs (sets here include <remove/>). Nothing is queued, so a user who double-clicks gets one
 *   registration and a clear error, and an update can never race a removal.
 * - An update stores the new credentials first and ends the owner's running session after
 *   that, then probes the owner's presence: the answer brings a new session that logs in with
 *   the stored (new) credentials. Ending it before storing would leave a window in which a
 *   presence restarts the session with the old ones.
 * - An update with an empty password keeps the password on file (XEP-0077 section 3.3).
 * - The credential check logs in under a private owner id ("reg/<random>"), never the owner's
 *   JID, so it cannot replace or disturb the owner's running session in the native table.
 * - The owner's subscribe to the transport gets `subscribed` when the owner is registered and
 *   `unsubscribed` (a refusal, RFC 6121 section 3.2) otherwise: the transport has no presence
 *   to offer an unregistered user. Spectrum 2 approves everybody; we prefer not to put a
 *   useless item in a stranger's roster.
 * - An owner's unsubscribe or unsubscribed (the transport removed from the roster) does NOT
 *   unregister: XEP-0100 section 4.3 defines unregistration as the <remove/> set, after which
 *   the client removes the roster items, not the reverse. The registration stays; only its
 *   presence flow stops (the owner's server sends us unavailable). The owner unregisters with
 *   <remove/>, or subscribes again to resume. An unsubscribe is acknowledged with the
 *   transport's unavailable presence, as RFC 6121 section 3.3 has the contact's side do.
 *
 * Passwords: never logged, copied out of the stanza at once (the stanza is dropped and only a
 * skeleton kept for the answer), wiped when the thread ends.
 *
 * Module state is process-wide (like the native thread it talks to): one bridge per process.
 * register_shutdown must run before sessions_free and np_stop: threads still use both. */
#include "bridge/internal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/crypto.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/mailbox.h"
#include "lib/stanza.h"
#include "lib/util.h"
#include "native/native.h"

#define TAG "register"
#define NS_REGISTER "jabber:iq:register"
#define NS_DATA "jabber:x:data"
#define NS_NICK "http://jabber.org/protocol/nick"
#define REG_MAILBOX_CAPACITY 64
#define REG_STACK_SIZE (512 * 1024)
#define REG_LOGOUT_WAIT_MS 60000 /* native answers LOGOUT at once; this only bounds a bug */
#define REG_FIELD_MAX 1023       /* bytes of a user name or password */

/* One submission (a set), owned by its registration thread. */
struct reg_job {
    bridge_t *b;
    xn_t *iq;       /* a skeleton of the set (type, id, from, to) to answer from */
    char *owner;    /* the sender's bare JID */
    char *username; /* NULL for a removal */
    char *password; /* secret: wiped; "" when none was given */
    int remove;
    mailbox_t *mailbox; /* the credential check's event port; NULL for a removal */
    char check_id[24];  /* "reg/" + random: the check's owner id in native */
    struct reg_job *next;
};

/* Posted to a job's mailbox by register_shutdown: stop waiting for the legacy server. */
static int reg_wake_token;

static struct {
    pthread_mutex_t lock; /* guards everything here */
    pthread_cond_t idle;  /* signalled when running drops to 0 */
    size_t running;       /* registration threads alive */
    int stopping;         /* register_shutdown runs: refuse new sets */
    struct reg_job *jobs; /* sets in flight, one per owner at most */
} reg = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .idle = PTHREAD_COND_INITIALIZER,
};

/* How the legacy server judged the credentials. */
enum reg_check {
    CHECK_OK,
    CHECK_REFUSED,     /* wrong credentials or settings: not-authorized */
    CHECK_UNREACHABLE, /* network error, temporary failure: remote-server-timeout */
    CHECK_TIMEOUT,     /* no verdict in time: remote-server-timeout */
    CHECK_STOPPING,    /* Ferry shuts down */
};

/* ---- small helpers ---- */

static const char *legacy_name(const bridge_t *b)
{
    if (b->cfg->legacy_name && *b->cfg->legacy_name)
        return b->cfg->legacy_name;
    const char *name = np_protocol_name();
    return name ? name : b->cfg->legacy_protocol;
}

static void free_mail(void *msg)
{
    if (msg != &reg_wake_token)
        np_event_free(msg);
}

/* The answerable part of a stanza: the same element, type, id, from and to, no payload. */
static xn_t *skeleton(const xn_t *iq)
{
    static const char *const attrs[] = {"type", "id", "from", "to"};
    xn_t *s = xn_new(XN_NS_COMPONENT, xn_name(iq));
    for (size_t i = 0; i < FERRY_ARRAY_LEN(attrs); i++)
        xn_set_attr(s, attrs[i], xn_attr(iq, attrs[i]));
    return s;
}

static void send_presence(bridge_t *b, const char *from, const char *to, const char *type,
                          const char *nick)
{
    xn_t *p = xn_new(XN_NS_COMPONENT, "presence");
    xn_set_attr(p, "from", from);
    xn_set_attr(p, "to", to);
    xn_set_attr(p, "type", type);
    if (nick)
        xn_add_child_text(p, NS_NICK, "nick", nick);
    bridge_send(b, p);
}

static void answer_error(struct reg_job *job, const char *condition, const char *text)
{
    bridge_bounce(job->b, job->iq, condition, text);
}

static void answer_result(struct reg_job *job)
{
    bridge_send(job->b, stanza_iq_result(job->iq));
}

/* The sender's bare JID (new string), or NULL when from is missing or invalid. */
static char *sender_bare(const xn_t *stanza, char **domain)
{
    jid_t *jid = jid_parse(xn_attr(stanza, "from") ? xn_attr(stanza, "from") : "");
    if (!jid || !jid_node(jid)) {
        jid_free(jid);
        return NULL;
    }
    char *bare = xstrdup(jid_bare(jid));
    if (domain)
        *domain = xstrdup(jid_domain(jid));
    jid_free(jid);
    return bare;
}

static int has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* Removes leading and trailing white space in place. */
static void trim(char *s)
{
    size_t len = strlen(s), start = 0;
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    while (start < len && isspace((unsigned char)s[start]))
        start++;
    memmove(s, s + start, len - start);
    s[len - start] = '\0';
}

/* ---- get: the form ---- */

static void add_field(xn_t *x, const char *type, const char *var, const char *label, int required,
                      const char *value)
{
    xn_t *f = xn_add_child(x, NULL, "field");
    xn_set_attr(f, "type", type);
    xn_set_attr(f, "var", var);
    if (label)
        xn_set_attr(f, "label", label);
    if (required)
        xn_add_child(f, NULL, "required");
    if (value)
        xn_add_child_text(f, NULL, "value", value);
}

/* username: the registered account, or NULL for an unregistered user. */
static void add_form(xn_t *query, const bridge_t *b, const char *username)
{
    const char *name = legacy_name(b);
    int pw_required = np_password_required();
    char *instructions =
        username ? xasprintf("You are registered with %s as %s. Submit a new user name and "
                             "password to change them (an empty password keeps the one on "
                             "file), or remove the registration.",
                             name, username)
                 : xasprintf("Enter your %s user name and password%s.", name,
                             pw_required ? "" : " (leave the password empty if you have none)");
    xn_add_child_text(query, NULL, "instructions", instructions);
    if (username)
        xn_add_child(query, NULL, "registered");
    xn_add_child_text(query, NULL, "username", username ? username : "");
    xn_add_child(query, NULL, "password"); /* never the password on file */

    xn_t *x = xn_add_child(query, NS_DATA, "x");
    xn_set_attr(x, "type", "form");
    char *title = xasprintf("Registration with %s", name);
    xn_add_child_text(x, NULL, "title", title);
    xn_add_child_text(x, NULL, "instructions", instructions);
    add_field(x, "hidden", "FORM_TYPE", NULL, 0, NS_REGISTER);
    char *label = xasprintf("%s user name", name);
    add_field(x, "text-single", "username", label, 1, username);
    add_field(x, "text-private", "password", "Password", pw_required && !username, NULL);
    free(label);
    free(title);
    free(instructions);
}

static void register_get(bridge_t *b, xn_t *iq)
{
    char *domain = NULL;
    char *owner = sender_bare(iq, &domain);
    struct store_registration r;
    int rc = owner ? store_registration_get(b->store, owner, &r) : STORE_EINVAL;
    if (!owner) {
        bridge_bounce(b, iq, "jid-malformed", "registration needs a user JID");
    } else if (rc == STORE_EDB) {
        bridge_bounce(b, iq, "internal-server-error", NULL);
    } else if (rc == STORE_ENOTFOUND &&
               (!b->cfg->registration_enabled || !config_domain_allowed(b->cfg, domain))) {
        bridge_bounce(b, iq, "not-allowed", "registration is closed to your server");
    } else {
        xn_t *query;
        xn_t *reply = stanza_iq_result_with(iq, NS_REGISTER, "query", &query);
        /* STORE_ECRYPTO: registered, but the name is sealed with another key. */
        add_form(query, b, rc == STORE_OK ? r.username : rc == STORE_ECRYPTO ? "" : NULL);
        bridge_send(b, reply);
    }
    if (rc == STORE_OK)
        store_registration_free(&r);
    free(owner);
    free(domain);
}

/* ---- set: reading the submission ---- */

/* The value of field var in a submitted x:data form: a new string ("" for a field without a
 * value), or NULL when the form has no such field. */
static char *form_value(const xn_t *x, const char *var)
{
    for (xn_t *f = xn_first_element(x); f; f = xn_next_element(f)) {
        const char *v = xn_attr(f, "var");
        if (strcmp(xn_name(f), "field") != 0 || !v || strcmp(v, var) != 0)
            continue;
        char *value = xn_child_text(f, NS_DATA, "value");
        return value ? value : xstrdup("");
    }
    return NULL;
}

/* The submitted x:data form, which takes precedence over the plain fields (XEP-0077
 * section 6), or NULL. */
static const xn_t *submitted_form(const xn_t *query)
{
    const xn_t *x = xn_child(query, NS_DATA, "x");
    if (!x)
        return NULL;
    const char *type = xn_attr(x, "type");
    return !type || strcmp(type, "submit") == 0 ? x : NULL;
}

/* Checks the fields of a set and fills job->username and job->password. Returns NULL, or the
 * error condition to answer with (*text set). */
static const char *read_fields(struct reg_job *job, const xn_t *query, const char **text)
{
    const xn_t *x = submitted_form(query);
    job->username = x ? form_value(x, "username") : xn_child_text(query, NS_REGISTER, "username");
    job->password = x ? form_value(x, "password") : xn_child_text(query, NS_REGISTER, "password");
    if (!job->password)
        job->password = xstrdup("");
    if (job->username)
        trim(job->username);
    if (!job->username || !*job->username)
        return *text = "the username field is required", "not-acceptable";
    if (strlen(job->username) > REG_FIELD_MAX || has_control_chars(job->username))
        return *text = "the username field is too long or holds control characters",
               "not-acceptable";
    if (strlen(job->password) > REG_FIELD_MAX || has_control_chars(job->password))
        return *text = "the password field is too long or holds control characters",
               "not-acceptable";
    return NULL;
}

/* Everything that can be refused on the component thread. */
static const char *check_set(bridge_t *b, struct reg_job *job, const xn_t *query,
                             const char *domain, const char **text)
{
    const xn_t *remove = xn_child(query, NS_REGISTER, "remove");
    *text = NULL;
    if (remove) {
        job->remove = 1;
        if (xn_first_element(query) != remove || xn_next_element(remove))
            return *text = "<remove/> must be the only element of the query", "bad-request";
        return NULL; /* leaving is allowed even where registering is not */
    }
    if (!b->cfg->registration_enabled)
        return *text = "registration is disabled on this transport", "not-allowed";
    if (!config_domain_allowed(b->cfg, domain))
        return *text = "registration is closed to your server", "not-allowed";
    return read_fields(job, query, text);
}

/* ---- the jobs in flight ---- */

static void job_free(struct reg_job *job)
{
    if (job->mailbox)
        mb_free(job->mailbox);
    crypto_secret_free_str(job->password);
    free(job->username);
    free(job->owner);
    xn_unref(job->iq);
    free(job);
}

/* Enters the job in the list: 0, -1 when a set of the same owner is in flight, -2 when
 * shutting down. */
static int job_enter(struct reg_job *job)
{
    int rc = 0;
    pthread_mutex_lock(&reg.lock);
    if (reg.stopping)
        rc = -2;
    for (struct reg_job *j = reg.jobs; j && rc == 0; j = j->next)
        if (strcmp(j->owner, job->owner) == 0)
            rc = -1;
    if (rc == 0) {
        job->next = reg.jobs;
        reg.jobs = job;
        reg.running++;
    }
    pthread_mutex_unlock(&reg.lock);
    return rc;
}

static void job_unlink(struct reg_job *job)
{
    pthread_mutex_lock(&reg.lock);
    for (struct reg_job **p = &reg.jobs; *p; p = &(*p)->next) {
        if (*p == job) {
            *p = job->next;
            break;
        }
    }
    pthread_mutex_unlock(&reg.lock);
}

/* The last thing a registration thread does: it touches nothing of the bridge afterwards. */
static void thread_done(void)
{
    pthread_mutex_lock(&reg.lock);
    if (--reg.running == 0)
        pthread_cond_broadcast(&reg.idle);
    pthread_mutex_unlock(&reg.lock);
}

/* ---- the credential check: a real legacy login through the native thread ---- */

/* Waits for the verdict on the check's login. *reason gets the legacy text (new string) when
 * there is one; *logged_out is set when native already ended the check's login. */
static enum reg_check wait_verdict(struct reg_job *job, char **reason, int *logged_out)
{
    int64_t deadline = now_ms() + job->b->cfg->registration_timeout_ms;
    enum reg_check verdict = CHECK_TIMEOUT;
    int done = 0;
    while (!done) {
        int64_t left = deadline - now_ms();
        void *msg = NULL;
        if (left <= 0 || mb_recv(job->mailbox, &msg, (int)left) != MB_OK)
            break;
        if (msg == &reg_wake_token) {
            verdict = CHECK_STOPPING;
            break;
        }
        struct np_event *ev = msg;
        done = 1;
        if (ev->type == NP_EV_SIGNED_ON) {
            verdict = CHECK_OK;
        } else if (ev->type == NP_EV_CONNECTION_ERROR) {
            verdict = ev->u.error.fatal ? CHECK_REFUSED : CHECK_UNREACHABLE;
            if (ev->u.error.reason && *ev->u.error.reason)
                *reason = xstrdup(ev->u.error.reason);
        } else if (ev->type == NP_EV_SIGNED_OFF || ev->type == NP_EV_LOGGED_OUT) {
            verdict = CHECK_UNREACHABLE;
            *logged_out = ev->type == NP_EV_LOGGED_OUT;
        } else {
            done = 0; /* anything else the login brings along */
        }
        np_event_free(ev);
    }
    return verdict;
}

/* Logs the check out and waits until native lets go of the mailbox. 0, or -1 when the
 * mailbox may still be used by native (it is then leaked on purpose). */
static int end_check(struct reg_job *job)
{
    if (np_send(np_cmd_logout(job->check_id)) != NP_OK)
        return -1; /* native is stopping: it may still hold the mailbox */
    int64_t deadline = now_ms() + REG_LOGOUT_WAIT_MS;
    for (;;) {
        int64_t left = deadline - now_ms();
        void *msg = NULL;
        if (left <= 0 || mb_recv(job->mailbox, &msg, (int)left) != MB_OK)
            return -1;
        if (msg == &reg_wake_token)
            continue;
        struct np_event *ev = msg;
        int last = ev->type == NP_EV_LOGGED_OUT;
        np_event_free(ev);
        if (last)
            return 0;
    }
}

static enum reg_check check_credentials(struct reg_job *job, char **reason)
{
    int logged_out = 0;
    struct np_cmd *login = np_cmd_login(job->check_id, job->username, job->password, job->mailbox);
    if (np_send(login) != NP_OK) {
        *reason = xstrdup("the legacy side of the transport is not running");
        return CHECK_UNREACHABLE; /* native never saw the mailbox */
    }
    enum reg_check verdict = wait_verdict(job, reason, &logged_out);
    if (!logged_out && end_check(job) < 0) {
        log_warnx(TAG, "%s: the check %s was not logged out in time", job->owner, job->check_id);
        job->mailbox = NULL; /* leaked: native may still post to it */
    }
    return verdict;
}

static void answer_check_failure(struct reg_job *job, enum reg_check verdict, const char *reason)
{
    const char *name = legacy_name(job->b);
    char *text = NULL;
    switch (verdict) {
    case CHECK_REFUSED:
        text = xstrdup(reason ? reason : "the legacy server refused these credentials");
        answer_error(job, "not-authorized", text);
        break;
    case CHECK_TIMEOUT:
        text = xasprintf("no answer from the %s server within %d s", name,
                         job->b->cfg->registration_timeout_ms / 1000);
        answer_error(job, "remote-server-timeout", text);
        break;
    case CHECK_STOPPING:
        answer_error(job, "service-unavailable", "the transport is shutting down");
        break;
    default:
        text = xasprintf("cannot reach the %s server%s%s", name, reason ? ": " : "",
                         reason ? reason : "");
        answer_error(job, "remote-server-timeout", text);
        break;
    }
    free(text);
}

static const char *check_name(enum reg_check verdict)
{
    static const char *const names[] = {
        [CHECK_OK] = "ok",
        [CHECK_REFUSED] = "refused",
        [CHECK_UNREACHABLE] = "unreachable",
        [CHECK_TIMEOUT] = "timeout",
        [CHECK_STOPPING] = "shutting down",
    };
    return names[verdict];
}

/* ---- set: register or update ---- */

static int same_credentials(const struct store_registration *r, const struct reg_job *job)
{
    size_t len = strlen(job->password);
    return r->username && strcmp(r->username, job->username) == 0 && r->password &&
           strlen(r->password) == len && ct_equal(r->password, job->password, len);
}

/* An empty password keeps the one on file (XEP-0077 section 3.3). Returns NULL, or the
 * condition to answer with. */
static const char *fill_password(struct reg_job *job, const struct store_registration *r,
                                 int registered)
{
    if (*job->password)
        return NULL;
    if (registered && r->password && *r->password) {
        crypto_secret_free_str(job->password);
        job->password = xstrdup(r->password);
        return NULL;
    }
    return np_password_required() ? "not-acceptable" : NULL;
}

/* After an update: the running session still uses the old credentials. */
static void restart_session(struct reg_job *job)
{
    sessions_end_owner(job->b->sessions, job->owner);
    send_presence(job->b, job->b->cfg->component_jid, job->owner, "probe", NULL);
}

static void store_and_answer(struct reg_job *job, int registered, int changed)
{
    bridge_t *b = job->b;
    if (store_registration_put(b->store, job->owner, job->username, job->password, NULL) !=
        STORE_OK) {
        answer_error(job, "internal-server-error", "the registration could not be stored");
        return;
    }
    log_info(TAG, "%s: %s as %s", job->owner, registered ? "registration updated" : "registered",
             job->username);
    answer_result(job);
    if (!registered) {
        char *nick = xasprintf("%s Transport", legacy_name(b));
        send_presence(b, b->cfg->component_jid, job->owner, "subscribe", nick);
        free(nick);
    } else if (changed) {
        restart_session(job);
    }
}

static void run_set(struct reg_job *job)
{
    struct store_registration r;
    int rc = store_registration_get(job->b->store, job->owner, &r);
    int registered = rc == STORE_OK || rc == STORE_ECRYPTO;
    char *reason = NULL;
    if (rc == STORE_EDB) {
        answer_error(job, "internal-server-error", NULL);
        return;
    }
    if (fill_password(job, &r, registered)) {
        answer_error(job, "not-acceptable", "the password field is required");
        goto out;
    }
    int changed = !(rc == STORE_OK && same_credentials(&r, job));
    enum reg_check verdict = check_credentials(job, &reason);
    if (verdict == CHECK_OK)
        store_and_answer(job, registered, changed);
    else
        answer_check_failure(job, verdict, reason);
    if (verdict != CHECK_OK)
        log_info(TAG, "%s: credentials for %s not accepted (%s)%s%s", job->owner, job->username,
                 check_name(verdict), reason ? ": " : "", reason ? reason : "");
out:
    free(reason);
    if (rc == STORE_OK)
        store_registration_free(&r);
}

/* ---- set with <remove/> ---- */

/* unsubscribe, unsubscribed and unavailable from one JID of ours (XEP-0100 section 4.3). */
static void send_goodbye(bridge_t *b, const char *from, const char *owner)
{
    send_presence(b, from, owner, "unsubscribe", NULL);
    send_presence(b, from, owner, "unsubscribed", NULL);
    send_presence(b, from, owner, "unavailable", NULL);
}

static void goodbye_from_contacts(bridge_t *b, const char *owner,
                                  const struct store_contact *contacts, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        char *node = contacts_node_of(contacts[i].legacy_id);
        if (!node)
            continue;
        char *jid = xasprintf("%s@%s", node, b->cfg->component_jid);
        send_goodbye(b, jid, owner);
        free(jid);
        free(node);
    }
}

static void run_remove(struct reg_job *job)
{
    bridge_t *b = job->b;
    struct store_registration r;
    struct store_contact *contacts = NULL;
    size_t count = 0;
    int rc = store_registration_get(b->store, job->owner, &r);
    if (rc == STORE_OK)
        store_registration_free(&r);
    if (rc == STORE_ENOTFOUND || rc == STORE_EDB) {
        answer_error(job, rc == STORE_EDB ? "internal-server-error" : "registration-required",
                     rc == STORE_EDB ? NULL : "you are not registered with this transport");
        return;
    }
    sessions_end_owner(b->sessions, job->owner);
    if (store_contact_list(b->store, job->owner, &contacts, &count) != STORE_OK)
        count = 0; /* the goodbyes from contacts are lost; the removal still happens */
    rc = store_registration_remove(b->store, job->owner);
    if (rc != STORE_OK && rc != STORE_ENOTFOUND) {
        answer_error(job, "internal-server-error", "the registration could not be removed");
        goto out;
    }
    log_info(TAG, "%s: unregistered (%zu contacts)", job->owner, count);
    answer_result(job);
    send_goodbye(b, b->cfg->component_jid, job->owner);
    goodbye_from_contacts(b, job->owner, contacts, count);
out:
    store_contact_list_free(contacts, count);
}

static void *job_main(void *arg)
{
    struct reg_job *job = arg;
    pthread_setname_np(pthread_self(), "ferry-register"); /* for top -H, perf, the bench */
    if (job->remove)
        run_remove(job);
    else
        run_set(job);
    job_unlink(job);
    job_free(job);
    thread_done();
    return NULL;
}

/* ---- set: starting the thread ---- */

static int job_spawn(struct reg_job *job)
{
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, REG_STACK_SIZE);
    int rc = pthread_create(&thread, &attr, job_main, job);
    pthread_attr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

/* Admits the job (one per owner) and starts its thread; answers and frees it on failure. */
static void job_start(struct reg_job *job)
{
    if (!job->remove) {
        random_id(job->check_id + 4, sizeof(job->check_id) - 4);
        memcpy(job->check_id, "reg/", 4);
        job->mailbox = mb_new(REG_MAILBOX_CAPACITY, free_mail);
        if (!job->mailbox) {
            answer_error(job, "resource-constraint", NULL);
            job_free(job);
            return;
        }
    }
    int rc = job_enter(job);
    if (rc < 0) {
        answer_error(job, rc == -1 ? "conflict" : "service-unavailable",
                     rc == -1 ? "another registration request of yours is in progress"
                              : "the transport is shutting down");
        job_free(job);
        return;
    }
    if (job_spawn(job) < 0) {
        log_warnx(TAG, "%s: cannot start a registration thread", job->owner);
        job_unlink(job);
        answer_error(job, "resource-constraint", NULL);
        job_free(job);
        thread_done();
    }
}

static void register_set(bridge_t *b, xn_t *iq, const xn_t *query)
{
    char *domain = NULL;
    struct reg_job *job = xcalloc(1, sizeof(*job));
    job->b = b;
    job->iq = skeleton(iq);
    job->owner = sender_bare(iq, &domain);
    const char *text = NULL;
    const char *condition = job->owner ? check_set(b, job, query, domain, &text) : "jid-malformed";
    free(domain);
    if (condition) {
        answer_error(job, condition, text);
        job_free(job);
        return;
    }
    job_start(job);
}

/* ---- entry points ---- */

void register_iq(bridge_t *b, xn_t *iq)
{
    const char *type = xn_attr(iq, "type");
    const xn_t *query = xn_child(iq, NS_REGISTER, "query");
    if (!query || !type) {
        bridge_bounce(b, iq, "bad-request", NULL);
    } else if (strcmp(type, "get") == 0) {
        register_get(b, iq);
    } else if (strcmp(type, "set") == 0) {
        register_set(b, iq, query);
    } else {
        bridge_bounce(b, iq, "bad-request", NULL);
    }
    xn_unref(iq);
}

int register_presence(bridge_t *b, xn_t *presence)
{
    const char *type = xn_attr(presence, "type");
    if (!type || (strcmp(type, "subscribe") != 0 && strcmp(type, "subscribed") != 0 &&
                  strcmp(type, "unsubscribe") != 0 && strcmp(type, "unsubscribed") != 0))
        return 0;
    char *owner = sender_bare(presence, NULL);
    struct store_registration r;
    int rc = owner ? store_registration_get(b->store, owner, &r) : STORE_EINVAL;
    int registered = rc == STORE_OK || rc == STORE_ECRYPTO;
    const char *me = b->cfg->component_jid;
    if (!owner) {
        log_debug(TAG, "%s presence from an invalid or server JID: ignored", type);
    } else if (strcmp(type, "subscribe") == 0) {
        send_presence(b, me, owner, registered ? "subscribed" : "unsubscribed", NULL);
    } else if (strcmp(type, "unsubscribe") == 0 && registered) {
        send_presence(b, me, owner, "unavailable", NULL);
        log_info(TAG, "%s: unsubscribed from the transport; still registered", owner);
    } else if (strcmp(type, "unsubscribed") == 0 && registered) {
        /* Also Prosody's answer to our probe while it has no subscription to show. */
        log_info(TAG,
                 "%s: the transport has no subscription to the owner's presence; "
                 "still registered",
                 owner);
    } else {
        log_debug(TAG, "%s: %s presence noted", owner, type);
    }
    if (rc == STORE_OK)
        store_registration_free(&r);
    free(owner);
    xn_unref(presence);
    return 1;
}

void register_shutdown(bridge_t *b)
{
    pthread_mutex_lock(&reg.lock);
    reg.stopping = 1;
    for (struct reg_job *j = reg.jobs; j; j = j->next)
        if (j->mailbox && mb_send(j->mailbox, &reg_wake_token) != MB_OK)
            log_debug(TAG, "%s: could not wake the registration thread", j->owner);
    while (reg.running > 0)
        pthread_cond_wait(&reg.idle, &reg.lock);
    reg.stopping = 0; /* the component thread, the only caller of register_iq, is here */
    pthread_mutex_unlock(&reg.lock);
}
