/* Mailboxes: a ring buffer under one mutex, a condition variable for the receiver, and an
 * eventfd (or a pipe where eventfd is missing) for receivers that poll sockets too.
 *
 * The descriptor's state is changed only while the mutex is held and only when the
 * "mail waiting or closed" condition flips, so it can never disagree with the queue: every
 * send, receive and close updates both under the same lock. */
#include "lib/mailbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "lib/log.h"
#include "lib/util.h"

struct mailbox {
    pthread_mutex_t lock;
    pthread_cond_t mail; /* signalled on send and on close */
    void **ring;
    size_t size;     /* slots allocated in ring: grows on demand up to capacity */
    size_t capacity; /* the bound */
    size_t head;     /* index of the oldest message */
    size_t count;
    int closed;
    int readable; /* the descriptor currently signals */
    int fd_used;  /* mb_fd() was called: only then is the descriptor kept in step */
    int fds[2];   /* eventfd: both the same; pipe: read end, write end */
    mb_free_fn free_msg;
};

/* Rings start this small and double when full, up to the mailbox's capacity: one mailbox per
 * online owner with 1024 slots preallocated cost 8 kB each (8 MB at 1000 owners) while a
 * session rarely holds more than a few messages. */
#define MB_INITIAL_SLOTS 8

static int open_fds(int fds[2])
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd >= 0) {
        fds[0] = fds[1] = fd;
        return 0;
    }
    if (errno != ENOSYS && errno != EINVAL)
        return -1;
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
}

static void signal_fd(mailbox_t *mb)
{
    static const uint64_t one = 1;
    /* The counter is 0 here (we only write on the 0 -> 1 transition), so this cannot block,
     * and a pipe holds one byte without filling up. */
    if (write(mb->fds[1], &one, mb->fds[0] == mb->fds[1] ? sizeof(one) : 1) < 0)
        log_warn("mailbox", "cannot signal mailbox descriptor");
}

static void drain_fd(mailbox_t *mb)
{
    uint64_t buf;
    /* eventfd: one read resets the counter; pipe: it holds exactly one byte. */
    if (read(mb->fds[0], &buf, sizeof(buf)) < 0 && errno != EAGAIN)
        log_warn("mailbox", "cannot drain mailbox descriptor");
}

/* Makes the descriptor agree with the queue. Called with the lock held. */
static void sync_fd(mailbox_t *mb)
{
    int want = mb->count > 0 || mb->closed;
    /* Nobody can poll a descriptor they never asked for: session threads only use mb_recv,
     * and keeping their eventfd in step cost a write and a read (two syscalls) per message
     * handed to an idle session, in each direction. mb_fd() catches up on first use. */
    if (!mb->fd_used || want == mb->readable)
        return;
    if (want)
        signal_fd(mb);
    else
        drain_fd(mb);
    mb->readable = want;
}

mailbox_t *mb_new(size_t capacity, mb_free_fn free_msg)
{
    mailbox_t *mb = xcalloc(1, sizeof(*mb));
    pthread_condattr_t attr;

    if (capacity < 1)
        fatalx("mailbox", "mb_new: capacity must be at least 1");
    if (open_fds(mb->fds) < 0) {
        int saved = errno;
        log_warn("mailbox", "cannot create mailbox descriptor");
        free(mb);
        errno = saved;
        return NULL;
    }
    mb->size = capacity < MB_INITIAL_SLOTS ? capacity : MB_INITIAL_SLOTS;
    mb->ring = xcalloc(mb->size, sizeof(*mb->ring));
    mb->capacity = capacity;
    mb->free_msg = free_msg;
    pthread_mutex_init(&mb->lock, NULL);
    /* Timeouts are measured on the monotonic clock so a wall-clock jump cannot stretch or
     * cut short a receive. */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&mb->mail, &attr);
    pthread_condattr_destroy(&attr);
    return mb;
}

