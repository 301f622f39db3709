/* The XEP-0114 link to the XMPP server, as a state machine driven one step at a time.
 *
 *   WAITING --tick at next attempt--> CONNECTING --writable--> OPENING (our header sent)
 *   OPENING --server's header (id)--> HANDSHAKING (<handshake>sha1(id+secret)</handshake> sent)
 *   HANDSHAKING --<handshake/>--> UP
 *   any loss (refused, reset, EOF, stream error, conflict, parse error, ping timeout)
 *       --> WAITING with exponential backoff and jitter, reconnect_min .. reconnect_max
 *   not-authorized before the link was ever up --> FATAL (a wrong secret: the caller exits 1)
 *
 * Threads: the component thread (main) owns the object and calls everything here except
 * component_send(), which any thread may call: it only queues the stanza on a bounded
 * mailbox. The component thread writes queued stanzas in order while the link is up; while it
 * is down they wait in the queue and are written after reconnection. Nothing here sleeps or
 * blocks except the DNS lookup of [component] host and component_shutdown().
 *
 * A lost link loses no message it was given: a stanza is "written" only once the socket took
 * its last byte (the server throws away a stanza cut short by the end of the stream, so one
 * taken in part was never delivered). Messages not wholly written go back to the head of the
 * queue for the next link, in order and delay-stamped with the time they were first queued;
 * presences and IQs not wholly written are dropped; the counts of both are logged (warn).
 * What is still queued when the component is shut down or freed is dropped with a count.
 *
 * A real process drives it from a poll loop: component_pollfds(), poll() with
 * component_timeout(), component_dispatch(). Tests call the steps themselves over a
 * socketpair with an injected clock and connector. */
#ifndef FERRY_TRANSPORT_COMPONENT_H
#define FERRY_TRANSPORT_COMPONENT_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "lib/xml.h"

typedef struct component component_t;

/* transport/main.c hands these to the bridge unchanged as its sink's results: EINVAL, EFULL
 * and ECLOSED equal bridge/bridge.h's BRIDGE_SINK_* (checked there at compile time). */
enum component_rc {
    COMPONENT_OK = 0,
    COMPONENT_EFATAL = -1,  /* the server refused the secret before the link was ever up */
    COMPONENT_EINVAL = -2,  /* stanza refused: no valid to, or from outside Ferry's domain */
    COMPONENT_EFULL = -3,   /* the outbound queue is full: stanza dropped */
    COMPONENT_ECLOSED = -4, /* the component was shut down: stanza dropped */
};

enum component_state {
    COMPONENT_WAITING,     /* link down; next attempt at component_next_attempt() */
    COMPONENT_CONNECTING,  /* TCP connect in progress */
    COMPONENT_OPENING,     /* our stream header sent, waiting for the server's */
    COMPONENT_HANDSHAKING, /* handshake sent, waiting for <handshake/> */
    COMPONENT_UP,
    COMPONENT_FATAL, /* refused for good: the process should exit 1 */
    COMPONENT_CLOSED,
};

/* Where time, connections and randomness come from; every member may be NULL. */
struct component_ops {
    int64_t (*clock)(void *ctx); /* monotonic milliseconds; NULL: now_ms() */
    /* Starts a connection and returns the socket (or -1 with errno set); sets *in_progress
     * when the connection completes later (the socket becomes writable). NULL: TCP. */
    int (*connect)(void *ctx, const char *host, int port, int *in_progress);
    uint32_t (*random)(void *ctx); /* backoff jitter; NULL: OpenSSL's CSPRNG */
    void *ctx;
};

/* What the link reports upwards; every member may be NULL. */
struct component_events {
    /* A stanza from the server (message, presence or iq, link up); the callee owns it. */
    void (*stanza)(void *ctx, xn_t *stanza);
    void (*link_up)(void *ctx);
    void (*link_down)(void *ctx);
    /* The queue refused a stanza because it was full (COMPONENT_EFULL) and, the link being
     * up, has drained to half its capacity since: a sender that stopped at the refusal may
     * go on. Once per refusal, on the component thread, so a refusal seen by a sender on
     * the component thread is always followed by it; one on another thread is noticed at
     * the component thread's next poll round. */
    void (*drained)(void *ctx);
    void *ctx;
};

#define COMPONENT_QUEUE_CAPACITY 4096 /* stanzas waiting to be written */

/* New component for cfg (borrowed; must outlive it). events and ops are copied and may be
 * NULL. Registers the secret with log_add_secret(). The first tick connects. Returns NULL
 * when [component] jid is not a valid domain or no descriptor is left. */
component_t *component_new(const struct ferry_config *cfg, const struct component_events *ev,
                           const struct component_ops *ops);
/* Closes the socket without a goodbye and frees everything, queued stanzas included. */
void component_free(component_t *c);

/* Any thread: queues stanza for writing; takes ownership in every case. Refuses (logged) a
 * stanza without a valid to or whose from is not inside Ferry's domain. Returns COMPONENT_OK,
 * COMPONENT_EINVAL, COMPONENT_EFULL or COMPONENT_ECLOSED. */
int component_send(component_t *c, xn_t *stanza);

/* ---- driving the state machine (component thread only) ---- */

/* Adopts a connected socket (made non-blocking) and opens the stream on it. */
void component_attach(component_t *c, int fd);
/* Reads what the socket has, feeds the parser, acts on what arrived. COMPONENT_EFATAL when
 * the state became FATAL, else COMPONENT_OK. */
int component_on_readable(component_t *c);
/* The socket is writable: completes a pending connect, or writes buffered output. */
int component_on_writable(component_t *c);
/* The queue's descriptor is readable: writes queued stanzas while the link is up. */
int component_on_queue(component_t *c);
/* Runs the timers (reconnect, handshake timeout, keepalive, ping, ping timeout) against the
 * clock. COMPONENT_EFATAL when the state is FATAL. */
int component_tick(component_t *c);

/* Milliseconds until component_tick() has something to do (0: now), or -1 for never. */
int component_timeout(component_t *c);
/* Fills up to two pollfd entries (the socket, the queue when it should be drained); returns
 * how many. */
size_t component_pollfds(component_t *c, struct pollfd fds[2]);
/* After poll(): handles the entries component_pollfds() filled, then ticks. */
int component_dispatch(component_t *c, const struct pollfd *fds, size_t count);

/* Ends the link politely: when it is up, writes what is queued and </stream:stream>, then
 * waits up to timeout_ms for the server to close. Later sends get COMPONENT_ECLOSED. */
void component_shutdown(component_t *c, int timeout_ms);

enum component_state component_state(const component_t *c);
const char *component_state_name(enum component_state state);
/* When the next connection attempt is due (meaningful in WAITING). */
int64_t component_next_attempt(const component_t *c);
/* Failed attempts since the link was last up (0 while up). */
unsigned component_attempts(const component_t *c);

/* The backoff before attempt number attempt (0 for the first retry): base = min_ms doubled
 * attempt times, capped at max_ms; the delay is base minus a jitter of up to a quarter of
 * base drawn from random, never below min_ms. */
int64_t component_backoff(int min_ms, int max_ms, unsigned attempt, uint32_t random);

#endif
