/* Unit tests for lib/jid: parsing and normalization, limits, equality, XEP-0106 escaping, and a
 * property test that escaping legacy names is exact and injective. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stringprep.h>

#include "lib/jid.h"
#include "lib/util.h"

/* ---- parsing ---- */

struct valid_case {
    const char *in;
    const char *node, *domain, *resource; /* expected, normalized */
};

static const struct valid_case valid_cases[] = {
    {"example.com", NULL, "example.com", NULL},
    {"juliet@example.com", "juliet", "example.com", NULL},
    {"juliet@example.com/balcony", "juliet", "example.com", "balcony"},
    {"example.com/res", NULL, "example.com", "res"},
    /* Node and domain fold case, the resource keeps it. */
    {"Juliet@Example.COM/Balcony", "juliet", "example.com", "Balcony"},
    {"JULIET@EXAMPLE.COM/BALCONY", "juliet", "example.com", "BALCONY"},
    /* RFC 7622 3.1: the resource starts at the first '/', and may hold '@' and '/'. */
    {"a@b/c@d/e", "a", "b", "c@d/e"},
    {"b/c@d", NULL, "b", "c@d"},
    {"juliet@example.com/foo bar", "juliet", "example.com", "foo bar"},
    {"juliet@example.com/ ", "juliet", "example.com", " "},
    /* One trailing dot is stripped. */
    {"juliet@example.com.", "juliet", "example.com", NULL},
    {"juliet@example.com./r", "juliet", "example.com", "r"},
    {"localhost", NULL, "localhost", NULL},
    /* IP literals. */
    {"user@127.0.0.1/r", "user", "127.0.0.1", "r"},
    {"user@[::1]", "user", "[::1]", NULL},
    {"[2001:DB8::1]/x", NULL, "[2001:db8::1]", "x"},
    /* Unicode: case folding (with ß to ss), NFKC, internationalized domains, separators. */
    {"\u00c4\u00d6\u00dc@B\u00fccher.example/\u00dc", "\u00e4\u00f6\u00fc", "b\u00fccher.example",
     "\u00dc"},
    {"Stra\u00dfe@example.com", "strasse", "example.com", NULL},
    {"\xe4\xbe\x8b@\xe4\xbe\x8b.\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88", "\xe4\xbe\x8b",
     "\xe4\xbe\x8b.\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88", NULL},
    {"x@\uff25\uff38.com", "x", "ex.com", NULL},      /* fullwidth E X */
    {"x@example\u3002com", "x", "example.com", NULL}, /* ideographic full stop */
    {"\uff21b@x", "ab", "x", NULL},                   /* fullwidth A in node */
    {"x@e.com/\uff21", "x", "e.com", "A"},            /* resourceprep applies NFKC, no fold */
    /* Escaped nodes are ordinary nodes. */
    {"space\\20cadet@example.com", "space\\20cadet", "example.com", NULL},
    {"c\\3a\\5c5commas@example.com", "c\\3a\\5c5commas", "example.com", NULL},
    {"[nick]|^`{x}@irc.example.org", "[nick]|^`{x}", "irc.example.org", NULL},
};

static void check_valid(const struct valid_case *c)
{
    jid_t *j = jid_parse(c->in);
    if (!j)
        fail_msg("rejected valid JID \"%s\"", c->in);
    if (c->node)
        assert_string_equal(jid_node(j), c->node);
    else
        assert_null(jid_node(j));
    assert_string_equal(jid_domain(j), c->domain);
    if (c->resource)
        assert_string_equal(jid_resource(j), c->resource);
    else
        assert_null(jid_resource(j));
    jid_free(j);
}

static void test_parse_valid(void **state)
{
    for (size_t i = 0; i < FERRY_ARRAY_LEN(valid_cases); i++)
        check_valid(&valid_cases[i]);
}

