/* Messages out: every SEND_IM is answered, with NP_EV_IM_SENT once libpurple wrote it or with
 * NP_EV_IM_SEND_FAILED, both carrying the command's id.
 *
 * IRC is paced here (native/pacer.c). libpurple 2.14's IRC plugin queues every line it sends
 * (irc_send_len pushes onto irc->send_queue) and writes the queue only from a one-second timer
 * (irc_send_handler_cb), which lets out ratelimit-burst lines after an idle spell and then one
 * per ratelimit-interval seconds; irc_close frees what is still queued without a word. With
 * ratelimit-interval below 1 the timer writes the whole queue at each tick ("available =
 * G_MAXINT"). So each IRC account gets ratelimit-interval 0, the operator's burst and interval
 * drive the pacer instead, and the plugin's timer is made ready after each line handed, so the
 * line is written in the next loop iteration: libpurple never holds a line for longer than
 * that. The plugin emits "irc-sending-text" in do_send just before write(): that is when a
 * line counts as written. */
#include "native/internal.h"

#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "native/pacer.h"

/* libpurple's IRC_DEFAULT_COMMAND_INTERVAL and IRC_DEFAULT_COMMAND_MAX_BURST. */
#define IRC_DEFAULT_INTERVAL_S 2
#define IRC_DEFAULT_BURST 5
/* A message held longer than this by flood control is mentioned at debug level. */
#define HELD_LOG_MS 3000

static int outbox_handle; /* the address identifies our signal connection */
static int write_reports; /* "irc-sending-text" is connected: lines count when written */

static int is_irc(PurpleAccount *account)
{
    return strcmp(purple_account_get_protocol_id(account), "prpl-irc") == 0;
}

/* ---- answers ---- */

static void answer_failed(struct np_owner *owner, const char *to, uint64_t id, const char *why)
{
    struct np_event *ev = np_event_im_send_failed(owner->id, to, why);
    ev->u.send_failed.id = id;
    /* Never dropped: an unanswered message would pass for one delivered, and a SENT lost
     * would bounce a delivered one when the session ends. */
    np_post_reliably(owner->mailbox, ev);
}

static void answer_sent(struct np_owner *owner, const char *to, uint64_t id)
{
    np_post_reliably(owner->mailbox, np_event_im_sent(owner->id, to, id));
}

/* ---- handing lines to libpurple ---- */

static gboolean sent_long_ago(gpointer key, gpointer value, gpointer now)
{
    return *(gint64 *)now - *(gint64 *)value > NP_SEND_ERROR_WINDOW_MS;
}

/* When each name was last written to, so that a delivery error can be told from a notice. */
static void remember_sent(struct np_owner *owner, const char *to)
{
    gint64 *when = g_new(gint64, 1);
    *when = now_ms();
    if (g_hash_table_size(owner->sent) >= 64)
        g_hash_table_foreach_remove(owner->sent, sent_long_ago, when);
    g_hash_table_replace(owner->sent, g_strdup(purple_normalize(owner->account, to)), when);
}

/* The plugin's send timer is the GLib source whose data is the connection's protocol data:
 * ready now, it writes what was queued in the next loop iteration instead of within a second.
 * Other protocols write at once and are left alone. */
static void flush_irc_send_queue(PurpleConnection *gc)
{
    gpointer irc = purple_connection_get_protocol_data(gc);
    GSource *timer = irc ? g_main_context_find_source_by_user_data(NULL, irc) : NULL;
    if (timer)
        g_source_set_ready_time(timer, 0);
}

/* One line, one PRIVMSG: the line has no break and fits the plugin's length limit. */
static void hand_line(struct np_owner *owner, PurpleConnection *gc, const char *to,
                      const char *line)
{
    remember_sent(owner, to);
    char *html = np_text_to_html(line);
    /* irc_im_send always returns 1: serv_send_im fails only without a connection. */
    if (serv_send_im(gc, to, html, 0) < 0)
        log_warnx(NP_TAG, "%s: libpurple refused a line", owner->id);
    g_free(html);
}

