/* Unit tests for lib/mailbox: order, overflow, timeouts, close, the descriptor, and many
 * concurrent senders. Run under valgrind, so a message the mailbox forgets to free fails. */
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "lib/mailbox.h"
#include "lib/util.h"

/* Messages in these tests are small integers carried in the pointer. */
#define MSG(n) ((void *)(uintptr_t)(n))
#define VAL(p) ((uintptr_t)(p))

static int fd_readable(mailbox_t *mb)
{
    struct pollfd p = {.fd = mb_fd(mb), .events = POLLIN};
    int n = poll(&p, 1, 0);
    assert_true(n >= 0);
    return n == 1 && (p.revents & POLLIN);
}

static void test_fifo_order(void **state)
{
    mailbox_t *mb = mb_new(8, NULL);
    void *m = NULL;

    for (uintptr_t i = 1; i <= 5; i++)
        assert_int_equal(mb_send(mb, MSG(i)), MB_OK);
    assert_int_equal(mb_count(mb), 5);
    for (uintptr_t i = 1; i <= 5; i++) {
        assert_int_equal(mb_recv(mb, &m, 0), MB_OK);
        assert_int_equal(VAL(m), i);
    }
    assert_int_equal(mb_count(mb), 0);
    assert_int_equal(mb_recv(mb, &m, 0), MB_ETIMEDOUT);
    mb_free(mb);
}

/* The ring wraps around many times without losing order. */
static void test_wraparound(void **state)
{
    mailbox_t *mb = mb_new(3, NULL);
    void *m = NULL;
    uintptr_t next_in = 1, next_out = 1;

    for (int round = 0; round < 100; round++) {
        assert_int_equal(mb_send(mb, MSG(next_in++)), MB_OK);
        assert_int_equal(mb_send(mb, MSG(next_in++)), MB_OK);
        for (int k = 0; k < 2; k++) {
            assert_int_equal(mb_recv(mb, &m, 0), MB_OK);
            assert_int_equal(VAL(m), next_out++);
        }
    }
    mb_free(mb);
}

/* The ring starts small and grows: a queue that wrapped around before a growth keeps its
 * order, the bound stays exactly the capacity (not a power of two here), and what is still
 * queued after growing is freed with the mailbox (valgrind checks). */
static void test_growth_keeps_order_and_bound(void **state)
{
    mailbox_t *mb = mb_new(21, free);
    void *m = NULL;
    uintptr_t in = 0, out = 0;

    /* Wrap the small initial ring: 5 in, 3 out, then fill to the bound. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(mb_send(mb, xstrdup((char[]){(char)('a' + in++), 0})), MB_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mb_recv(mb, &m, 0), MB_OK);
        assert_int_equal(*(char *)m, 'a' + out++);
        free(m);
    }
    while (mb_count(mb) < 21)
        assert_int_equal(mb_send(mb, xstrdup((char[]){(char)('a' + in++), 0})), MB_OK);
    char *extra = xstrdup("x");
    assert_int_equal(mb_send(mb, extra), MB_EFULL);
    free(extra);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(mb_recv(mb, &m, 0), MB_OK);
        assert_int_equal(*(char *)m, 'a' + out++);
        free(m);
    }
    assert_int_equal(mb_count(mb), 11);
    mb_free(mb);
}

static void test_full_refuses(void **state)
{
    mailbox_t *mb = mb_new(2, free);
    char *a = xstrdup("a"), *b = xstrdup("b"), *c = xstrdup("c");
    void *m = NULL;

    assert_int_equal(mb_send(mb, a), MB_OK);
    assert_int_equal(mb_send(mb, b), MB_OK);
    assert_int_equal(mb_send(mb, c), MB_EFULL);
    assert_int_equal(mb_count(mb), 2);
    /* The sender still owns c: it is untouched and freed here (valgrind checks). */
    assert_string_equal(c, "c");
    assert_int_equal(mb_recv(mb, &m, 0), MB_OK);
    assert_ptr_equal(m, a);
    free(m);
    assert_int_equal(mb_send(mb, c), MB_OK);
    assert_int_equal(mb_recv(mb, &m, 0), MB_OK);
    assert_ptr_equal(m, b);
    free(m);
    assert_int_equal(mb_recv(mb, &m, 0), MB_OK);
    assert_ptr_equal(m, c);
    free(m);
    mb_free(mb);
}

static void test_timeout(void **state)
{
    mailbox_t *mb = mb_new(4, NULL);
    void *m = MSG(7);
    int64_t start = now_ms();

    assert_int_equal(mb_recv(mb, &m, 150), MB_ETIMEDOUT);
    assert_true(now_ms() - start >= 150);
    assert_ptr_equal(m, MSG(7)); /* untouched on timeout */
    start = now_ms();
    assert_int_equal(mb_recv(mb, &m, 0), MB_ETIMEDOUT);
    assert_true(now_ms() - start < 1000);
    mb_free(mb);
}