static const char *const invalid_cases[] = {
    "",
    "@",
    "/",
    "@example.com", /* empty node */
    "juliet@",      /* empty domain */
    "example.com/", /* empty resource */
    "juliet@example.com/",
    "juliet@/res",
    "@example.com/res",
    ".",
    "example.com..", /* only one trailing dot goes */
    ".example.com",
    "example..com",
    "a@b@c",             /* the domain would be "b@c" */
    "us er@example.com", /* the prohibited node characters */
    "a\"b@example.com",
    "a&b@example.com",
    "a'b@example.com",
    "a:b@example.com",
    "a<b@example.com",
    "a>b@example.com",
    "a\uff20b@example.com", /* fullwidth @: NFKC makes it '@' */
    "a\x01z@example.com",   /* control characters */
    "a@example.com/r\x7f",
    "a@exa mple.com",
    "a@-example.com",
    "a@example_.com",
    "a@exa<mple.com",
    "a@[::1",
    "a@[zz::1]",
    "a@[]",
    "\xff@example.com", /* invalid UTF-8, in each part */
    "a@e\xc3xample.com",
    "a@example.com/\xc3",
    "\xc0\xaf@example.com",         /* overlong '/' */
    "\xed\xa0\x80@example.com",     /* a UTF-16 surrogate */
    "\xf0\x9f\x98\x80@example.com", /* unassigned in Unicode 3.2 */
    "a@example.com/\xf0\x9f\x98\x80",
    "\xc2\xad@example.com", /* node that preparation maps to nothing */
};

static void test_parse_invalid(void **state)
{
    for (size_t i = 0; i < FERRY_ARRAY_LEN(invalid_cases); i++) {
        jid_t *j = jid_parse(invalid_cases[i]);
        if (j)
            fail_msg("accepted invalid JID \"%s\" as \"%s\"", invalid_cases[i], jid_full(j));
    }
    assert_null(jid_parse(NULL));
}

/* Returns a new string of n copies of unit (a UTF-8 sequence) followed by tail. */
static char *repeat(const char *unit, size_t n, const char *tail)
{
    size_t ul = strlen(unit);
    char *s = xmalloc(ul * n + strlen(tail) + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * ul, unit, ul);
    strcpy(s + ul * n, tail);
    return s;
}

/* Parses node@domain/resource built from the pieces; returns 1 when accepted. */
static int accepted(const char *node, const char *domain, const char *resource)
{
    char *s = xasprintf("%s%s%s%s%s", node ? node : "", node ? "@" : "", domain,
                        resource ? "/" : "", resource ? resource : "");
    jid_t *j = jid_parse(s);
    int ok = j != NULL;
    if (j) {
        jid_t *k = jid_new(node, domain, resource);
        assert_non_null(k);
        assert_true(jid_equal(j, k));
        jid_free(k);
    }
    jid_free(j);
    free(s);
    return ok;
}

static void test_node_and_resource_limits(void **state)
{
    char *s;

    s = repeat("a", 1023, "");
    assert_true(accepted(s, "example.com", NULL));
    assert_true(accepted("n", "example.com", s));
    free(s);
    s = repeat("a", 1024, "");
    assert_false(accepted(s, "example.com", NULL));
    assert_false(accepted("n", "example.com", s));
    free(s);
    /* Multibyte: 511 two-byte characters and one more byte make 1023. */
    s = repeat("\xc3\xa9", 511, "a");
    assert_true(accepted(s, "example.com", s));
    free(s);
    s = repeat("\xc3\xa9", 512, "");
    assert_false(accepted(s, "example.com", NULL));
    assert_false(accepted("n", "example.com", s));
    free(s);
    /* The limit counts after preparation: "ŉ" (2 bytes) becomes "ʼn" (3 bytes) ... */
    s = repeat("\xc5\x89", 341, "");
    assert_true(accepted(s, "example.com", NULL));
    free(s);
    s = repeat("\xc5\x89", 342, "");
    assert_false(accepted(s, "example.com", NULL));
    free(s);
    /* ... "ﬀ" (3 bytes) becomes "ff" (2 bytes) ... */
    s = repeat("\xef\xac\x80", 511, "a");
    assert_true(accepted(s, "example.com", NULL));
    free(s);
    s = repeat("\xef\xac\x80", 512, "");
    assert_false(accepted(s, "example.com", NULL));
    free(s);
    /* ... and soft hyphens vanish, so a long input can prepare to exactly 1023. */
    s = repeat("a", 1023, "\xc2\xad\xc2\xad\xc2\xad");
    assert_true(accepted(s, "example.com", NULL));
    free(s);
    s = repeat("a", 1024, "\xc2\xad");
    assert_false(accepted(s, "example.com", NULL));
    free(s);
}

/* A domain of exactly total bytes: labels of label_len letters (the last one shorter), dots
 * between them. */