static void complete(struct np_owner *owner, struct pacer_done *done, int64_t now)
{
    if (now - done->queued_at_ms > HELD_LOG_MS)
        log_debug(NP_TAG, "%s: a message of %zu line(s) was held %lld ms by flood control",
                  owner->id, done->lines, (long long)(now - done->queued_at_ms));
    answer_sent(owner, done->to, done->id);
    pacer_done_clear(done);
}

static gboolean pace_timer_cb(gpointer data);

/* Hands every line the bucket allows now, then sleeps until the next one may go. */
static void pace_run(struct np_owner *owner)
{
    PurpleConnection *gc = purple_account_get_connection(owner->account);
    if (owner->pace_timer) {
        g_source_remove(owner->pace_timer);
        owner->pace_timer = 0;
    }
    if (!gc || owner->out_lost)
        return;
    int64_t now = now_ms(), wait = -1;
    const char *to, *line;
    int handed = 0;
    while (pacer_next(owner->pacer, now, &to, &line, &wait)) {
        hand_line(owner, gc, to, line);
        handed++;
        struct pacer_done done;
        if (!write_reports && pacer_line_written(owner->pacer, now, &done))
            complete(owner, &done, now);
    }
    if (handed)
        flush_irc_send_queue(gc);
    if (wait >= 0)
        owner->pace_timer = g_timeout_add((guint)wait, pace_timer_cb, owner);
}

static gboolean pace_timer_cb(gpointer data)
{
    struct np_owner *owner = data;
    owner->pace_timer = 0;
    pace_run(owner);
    return G_SOURCE_REMOVE;
}

/* Every line the IRC plugin writes (do_send emits this just before write()). */
static void on_irc_sending(PurpleConnection *gc, char **text, gpointer data)
{
    struct np_owner *owner = np_owner_of_gc(gc);
    if (!owner || !owner->pacer || !text || !*text)
        return;
    int64_t now = now_ms();
    if (strncmp(*text, "PRIVMSG ", 8) != 0) {
        /* The plugin does not count its login lines either (do_login grants a full burst
         * after them). */
        if (purple_connection_get_state(gc) == PURPLE_CONNECTED)
            pacer_other_line(owner->pacer, now);
        return;
    }
    struct pacer_done done;
    if (pacer_line_written(owner->pacer, now, &done))
        complete(owner, &done, now);
}

/* ---- the interface to the rest of native/ ---- */

void np_outbox_init(void)
{
    PurplePlugin *irc = purple_find_prpl("prpl-irc");
    write_reports = irc && purple_signal_connect(irc, "irc-sending-text", &outbox_handle,
                                                 PURPLE_CALLBACK(on_irc_sending), NULL) != 0;
    if (irc && !write_reports)
        log_warnx(NP_TAG, "no irc-sending-text signal: IRC lines count as sent when handed");
}

void np_outbox_quit(void)
{
    purple_signals_disconnect_by_handle(&outbox_handle);
    write_reports = 0;
}

void np_outbox_attach(struct np_owner *owner)
{
    PurpleAccount *account = owner->account;
    if (!is_irc(account))
        return;
    /* The operator's [legacy] values, or libpurple's defaults: then the plugin is told to
     * write at once, the pacer holding the lines instead. */
    int interval = purple_account_get_int(account, "ratelimit-interval", IRC_DEFAULT_INTERVAL_S);
    int burst = purple_account_get_int(account, "ratelimit-burst", IRC_DEFAULT_BURST);
    owner->pacer = pacer_new(burst, interval, PACER_MAX_LINES, now_ms());
    /* Lines other than our messages (ISON, WHOIS, PONG, PING) are then written at once by
     * the plugin and only charged to the pacer afterwards, at most one token each (the credit
     * stops at zero): adding many contacts at once can burst ISON lines, since irc_add_buddy
     * sends one single-nick ISON per contact after sign-on (irc_ison_one). Acceptable today:
     * the contacts re-added at each login are added before the account connects, and the
     * plugin polls them in batches (irc_blist_timeout at sign-on and every 45 s: one ISON of
     * up to 450 bytes of nicks, the next only after the server's reply); after sign-on a
     * contact is added per subscription of the owner, and WHOIS goes one request at a time
     * (native/requests.c). A roster import of hundreds of contacts is the case to pace if it
     * ever matters. */
    purple_account_set_int(account, "ratelimit-interval", 0);
}

