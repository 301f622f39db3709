/* The XEP-0114 component link: connect, handshake, keep alive, reconnect, write in order. */
#include "transport/component.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/backoff.h"
#include "lib/jid.h"
#include "lib/log.h"
#include "lib/mailbox.h"
#include "lib/util.h"
#include "lib/xstream.h"
#include "lib/stanza.h"

#define TAG "component"
#define READ_CHUNK 16384
#define READS_PER_WAKE 8           /* bounded work per poll round, fair to the queue */
#define OUT_HIGH_WATER (64 * 1024) /* stop draining the queue while this much is unwritten */
#define QUEUE_LOW_WATER (COMPONENT_QUEUE_CAPACITY / 2) /* "drained" once a full queue is here */
#define STREAM_CLOSE "</stream:stream>"
#define NS_PING "urn:xmpp:ping"
#define NS_DELAY "urn:xmpp:delay"

/* A stanza waiting in the outbound queue, with when it was queued. Once serialized into the
 * output it stays there, in order, until the socket took its last byte, so that a lost link
 * knows which stanzas it never wrote. */
struct queued {
    xn_t *stanza;
    int64_t queued_at;   /* the component's clock */
    int64_t wall_ms;     /* Unix time, for a delay stamp */
    struct queued *next; /* in the output's list or the retry list */
    uint64_t start, end; /* its bytes in the output, counted since the link was attached */
};

/* What a lost link did not write, by kind. */
struct tally {
    size_t messages, presences, iqs, other;
    uint64_t bytes;
};

static void unref_msg(void *msg)
{
    struct queued *q = msg;
    xn_unref(q->stanza);
    free(q);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What a parser callback decided; acted on once xs_feed() has returned. */
enum verdict { V_NONE = 0, V_RECONNECT, V_FATAL };

struct component {
    const struct ferry_config *cfg;
    char *domain;      /* normalized [component] jid */
    char *ping_target; /* the server's domain: the parent of ours, or NULL (see ping_to) */
    struct component_events ev;
    struct component_ops ops;
    mailbox_t *queue;     /* struct queued * waiting to be written */
    struct queued *retry; /* messages a lost link did not write: written before the queue */
    atomic_int refused;   /* the queue refused a stanza (full) since the last "drained" */
    xs_parser_t *parser;

    enum component_state state;
    int fd;
    int ever_up;
    unsigned attempts; /* failed attempts since the link was last up */
    int cap_warned;    /* the cap warning was logged during this outage */
    int64_t next_attempt;
    int64_t state_since;
    int64_t up_since; /* when the link last came up */
    int64_t last_read, last_write;
    int ping_pending;
    int64_t ping_sent;
    char ping_id[24];
    char *stream_from; /* the server's header 'from' */

    char *out; /* bytes not yet written: out[out_off .. out_len) */
    size_t out_len, out_off, out_cap;
    uint64_t appended, written;           /* bytes put in the output and sent, since the attach */
    struct queued *in_out, **in_out_tail; /* stanzas in the output, not wholly written */

    enum verdict verdict;
    char *verdict_reason;
    const char *verdict_error; /* stream error condition to send, or NULL */
    int verdict_close;         /* send </stream:stream> before closing */
};

static int64_t now(const component_t *c)
{
    return c->ops.clock ? c->ops.clock(c->ops.ctx) : now_ms();
}

static uint32_t random32(const component_t *c)
{
    uint32_t r = 0;
    if (c->ops.random)
        return c->ops.random(c->ops.ctx);
    if (random_bytes(&r, sizeof(r)) != 0)
        fatalx(TAG, "the random number generator failed");
    return r;
}

static void set_state(component_t *c, enum component_state state)
{
    c->state = state;
    c->state_since = now(c);
}

const char *component_state_name(enum component_state state)
{
    static const char *const names[] = {"waiting", "connecting", "opening", "handshaking",
                                        "up",      "fatal",      "closed"};
    return (unsigned)state < FERRY_ARRAY_LEN(names) ? names[state] : "?";
}

enum component_state component_state(const component_t *c)
{
    return c->state;
}

int64_t component_next_attempt(const component_t *c)
{
    return c->next_attempt;
}

unsigned component_attempts(const component_t *c)
{
    return c->attempts;
}

int64_t component_backoff(int min_ms, int max_ms, unsigned attempt, uint32_t random)
{
    return backoff_delay(min_ms, max_ms, attempt, random); /* the legacy logins' schedule too */
}

/* ---- output ---- */

static void out_append(component_t *c, const char *data, size_t len)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + len > c->out_cap) {
        c->out_cap = (c->out_len + len) * 2;
        c->out = xrealloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    c->appended += len;
}

