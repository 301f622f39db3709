/* Unit tests for native/pacer: IRC flood control without libpurple. The clock is an argument,
 * so every release time is checked exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/util.h"
#include "native/pacer.h"

/* Hands every line the bucket allows at now; returns how many, the last in *last. */
static int hand_all(struct pacer *p, int64_t now, const char **last, int64_t *wait)
{
    const char *to, *line;
    int n = 0;
    while (pacer_next(p, now, &to, &line, wait)) {
        n++;
        if (last)
            *last = line;
    }
    return n;
}

static void test_split_like_the_plugin(void **state)
{
    (void)state;
    char **lines;
    size_t n = pacer_split("one\ntwo\n\nthree\n", 0, &lines);
    assert_int_equal(n, 3); /* the empty line and the final break give no line */
    assert_string_equal(lines[0], "one");
    assert_string_equal(lines[1], "two");
    assert_string_equal(lines[2], "three");
    pacer_lines_free(lines, n);
    assert_int_equal(pacer_split("\n\n", 0, &lines), 0);
    assert_null(lines);
    assert_int_equal(pacer_split("", 10, &lines), 0);
    /* Exactly the limit stays whole; one byte more is cut. */
    n = pacer_split("abcde\nabcdef", 5, &lines);
    assert_int_equal(n, 3);
    assert_string_equal(lines[0], "abcde");
    assert_string_equal(lines[1], "abcde");
    assert_string_equal(lines[2], "f");
    pacer_lines_free(lines, n);
}

static void test_split_keeps_utf8_characters_whole(void **state)
{
    (void)state;
    char **lines;
    /* "a" then three 3-byte snowmen: a cut at 5 bytes would fall inside the second one. */
    size_t n = pacer_split("a\xe2\x98\x83\xe2\x98\x83\xe2\x98\x83", 5, &lines);
    assert_int_equal(n, 3);
    assert_string_equal(lines[0], "a\xe2\x98\x83");
    assert_string_equal(lines[1], "\xe2\x98\x83");
    assert_string_equal(lines[2], "\xe2\x98\x83");
    pacer_lines_free(lines, n);
}

static void test_line_budget(void **state)
{
    (void)state;
    /* irc_cmd_privmsg: IRC_MAX_MSG_SIZE - strlen(target) - 64 */
    assert_int_equal(pacer_line_budget("bob"), 512 - 3 - 64);
    char longname[600];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(pacer_line_budget(longname), 0);
}

static void test_burst_then_one_per_interval(void **state)
{
    (void)state;
    struct pacer *p = pacer_new(3, 2, 100, 1000);
    assert_true(pacer_enabled(p));
    assert_int_equal(pacer_push(p, "bob", 1, "l1\nl2\nl3\nl4\nl5", 1000), PACER_OK);
    int64_t wait = 0;
    const char *last = NULL;
    assert_int_equal(hand_all(p, 1000, &last, &wait), 3); /* the burst */
    assert_string_equal(last, "l3");
    assert_int_equal(wait, 2000);
    assert_int_equal(pacer_waiting(p), 2);
    assert_int_equal(hand_all(p, 2999, NULL, &wait), 0);
    assert_int_equal(wait, 1);
    assert_int_equal(hand_all(p, 3000, &last, &wait), 1);
    assert_string_equal(last, "l4");
    assert_int_equal(hand_all(p, 5000, &last, &wait), 1);
    assert_string_equal(last, "l5");
    assert_int_equal(wait, -1); /* nothing left to hand */
    assert_int_equal(pacer_waiting(p), 0);
    /* An idle spell refills the bucket, never beyond the burst. */
    assert_int_equal(pacer_push(p, "bob", 2, "a\nb\nc\nd\ne", 5000), PACER_OK);
    assert_int_equal(hand_all(p, 60000, NULL, &wait), 3);
    assert_int_equal(wait, 2000);
    pacer_free(p); /* frees what is left, unanswered */
}

static void test_pacing_off(void **state)
{
    (void)state;
    /* libpurple: ratelimit-interval below 1 sends everything; the bound does not apply. */
    struct pacer *p = pacer_new(1, 0, 2, 0);
    assert_false(pacer_enabled(p));
    assert_int_equal(pacer_push(p, "bob", 1, "1\n2\n3\n4\n5", 0), PACER_OK);
    int64_t wait;
    assert_int_equal(hand_all(p, 0, NULL, &wait), 5);
    assert_int_equal(wait, -1);
    pacer_free(p);
}

static void test_burst_below_one_counts_as_one(void **state)
{
    (void)state;
    struct pacer *p = pacer_new(0, 1, 10, 0);
    assert_int_equal(pacer_push(p, "bob", 1, "1\n2", 0), PACER_OK);
    int64_t wait;
    assert_int_equal(hand_all(p, 0, NULL, &wait), 1);
    assert_int_equal(wait, 1000);
    pacer_free(p);
}

static void test_bound_refuses_a_whole_message(void **state)
{
    (void)state;
    struct pacer *p = pacer_new(1, 2, 4, 0);
    assert_int_equal(pacer_push(p, "bob", 1, "1\n2\n3", 0), PACER_OK);
    assert_int_equal(pacer_push(p, "bob", 2, "4\n5", 0), PACER_EFULL); /* 3 + 2 > 4 */
    assert_int_equal(pacer_waiting(p), 3);
    assert_int_equal(pacer_messages(p), 1);
    assert_int_equal(pacer_push(p, "bob", 3, "4", 0), PACER_OK); /* exactly 4 */
    assert_int_equal(pacer_push(p, "bob", 4, "\n\n", 0), PACER_EEMPTY);
    /* Lines handed no longer count against the bound. */
    int64_t wait;
    assert_int_equal(hand_all(p, 0, NULL, &wait), 1);
    assert_int_equal(pacer_push(p, "bob", 5, "x", 0), PACER_OK);
    assert_int_equal(pacer_messages(p), 3);
    pacer_free(p);
}

