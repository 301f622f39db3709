/* Unit tests for lib/backoff: the reconnect schedule of the component link and of the legacy
 * logins. The random number is an argument, so every delay is checked exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/backoff.h"
#include "lib/util.h"

/* The defaults for the legacy side: 5 s up to 5 minutes. */
#define MIN_MS 5000
#define MAX_MS 300000

static const uint32_t randoms[] = {0, 1, 2, 999, 1250, 1251, 12345, 0x7fffffff, UINT32_MAX};

static void test_first_step_is_min(void **state)
{
    (void)state;
    /* No jitter can shorten the first step below the minimum, nor lengthen it. */
    for (size_t r = 0; r < FERRY_ARRAY_LEN(randoms); r++)
        assert_int_equal(backoff_delay(MIN_MS, MAX_MS, 0, randoms[r]), MIN_MS);
}

static void test_doubling_without_jitter(void **state)
{
    (void)state;
    static const int64_t steps[] = {5000, 10000, 20000, 40000, 80000, 160000, 300000, 300000};
    for (unsigned a = 0; a < FERRY_ARRAY_LEN(steps); a++)
        assert_int_equal(backoff_delay(MIN_MS, MAX_MS, a, 0), steps[a]);
}

static void test_jitter_stays_within_bounds(void **state)
{
    (void)state;
    for (unsigned a = 0; a < 12; a++) {
        int64_t base = backoff_delay(MIN_MS, MAX_MS, a, 0);
        int64_t low = base - base / 4 < MIN_MS ? MIN_MS : base - base / 4;
        for (size_t r = 0; r < FERRY_ARRAY_LEN(randoms); r++) {
            int64_t d = backoff_delay(MIN_MS, MAX_MS, a, randoms[r]);
            assert_in_range(d, low, base);
            assert_in_range(d, MIN_MS, MAX_MS);
        }
    }
    /* The jitter really spreads: both ends of a step's range are reached. */
    assert_int_equal(backoff_delay(MIN_MS, MAX_MS, 1, 0), 10000);
    assert_int_equal(backoff_delay(MIN_MS, MAX_MS, 1, 2500), 7500);
    assert_int_equal(backoff_delay(MIN_MS, MAX_MS, 1, 2501), 10000); /* wraps around */
    assert_int_equal(backoff_delay(MIN_MS, MAX_MS, 2, 1234), 18766);
    assert_int_equal(backoff_delay(MIN_MS, MAX_MS, 20, 75000), 225000);
    assert_int_equal(backoff_delay(MIN_MS, MAX_MS, 20, 75001), 300000);
}

static void test_cap_is_reached_and_held(void **state)
{
    (void)state;
    /* 5 s doubled six times is 320 s: the seventh retry is the first at the cap. */
    assert_true(backoff_delay(MIN_MS, MAX_MS, 5, 0) < MAX_MS);
    for (unsigned a = 6; a < 40; a++)
        assert_int_equal(backoff_delay(MIN_MS, MAX_MS, a, 0), MAX_MS);
    /* Huge attempt counts neither overflow nor leave the cap. */
    assert_int_equal(backoff_delay(MIN_MS, MAX_MS, UINT32_MAX, 0), MAX_MS);
    assert_int_equal(backoff_delay(1, 2147483647, 200, 0), 2147483647);
    /* A cap that is not a power-of-two multiple of the minimum is still exact. */
    assert_int_equal(backoff_delay(300, 1000, 1, 0), 600);
    assert_int_equal(backoff_delay(300, 1000, 2, 0), 1000);
}

static void test_odd_settings(void **state)
{
    (void)state;
    assert_int_equal(backoff_delay(5000, 1000, 0, 0), 5000); /* min wins over a smaller max */
    assert_int_equal(backoff_delay(5000, 1000, 9, UINT32_MAX), 5000);
    assert_int_equal(backoff_delay(0, 0, 0, 0), 1); /* never a busy loop */
    assert_int_equal(backoff_delay(-5, 8, 3, 0), 8);
    assert_int_equal(backoff_delay(1000, 1000, 3, 250), 1000); /* min == max: no jitter room */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_step_is_min),
        cmocka_unit_test(test_doubling_without_jitter),
        cmocka_unit_test(test_jitter_stays_within_bounds),
        cmocka_unit_test(test_cap_is_reached_and_held),
        cmocka_unit_test(test_odd_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