static size_t out_pending(const component_t *c)
{
    return c->out_len - c->out_off;
}

/* Writes what the socket takes now. 0 (done or would block), or -1 with errno set. */
static int out_flush(component_t *c)
{
    while (c->fd >= 0 && out_pending(c) > 0) {
        ssize_t n = send(c->fd, c->out + c->out_off, out_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        c->out_off += (size_t)n;
        c->written += (uint64_t)n;
        c->last_write = now(c);
    }
    if (out_pending(c) == 0)
        c->out_off = c->out_len = 0;
    while (c->in_out && c->in_out->end <= c->written) {
        struct queued *q = c->in_out;
        c->in_out = q->next;
        unref_msg(q);
    }
    if (c->in_out == NULL)
        c->in_out_tail = &c->in_out;
    return 0;
}

static void tally_add(struct tally *t, const xn_t *stanza, uint64_t bytes)
{
    switch (stanza_kind(stanza)) {
    case STANZA_MESSAGE:
        t->messages++;
        break;
    case STANZA_PRESENCE:
        t->presences++;
        break;
    case STANZA_IQ:
        t->iqs++;
        break;
    default:
        t->other++;
    }
    t->bytes += bytes;
}

static size_t tally_count(const struct tally *t)
{
    return t->messages + t->presences + t->iqs + t->other;
}

/* The output is thrown away (the link is gone). A stanza counts as written only once the
 * socket took its last byte: the server discards an incomplete stanza when the stream dies,
 * so one the socket took in part never reached anyone and writing it again cannot deliver it
 * twice. Messages not wholly written go back to the head of the queue when requeue is set
 * (in order, ahead of everything queued after them, with the time they were first queued),
 * so they are written, delay-stamped, on the next link; presences and IQs are stale by then
 * (a reconnection probes every owner again) and are dropped. Both counted in one log line. */
static void out_discard(component_t *c, int requeue)
{
    struct tally kept = {0}, dropped = {0};
    struct queued *back = NULL, **tail = &back;

    while (c->in_out) {
        struct queued *q = c->in_out;
        c->in_out = q->next;
        if (q->end <= c->written) {
            unref_msg(q);
        } else if (requeue && stanza_kind(q->stanza) == STANZA_MESSAGE) {
            tally_add(&kept, q->stanza, q->end - q->start);
            *tail = q;
            tail = &q->next;
        } else {
            tally_add(&dropped, q->stanza, q->end - q->start);
            unref_msg(q);
        }
    }
    *tail = c->retry;
    c->retry = back;
    c->in_out_tail = &c->in_out;
    c->out_off = c->out_len = 0;
    c->appended = c->written = 0;
    if (tally_count(&kept) + tally_count(&dropped) == 0)
        return;
    log_warnx(TAG,
              "%zu stanza(s) (%" PRIu64 " bytes) not written when the link closed: "
              "%zu message(s) back in the queue for the next link; dropped: %zu message(s), "
              "%zu presence(s), %zu iq(s), %zu other",
              tally_count(&kept) + tally_count(&dropped), kept.bytes + dropped.bytes, kept.messages,
              dropped.messages, dropped.presences, dropped.iqs, dropped.other);
}

/* Frees every stanza still waiting to be written (the component is going away), with a
 * count. Component thread only, once no other thread sends. */
static void drop_queued(component_t *c)
{
    struct tally t = {0};
    struct queued *q;
    void *msg;

    while ((q = c->retry) != NULL || mb_recv(c->queue, &msg, 0) == MB_OK) {
        if (q)
            c->retry = q->next;
        else
            q = msg;
        size_t len = 0;
        free(xn_serialize(q->stanza, XN_NS_COMPONENT, XN_SER_DEFAULT, &len));
        tally_add(&t, q->stanza, len);
        unref_msg(q);
    }
    if (tally_count(&t) > 0)
        log_warnx(TAG,
                  "dropping %zu stanza(s) (%" PRIu64 " bytes) never written to the server: "
                  "%zu message(s), %zu presence(s), %zu iq(s), %zu other",
                  tally_count(&t), t.bytes, t.messages, t.presences, t.iqs, t.other);
}

/* ---- losing and regaining the link ---- */

static void schedule_retry(component_t *c, const char *reason)
{
    const struct ferry_config *cfg = c->cfg;
    int64_t delay = component_backoff(cfg->component_reconnect_min_ms,
                                      cfg->component_reconnect_max_ms, c->attempts, random32(c));
    int64_t max = cfg->component_reconnect_max_ms;

    c->attempts++;
    set_state(c, COMPONENT_WAITING);
    c->next_attempt = now(c) + delay;
    log_info(TAG, "%s; reconnecting to %s:%d in %.1f s (attempt %u)", reason, cfg->component_host,
             cfg->component_port, (double)delay / 1000.0, c->attempts);
    if (!c->cap_warned &&
        component_backoff(cfg->component_reconnect_min_ms, max, c->attempts - 1, 0) >= max) {
        c->cap_warned = 1;
        log_warnx(TAG, "reconnect delay reached its cap of %.1f s; still trying %s:%d",
                  (double)max / 1000.0, cfg->component_host, cfg->component_port);
    }
}

/* Best effort goodbye (a stream error, </stream:stream>), then closes the socket. */
static void close_link(component_t *c, const char *stream_error, int send_close)
{
    if (c->fd < 0)
        return;
    if (stream_error) {
        xn_t *err = xn_new(XN_NS_STREAMS, "error");
        xn_add_child(err, XN_NS_STREAM_ERRORS, stream_error);
        size_t len;
        char *text = xn_serialize(err, XN_NS_COMPONENT, XN_SER_DEFAULT, &len);
        out_append(c, text, len);
        free(text);
        xn_unref(err);
    }
    if (send_close)
        out_append(c, STREAM_CLOSE, strlen(STREAM_CLOSE));
    (void)out_flush(c);
    close(c->fd);
    c->fd = -1;
    out_discard(c, 1);
    xs_reset(c->parser);
    c->ping_pending = 0;
    free(c->stream_from);
    c->stream_from = NULL;
}

/* The link failed (or never came up): close, report, and wait for the next attempt. */
static void link_failed(component_t *c, const char *reason, const char *stream_error,
                        int send_close)
{
    int was_up = c->state == COMPONENT_UP;
    close_link(c, stream_error, send_close);
    if (was_up) {
        log_warnx(TAG, "link to %s:%d lost: %s", c->cfg->component_host, c->cfg->component_port,
                  reason);
        if (c->ev.link_down)
            c->ev.link_down(c->ev.ctx);
    }
    schedule_retry(c, reason);
}

static void link_failed_errno(component_t *c, const char *what)
{
    char *reason = xasprintf("%s: %s", what, strerror(errno));
    link_failed(c, reason, NULL, 0);
    free(reason);
}

static void set_verdict(component_t *c, enum verdict v, const char *reason,
                        const char *stream_error, int send_close)
{
    if (c->verdict != V_NONE)
        return;
    c->verdict = v;
    c->verdict_reason = xstrdup(reason);
    c->verdict_error = stream_error;
    c->verdict_close = send_close;
}

static void apply_verdict(component_t *c)
{
    enum verdict v = c->verdict;
    if (v == V_NONE)
        return;
    if (v == V_FATAL) {
        close_link(c, NULL, 1);
        set_state(c, COMPONENT_FATAL);
    } else {
        link_failed(c, c->verdict_reason, c->verdict_error, c->verdict_close);
    }
    c->verdict = V_NONE;
    free(c->verdict_reason);
    c->verdict_reason = NULL;
}

/* ---- writing stanzas ---- */

static void log_stanza(const char *dir, const xn_t *stanza)
{
    if (log_get_level() < LOG_LEVEL_DEBUG)
        return;
    char *text = xn_serialize(stanza, XN_NS_COMPONENT, XN_SER_REDACT, NULL);
    log_debug(TAG, "%s %s", dir, text);
    free(text);
}

/* An IQ result too large for the server becomes an error to the same requester, so the
 * request does not stay unanswered; anything else is dropped. */
static void write_oversized(component_t *c, const xn_t *stanza, size_t len)
{
    const char *type = xn_attr(stanza, "type");
    log_warnx(TAG, "not writing <%s> from %s to %s: %zu bytes exceeds max_stanza_size %zu",
              xn_name(stanza), xn_attr(stanza, "from"), xn_attr(stanza, "to"), len,
              c->cfg->component_max_stanza_bytes);
    if (stanza_kind(stanza) != STANZA_IQ || type == NULL || strcmp(type, "result") != 0)
        return;
    xn_t *err = stanza_error(stanza, "policy-violation", "the answer is too large to send");
    xn_set_attr(err, "from", xn_attr(stanza, "from"));
    xn_set_attr(err, "to", xn_attr(stanza, "to"));
    char *text = xn_serialize(err, XN_NS_COMPONENT, XN_SER_DEFAULT, &len);
    if (len <= c->cfg->component_max_stanza_bytes)
        out_append(c, text, len);
    free(text);
    xn_unref(err);
}

static void write_stanza(component_t *c, const xn_t *stanza)
{
    size_t len;
    char *text = xn_serialize(stanza, XN_NS_COMPONENT, XN_SER_DEFAULT, &len);
    if (len > c->cfg->component_max_stanza_bytes) {
        write_oversized(c, stanza, len);
    } else {
        log_stanza("send", stanza);
        out_append(c, text, len);
    }
    free(text);
}

/* A message that waited in the queue for a link tells the owner when it was meant to
 * arrive (XEP-0203), unless it says so already. Only messages with a body: the sender's
 * words, not errors or chat states. The queue holds the only reference, so the stanza may be
 * changed here. */
static void stamp_delay(const component_t *c, xn_t *stanza, int64_t wall_ms)
{
    const char *type = xn_attr(stanza, "type");
    if (stanza_kind(stanza) != STANZA_MESSAGE || (type && strcmp(type, "error") == 0) ||
        !xn_child(stanza, NULL, "body") || xn_child(stanza, NS_DELAY, "delay"))
        return;
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    char stamp[32];
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    xn_t *delay = xn_add_child(stanza, NS_DELAY, "delay");
    xn_set_attr(delay, "from", c->domain);
    xn_set_attr(delay, "stamp", stamp);
}

/* The next stanza to write: what a lost link gave back first, then the queue. */
static struct queued *next_queued(component_t *c)
{
    struct queued *q = c->retry;
    void *msg;
    if (q) {
        c->retry = q->next;
        q->next = NULL;
        return q;
    }
    return mb_recv(c->queue, &msg, 0) == MB_OK ? msg : NULL;
}

/* Moves queued stanzas to the output while the link is up and the output is not backed up. */
static void drain_queue(component_t *c, size_t high_water)
{
    struct queued *q;
    while (c->state == COMPONENT_UP && out_pending(c) < high_water && (q = next_queued(c))) {
        if (q->queued_at < c->up_since) /* it waited for the link */
            stamp_delay(c, q->stanza, q->wall_ms);
        q->start = c->appended;
        write_stanza(c, q->stanza);
        q->end = c->appended;
        if (q->end == q->start) { /* too large: not written at all */
            unref_msg(q);
            continue;
        }
        q->next = NULL;
        *c->in_out_tail = q;
        c->in_out_tail = &q->next;
    }
}

/* Tells the bridge that the queue, full when a stanza was refused, has room again (half of
 * it), so that what waits for room (the store's messages) goes on. Component thread only. */
static void maybe_drained(component_t *c)
{
    if (c->state != COMPONENT_UP || !atomic_load(&c->refused) ||
        mb_count(c->queue) > QUEUE_LOW_WATER)
        return;
    atomic_store(&c->refused, 0);
    log_debug(TAG, "the outbound queue has room again");
    if (c->ev.drained)
        c->ev.drained(c->ev.ctx);
}

/* Flushes; a write error loses the link. */
static void flush_or_fail(component_t *c)
{
    if (c->fd >= 0 && out_flush(c) != 0)
        link_failed_errno(c, "write failed");
}

/* 0 when stanza may be written: a valid to, and a from inside Ferry's domain. */
static int check_outbound(const component_t *c, const xn_t *stanza)
{
    const char *to_s = xn_attr(stanza, "to"), *from_s = xn_attr(stanza, "from");
    jid_t *to = to_s ? jid_parse(to_s) : NULL, *from = from_s ? jid_parse(from_s) : NULL;
    int rc = 0;

    if (to == NULL || from == NULL || strcmp(jid_domain(from), c->domain) != 0) {
        log_warnx(TAG, "refusing to send <%s> from '%s' to '%s': %s", xn_name(stanza),
                  from_s ? from_s : "", to_s ? to_s : "",
                  to == NULL     ? "no valid 'to'"
                  : from == NULL ? "no valid 'from'"
                                 : "'from' is outside the component's domain");
        rc = COMPONENT_EINVAL;
    }
    jid_free(to);
    jid_free(from);
    return rc;
}

int component_send(component_t *c, xn_t *stanza)
{
    int rc = check_outbound(c, stanza);
    if (rc == 0) {
        struct queued *q = xcalloc(1, sizeof(*q));
        q->stanza = stanza;
        q->queued_at = now(c);
        q->wall_ms = wall_ms();
        int mb = mb_send(c->queue, q);
        if (mb == MB_OK)
            return COMPONENT_OK;
        free(q);
        rc = mb == MB_EFULL ? COMPONENT_EFULL : COMPONENT_ECLOSED;
        if (mb == MB_EFULL)
            atomic_store(&c->refused, 1);
        log_warnx(TAG, "dropping <%s> to %s: the outbound queue is %s", xn_name(stanza),
                  xn_attr(stanza, "to"), mb == MB_EFULL ? "full" : "closed");
    }
    xn_unref(stanza);
    return rc;
}

/* ---- the stream, from the parser's callbacks ---- */

static void send_handshake(component_t *c, const char *stream_id)
{
    const char *secret = c->cfg->component_secret;
    size_t id_len = strlen(stream_id), secret_len = strlen(secret), len;
    char *input = xmalloc(id_len + secret_len + 1);
    char digest[41];

    memcpy(input, stream_id, id_len);
    memcpy(input + id_len, secret, secret_len + 1);
    sha1_hex(input, id_len + secret_len, digest);
    xn_t *hs = xn_new(XN_NS_COMPONENT, "handshake");
    xn_add_text(hs, digest, 40);
    char *text = xn_serialize(hs, XN_NS_COMPONENT, XN_SER_DEFAULT, &len);
    out_append(c, text, len);
    /* The digest stands for the secret: wipe every copy; it is never logged. */
    explicit_bzero(text, len);
    explicit_bzero(input, id_len + secret_len);
    explicit_bzero(digest, sizeof(digest));
    free(text);
    free(input);
    xn_unref(hs);
}

static void on_stream_open(void *ctx, const xn_t *stream)
{
    component_t *c = ctx;
    const char *id = xn_attr(stream, "id");

    if (c->state != COMPONENT_OPENING) {
        set_verdict(c, V_RECONNECT, "unexpected second stream header", "invalid-xml", 1);
        return;
    }
    if (id == NULL || id[0] == '\0') {
        set_verdict(c, V_RECONNECT, "the server's stream header has no id", "invalid-xml", 1);
        return;
    }
    free(c->stream_from);
    c->stream_from = xn_attr(stream, "from") ? xstrdup(xn_attr(stream, "from")) : NULL;
    send_handshake(c, id);
    set_state(c, COMPONENT_HANDSHAKING);
}

static void link_up(component_t *c)
{
    set_state(c, COMPONENT_UP);
    c->up_since = c->state_since;
    c->ever_up = 1;
    c->attempts = 0;
    c->cap_warned = 0;
    log_info(TAG, "link up: %s attached to %s:%d", c->domain, c->cfg->component_host,
             c->cfg->component_port);
    if (c->ev.link_up)
        c->ev.link_up(c->ev.ctx);
    drain_queue(c, OUT_HIGH_WATER);
    maybe_drained(c);
}

static void on_stream_error(component_t *c, const xn_t *error)
{
    const char *condition = "undefined-condition";
    for (const xn_t *e = xn_first_element(error); e; e = xn_next_element(e))
        if (strcmp(xn_ns(e), XN_NS_STREAM_ERRORS) == 0 && strcmp(xn_name(e), "text") != 0) {
            condition = xn_name(e);
            break;
        }
    char *text = xn_child_text(error, XN_NS_STREAM_ERRORS, "text");
    if (strcmp(condition, "not-authorized") == 0 && !c->ever_up) {
        log_errorx(TAG,
                   "the XMPP server at %s:%d refused the handshake for %s (not-authorized): "
                   "[component] secret does not match the server's secret for this component",
                   c->cfg->component_host, c->cfg->component_port, c->domain);
        set_verdict(c, V_FATAL, "not-authorized", NULL, 1);
    } else {
        char *reason = xasprintf("stream error %s%s%.200s%s", condition, text ? " (" : "",
                                 text ? text : "", text ? ")" : "");
        /* Explained loudly once per outage; the retries after it are logged at info. */
        enum log_level level = c->attempts == 0 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO;
        if (strcmp(condition, "conflict") == 0)
            log_write(level, TAG, "another component is attached as %s (conflict)", c->domain);
        else if (strcmp(condition, "host-unknown") == 0)
            log_write(level, TAG, "the XMPP server does not serve the component domain %s",
                      c->domain);
        set_verdict(c, V_RECONNECT, reason, NULL, 1);
        free(reason);
    }
    free(text);
}

/* An answer to our own ping: proof of life, consumed here. */
static int is_ping_reply(const component_t *c, const xn_t *stanza)
{
    const char *type = xn_attr(stanza, "type"), *id = xn_attr(stanza, "id");
    return stanza_kind(stanza) == STANZA_IQ && type && id && c->ping_id[0] &&
           (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) &&
           strcmp(id, c->ping_id) == 0;
}

static void on_stanza(void *ctx, xn_t *stanza)
{
    component_t *c = ctx;

    if (c->verdict != V_NONE) {
        /* The link is going down: nothing more from it counts. */
    } else if (strcmp(xn_ns(stanza), XN_NS_STREAMS) == 0 && strcmp(xn_name(stanza), "error") == 0) {
        on_stream_error(c, stanza);
    } else if (c->state == COMPONENT_HANDSHAKING) {
        if (strcmp(xn_ns(stanza), XN_NS_COMPONENT) == 0 &&
            strcmp(xn_name(stanza), "handshake") == 0)
            link_up(c);
        else
            log_warnx(TAG, "ignoring <%s> before the handshake completed", xn_name(stanza));
    } else if (c->state == COMPONENT_UP && is_ping_reply(c, stanza)) {
        log_debug(TAG, "ping answered");
        c->ping_id[0] = '\0';
    } else if (c->state == COMPONENT_UP) {
        log_stanza("recv", stanza);
        if (c->ev.stanza) {
            c->ev.stanza(c->ev.ctx, stanza);
            return;
        }
    }
    xn_unref(stanza);
}

static void on_stream_close(void *ctx)
{
    set_verdict(ctx, V_RECONNECT, "the server closed the stream", NULL, 1);
}

static void on_parse_error(void *ctx, enum xs_error err, const char *detail)
{
    char *reason = xasprintf("unacceptable data from the server (%s: %.200s)",
                             xs_error_condition(err), detail ? detail : "");
    set_verdict(ctx, V_RECONNECT, reason, xs_error_condition(err), 1);
    free(reason);
}

/* ---- connecting ---- */

static int tcp_connect(const char *host, int port, int *in_progress)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL;
    char service[8];
    int fd = -1, saved = ECONNREFUSED;

    snprintf(service, sizeof(service), "%d", port);
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0) {
        log_info(TAG, "cannot resolve %s: %s", host, gai_strerror(gai));
        errno = EHOSTUNREACH;
        return -1;
    }
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            *in_progress = errno == EINPROGRESS;
            break;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        errno = saved;
    return fd;
}