/* Other protocols write at once. */
static void send_unpaced(struct np_owner *owner, const char *to, uint64_t id, const char *text)
{
    char *html = np_text_to_html(text);
    remember_sent(owner, to);
    int rc = serv_send_im(purple_account_get_connection(owner->account), to, html, 0);
    g_free(html);
    if (rc < 0)
        answer_failed(owner, to, id, "the network refused it");
    else
        answer_sent(owner, to, id);
}

static void send_paced(struct np_owner *owner, const char *to, uint64_t id, const char *text)
{
    int rc = pacer_push(owner->pacer, to, id, text, now_ms());
    if (rc == PACER_OK) {
        pace_run(owner);
    } else if (rc == PACER_EEMPTY) {
        answer_sent(owner, to, id); /* nothing to write: nothing lost */
    } else {
        log_warnx(NP_TAG, "%s: a message refused: %zu line(s) already wait for flood control",
                  owner->id, pacer_waiting(owner->pacer));
        char *why = g_strdup_printf("too many lines for %s flood control (at most %d may "
                                    "wait): not sent",
                                    np_legacy_protocol_name(), PACER_MAX_LINES);
        answer_failed(owner, to, id, why);
        g_free(why);
    }
}

void np_outbox_send(const struct np_cmd *cmd)
{
    struct np_owner *owner = np_owner_find(cmd->owner);
    if (!owner) {
        log_debug(NP_TAG, "send-im for %s, who is not logged in: dropped", cmd->owner);
        return;
    }
    if (!purple_account_is_connected(owner->account) || owner->out_lost) {
        answer_failed(owner, cmd->u.im.to, cmd->u.im.id, "not signed on");
        return;
    }
    np_ensure_conversation(owner->account, cmd->u.im.to);
    if (owner->pacer)
        send_paced(owner, cmd->u.im.to, cmd->u.im.id, cmd->u.im.text);
    else
        send_unpaced(owner, cmd->u.im.to, cmd->u.im.id, cmd->u.im.text);
}

void np_outbox_connection_lost(struct np_owner *owner)
{
    owner->out_lost = 1;
    if (owner->pace_timer)
        g_source_remove(owner->pace_timer);
    owner->pace_timer = 0;
}

/* Why a held message is answered with an error: nothing, or only some of its lines, went. */
static char *bounce_reason(const struct pacer_done *d, const char *what)
{
    const char *network = np_legacy_protocol_name();
    if (d->written == 0)
        return g_strdup_printf("not sent: the connection to %s was %s", network, what);
    return g_strdup_printf("only %zu of %zu lines were sent: the connection to %s was %s",
                           d->written, d->lines, network, what);
}

void np_outbox_bounce(struct np_owner *owner, const char *what)
{
    if (owner->pace_timer)
        g_source_remove(owner->pace_timer);
    owner->pace_timer = 0;
    if (!owner->pacer || pacer_messages(owner->pacer) == 0)
        return;
    size_t messages = 0, partly = 0, lines = 0;
    struct pacer_done d;
    while (pacer_take_unfinished(owner->pacer, &d)) {
        char *why = bounce_reason(&d, what);
        answer_failed(owner, d.to, d.id, why);
        g_free(why);
        messages++;
        partly += d.written > 0;
        lines += d.lines - d.written;
        pacer_done_clear(&d);
    }
    log_warnx(NP_TAG,
              "%s: %zu message(s) answered with an error (%zu partly sent, %zu line(s) not "
              "sent): the connection was %s",
              owner->id, messages, partly, lines, what);
}

void np_outbox_detach(struct np_owner *owner)
{
    if (owner->pace_timer)
        g_source_remove(owner->pace_timer);
    owner->pace_timer = 0;
    if (owner->pacer && pacer_messages(owner->pacer) > 0)
        log_warnx(NP_TAG, "%s: %zu message(s) left unanswered at stop", owner->id,
                  pacer_messages(owner->pacer));
    pacer_free(owner->pacer);
    owner->pacer = NULL;
}
