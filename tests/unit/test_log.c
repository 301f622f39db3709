/* Unit tests for lib/log: levels, tags, errno, secret masking, file output and reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"

struct captured {
    char lines[16][512];
    enum log_level levels[16];
    int count;
};

static void capture(enum log_level level, const char *line, void *ctx)
{
    struct captured *c = ctx;
    if (c->count < 16) {
        snprintf(c->lines[c->count], sizeof(c->lines[0]), "%s", line);
        c->levels[c->count++] = level;
    }
}

static int setup(void **state)
{
    struct captured *c = calloc(1, sizeof(*c));
    log_set_sink(capture, c);
    log_set_level(LOG_LEVEL_DEBUG);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    log_set_sink(NULL, NULL);
    log_clear_secrets();
    log_set_level(LOG_LEVEL_INFO);
    free(*state);
    return 0;
}

static void test_levels_and_tags(void **state)
{
    struct captured *c = *state;
    log_set_level(LOG_LEVEL_WARN);
    log_info("test", "hidden %d", 1);
    log_debug("test", "hidden too");
    log_warnx("component", "shown %s", "yes");
    log_errorx("router", "bad");
    assert_int_equal(c->count, 2);
    assert_string_equal(c->lines[0], "[component] shown yes");
    assert_int_equal(c->levels[0], LOG_LEVEL_WARN);
    assert_string_equal(c->lines[1], "[router] bad");
}

static void test_errno_appended(void **state)
{
    struct captured *c = *state;
    errno = ENOENT;
    log_warn("io", "open %s", "x");
    errno = ENOENT;
    log_warnx("io", "plain");
    assert_string_equal(c->lines[0], "[io] open x: No such file or directory");
    assert_string_equal(c->lines[1], "[io] plain");
    assert_int_equal(errno, ENOENT);
}

static void test_secrets_masked(void **state)
{
    struct captured *c = *state;
    log_add_secret("hunter2");
    log_add_secret("");
    log_info("register", "password is hunter2, again hunter2!");
    assert_string_equal(c->lines[0], "[register] password is ****, again ****!");
    log_clear_secrets();
    log_info("register", "now hunter2");
    assert_string_equal(c->lines[1], "[register] now hunter2");
    /* A secret that occurs in the mask itself must not loop forever. */
    log_add_secret("*");
    log_info("register", "a*b");
    assert_int_equal(c->count, 3);
    assert_string_equal(c->lines[2], "[register] a****b");
}

static void test_newlines_flattened(void **state)
{
    struct captured *c = *state;
    log_info("x", "a\nb\rc");
    assert_int_equal(c->count, 1);
    assert_string_equal(c->lines[0], "[x] a b c");
}

static void test_level_names(void **state)
{
    enum log_level l;
    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    assert_int_equal(log_level_parse("WARN", &l), 0);
    assert_int_equal(l, LOG_LEVEL_WARN);
    assert_int_equal(log_level_parse("warning", &l), 0);
    assert_int_equal(log_level_parse("loud", &l), -1);
    assert_string_equal(log_level_name(LOG_LEVEL_ERROR), "error");
}

static void test_file_and_reopen(void **state)
{
    char dir[] = "/tmp/ferry-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], moved[128], buf[1024];
    snprintf(path, sizeof(path), "%s/ferry.log", dir);
    snprintf(moved, sizeof(moved), "%s/ferry.log.1", dir);

    log_set_sink(NULL, NULL);
    log_add_secret("s3cr3t");
    assert_int_equal(log_open("ferry", path, 0), 0);
    log_info("main", "first s3cr3t");
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(log_reopen(), 0);
    log_info("main", "second");
    log_close();

    FILE *f = fopen(moved, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(buf, "info  [main] first ****\n"));
    assert_null(strstr(buf, "s3cr3t"));
    assert_null(strstr(buf, "second"));
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(buf, "[main] second"));
    unlink(path);
    unlink(moved);
    rmdir(dir);
    assert_int_equal(log_open("ferry", "/nonexistent-dir/x.log", 0), -1);
    log_close();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_levels_and_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_appended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secrets_masked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newlines_flattened, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_and_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