static void try_connect(component_t *c)
{
    const struct ferry_config *cfg = c->cfg;
    int in_progress = 0;

    log_debug(TAG, "connecting to %s:%d", cfg->component_host, cfg->component_port);
    errno = 0;
    int fd = c->ops.connect ? c->ops.connect(c->ops.ctx, cfg->component_host, cfg->component_port,
                                             &in_progress)
                            : tcp_connect(cfg->component_host, cfg->component_port, &in_progress);
    if (fd < 0) {
        char *reason = xasprintf("cannot connect to %s:%d: %s", cfg->component_host,
                                 cfg->component_port, strerror(errno));
        schedule_retry(c, reason);
        free(reason);
    } else if (in_progress) {
        c->fd = fd;
        set_state(c, COMPONENT_CONNECTING);
    } else {
        component_attach(c, fd);
    }
}

void component_attach(component_t *c, int fd)
{
    if (c->fd >= 0 && c->fd != fd)
        close_link(c, NULL, 0);
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    c->fd = fd;
    xs_reset(c->parser);
    out_discard(c, 1);
    set_state(c, COMPONENT_OPENING);
    c->last_read = c->last_write = now(c);

    xn_t *stream = xn_new(XN_NS_STREAMS, "stream");
    xn_set_attr(stream, "to", c->domain);
    size_t len;
    char *header = xn_serialize_start(stream, XN_NS_COMPONENT, &len);
    out_append(c, header, len);
    free(header);
    xn_unref(stream);
    flush_or_fail(c);
}