static char *domain_of(size_t total, size_t label_len)
{
    char *s = xmalloc(total + 1);
    size_t i = 0, in_label = 0;
    while (i < total) {
        if (in_label == label_len) {
            s[i++] = '.';
            in_label = 0;
        } else {
            s[i++] = 'a';
            in_label++;
        }
    }
    s[i] = '\0';
    assert_true(total == 0 || s[total - 1] != '.');
    return s;
}

static void test_domain_limits(void **state)
{
    char *d = domain_of(1023, 63); /* 16 labels of 63 and 15 dots */
    assert_true(accepted("n", d, "r"));
    char *dot = xasprintf("%s.", d); /* 1024 bytes with the trailing dot, 1023 without */
    assert_true(accepted(NULL, dot, NULL));
    free(dot);
    free(d);
    d = domain_of(1023, 1);
    assert_true(accepted(NULL, d, NULL));
    free(d);
    d = domain_of(1024, 62); /* every label within 63, one byte too long */
    assert_false(accepted(NULL, d, NULL));
    assert_false(accepted("n", d, "r"));
    free(d);
    d = domain_of(1025, 1);
    assert_false(accepted(NULL, d, NULL));
    free(d);
    d = domain_of(63, 63); /* one label: 63 is the limit, 64 too long */
    assert_true(accepted(NULL, d, NULL));
    free(d);
    d = domain_of(64, 64);
    assert_false(accepted(NULL, d, NULL));
    free(d);
}

static void test_bare_and_full(void **state)
{
    jid_t *j = jid_parse("Juliet@Example.com/Balcony");
    assert_non_null(j);
    assert_string_equal(jid_full(j), "juliet@example.com/Balcony");
    assert_string_equal(jid_bare(j), "juliet@example.com");
    jid_t *c = jid_copy(j);
    jid_free(j);
    assert_string_equal(jid_full(c), "juliet@example.com/Balcony");
    assert_string_equal(jid_resource(c), "Balcony");
    jid_free(c);

    j = jid_parse("example.com/r");
    assert_string_equal(jid_full(j), "example.com/r");
    assert_string_equal(jid_bare(j), "example.com");
    jid_free(j);
    j = jid_parse("example.com.");
    assert_string_equal(jid_full(j), "example.com");
    assert_string_equal(jid_bare(j), "example.com");
    jid_free(j);

    j = jid_new("Romeo", "Example.NET", NULL);
    assert_string_equal(jid_full(j), "romeo@example.net");
    jid_free(j);
    j = jid_new(NULL, "example.net", "Orchard");
    assert_string_equal(jid_full(j), "example.net/Orchard");
    jid_free(j);
    assert_null(jid_new("", "example.net", NULL));
    assert_null(jid_new("a", "example.net", ""));
    assert_null(jid_new("a", "", NULL));
    assert_null(jid_new("a", NULL, NULL));
    assert_null(jid_new("a@b", "example.net", NULL));
    assert_null(jid_new("a", "example.net/x", NULL));
    j = jid_new("a", "example.net", "x/y@z");
    assert_string_equal(jid_full(j), "a@example.net/x/y@z");
    jid_free(j);
    assert_null(jid_copy(NULL));
    jid_free(NULL);
}

static int eq(const char *a, const char *b, int bare)
{
    jid_t *x = jid_parse(a), *y = jid_parse(b);
    assert_non_null(x);
    assert_non_null(y);
    int r = bare ? jid_bare_equal(x, y) : jid_equal(x, y);
    assert_int_equal(r, bare ? jid_bare_equal(y, x) : jid_equal(y, x));
    jid_free(x);
    jid_free(y);
    return r;
}

static void test_equality(void **state)
{
    assert_true(eq("Juliet@Example.com/r", "juliet@example.com./r", 0));
    assert_true(eq("\uff2auliet@example.com", "juliet@EXAMPLE.com", 0));
    assert_false(eq("juliet@example.com/R", "juliet@example.com/r", 0));
    assert_true(eq("juliet@example.com/R", "juliet@example.com/r", 1));
    assert_false(eq("juliet@example.com/r", "juliet@example.com", 0));
    assert_true(eq("juliet@example.com/r", "juliet@example.com", 1));
    assert_false(eq("juliet@example.com", "example.com", 1));
    assert_false(eq("juliet@example.com", "romeo@example.com", 1));
    assert_false(eq("juliet@example.com", "juliet@example.net", 1));
    assert_true(eq("a@[2001:db8::1]", "A@[2001:DB8::1]", 0));
    /* The resource is not confused with the node: "a@b" vs "b/a" style look-alikes. */
    assert_false(eq("example.com/a", "a@example.com", 0));
}