static void test_written_lines_complete_messages_in_order(void **state)
{
    (void)state;
    struct pacer *p = pacer_new(10, 2, 100, 0);
    assert_int_equal(pacer_push(p, "bob", 7, "a\nb", 0), PACER_OK);
    assert_int_equal(pacer_push(p, "carol", 8, "c", 10), PACER_OK);
    int64_t wait;
    assert_int_equal(hand_all(p, 20, NULL, &wait), 3);
    struct pacer_done done;
    assert_int_equal(pacer_line_written(p, 30, &done), 0); /* "a" */
    assert_int_equal(pacer_line_written(p, 30, &done), 1); /* "b": bob's message is out */
    assert_string_equal(done.to, "bob");
    assert_int_equal(done.id, 7);
    assert_int_equal(done.lines, 2);
    assert_int_equal(done.written, 2);
    assert_int_equal(done.queued_at_ms, 0);
    pacer_done_clear(&done);
    assert_int_equal(pacer_line_written(p, 30, &done), 1);
    assert_string_equal(done.to, "carol");
    assert_int_equal(done.id, 8);
    pacer_done_clear(&done);
    assert_int_equal(pacer_messages(p), 0);
    pacer_free(p);
}

static void test_other_lines_spend_tokens_but_never_hold_longer(void **state)
{
    (void)state;
    struct pacer *p = pacer_new(2, 2, 100, 0);
    /* A PRIVMSG that is not ours (no line handed) counts like any other line. */
    struct pacer_done done;
    assert_int_equal(pacer_line_written(p, 0, &done), 0);
    for (int i = 0; i < 10; i++) /* a burst of ISONs: the credit stops at zero */
        pacer_other_line(p, 0);
    assert_int_equal(pacer_push(p, "bob", 1, "x\ny", 0), PACER_OK);
    int64_t wait;
    assert_int_equal(hand_all(p, 0, NULL, &wait), 0);
    assert_int_equal(wait, 2000); /* one interval, not ten */
    assert_int_equal(hand_all(p, 2000, NULL, &wait), 1);
    pacer_free(p);
}

static void test_unfinished_messages_are_given_back(void **state)
{
    (void)state;
    struct pacer *p = pacer_new(3, 2, 100, 0);
    assert_int_equal(pacer_push(p, "bob", 1, "1\n2", 0), PACER_OK);
    assert_int_equal(pacer_push(p, "bob", 2, "3\n4", 0), PACER_OK);
    assert_int_equal(pacer_push(p, "carol", 3, "5", 0), PACER_OK);
    int64_t wait;
    assert_int_equal(hand_all(p, 0, NULL, &wait), 3); /* 1, 2 and 3 handed */
    struct pacer_done done;
    assert_int_equal(pacer_line_written(p, 0, &done), 0);
    assert_int_equal(pacer_line_written(p, 0, &done), 1); /* message 1 is out */
    pacer_done_clear(&done);
    assert_int_equal(pacer_line_written(p, 0, &done), 0); /* line 3 of message 2 written */
    /* The connection goes: message 2 half written, message 3 never handed. */
    assert_int_equal(pacer_take_unfinished(p, &done), 1);
    assert_int_equal(done.id, 2);
    assert_int_equal(done.lines, 2);
    assert_int_equal(done.written, 1);
    pacer_done_clear(&done);
    assert_int_equal(pacer_take_unfinished(p, &done), 1);
    assert_string_equal(done.to, "carol");
    assert_int_equal(done.id, 3);
    assert_int_equal(done.written, 0);
    pacer_done_clear(&done);
    assert_int_equal(pacer_take_unfinished(p, &done), 0);
    assert_int_equal(pacer_waiting(p), 0);
    assert_int_equal(hand_all(p, 10000, NULL, &wait), 0);
    assert_int_equal(wait, -1);
    /* A late write of a line already given back is not ours any more. */
    assert_int_equal(pacer_line_written(p, 10000, &done), 0);
    /* And the pacer works on. */
    assert_int_equal(pacer_push(p, "bob", 4, "6", 10000), PACER_OK);
    assert_int_equal(hand_all(p, 10000, NULL, &wait), 1);
    assert_int_equal(pacer_line_written(p, 10000, &done), 1);
    assert_int_equal(done.id, 4);
    pacer_done_clear(&done);
    pacer_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_like_the_plugin),
        cmocka_unit_test(test_split_keeps_utf8_characters_whole),
        cmocka_unit_test(test_line_budget),
        cmocka_unit_test(test_burst_then_one_per_interval),
        cmocka_unit_test(test_pacing_off),
        cmocka_unit_test(test_burst_below_one_counts_as_one),
        cmocka_unit_test(test_bound_refuses_a_whole_message),
        cmocka_unit_test(test_written_lines_complete_messages_in_order),
        cmocka_unit_test(test_other_lines_spend_tokens_but_never_hold_longer),
        cmocka_unit_test(test_unfinished_messages_are_given_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