/* ---- events from poll ---- */

int component_on_readable(component_t *c)
{
    char buf[READ_CHUNK];

    for (int i = 0; i < READS_PER_WAKE && c->fd >= 0 && c->state != COMPONENT_CONNECTING; i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            link_failed_errno(c, "read failed");
            break;
        }
        if (n == 0) {
            link_failed(c, "the server closed the connection", NULL, 0);
            break;
        }
        c->last_read = now(c);
        c->ping_pending = 0;
        xs_feed(c->parser, buf, (size_t)n);
        apply_verdict(c);
        flush_or_fail(c);
    }
    return c->state == COMPONENT_FATAL ? COMPONENT_EFATAL : COMPONENT_OK;
}

int component_on_writable(component_t *c)
{
    if (c->state == COMPONENT_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err == EINPROGRESS)
            return COMPONENT_OK;
        if (err != 0) {
            char *what = xasprintf("cannot connect to %s:%d", c->cfg->component_host,
                                   c->cfg->component_port);
            errno = err;
            link_failed_errno(c, what);
            free(what);
            return COMPONENT_OK;
        }
        component_attach(c, c->fd);
        return COMPONENT_OK;
    }
    flush_or_fail(c);
    return component_on_queue(c);
}

int component_on_queue(component_t *c)
{
    drain_queue(c, OUT_HIGH_WATER);
    flush_or_fail(c);
    maybe_drained(c);
    return c->state == COMPONENT_FATAL ? COMPONENT_EFATAL : COMPONENT_OK;
}