/* ---- XEP-0106 ---- */

struct esc_case {
    const char *name, *escaped;
};

/* The examples of XEP-0106 section 5 (localparts only). */
static const struct esc_case xep_cases[] = {
    {"space cadet", "space\\20cadet"},
    {"call me \"ishmael\"", "call\\20me\\20\\22ishmael\\22"},
    {"at&t guy", "at\\26t\\20guy"},
    {"d'artagnan", "d\\27artagnan"},
    {"/.fanboy", "\\2f.fanboy"},
    {"::foo::", "\\3a\\3afoo\\3a\\3a"},
    {"<foo>", "\\3cfoo\\3e"},
    {"user@host", "user\\40host"},
    {"c:\\net", "c\\3a\\net"},
    {"c:\\\\net", "c\\3a\\\\net"},
    {"c:\\cool stuff", "c\\3a\\cool\\20stuff"},
    {"c:\\5commas", "c\\3a\\5c5commas"},
    {"\\3and\\2is\\5@example.com", "\\5c3and\\2is\\5\\40example.com"},
    {"\\3catsand\\2catsis\\5cats@example.com", "\\5c3catsand\\2catsis\\5c5cats\\40example.com"},
    {"\\2plus\\2is\\4", "\\2plus\\2is\\4"},
    {"foo\\bar", "foo\\bar"},
    {"foob\\41r", "foob\\41r"},
    {"here's_a wild_&_/cr%zy/_address@example.com",
     "here\\27s_a\\20wild_\\26_\\2fcr%zy\\2f_address\\40example.com"},
    /* Names that already look escaped, and backslashes at the end. */
    {"\\20", "\\5c20"},
    {"\\5c", "\\5c5c"},
    {"\\5C", "\\5c5C"}, /* upper-case digits count: nodeprep would lowercase them */
    {"\\2F", "\\5c2F"},
    {"a\\", "a\\"},
    {"\\", "\\"},
    {"\\\\", "\\\\"},
    {"\\\\20", "\\\\5c20"},
    {"\\ ", "\\\\20"},
    {"%20", "%20"},
    {"\\2", "\\2"},
    {"\\00", "\\00"},
    {" ", "\\20"}, /* leading/trailing spaces are escaped too (see jid.c) */
    {" a ", "\\20a\\20"},
    {"", ""},
    {"\xc3\xa9t\xc3\xa9 \xe6\x97\xa5", "\xc3\xa9t\xc3\xa9\\20\xe6\x97\xa5"},
};

static void test_escape_examples(void **state)
{
    for (size_t i = 0; i < FERRY_ARRAY_LEN(xep_cases); i++) {
        char *e = jid_escape_node(xep_cases[i].name);
        assert_string_equal(e, xep_cases[i].escaped);
        char *u = jid_unescape_node(e);
        assert_string_equal(u, xep_cases[i].name);
        free(e);
        free(u);
    }
}

static void test_unescape_examples(void **state)
{
    static const struct esc_case cases[] = {
        /* {node, unescaped name}: sequences that are not escapes stay as they are. */
        {"space\\20cadet", "space cadet"},
        {"\\5c3and\\2is\\5cool", "\\3and\\2is\\ool"},
        {"\\3and\\2is\\5cool", ":nd\\2is\\ool"},
        {"\\2plus\\2is\\4", "\\2plus\\2is\\4"},
        {"foo\\bar", "foo\\bar"},
        {"\\2F\\5C", "/\\"},
        {"\\", "\\"},
        {"\\5", "\\5"},
        {"\\00", "\\00"},
    };
    for (size_t i = 0; i < FERRY_ARRAY_LEN(cases); i++) {
        char *u = jid_unescape_node(cases[i].name);
        assert_string_equal(u, cases[i].escaped);
        free(u);
    }
}

