/* Unit tests for bridge/text: IRC formatting removed, UTF-8 repaired, characters XML 1.0
 * forbids removed, everything else (markup characters, accents, emoji) kept byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bridge/text.h"
#include "lib/xml.h"

#define FFFD "\xef\xbf\xbd"

struct text_case {
    const char *in;
    size_t len; /* 0: strlen(in) */
    const char *out;
};

static void check_cases(const struct text_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
        char *got = text_from_legacy(cases[i].in, len);
        if (strcmp(got, cases[i].out) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, got, cases[i].out);
        free(got);
    }
}

static void test_plain_text_unchanged(void **state)
{
    static const struct text_case cases[] = {
        {"", 0, ""},
        {"hello", 0, "hello"},
        {"< > & ' \"", 0, "< > & ' \""},
        {"caf\xc3\xa9 na\xc3\xafve \xc3\x85ngstr\xc3\xb6m", 0,
         "caf\xc3\xa9 na\xc3\xafve \xc3\x85ngstr\xc3\xb6m"},
        {"emoji \xf0\x9f\x98\x80 \xf0\x9f\x87\xab\xf0\x9f\x87\xb7", 0,
         "emoji \xf0\x9f\x98\x80 \xf0\x9f\x87\xab\xf0\x9f\x87\xb7"},
        {"tab\tline\nreturn\r", 0, "tab\tline\nreturn\r"},
        {"\xef\xbf\xbd stays", 0, FFFD " stays"},
        /* The last characters of each range XML allows. */
        {"\xed\x9f\xbf \xee\x80\x80 \xef\xbf\xbd \xf4\x8f\xbf\xbf", 0,
         "\xed\x9f\xbf \xee\x80\x80 \xef\xbf\xbd \xf4\x8f\xbf\xbf"},
        /* DEL and C1 controls are allowed by XML 1.0. */
        {"a\x7f"
         "b\xc2\x85"
         "c",
         0,
         "a\x7f"
         "b\xc2\x85"
         "c"},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_irc_formatting_removed(void **state)
{
    static const struct text_case cases[] = {
        {"\x02"
         "bold\x02 text",
         0, "bold text"},
        {"\x1d"
         "it\x1f"
         "und\x1e"
         "st\x11"
         "mono\x16"
         "rev\x0f"
         "reset",
         0, "itundstmonorevreset"},
        {"\x03"
         "4red",
         0, "red"},
        {"\x03"
         "04red",
         0, "red"},
        {"\x03"
         "4,12red on blue",
         0, "red on blue"},
        {"\x03"
         "04,02x",
         0, "x"},
        /* At most two digits each: the third is text. */
        {"\x03"
         "123",
         0, "3"},
        {"\x03"
         "1,234",
         0, "4"},
        /* A comma counts only with a digit after it. */
        {"\x03"
         "4,x",
         0, ",x"},
        {"\x03"
         "4,",
         0, ","},
        {"\x03"
         ",5",
         0, ",5"},
        {"\x03"
         "plain",
         0, "plain"},
        {"end\x03", 0, "end"},
        {"\x03"
         "3",
         0, ""},
        {"\x04"
         "ff0000red",
         0, "red"},
        {"\x04"
         "FF0000,00ff00x",
         0, "x"},
        {"\x04"
         "ff00,x",
         0, "ff00,x"},
        {"\x04"
         "abcdef,12",
         0, ",12"},
        {"\x02\x03"
         "5,6\xc3\xa9t\xc3\xa9\x0f",
         0, "\xc3\xa9t\xc3\xa9"},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_forbidden_characters_removed(void **state)
{
    static const struct text_case cases[] = {
        {"a\x01"
         "b\x07"
         "c\x1b[0m",
         0, "abc[0m"},
        {"a\0b", 3, "ab"},
        {"\x0b\x0c\x05\x06\x0e\x10\x12\x1a\x1c", 0, ""},
        {"x\xef\xbf\xbey\xef\xbf\xbfz", 0, "xyz"},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_invalid_utf8_repaired(void **state)
{
    static const struct text_case cases[] = {
        /* Latin-1 text (a legacy client with another encoding). */
        {"caf\xe9!", 0, "caf" FFFD "!"},
        {"\xe9t\xe9", 0, FFFD "t" FFFD},
        /* Stray continuation bytes and bytes that start nothing: one each. */
        {"\x80\xbf", 0, FFFD FFFD},
        {"\xf8\xff\xfe", 0, FFFD FFFD FFFD},
        /* Cut short: one for the bytes it had, the next byte starts afresh. */
        {"\xe2\x82"
         "x",
         0, FFFD "x"},
        {"\xf0\x9f\x98", 0, FFFD},
        {"\xc3", 0, FFFD},
        {"\xe2\x82\xc3\xa9", 0, FFFD "\xc3\xa9"},
        /* Overlong forms: one for the whole sequence. */
        {"\xc0\x80", 0, FFFD},
        {"\xc1\xbf", 0, FFFD},
        {"\xe0\x80\xaf", 0, FFFD},
        {"\xf0\x80\x80\xaf", 0, FFFD},
        /* Surrogates encoded in UTF-8 (CESU-8, WTF-8): one per surrogate. */
        {"\xed\xa0\x80", 0, FFFD},
        {"a\xed\xb0\x80z", 0, "a" FFFD "z"},
        {"\xed\xa0\xbd\xed\xb8\x80", 0, FFFD FFFD},
        /* Beyond U+10FFFF. */
        {"\xf4\x90\x80\x80", 0, FFFD},
        {"\xf7\xbf\xbf\xbf", 0, FFFD},
        /* An IRC code after a broken sequence is still recognised. */
        {"\xe2\x03"
         "4x",
         0, FFFD "x"},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_str_variant(void **state)
{
    assert_null(text_from_legacy_str(NULL));
    char *s = text_from_legacy_str("\x02hi\x02");
    assert_string_equal(s, "hi");
    free(s);
    s = text_from_legacy(NULL, 0);
    assert_string_equal(s, "");
    free(s);
}

/* Whatever the input, the output is valid UTF-8 holding only XML characters. */
static void test_any_bytes_give_xml_text(void **state)
{
    unsigned char buf[64];
    uint32_t seed = 12345;
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(round % 64);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = (unsigned char)(seed >> 16);
        }
        char *out = text_from_legacy((const char *)buf, len);
        const unsigned char *p = (const unsigned char *)out;
        while (*p) {
            if (*p < 0x20)
                assert_true(*p == '\t' || *p == '\n' || *p == '\r');
            if (*p < 0x80) {
                p++;
                continue;
            }
            size_t n = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
            assert_true(*p >= 0xc2 && *p <= 0xf4);
            for (size_t i = 1; i < n; i++)
                assert_int_equal(p[i] & 0xc0, 0x80);
            if (*p == 0xed)
                assert_true(p[1] < 0xa0);
            if (*p == 0xef && p[1] == 0xbf)
                assert_true(p[2] < 0xbe);
            if (*p == 0xe0)
                assert_true(p[1] >= 0xa0);
            if (*p == 0xf0)
                assert_true(p[1] >= 0x90);
            if (*p == 0xf4)
                assert_true(p[1] < 0x90);
            p += n;
        }
        free(out);
    }
}

/* The size of s written as the text of an element by lib/xml.c. */
static size_t escaped_size(const char *s)
{
    if (!*s)
        return 0;
    xn_t *x = xn_new(NULL, "b");
    xn_add_text(x, s, strlen(s));
    size_t len;
    char *out = xn_serialize(x, NULL, XN_SER_DEFAULT, &len);
    free(out);
    xn_unref(x);
    return len - strlen("<b></b>");
}

static char *join(char **pieces)
{
    size_t len = 0;
    for (size_t i = 0; pieces[i]; i++)
        len += strlen(pieces[i]);
    char *out = calloc(1, len + 1);
    for (size_t i = 0; pieces[i]; i++)
        strcat(out, pieces[i]);
    return out;
}

static void test_split_examples(void **state)
{
    char **p = text_split("short", 100);
    assert_string_equal(p[0], "short");
    assert_null(p[1]);
    text_pieces_free(p);
    /* After a space in the last quarter; the space stays with the first piece. */
    p = text_split("aaaaaaaaaaaaa bbbbbbbbbbbbb ccc", 16);
    assert_string_equal(p[0], "aaaaaaaaaaaaa ");
    assert_string_equal(p[1], "bbbbbbbbbbbbb ");
    assert_string_equal(p[2], "ccc");
    assert_null(p[3]);
    text_pieces_free(p);
    /* & takes five bytes written, < and > four: 4 + 5 + 4 + 1 = 14, then the rest. */
    p = text_split("<&>x<&>y", 16);
    assert_string_equal(p[0], "<&>x");
    assert_string_equal(p[1], "<&>y");
    text_pieces_free(p);
    /* Never inside a character: the euro sign (3 bytes) moves whole. */
    p = text_split("123456789012345\xe2\x82\xac", 16);
    assert_string_equal(p[0], "123456789012345");
    assert_string_equal(p[1], "\xe2\x82\xac");
    text_pieces_free(p);
}

static void test_split_any_text_fits_and_joins(void **state)
{
    static const char *const parts[] = {
        "a", "b ", "&", "<", ">", "\n", "\xc3\xa9", "\xe2\x98\x83", "\xf0\x9f\x98\x80", " ", "\t"};
    uint32_t seed = 99;
    for (int round = 0; round < 2000; round++) {
        char text[2048] = "";
        size_t n = (size_t)(round % 300);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            strcat(text, parts[(seed >> 16) % (sizeof(parts) / sizeof(parts[0]))]);
        }
        size_t max = 16 + (size_t)(round % 50);
        char **pieces = text_split(text, max);
        for (size_t i = 0; pieces[i]; i++) {
            if (escaped_size(pieces[i]) > max)
                fail_msg("max %zu: piece [%s] takes %zu", max, pieces[i], escaped_size(pieces[i]));
            assert_true(pieces[i][0] != '\0' || (i == 0 && !pieces[1]));
        }
        char *joined = join(pieces);
        assert_string_equal(joined, text);
        free(joined);
        text_pieces_free(pieces);
        char *wrapped = text_wrap(text, max);
        char *line = wrapped, *nl;
        do {
            nl = strchr(line, '\n');
            assert_true((size_t)(nl ? nl - line : (ptrdiff_t)strlen(line)) <= max);
            line = nl + 1;
        } while (nl);
        free(wrapped);
    }
}

static void test_wrap_examples(void **state)
{
    char *w = text_wrap("one two three four five six seven", 16);
    assert_string_equal(w, "one two three \nfour five six \nseven");
    free(w);
    w = text_wrap("short\nlines\nstay", 16);
    assert_string_equal(w, "short\nlines\nstay");
    free(w);
    w = text_wrap("0123456789abcdef0123\n", 16);
    assert_string_equal(w, "0123456789abcdef\n0123\n");
    free(w);
}

/* issue 7: a CR the owner sent (&#13;) must never reach an IRC server inside a line. */
static void test_line_breaks(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"plain", "plain"},
        {"a\nb", "a\nb"},
        {"one\rJOIN #x\r\ntwo", "one\nJOIN #x\ntwo"},
        {"\r", "\n"},
        {"\r\n", "\n"},
        {"\n\r", "\n\n"},
        {"a\r\r\nb\r", "a\n\nb\n"},
        {"tab\tstays \xc3\xa9\r", "tab\tstays \xc3\xa9\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = text_line_breaks(cases[i].in);
        if (strcmp(got, cases[i].out) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, got, cases[i].out);
        assert_null(strchr(got, '\r'));
        free(got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_text_unchanged),
        cmocka_unit_test(test_irc_formatting_removed),
        cmocka_unit_test(test_forbidden_characters_removed),
        cmocka_unit_test(test_invalid_utf8_repaired),
        cmocka_unit_test(test_str_variant),
        cmocka_unit_test(test_any_bytes_give_xml_text),
        cmocka_unit_test(test_split_examples),
        cmocka_unit_test(test_split_any_text_fits_and_joins),
        cmocka_unit_test(test_wrap_examples),
        cmocka_unit_test(test_line_breaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