/* ---- timers ---- */

static void send_ping(component_t *c)
{
    /* The server's own domain: our parent domain, else whatever the server calls itself.
     * Pinging our own domain still proves the round trip through the server. */
    const char *to = c->ping_target ? c->ping_target : c->stream_from ? c->stream_from : c->domain;
    char id[16];

    random_id(id, sizeof(id));
    snprintf(c->ping_id, sizeof(c->ping_id), "ping-%s", id);
    xn_t *iq = xn_new(XN_NS_COMPONENT, "iq");
    xn_set_attr(iq, "type", "get");
    xn_set_attr(iq, "id", c->ping_id);
    xn_set_attr(iq, "from", c->domain);
    xn_set_attr(iq, "to", to);
    xn_add_child(iq, NS_PING, "ping");
    write_stanza(c, iq);
    xn_unref(iq);
    c->ping_pending = 1;
    c->ping_sent = now(c);
    log_debug(TAG, "nothing heard for %.1f s: pinging %s", c->cfg->component_ping_ms / 1000.0, to);
}

static void up_timers(component_t *c, int64_t t)
{
    const struct ferry_config *cfg = c->cfg;

    if (c->ping_pending && t - c->ping_sent >= cfg->component_ping_timeout_ms) {
        char *reason =
            xasprintf("no answer to a ping within %.1f s", cfg->component_ping_timeout_ms / 1000.0);
        link_failed(c, reason, NULL, 1);
        free(reason);
        return;
    }
    if (!c->ping_pending && cfg->component_ping_ms > 0 &&
        t - c->last_read >= cfg->component_ping_ms)
        send_ping(c);
    if (cfg->component_keepalive_ms > 0 && out_pending(c) == 0 &&
        t - c->last_write >= cfg->component_keepalive_ms)
        out_append(c, " ", 1);
    flush_or_fail(c);
}

