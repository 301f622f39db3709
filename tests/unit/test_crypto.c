/* Unit tests for lib/crypto: the key file (creation, reuse, refusals) and AES-256-GCM blobs
 * (round trip, wrong key, tampering, AAD binding, a frozen blob that must keep opening). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/crypto.h"
#include "lib/util.h"

struct fixture {
    char dir[64];
    char *key_path;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/ferry-test-crypto-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->key_path = xasprintf("%s/ferry.key", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = xasprintf("%s/%s", f->dir, e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
        free(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(f->dir);
    free(f->key_path);
    free(f);
    return 0;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static size_t count_entries(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void test_key_created_0600_and_reused(void **state)
{
    struct fixture *f = *state;
    unsigned char k1[CRYPTO_KEY_LEN], k2[CRYPTO_KEY_LEN], zero[CRYPTO_KEY_LEN] = {0};
    char *err = NULL;
    struct stat sb;

    mode_t old = umask(0); /* a permissive umask must not widen the key file's mode */
    int rc = crypto_key_load_or_create(f->key_path, k1, &err);
    umask(old);
    assert_int_equal(rc, CRYPTO_OK);
    assert_null(err);
    assert_int_equal(stat(f->key_path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(sb.st_size, CRYPTO_KEY_LEN);
    assert_int_equal(count_entries(f->dir), 1); /* no temporary file left behind */
    assert_memory_not_equal(k1, zero, CRYPTO_KEY_LEN);

    assert_int_equal(crypto_key_load_or_create(f->key_path, k2, &err), CRYPTO_OK);
    assert_memory_equal(k1, k2, CRYPTO_KEY_LEN);
    assert_int_equal(count_entries(f->dir), 1);
}

/* Processes starting together agree on one key: the loser of the race loads the winner's. */
static void test_key_concurrent_creation(void **state)
{
    struct fixture *f = *state;
    enum { CHILDREN = 4 };
    unsigned char mine[CRYPTO_KEY_LEN], theirs[CHILDREN][CRYPTO_KEY_LEN];
    int fds[CHILDREN][2];
    pid_t pids[CHILDREN];

    for (int i = 0; i < CHILDREN; i++) {
        assert_int_equal(pipe(fds[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            unsigned char key[CRYPTO_KEY_LEN];
            int ok = crypto_key_load_or_create(f->key_path, key, NULL) == CRYPTO_OK &&
                     write(fds[i][1], key, sizeof(key)) == (ssize_t)sizeof(key);
            _exit(ok ? 0 : 1);
        }
        close(fds[i][1]);
    }
    for (int i = 0; i < CHILDREN; i++) {
        int status = -1;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(read(fds[i][0], theirs[i], CRYPTO_KEY_LEN), CRYPTO_KEY_LEN);
        close(fds[i][0]);
    }
    assert_int_equal(crypto_key_load_or_create(f->key_path, mine, NULL), CRYPTO_OK);
    for (int i = 0; i < CHILDREN; i++)
        assert_memory_equal(theirs[i], mine, CRYPTO_KEY_LEN);
    assert_int_equal(count_entries(f->dir), 1);
}

static void test_key_wrong_mode_refused(void **state)
{
    struct fixture *f = *state;
    unsigned char key[CRYPTO_KEY_LEN], zero[CRYPTO_KEY_LEN] = {0};
    unsigned char bytes[CRYPTO_KEY_LEN];
    static const mode_t modes[] = {0640, 0604, 0660, 0644, 0610};
    char *err = NULL;

    memset(bytes, 0x5a, sizeof(bytes));
    for (size_t i = 0; i < FERRY_ARRAY_LEN(modes); i++) {
        write_file(f->key_path, bytes, sizeof(bytes), modes[i]);
        memset(key, 0xff, sizeof(key));
        assert_int_equal(crypto_key_load_or_create(f->key_path, key, &err), CRYPTO_EPERM);
        assert_non_null(err);
        assert_non_null(strstr(err, f->key_path));
        char *mode = xasprintf("mode %04o", (unsigned)modes[i]);
        assert_non_null(strstr(err, mode));
        free(mode);
        free(err);
        err = NULL;
        assert_memory_equal(key, zero, sizeof(key)); /* nothing of a refused key is handed out */
    }
    /* Never "fixed" behind the operator's back. */
    struct stat sb;
    assert_int_equal(stat(f->key_path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0610);
}

static void test_key_wrong_size_refused(void **state)
{
    struct fixture *f = *state;
    unsigned char key[CRYPTO_KEY_LEN];
    unsigned char bytes[CRYPTO_KEY_LEN + 1];
    static const size_t sizes[] = {0, 16, CRYPTO_KEY_LEN - 1, CRYPTO_KEY_LEN + 1};
    char *err = NULL;

    memset(bytes, 0x33, sizeof(bytes));
    for (size_t i = 0; i < FERRY_ARRAY_LEN(sizes); i++) {
        write_file(f->key_path, bytes, sizes[i], 0600);
        assert_int_equal(crypto_key_load_or_create(f->key_path, key, &err), CRYPTO_ESIZE);
        char *expect = xasprintf("key file %s is %zu bytes, expected 32", f->key_path, sizes[i]);
        assert_string_equal(err, expect);
        free(expect);
        free(err);
        err = NULL;
    }
}

static void test_key_other_failures(void **state)
{
    struct fixture *f = *state;
    unsigned char key[CRYPTO_KEY_LEN];
    char *err = NULL;

    /* A directory where the key should be. */
    assert_int_equal(mkdir(f->key_path, 0700), 0);
    assert_int_equal(crypto_key_load_or_create(f->key_path, key, &err), CRYPTO_EPERM);
    assert_non_null(strstr(err, "not a regular file"));
    free(err);
    assert_int_equal(rmdir(f->key_path), 0);

    /* The directory does not exist: nothing is created, the message says why. */
    char *missing = xasprintf("%s/nope/ferry.key", f->dir);
    assert_int_equal(crypto_key_load_or_create(missing, key, &err), CRYPTO_EIO);
    assert_non_null(strstr(err, "No such file or directory"));
    free(err);
    free(missing);

    /* err may be NULL. */
    write_file(f->key_path, "short", 5, 0600);
    assert_int_equal(crypto_key_load_or_create(f->key_path, key, NULL), CRYPTO_ESIZE);
}

static const unsigned char test_key[CRYPTO_KEY_LEN] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};

static void seal_ok(const void *pt, size_t len, const char *aad, unsigned char **blob,
                    size_t *blob_len)
{
    assert_int_equal(crypto_seal(test_key, pt, len, aad, aad ? strlen(aad) : 0, blob, blob_len),
                     CRYPTO_OK);
}

static void test_seal_open_round_trip(void **state)
{
    static const size_t lens[] = {0, 1, 15, 16, 17, 100, 4096};
    unsigned char pt[4096];
    for (size_t i = 0; i < sizeof(pt); i++)
        pt[i] = (unsigned char)(i * 7 + 3);

    for (size_t i = 0; i < FERRY_ARRAY_LEN(lens); i++) {
        unsigned char *blob = NULL, *out = NULL;
        size_t blob_len = 0, out_len = 99;
        seal_ok(pt, lens[i], "alice@example.org", &blob, &blob_len);
        assert_int_equal(blob_len, lens[i] + CRYPTO_OVERHEAD);
        assert_int_equal(blob[0], CRYPTO_BLOB_VERSION);
        assert_int_equal(
            crypto_open(test_key, blob, blob_len, "alice@example.org", 17, &out, &out_len),
            CRYPTO_OK);
        assert_int_equal(out_len, lens[i]);
        assert_memory_equal(out, pt, lens[i]);
        assert_int_equal(out[lens[i]], '\0');
        crypto_secret_free(out, out_len + 1);
        free(blob);
    }
}

static void test_seal_uses_fresh_nonce(void **state)
{
    unsigned char *a, *b;
    size_t alen, blen;
    seal_ok("hunter2", 7, "x", &a, &alen);
    seal_ok("hunter2", 7, "x", &b, &blen);
    assert_int_equal(alen, blen);
    assert_memory_not_equal(a + 1, b + 1, CRYPTO_NONCE_LEN);
    assert_memory_not_equal(a, b, alen);
    /* The plaintext does not appear in the blob. */
    assert_null(memmem(a, alen, "hunter2", 7));
    free(a);
    free(b);
}

static void test_wrong_key_detected(void **state)
{
    unsigned char other[CRYPTO_KEY_LEN];
    unsigned char *blob, *out = (unsigned char *)"sentinel";
    size_t blob_len, out_len = 0;
    memcpy(other, test_key, sizeof(other));
    other[31] ^= 0x01;
    seal_ok("s3cret", 6, "alice@example.org", &blob, &blob_len);
    assert_int_equal(crypto_open(other, blob, blob_len, "alice@example.org", 17, &out, &out_len),
                     CRYPTO_EAUTH);
    assert_null(out);
    free(blob);
}

static void test_tampering_detected(void **state)
{
    unsigned char *blob, *out;
    size_t blob_len, out_len;
    seal_ok("s3cret-password", 15, "alice@example.org", &blob, &blob_len);
    /* Every single bit flip anywhere in the blob is caught: version, nonce, data, tag. */
    for (size_t i = 0; i < blob_len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            blob[i] ^= (unsigned char)(1u << bit);
            int rc = crypto_open(test_key, blob, blob_len, "alice@example.org", 17, &out, &out_len);
            assert_int_equal(rc, i == 0 ? CRYPTO_EFORMAT : CRYPTO_EAUTH);
            assert_null(out);
            blob[i] ^= (unsigned char)(1u << bit);
        }
    }
    /* Truncated or extended. */
    assert_int_equal(
        crypto_open(test_key, blob, blob_len - 1, "alice@example.org", 17, &out, &out_len),
        CRYPTO_EAUTH);
    assert_int_equal(
        crypto_open(test_key, blob, CRYPTO_OVERHEAD - 1, "alice@example.org", 17, &out, &out_len),
        CRYPTO_EFORMAT);
    assert_int_equal(crypto_open(test_key, blob, 0, NULL, 0, &out, &out_len), CRYPTO_EFORMAT);
    unsigned char *longer = xmalloc(blob_len + 1);
    memcpy(longer, blob, blob_len);
    longer[blob_len] = 0;
    assert_int_equal(
        crypto_open(test_key, longer, blob_len + 1, "alice@example.org", 17, &out, &out_len),
        CRYPTO_EAUTH);
    free(longer);
    /* Untouched, it still opens. */
    assert_int_equal(crypto_open(test_key, blob, blob_len, "alice@example.org", 17, &out, &out_len),
                     CRYPTO_OK);
    assert_string_equal((char *)out, "s3cret-password");
    crypto_secret_free(out, out_len + 1);
    free(blob);
}

static void test_aad_mismatch_detected(void **state)
{
    unsigned char *blob, *out;
    size_t blob_len, out_len;
    seal_ok("s3cret", 6, "alice@example.org", &blob, &blob_len);
    /* The blob moved to bob's row does not open there. */
    assert_int_equal(crypto_open(test_key, blob, blob_len, "bob@example.org", 15, &out, &out_len),
                     CRYPTO_EAUTH);
    assert_int_equal(crypto_open(test_key, blob, blob_len, "alice@example.or", 16, &out, &out_len),
                     CRYPTO_EAUTH);
    assert_int_equal(crypto_open(test_key, blob, blob_len, NULL, 0, &out, &out_len), CRYPTO_EAUTH);
    free(blob);

    seal_ok("s3cret", 6, NULL, &blob, &blob_len);
    assert_int_equal(crypto_open(test_key, blob, blob_len, "x", 1, &out, &out_len), CRYPTO_EAUTH);
    assert_int_equal(crypto_open(test_key, blob, blob_len, NULL, 0, &out, &out_len), CRYPTO_OK);
    crypto_secret_free(out, out_len + 1);
    free(blob);
}

/* A blob written by the first version of this code (key bytes 0..31, AAD "alice@example.org").
 * It is standard AES-256-GCM with nonce = bytes 1..12 and AAD = 0x01 || caller AAD (checked
 * independently with Python's cryptography package). It must keep opening: stored passwords
 * outlive program versions. */
static void test_frozen_blob_opens(void **state)
{
    static const unsigned char blob[] =
        "\x01\x61\x37\xc8\x69\x04\x82\x44\xf9\xa7\xc8\x89\xfd\xfb\x81\x43\xb7\x7e\xbc\x3c"
        "\x50\x69\xa2\xba\x66\x0e\x4b\xbc\xfc\xf7\x6a\x27\x96\x30\x24\x58";
    unsigned char *out;
    size_t out_len;
    assert_int_equal(
        crypto_open(test_key, blob, sizeof(blob) - 1, "alice@example.org", 17, &out, &out_len),
        CRYPTO_OK);
    assert_int_equal(out_len, 7);
    assert_string_equal((char *)out, "hunter2");
    crypto_secret_free(out, out_len + 1);
}

static void test_wipe(void **state)
{
    unsigned char buf[16];
    memset(buf, 0xaa, sizeof(buf));
    crypto_wipe(buf, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(buf[i], 0);
    assert_int_equal(buf[8], 0xaa);
    crypto_wipe(NULL, 4);
    crypto_secret_free(NULL, 4);
    crypto_secret_free_str(NULL);
    crypto_secret_free_str(xstrdup("password"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_created_0600_and_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_concurrent_creation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_wrong_mode_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_wrong_size_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_other_failures, setup, teardown),
        cmocka_unit_test(test_seal_open_round_trip),
        cmocka_unit_test(test_seal_uses_fresh_nonce),
        cmocka_unit_test(test_wrong_key_detected),
        cmocka_unit_test(test_tampering_detected),
        cmocka_unit_test(test_aad_mismatch_detected),
        cmocka_unit_test(test_frozen_blob_opens),
        cmocka_unit_test(test_wipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
