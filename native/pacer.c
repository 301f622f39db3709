/* IRC flood control as plain data (see pacer.h). The bucket is kept in milliseconds of credit:
 * a line costs one interval, the credit grows with time up to burst intervals. */
#include "native/pacer.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

struct message {
    struct message *next;
    char *to;
    uint64_t id;
    char **lines;
    size_t nlines;
    size_t handed;  /* lines given to libpurple, in order */
    size_t written; /* of those, lines the plugin wrote */
    int64_t queued_at;
};

struct pacer {
    int64_t interval_ms; /* 0: pacing off */
    int64_t cap_ms;      /* burst * interval_ms */
    int64_t credit_ms;
    int64_t last_ms; /* when credit_ms was last brought up to date */
    size_t max_lines;
    size_t waiting; /* lines not handed yet */
    size_t count;   /* messages */
    struct message *head, *tail;
    struct message *cursor; /* the first message with a line not handed yet, or NULL */
};

struct pacer *pacer_new(int burst, int interval_s, size_t max_lines, int64_t now_ms)
{
    struct pacer *p = xcalloc(1, sizeof(*p));
    p->interval_ms = interval_s > 0 ? (int64_t)interval_s * 1000 : 0;
    p->cap_ms = (int64_t)(burst > 1 ? burst : 1) * p->interval_ms;
    p->credit_ms = p->cap_ms;
    p->last_ms = now_ms;
    p->max_lines = max_lines;
    return p;
}

static void message_free(struct message *m)
{
    pacer_lines_free(m->lines, m->nlines);
    free(m->to);
    free(m);
}

void pacer_free(struct pacer *p)
{
    if (!p)
        return;
    while (p->head) {
        struct message *m = p->head;
        p->head = m->next;
        message_free(m);
    }
    free(p);
}

int pacer_enabled(const struct pacer *p)
{
    return p->interval_ms > 0;
}

/* ---- splitting ---- */

/* Where a line of len bytes is cut to fit max bytes: the last UTF-8 character boundary at or
 * before max (what g_utf8_validate(line, max, &end) finds in valid text). */
static size_t cut_at(const char *line, size_t len, size_t max)
{
    if (max == 0 || len <= max)
        return len;
    size_t cut = max;
    while (cut > 0 && ((unsigned char)line[cut] & 0xC0) == 0x80)
        cut--;
    return cut > 0 ? cut : max; /* not UTF-8 at all: cut where the limit is */
}

static void add_line(char ***lines, size_t *count, size_t *cap, const char *s, size_t n)
{
    if (*count == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        *lines = xrealloc(*lines, *cap * sizeof(**lines));
    }
    (*lines)[(*count)++] = xstrndup(s, n);
}

size_t pacer_split(const char *text, size_t max_bytes, char ***lines)
{
    size_t count = 0, cap = 0;
    *lines = NULL;
    for (const char *cur = text; *cur;) {
        const char *nl = strchr(cur, '\n');
        size_t len = nl ? (size_t)(nl - cur) : strlen(cur);
        const char *line = cur;
        while (len > 0) {
            size_t n = cut_at(line, len, max_bytes);
            add_line(lines, &count, &cap, line, n);
            line += n;
            len -= n;
        }
        cur = nl ? nl + 1 : line;
    }
    return count;
}

void pacer_lines_free(char **lines, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(lines[i]);
    free(lines);
}

size_t pacer_line_budget(const char *to)
{
    size_t used = strlen(to) + PACER_IRC_LINE_OVERHEAD;
    return used < PACER_IRC_LINE_MAX ? PACER_IRC_LINE_MAX - used : 0;
}

/* ---- the FIFO ---- */

int pacer_push(struct pacer *p, const char *to, uint64_t id, const char *text, int64_t now_ms)
{
    char **lines;
    size_t n = pacer_split(text, pacer_line_budget(to), &lines);
    if (n == 0)
        return PACER_EEMPTY;
    if (pacer_enabled(p) && p->waiting + n > p->max_lines) {
        pacer_lines_free(lines, n);
        return PACER_EFULL;
    }
    struct message *m = xcalloc(1, sizeof(*m));
    m->to = xstrdup(to);
    m->id = id;
    m->lines = lines;
    m->nlines = n;
    m->queued_at = now_ms;
    if (p->tail)
        p->tail->next = m;
    else
        p->head = m;
    p->tail = m;
    if (!p->cursor)
        p->cursor = m;
    p->waiting += n;
    p->count++;
    return PACER_OK;
}

size_t pacer_waiting(const struct pacer *p)
{
    return p->waiting;
}

size_t pacer_messages(const struct pacer *p)
{
    return p->count;
}

/* ---- the bucket ---- */

static void refill(struct pacer *p, int64_t now_ms)
{
    if (now_ms > p->last_ms) {
        p->credit_ms += now_ms - p->last_ms;
        if (p->credit_ms > p->cap_ms)
            p->credit_ms = p->cap_ms;
    }
    p->last_ms = now_ms;
}

int pacer_next(struct pacer *p, int64_t now_ms, const char **to, const char **line,
               int64_t *wait_ms)
{
    struct message *m = p->cursor;
    if (!m) {
        *wait_ms = -1;
        return 0;
    }
    refill(p, now_ms);
    if (p->credit_ms < p->interval_ms) {
        *wait_ms = p->interval_ms - p->credit_ms;
        return 0;
    }
    p->credit_ms -= p->interval_ms;
    *to = m->to;
    *line = m->lines[m->handed++];
    p->waiting--;
    if (m->handed == m->nlines)
        p->cursor = m->next;
    return 1;
}

/* No debt below zero: a burst of other lines (ISON for many new contacts) is not made up for
 * later; native/outbox.c (np_outbox_attach) says why that is acceptable. */
void pacer_other_line(struct pacer *p, int64_t now_ms)
{
    refill(p, now_ms);
    p->credit_ms = p->credit_ms > p->interval_ms ? p->credit_ms - p->interval_ms : 0;
}

/* Takes the head message out and describes it in *done. */
static void take_head(struct pacer *p, struct pacer_done *done)
{
    struct message *m = p->head;
    p->head = m->next;
    if (!p->head)
        p->tail = NULL;
    if (p->cursor == m)
        p->cursor = m->next;
    p->waiting -= m->nlines - m->handed;
    p->count--;
    done->to = m->to;
    m->to = NULL;
    done->id = m->id;
    done->lines = m->nlines;
    done->written = m->written;
    done->queued_at_ms = m->queued_at;
    message_free(m);
}

int pacer_line_written(struct pacer *p, int64_t now_ms, struct pacer_done *done)
{
    /* Lines are handed and written in order, and a message leaves once all its lines are
     * written: a line awaiting its write can only be in the head message. */
    struct message *m = p->head;
    if (!m || m->written == m->handed) {
        pacer_other_line(p, now_ms);
        return 0;
    }
    if (++m->written < m->nlines)
        return 0;
    take_head(p, done);
    return 1;
}

int pacer_take_unfinished(struct pacer *p, struct pacer_done *done)
{
    if (!p->head)
        return 0;
    take_head(p, done);
    return 1;
}

void pacer_done_clear(struct pacer_done *done)
{
    free(done->to);
    memset(done, 0, sizeof(*done));
}