int component_tick(component_t *c)
{
    int64_t t = now(c);

    switch (c->state) {
    case COMPONENT_WAITING:
        if (t >= c->next_attempt)
            try_connect(c);
        break;
    case COMPONENT_CONNECTING:
    case COMPONENT_OPENING:
    case COMPONENT_HANDSHAKING:
        /* ping_timeout also bounds how long the server may take to let us in. */
        if (t - c->state_since >= c->cfg->component_ping_timeout_ms) {
            char *reason = xasprintf("no handshake within %.1f s (%s)",
                                     c->cfg->component_ping_timeout_ms / 1000.0,
                                     component_state_name(c->state));
            link_failed(c, reason, NULL, c->state != COMPONENT_CONNECTING);
            free(reason);
        }
        break;
    case COMPONENT_UP:
        up_timers(c, t);
        maybe_drained(c); /* a refusal on another thread, after the last drain */
        break;
    case COMPONENT_FATAL:
    case COMPONENT_CLOSED:
        break;
    }
    return c->state == COMPONENT_FATAL ? COMPONENT_EFATAL : COMPONENT_OK;
}

static int64_t earliest(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int component_timeout(component_t *c)
{
    const struct ferry_config *cfg = c->cfg;
    int64_t t = now(c), due;

    switch (c->state) {
    case COMPONENT_WAITING:
        due = c->next_attempt;
        break;
    case COMPONENT_CONNECTING:
    case COMPONENT_OPENING:
    case COMPONENT_HANDSHAKING:
        due = c->state_since + cfg->component_ping_timeout_ms;
        break;
    case COMPONENT_UP:
        due = INT64_MAX;
        if (c->ping_pending)
            due = c->ping_sent + cfg->component_ping_timeout_ms;
        else if (cfg->component_ping_ms > 0)
            due = c->last_read + cfg->component_ping_ms;
        if (cfg->component_keepalive_ms > 0)
            due = earliest(due, c->last_write + cfg->component_keepalive_ms);
        if (due == INT64_MAX)
            return -1;
        break;
    default:
        return -1;
    }
    if (due <= t)
        return 0;
    return due - t > 24 * 3600 * 1000 ? 24 * 3600 * 1000 : (int)(due - t);
}

size_t component_pollfds(component_t *c, struct pollfd fds[2])
{
    size_t n = 0;
    if (c->fd >= 0) {
        short events = c->state == COMPONENT_CONNECTING ? POLLOUT : POLLIN;
        if (out_pending(c) > 0)
            events |= POLLOUT;
        fds[n++] = (struct pollfd){.fd = c->fd, .events = events};
    }
    /* Only while stanzas can be written: a down link leaves them queued (and the queue's
     * descriptor readable, which must not spin the loop). */
    if (c->state == COMPONENT_UP && out_pending(c) < OUT_HIGH_WATER)
        fds[n++] = (struct pollfd){.fd = mb_fd(c->queue), .events = POLLIN};
    return n;
}

int component_dispatch(component_t *c, const struct pollfd *fds, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        short re = fds[i].revents;
        if (re == 0)
            continue;
        if (fds[i].fd == mb_fd(c->queue)) {
            component_on_queue(c);
        } else if (fds[i].fd == c->fd && c->state == COMPONENT_CONNECTING) {
            component_on_writable(c);
        } else if (fds[i].fd == c->fd) {
            if (re & (POLLIN | POLLHUP | POLLERR))
                component_on_readable(c);
            if ((re & POLLOUT) && fds[i].fd == c->fd)
                component_on_writable(c);
        }
    }
    return component_tick(c);
}