static void test_escape_invalid_utf8(void **state)
{
    assert_null(jid_escape_node("a\xff"));
    assert_null(jid_escape_node("\xc3"));
    assert_null(jid_escape_node("\xed\xa0\x80"));
    assert_null(jid_escape_node(NULL));
    assert_null(jid_unescape_node("a\xff"));
    assert_null(jid_unescape_node(NULL));
    assert_null(jid_node_from_legacy("a\xff"));
    assert_null(jid_node_from_legacy(NULL));
}

static void test_irc_nicks(void **state)
{
    static const struct esc_case nicks[] = {
        {"[Alice]", "[alice]"},       {"bob\\", "bob\\"},   {"`carol`", "`carol`"},
        {"^dave^", "^dave^"},         {"{Eve}", "{eve}"},   {"frank|away", "frank|away"},
        {"G[]\\`^{}|", "g[]\\`^{}|"}, {"\\5cx", "\\5c5cx"}, {"a\\20b", "a\\5c20b"},
        {"\\2F", "\\5c2f"},           {"x-y_z", "x-y_z"},
    };
    for (size_t i = 0; i < FERRY_ARRAY_LEN(nicks); i++) {
        char *e = jid_escape_node(nicks[i].name);
        char *u = jid_unescape_node(e);
        assert_string_equal(u, nicks[i].name);
        char *n = jid_node_from_legacy(nicks[i].name);
        assert_string_equal(n, nicks[i].escaped);
        char *back = jid_unescape_node(n);
        char *lower = g_ascii_strdown(nicks[i].name, -1);
        assert_string_equal(back, lower); /* the nick, as IRC compares it */
        jid_t *j = jid_new(n, "irc.example.org", NULL);
        assert_non_null(j);
        assert_string_equal(jid_node(j), n);
        jid_free(j);
        g_free(lower);
        free(back);
        free(n);
        free(u);
        free(e);
    }
}

static void test_node_from_legacy(void **state)
{
    char *n = jid_node_from_legacy("Space Cadet");
    assert_string_equal(n, "space\\20cadet");
    free(n);
    n = jid_node_from_legacy("O'Hara@Work");
    assert_string_equal(n, "o\\27hara\\40work");
    free(n);
    assert_null(jid_node_from_legacy(""));
    assert_null(jid_node_from_legacy("\xc2\xad"));         /* prepares to nothing */
    assert_null(jid_node_from_legacy("a\x01"));            /* control character */
    assert_null(jid_node_from_legacy("\xf0\x9f\x98\x80")); /* unassigned in 3.2 */
    /* Nodeprep would create or destroy an escape sequence: refused, not misdirected. */
    assert_null(jid_node_from_legacy("\uff3c20"));   /* fullwidth backslash */
    assert_null(jid_node_from_legacy("\\\uff120"));  /* fullwidth digit */
    assert_null(jid_node_from_legacy("\\\u00ad20")); /* soft hyphen vanishes */
    assert_null(jid_node_from_legacy("<\u0301"));    /* \3c + U+0301 -> \3ć */
    /* Length after escaping: 341 '@' escape to 1023 bytes, 342 to 1026. */
    char *s = repeat("@", 341, "");
    n = jid_node_from_legacy(s);
    assert_non_null(n);
    assert_int_equal(strlen(n), 1023);
    free(n);
    free(s);
    s = repeat("@", 342, "");
    assert_null(jid_node_from_legacy(s));
    free(s);
}

/* ---- property test ---- */

#define PROPERTY_NAMES 200000
#define PROPERTY_SEED 0x4a1d0106u

/* Rich in what escaping must get right: escapable characters, backslashes, hex digits of
 * both cases, '%', upper case, multibyte UTF-8, a combining mark, fullwidth look-alikes. */
static const char *const alphabet[] = {
    "\\",
    "\\",
    "\\",
    "\\",
    "2",
    "0",
    "5",
    "c",
    "C",
    "3",
    "a",
    "A",
    "f",
    "F",
    "e",
    "4",
    "7",
    "2",
    "0",
    "5",
    "c",
    " ",
    "\"",
    "&",
    "'",
    "/",
    ":",
    "<",
    ">",
    "@",
    "%",
    "[",
    "]",
    "`",
    "^",
    "{",
    "}",
    "|",
    "x",
    "Z",
    "-",
    "_",
    ".",
    "\xc3\xa9",         /* é */
    "\xc3\x89",         /* É */
    "\xc3\x9f",         /* ß */
    "\xe6\x97\xa5",     /* 日 */
    "\xf0\x9f\x98\x80", /* U+1F600 */
    "\xcc\x81",         /* combining acute */
    "\xef\xbc\xbc",     /* fullwidth backslash */
    "\xef\xbc\x92",     /* fullwidth 2 */
    "\xc2\xad",         /* soft hyphen */
};
#define ASCII_SYMBOLS 43 /* the first ones in the alphabet are ASCII */

