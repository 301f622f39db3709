/* IRC flood control for one owner, as plain data: no libpurple, no GLib, the clock passed in.
 *
 * libpurple's IRC plugin (2.14) keeps its own flood-control queue and frees it, unsent and
 * unreported, when the connection closes. So Ferry tells the plugin to write at once and holds
 * the lines here instead, where every message can be answered: a FIFO of messages, each split
 * into the lines the plugin would write, released by a token bucket (burst lines at once, then
 * one line per interval). A line moves waiting -> handed (given to libpurple) -> written (the
 * plugin wrote it to the socket); a message is done when every line of it is written.
 *
 * native/outbox.c drives it on the native thread; tests/unit/test_pacer.c checks it alone. */
#ifndef FERRY_NATIVE_PACER_H
#define FERRY_NATIVE_PACER_H

#include <stddef.h>
#include <stdint.h>

/* Lines one owner may have waiting for flood control: beyond that a message is refused whole. */
#define PACER_MAX_LINES 256
/* libpurple's IRC_MAX_MSG_SIZE, and what irc_cmd_privmsg keeps from it for "PRIVMSG nick :". */
#define PACER_IRC_LINE_MAX 512
#define PACER_IRC_LINE_OVERHEAD 64

enum pacer_result {
    PACER_OK = 0,
    PACER_EFULL = -1,  /* the message does not fit in what is left of max_lines: not queued */
    PACER_EEMPTY = -2, /* the message has no line to write (nothing but line breaks) */
};

/* A message that left the pacer: done, or taken back unfinished. */
struct pacer_done {
    char *to;             /* caller frees (pacer_done_clear) */
    uint64_t id;          /* as pushed */
    size_t lines;         /* lines it was split into */
    size_t written;       /* lines the plugin wrote */
    int64_t queued_at_ms; /* when it was pushed */
};

struct pacer;

/* A new pacer with a full bucket at now_ms. burst below 1 counts as 1 (libpurple would never
 * send at all); interval_s below 1 turns pacing off, as in libpurple: every line may go at once
 * and max_lines is not enforced. Caller frees with pacer_free. */
struct pacer *pacer_new(int burst, int interval_s, size_t max_lines, int64_t now_ms);
/* Frees the pacer and every message still in it, unanswered: take them first when they must
 * be answered (pacer_take_unfinished). NULL is fine. */
void pacer_free(struct pacer *p);
/* 1 when lines are held back at all (interval_s >= 1). */
int pacer_enabled(const struct pacer *p);

/* Splits text the way libpurple's irc_cmd_privmsg does: one line per '\n', a line longer than
 * max_bytes cut at the last UTF-8 character boundary within max_bytes (max_bytes 0: no cut).
 * Empty lines are left out: the plugin would send them as an empty PRIVMSG, which servers
 * refuse (412), and the line-at-a-time path here would not send them at all. Returns the line
 * count and *lines, a new array of new strings (NULL when the count is 0); pacer_lines_free. */
size_t pacer_split(const char *text, size_t max_bytes, char ***lines);
void pacer_lines_free(char **lines, size_t count);
/* The longest PRIVMSG text libpurple writes as one line to this target (0: no limit). */
size_t pacer_line_budget(const char *to);

/* Queues text for to (split with pacer_line_budget(to)) under the caller's id.
 * PACER_OK, PACER_EFULL (pacing on and the lines waiting plus this message's would exceed
 * max_lines) or PACER_EEMPTY; nothing is queued unless PACER_OK. */
int pacer_push(struct pacer *p, const char *to, uint64_t id, const char *text, int64_t now_ms);
/* Lines queued and not yet handed, over every message. */
size_t pacer_waiting(const struct pacer *p);
/* Messages in the pacer (waiting, or handed and not all written). */
size_t pacer_messages(const struct pacer *p);

/* The next line to hand to libpurple, when the bucket allows one now: returns 1 with *to and
 * *line (valid until the message leaves the pacer) and spends a token. Otherwise 0 with
 * *wait_ms: how long until a line may go, or -1 when no line waits. */
int pacer_next(struct pacer *p, int64_t now_ms, const char **to, const char **line,
               int64_t *wait_ms);
/* The plugin wrote a PRIVMSG: the oldest handed line is written. When that completes its
 * message, returns 1 and fills *done (the message left the pacer). A PRIVMSG while no handed
 * line awaits its write is not ours: it is charged like any other line, 0. */
int pacer_line_written(struct pacer *p, int64_t now_ms, struct pacer_done *done);
/* The plugin wrote some other line (ISON, WHOIS, PONG...): the server counts it too, so it
 * spends a token when one is there (never more: other lines never hold messages back for
 * longer than one interval). */
void pacer_other_line(struct pacer *p, int64_t now_ms);
/* Takes the oldest message out of the pacer, whatever its state: 1 with *done, 0 when empty.
 * For answering every message when the connection goes. */
int pacer_take_unfinished(struct pacer *p, struct pacer_done *done);
void pacer_done_clear(struct pacer_done *done);

#endif