struct recv_result {
    mailbox_t *mb;
    int timeout_ms;
    int rc;
    void *msg;
};

static void *receiver(void *arg)
{
    struct recv_result *r = arg;
    r->rc = mb_recv(r->mb, &r->msg, r->timeout_ms);
    return NULL;
}

static void test_close_wakes_receiver(void **state)
{
    mailbox_t *mb = mb_new(4, NULL);
    struct recv_result r = {.mb = mb, .timeout_ms = -1, .rc = 12345};
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, receiver, &r), 0);
    /* Give the receiver time to block; the test is correct either way. */
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 100 * 1000000L};
    nanosleep(&pause, NULL);
    mb_close(mb);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.rc, MB_ECLOSED);
    mb_free(mb);
}

static void test_send_wakes_receiver(void **state)
{
    mailbox_t *mb = mb_new(4, NULL);
    struct recv_result r = {.mb = mb, .timeout_ms = 10000, .rc = 12345};
    pthread_t t;
    int64_t start = now_ms();

    assert_int_equal(pthread_create(&t, NULL, receiver, &r), 0);
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
    nanosleep(&pause, NULL);
    assert_int_equal(mb_send(mb, MSG(42)), MB_OK);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.rc, MB_OK);
    assert_ptr_equal(r.msg, MSG(42));
    assert_true(now_ms() - start < 10000);
    mb_free(mb);
}

static void test_drain_after_close(void **state)
{
    mailbox_t *mb = mb_new(4, NULL);
    void *m = NULL;

    assert_int_equal(mb_send(mb, MSG(1)), MB_OK);
    assert_int_equal(mb_send(mb, MSG(2)), MB_OK);
    mb_close(mb);
    assert_int_equal(mb_send(mb, MSG(3)), MB_ECLOSED);
    assert_int_equal(mb_recv(mb, &m, -1), MB_OK);
    assert_int_equal(VAL(m), 1);
    assert_int_equal(mb_recv(mb, &m, 100), MB_OK);
    assert_int_equal(VAL(m), 2);
    /* Closed and drained: answers at once, even with an infinite timeout. */
    assert_int_equal(mb_recv(mb, &m, -1), MB_ECLOSED);
    assert_int_equal(mb_recv(mb, &m, 0), MB_ECLOSED);
    mb_close(mb); /* a second close is harmless */
    assert_int_equal(mb_recv(mb, &m, 0), MB_ECLOSED);
    mb_free(mb);
}

static void test_send_after_close(void **state)
{
    mailbox_t *mb = mb_new(4, free);
    char *s = xstrdup("kept by the sender");

    mb_close(mb);
    assert_int_equal(mb_send(mb, s), MB_ECLOSED);
    assert_int_equal(mb_count(mb), 0);
    free(s);
    mb_free(mb);
}

static void test_fd_readable_while_mail_waits(void **state)
{
    mailbox_t *mb = mb_new(4, NULL);
    void *m = NULL;

    assert_true(mb_fd(mb) >= 0);
    assert_false(fd_readable(mb));
    assert_int_equal(mb_send(mb, MSG(1)), MB_OK);
    assert_true(fd_readable(mb));
    assert_int_equal(mb_send(mb, MSG(2)), MB_OK);
    assert_true(fd_readable(mb));
    assert_int_equal(mb_recv(mb, &m, 0), MB_OK);
    assert_true(fd_readable(mb)); /* one still waiting */
    assert_int_equal(mb_recv(mb, &m, 0), MB_OK);
    assert_false(fd_readable(mb));
    assert_int_equal(mb_recv(mb, &m, 0), MB_ETIMEDOUT);
    assert_false(fd_readable(mb));
    assert_int_equal(mb_send(mb, MSG(3)), MB_OK);
    assert_true(fd_readable(mb));
    mb_close(mb);
    assert_true(fd_readable(mb));
    assert_int_equal(mb_recv(mb, &m, 0), MB_OK);
    assert_true(fd_readable(mb)); /* closed: stays readable */
    assert_int_equal(mb_recv(mb, &m, 0), MB_ECLOSED);
    assert_true(fd_readable(mb));
    mb_free(mb);
}

