/* Unit tests for lib/util: SHA-1 hex, random ids, constant-time compare, allocation helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

static void test_sha1_known_vectors(void **state)
{
    char out[41];
    sha1_hex("", 0, out);
    assert_string_equal(out, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    sha1_hex("abc", 3, out);
    assert_string_equal(out, "a9993e364706816aba3e25717850c26c9cd0d89d");
    /* The XEP-0114 handshake: SHA-1 of stream id followed by the secret. */
    const char *concat = "3BF96D32secret";
    sha1_hex(concat, strlen(concat), out);
    assert_int_equal(strlen(out), 40);
    for (int i = 0; i < 40; i++)
        assert_true((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f'));
}

static void test_random_id_alphabet_and_length(void **state)
{
    char a[17], b[17];
    random_id(a, sizeof(a));
    random_id(b, sizeof(b));
    assert_int_equal(strlen(a), 16);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 16; i++)
        assert_non_null(
            strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", a[i]));
    char one[1] = {'x'};
    random_id(one, sizeof(one));
    assert_int_equal(one[0], '\0');
}

static void test_random_bytes_fills(void **state)
{
    unsigned char buf[256] = {0};
    assert_int_equal(random_bytes(buf, sizeof(buf)), 0);
    int nonzero = 0;
    for (size_t i = 0; i < sizeof(buf); i++)
        nonzero += buf[i] != 0;
    assert_true(nonzero > 200);
}

static void test_ct_equal(void **state)
{
    assert_int_equal(ct_equal("abcdef", "abcdef", 6), 1);
    assert_int_equal(ct_equal("abcdef", "abcdeg", 6), 0);
    assert_int_equal(ct_equal("xbcdef", "abcdef", 6), 0);
    assert_int_equal(ct_equal("", "", 0), 1);
}

static void test_strings(void **state)
{
    char *s = xstrdup("hello");
    assert_string_equal(s, "hello");
    free(s);
    s = xstrndup("hello", 3);
    assert_string_equal(s, "hel");
    free(s);
    s = xstrndup("hi", 10);
    assert_string_equal(s, "hi");
    free(s);
    s = xasprintf("%s-%d", "a", 42);
    assert_string_equal(s, "a-42");
    free(s);
}

static void test_now_ms_monotonic(void **state)
{
    int64_t a = now_ms(), b = now_ms();
    assert_true(b >= a);
    assert_true(a > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha1_known_vectors),
        cmocka_unit_test(test_random_id_alphabet_and_length),
        cmocka_unit_test(test_random_bytes_fills),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_now_ms_monotonic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