void mb_free(mailbox_t *mb)
{
    if (!mb)
        return;
    for (; mb->count > 0; mb->count--) {
        if (mb->free_msg)
            mb->free_msg(mb->ring[mb->head]);
        mb->head = (mb->head + 1) % mb->size;
    }
    close(mb->fds[0]);
    if (mb->fds[1] != mb->fds[0])
        close(mb->fds[1]);
    pthread_cond_destroy(&mb->mail);
    pthread_mutex_destroy(&mb->lock);
    free(mb->ring);
    free(mb);
}

/* Doubles a full ring (up to capacity), moving the queue to the front. Lock held. */
static void grow_ring(mailbox_t *mb)
{
    size_t size = mb->size * 2 < mb->capacity ? mb->size * 2 : mb->capacity;
    void **ring = xcalloc(size, sizeof(*ring));
    for (size_t i = 0; i < mb->count; i++)
        ring[i] = mb->ring[(mb->head + i) % mb->size];
    free(mb->ring);
    mb->ring = ring;
    mb->size = size;
    mb->head = 0;
}

int mb_send(mailbox_t *mb, void *msg)
{
    int rc = MB_OK;

    pthread_mutex_lock(&mb->lock);
    if (mb->closed) {
        rc = MB_ECLOSED;
        goto out;
    }
    if (mb->count == mb->capacity) {
        rc = MB_EFULL;
        goto out;
    }
    if (mb->count == mb->size)
        grow_ring(mb);
    mb->ring[(mb->head + mb->count) % mb->size] = msg;
    mb->count++;
    if (mb->count == 1)
        pthread_cond_signal(&mb->mail);
    sync_fd(mb);
out:
    pthread_mutex_unlock(&mb->lock);
    return rc;
}

/* Absolute CLOCK_MONOTONIC time timeout_ms from now. */
static struct timespec deadline_after(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Waits until mail arrives, the mailbox closes or the deadline passes. Lock held. */
static void wait_for_mail(mailbox_t *mb, int timeout_ms)
{
    struct timespec deadline;

    if (timeout_ms == 0)
        return;
    if (timeout_ms > 0)
        deadline = deadline_after(timeout_ms);
    while (mb->count == 0 && !mb->closed) {
        if (timeout_ms < 0)
            pthread_cond_wait(&mb->mail, &mb->lock);
        else if (pthread_cond_timedwait(&mb->mail, &mb->lock, &deadline) == ETIMEDOUT)
            return;
    }
}

int mb_recv(mailbox_t *mb, void **msg, int timeout_ms)
{
    int rc = MB_OK;

    pthread_mutex_lock(&mb->lock);
    wait_for_mail(mb, timeout_ms);
    if (mb->count == 0) {
        rc = mb->closed ? MB_ECLOSED : MB_ETIMEDOUT;
        goto out;
    }
    *msg = mb->ring[mb->head];
    mb->ring[mb->head] = NULL;
    mb->head = (mb->head + 1) % mb->size;
    mb->count--;
    sync_fd(mb);
out:
    pthread_mutex_unlock(&mb->lock);
    return rc;
}

void mb_close(mailbox_t *mb)
{
    pthread_mutex_lock(&mb->lock);
    mb->closed = 1;
    pthread_cond_broadcast(&mb->mail);
    sync_fd(mb);
    pthread_mutex_unlock(&mb->lock);
}

size_t mb_count(mailbox_t *mb)
{
    size_t n;
    pthread_mutex_lock(&mb->lock);
    n = mb->count;
    pthread_mutex_unlock(&mb->lock);
    return n;
}

int mb_fd(mailbox_t *mb)
{
    pthread_mutex_lock(&mb->lock);
    if (!mb->fd_used) {
        mb->fd_used = 1;
        sync_fd(mb); /* readable now if mail is already waiting */
    }
    pthread_mutex_unlock(&mb->lock);
    return mb->fds[0];
}