static char *random_name(GRand *rng, int ascii_only)
{
    GString *g = g_string_new(NULL);
    int len = g_rand_int_range(rng, 1, 13);
    int n = ascii_only ? ASCII_SYMBOLS : (int)FERRY_ARRAY_LEN(alphabet);
    for (int i = 0; i < len; i++)
        g_string_append(g, alphabet[g_rand_int_range(rng, 0, n)]);
    return g_string_free(g, FALSE);
}

/* Nodeprep exactly as JIDs use it; 1 when it accepts s and leaves it unchanged. */
static int nodeprep_stable(const char *s)
{
    char buf[4096];
    if (strlen(s) >= sizeof(buf))
        return 0;
    strcpy(buf, s);
    if (stringprep(buf, sizeof(buf), STRINGPREP_NO_UNASSIGNED, stringprep_xmpp_nodeprep) != 0)
        return 0;
    return strcmp(buf, s) == 0;
}

/* Records key -> name; fails when key already stands for a different name. */
static void check_unique(GHashTable *seen, const char *what, char *key, const char *name)
{
    const char *prev = g_hash_table_lookup(seen, key);
    if (prev && strcmp(prev, name) != 0)
        fail_msg("%s collision: \"%s\" and \"%s\" both give \"%s\"", what, prev, name, key);
    if (prev)
        free(key);
    else
        g_hash_table_insert(seen, key, g_strdup(name));
}

/* The characters of s that nodes cannot hold, in order: escaping must carry exactly these. */
static char *specials_of(const char *s)
{
    GString *g = g_string_new(NULL);
    for (; *s; s++)
        if (strchr(" \"&'/:<>@", *s))
            g_string_append_c(g, *s);
    return g_string_free(g, FALSE);
}

/* Whatever nodeprep folds, the node must not gain or lose an escaped character. */
static void check_node_specials(const char *name, const char *node)
{
    char *back = jid_unescape_node(node);
    char *want = specials_of(name), *got = specials_of(back);
    if (strcmp(want, got) != 0)
        fail_msg("legacy: \"%s\" -> \"%s\" -> \"%s\" changes the escaped characters", name, node,
                 back);
    g_free(want);
    g_free(got);
    free(back);
}

static void check_one_name(const char *name, GHashTable *escaped_seen, GHashTable *node_seen,
                           int *stable, int *ascii)
{
    char *e = jid_escape_node(name);
    char *u = jid_unescape_node(e);
    if (strcmp(u, name) != 0)
        fail_msg("round trip: \"%s\" -> \"%s\" -> \"%s\"", name, e, u);
    free(u);
    char *n = jid_node_from_legacy(name);
    int is_ascii = 1;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p >= 0x80)
            is_ascii = 0;
    if (is_ascii) {
        /* Printable ASCII always gets a node, and it reads back as the name in lower case. */
        if (!n)
            fail_msg("no node for ASCII name \"%s\"", name);
        char *back = jid_unescape_node(n);
        char *lower = g_ascii_strdown(name, -1);
        if (strcmp(back, lower) != 0)
            fail_msg("legacy: \"%s\" -> \"%s\" -> \"%s\"", name, n, back);
        g_free(lower);
        free(back);
        (*ascii)++;
    }
    if (nodeprep_stable(name)) {
        if (!n || strcmp(n, e) != 0)
            fail_msg("nodeprep-stable \"%s\": node \"%s\", escaped \"%s\"", name, n ? n : "(null)",
                     e);
        (*stable)++;
    }
    if (n)
        check_node_specials(name, n);
    if (n && strcmp(n, e) == 0)
        check_unique(node_seen, "legacy node", xstrdup(n), name);
    free(n);
    check_unique(escaped_seen, "escape", e, name);
}