/* ---- life cycle ---- */

/* Waits (up to deadline) until the output is written and the server has closed its side. */
static void linger(component_t *c, int64_t deadline)
{
    int closing = 0;
    char buf[4096];

    while (c->fd >= 0 && now_ms() < deadline) {
        if (out_flush(c) != 0)
            break;
        if (out_pending(c) == 0 && !closing) {
            shutdown(c->fd, SHUT_WR);
            closing = 1;
        }
        struct pollfd p = {.fd = c->fd, .events = closing ? POLLIN : POLLIN | POLLOUT};
        int left = (int)(deadline - now_ms());
        if (poll(&p, 1, left > 0 ? left : 0) <= 0)
            break;
        /* Read and discard what the server still says, so that closing does not reset. */
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (closing && n == 0)
            break;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break;
    }
}

void component_shutdown(component_t *c, int timeout_ms)
{
    if (c->state == COMPONENT_UP) {
        drain_queue(c, SIZE_MAX);
        out_append(c, STREAM_CLOSE, strlen(STREAM_CLOSE));
        log_info(TAG, "closing the link to %s:%d", c->cfg->component_host, c->cfg->component_port);
        linger(c, now_ms() + timeout_ms);
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    out_discard(c, 0);
    mb_close(c->queue);
    drop_queued(c);
    set_state(c, COMPONENT_CLOSED);
}

/* The server's domain for pings: ours without its first label ("irc.example.org" ->
 * "example.org"), or NULL for a single-label domain. */
static char *parent_domain(const char *domain)
{
    const char *dot = strchr(domain, '.');
    return dot && dot[1] ? xstrdup(dot + 1) : NULL;
}

component_t *component_new(const struct ferry_config *cfg, const struct component_events *ev,
                           const struct component_ops *ops)
{
    jid_t *jid = jid_parse(cfg->component_jid);
    component_t *c = NULL;

    if (jid == NULL || jid_node(jid) || jid_resource(jid)) {
        log_errorx(TAG, "[component] jid '%s' is not a domain", cfg->component_jid);
        goto done;
    }
    mailbox_t *queue = mb_new(COMPONENT_QUEUE_CAPACITY, unref_msg);
    if (queue == NULL)
        goto done;
    c = xcalloc(1, sizeof(*c));
    c->cfg = cfg;
    c->queue = queue;
    c->fd = -1;
    c->in_out_tail = &c->in_out;
    atomic_init(&c->refused, 0);
    c->domain = xstrdup(jid_domain(jid));
    c->ping_target = parent_domain(c->domain);
    if (ev)
        c->ev = *ev;
    if (ops)
        c->ops = *ops;
    struct xs_callbacks cb = {on_stream_open, on_stanza, on_stream_close, on_parse_error};
    struct xs_limits limits = {cfg->component_max_stanza_bytes, XS_DEFAULT_MAX_DEPTH};
    c->parser = xs_new(&cb, c, &limits);
    log_add_secret(cfg->component_secret);
    set_state(c, COMPONENT_WAITING);
    c->next_attempt = now(c);
done:
    jid_free(jid);
    return c;
}

void component_free(component_t *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    out_discard(c, 0);
    drop_queued(c);
    mb_free(c->queue);
    xs_free(c->parser);
    free(c->out);
    free(c->domain);
    free(c->ping_target);
    free(c->stream_from);
    free(c->verdict_reason);
    free(c);
}