static void test_free_frees_queued(void **state)
{
    mailbox_t *mb = mb_new(8, free);

    /* Wrap the ring first so the queued messages straddle its end. */
    for (int i = 0; i < 6; i++) {
        void *m = NULL;
        assert_int_equal(mb_send(mb, xstrdup("x")), MB_OK);
        assert_int_equal(mb_recv(mb, &m, 0), MB_OK);
        free(m);
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(mb_send(mb, xasprintf("queued %d", i)), MB_OK);
    mb_close(mb);
    mb_free(mb); /* valgrind reports a leak if any of the five is lost */
    mb_free(NULL);
}

#define SENDERS 4
#define PER_SENDER 10000

struct sender_arg {
    mailbox_t *mb;
    uintptr_t id;
    long full_retries;
    int failed; /* cmocka's asserts are not for other threads: main checks this */
};

/* Encodes (sender, sequence) into the message pointer; never 0. */
static void *sender(void *arg)
{
    struct sender_arg *a = arg;
    for (uintptr_t seq = 0; seq < PER_SENDER; seq++) {
        void *m = MSG((a->id << 20) | (seq + 1));
        int rc;
        /* A full mailbox refuses: this sender's policy is to yield and try again. */
        while ((rc = mb_send(a->mb, m)) == MB_EFULL) {
            a->full_retries++;
            sched_yield();
        }
        if (rc != MB_OK) {
            a->failed = 1;
            break;
        }
    }
    return NULL;
}

static void receive_all(mailbox_t *mb, unsigned char *seen)
{
    uintptr_t next[SENDERS] = {0};
    for (long got = 0; got < SENDERS * PER_SENDER; got++) {
        void *m = NULL;
        assert_int_equal(mb_recv(mb, &m, 10000), MB_OK);
        uintptr_t id = VAL(m) >> 20, seq = (VAL(m) & 0xfffff) - 1;
        assert_true(id < SENDERS);
        assert_int_equal(seq, next[id]); /* per-sender order, no loss, no duplicate */
        next[id]++;
        assert_int_equal(seen[id * PER_SENDER + seq], 0);
        seen[id * PER_SENDER + seq] = 1;
    }
}

static void test_many_senders(void **state)
{
    /* Small capacity so senders hit MB_EFULL and the descriptor flips often. */
    mailbox_t *mb = mb_new(64, NULL);
    pthread_t threads[SENDERS];
    struct sender_arg args[SENDERS];
    unsigned char *seen = xcalloc(SENDERS * PER_SENDER, 1);
    void *m = NULL;

    for (uintptr_t i = 0; i < SENDERS; i++) {
        args[i] = (struct sender_arg){.mb = mb, .id = i};
        assert_int_equal(pthread_create(&threads[i], NULL, sender, &args[i]), 0);
    }
    receive_all(mb, seen);
    for (int i = 0; i < SENDERS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(args[i].failed, 0);
    }
    for (long i = 0; i < SENDERS * PER_SENDER; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(mb_recv(mb, &m, 0), MB_ETIMEDOUT);
    assert_false(fd_readable(mb));
    free(seen);
    mb_free(mb);
}

/* The receiver waits on the descriptor like a thread that polls sockets: every wake-up finds
 * mail (or the close), never a spurious empty mailbox, while senders run concurrently. */
static void test_poll_driven_receiver(void **state)
{
    mailbox_t *mb = mb_new(16, NULL);
    pthread_t threads[SENDERS];
    struct sender_arg args[SENDERS];
    long got = 0;

    for (uintptr_t i = 0; i < SENDERS; i++) {
        args[i] = (struct sender_arg){.mb = mb, .id = i};
        assert_int_equal(pthread_create(&threads[i], NULL, sender, &args[i]), 0);
    }
    while (got < SENDERS * PER_SENDER) {
        struct pollfd p = {.fd = mb_fd(mb), .events = POLLIN};
        void *m = NULL;
        assert_int_equal(poll(&p, 1, 10000), 1);
        assert_int_equal(mb_recv(mb, &m, 0), MB_OK);
        got++;
    }
    for (int i = 0; i < SENDERS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(args[i].failed, 0);
    }
    assert_false(fd_readable(mb));
    mb_free(mb);
}

/* The descriptor is kept in step only once someone asks for it: mail queued before the first
 * mb_fd() still makes it readable at once, and draining makes it quiet again. */
static void test_fd_asked_late(void **state)
{
    (void)state;
    mailbox_t *mb = mb_new(4, NULL);
    void *msg = NULL;
    assert_non_null(mb);
    assert_int_equal(mb_send(mb, MSG(1)), MB_OK);
    assert_int_equal(mb_send(mb, MSG(2)), MB_OK);
    assert_true(fd_readable(mb));
    assert_int_equal(mb_recv(mb, &msg, 0), MB_OK);
    assert_true(fd_readable(mb));
    assert_int_equal(mb_recv(mb, &msg, 0), MB_OK);
    assert_int_equal(VAL(msg), 2);
    assert_false(fd_readable(mb));
    mb_free(mb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_order),
        cmocka_unit_test(test_wraparound),
        cmocka_unit_test(test_full_refuses),
        cmocka_unit_test(test_growth_keeps_order_and_bound),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_close_wakes_receiver),
        cmocka_unit_test(test_send_wakes_receiver),
        cmocka_unit_test(test_drain_after_close),
        cmocka_unit_test(test_send_after_close),
        cmocka_unit_test(test_fd_readable_while_mail_waits),
        cmocka_unit_test(test_free_frees_queued),
        cmocka_unit_test(test_many_senders),
        cmocka_unit_test(test_poll_driven_receiver),
        cmocka_unit_test(test_fd_asked_late),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