static void test_escape_property(void **state)
{
    GRand *rng = g_rand_new_with_seed(PROPERTY_SEED);
    GHashTable *escaped_seen = g_hash_table_new_full(g_str_hash, g_str_equal, free, g_free);
    GHashTable *node_seen = g_hash_table_new_full(g_str_hash, g_str_equal, free, g_free);
    int stable = 0, ascii = 0;

    for (int i = 0; i < PROPERTY_NAMES; i++) {
        char *name = random_name(rng, i % 2);
        check_one_name(name, escaped_seen, node_seen, &stable, &ascii);
        g_free(name);
    }
    print_message("%d names: %u distinct escapes, %u distinct unchanged nodes, %d nodeprep-stable, "
                  "%d ASCII\n",
                  PROPERTY_NAMES, g_hash_table_size(escaped_seen), g_hash_table_size(node_seen),
                  stable, ascii);
    /* The test means something only if the interesting sets are large. */
    assert_true(g_hash_table_size(escaped_seen) > PROPERTY_NAMES / 2);
    assert_true(g_hash_table_size(node_seen) > PROPERTY_NAMES / 10);
    assert_true(stable > PROPERTY_NAMES / 100);
    assert_true(ascii >= PROPERTY_NAMES / 2);
    g_hash_table_destroy(node_seen);
    g_hash_table_destroy(escaped_seen);
    g_rand_free(rng);
}

/* ---- the printable-ASCII fast path agrees with stringprep ---- */

/* What the profile itself makes of s: a new string, or NULL when it refuses it. */
static char *reference_prep(const char *s, const Stringprep_profile *profile)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", s);
    if (stringprep(buf, sizeof(buf), STRINGPREP_NO_UNASSIGNED, profile) != STRINGPREP_OK ||
        buf[0] == '\0')
        return NULL;
    return xstrdup(buf);
}

static void check_part(const char *got, const char *raw, const Stringprep_profile *profile)
{
    char *want = reference_prep(raw, profile);
    if ((want == NULL) != (got == NULL) || (want && strcmp(want, got) != 0))
        fail_msg("part \"%s\": got \"%s\", stringprep \"%s\"", raw, got ? got : "(refused)",
                 want ? want : "(refused)");
    free(want);
}

/* Every printable ASCII character (and space), alone and between mixed-case letters, as a
 * node and as a resource: Ferry's result equals libidn's, refusals included. */
static void test_ascii_fast_path(void **state)
{
    (void)state;
    for (int c = 0x20; c < 0x7f; c++) {
        if (c == '@' || c == '/')
            continue; /* separators: they never reach a part */
        char raw[8];
        for (int form = 0; form < 2; form++) {
            snprintf(raw, sizeof(raw), form ? "Ab%cZ" : "%c", c);
            jid_t *n = jid_new(raw, "Example.COM", NULL);
            check_part(n ? jid_node(n) : NULL, raw, stringprep_xmpp_nodeprep);
            if (n)
                assert_string_equal(jid_domain(n), "example.com");
            jid_free(n);
            jid_t *r = jid_new(NULL, "example.com", raw);
            check_part(r ? jid_resource(r) : NULL, raw, stringprep_xmpp_resourceprep);
            jid_free(r);
        }
    }
    /* Domains: LDH shapes accepted as they are, and the ones IDNA's STD3 rules refuse. */
    static const char *const good[] = {"A.b", "x-y.Example", "0.1.2.3", "a--b.c"};
    static const char *const bad[] = {"-a.b", "a-.b", "a_b.c", "a b.c", "a..b", ".a"};
    for (size_t i = 0; i < FERRY_ARRAY_LEN(good); i++) {
        jid_t *j = jid_new(NULL, good[i], NULL);
        assert_non_null(j);
        char *lower = g_ascii_strdown(good[i], -1);
        assert_string_equal(jid_domain(j), lower);
        g_free(lower);
        jid_free(j);
    }
    for (size_t i = 0; i < FERRY_ARRAY_LEN(bad); i++)
        assert_null(jid_new(NULL, bad[i], NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_node_and_resource_limits),
        cmocka_unit_test(test_domain_limits),
        cmocka_unit_test(test_bare_and_full),
        cmocka_unit_test(test_equality),
        cmocka_unit_test(test_escape_examples),
        cmocka_unit_test(test_unescape_examples),
        cmocka_unit_test(test_escape_invalid_utf8),
        cmocka_unit_test(test_irc_nicks),
        cmocka_unit_test(test_node_from_legacy),
        cmocka_unit_test(test_escape_property),
        cmocka_unit_test(test_ascii_fast_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
