/* Mailboxes: a thread's message port. Many senders, one receiver, bounded.
 *
 * Messages are opaque pointers; ownership passes to the mailbox on a successful send and to
 * the receiver on receive. A mailbox also offers a file descriptor that is readable exactly
 * while mail is waiting (or the mailbox is closed), for threads that poll sockets too.
 *
 * Overflow policy: a full mailbox refuses the message at once (MB_EFULL) and the sender keeps
 * ownership; the sender decides what to do (answer with an error, drop with a log line). No
 * sender ever blocks, so a slow receiver cannot stall the component or native threads. */
#ifndef FERRY_LIB_MAILBOX_H
#define FERRY_LIB_MAILBOX_H

#include <stddef.h>

enum mb_result {
    MB_OK = 0,
    MB_EFULL = -1,     /* at capacity: message not taken */
    MB_ECLOSED = -2,   /* closed: message not taken (send) / closed and empty (receive) */
    MB_ETIMEDOUT = -3, /* nothing arrived in time */
};

typedef struct mailbox mailbox_t;
/* Frees a message that is still queued when the mailbox is freed. */
typedef void (*mb_free_fn)(void *msg);

/* New mailbox holding at most capacity messages (capacity >= 1). free_msg may be NULL.
 * Returns NULL (logged, errno set) when no file descriptor is left for it. */
mailbox_t *mb_new(size_t capacity, mb_free_fn free_msg);
/* Frees the mailbox and every queued message. No thread may use it any more. */
void mb_free(mailbox_t *mb);

/* Queues msg at the tail. MB_OK, MB_EFULL or MB_ECLOSED (then the caller still owns msg). */
int mb_send(mailbox_t *mb, void *msg);
/* Takes the head into *msg. timeout_ms < 0 waits forever, 0 polls. MB_OK, MB_ETIMEDOUT, or
 * MB_ECLOSED once the mailbox is closed and drained. */
int mb_recv(mailbox_t *mb, void **msg, int timeout_ms);
/* Refuses further sends and wakes the receiver; queued messages can still be received. */
void mb_close(mailbox_t *mb);
/* Number of queued messages (a snapshot). */
size_t mb_count(mailbox_t *mb);
/* A descriptor readable while mail is waiting or the mailbox is closed. Owned by the mailbox. */
int mb_fd(mailbox_t *mb);

#endif
