/* The key file and AES-256-GCM sealing of secrets at rest. */
#include "lib/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

#define TAG "crypto"
/* Internal outcomes of one step of crypto_key_load_or_create (positive: not errors). */
#define KEY_MISSING 1
#define KEY_EXISTS 2

static int set_err(char **err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_err(char **err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        fatalx(TAG, "out of memory formatting an error");
    va_end(ap);
    return code;
}

void crypto_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

void crypto_secret_free(void *p, size_t size)
{
    crypto_wipe(p, size);
    free(p);
}

void crypto_secret_free_str(char *s)
{
    if (s != NULL)
        crypto_secret_free(s, strlen(s) + 1);
}

static int read_full(int fd, unsigned char *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const unsigned char *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* Makes a new directory entry durable: fsync of the file alone does not cover its name. */
static void fsync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir =
        slash == NULL ? xstrdup(".") : xstrndup(path, slash == path ? 1 : (size_t)(slash - path));
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd) != 0)
            log_warn(TAG, "fsync of directory %s", dir);
        close(fd);
    }
    free(dir);
}

static int key_load(const char *path, unsigned char key[CRYPTO_KEY_LEN], char **err)
{
    struct stat st;
    int rc = CRYPTO_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return KEY_MISSING;
        return set_err(err, CRYPTO_EIO, "cannot open key file %s: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        rc = set_err(err, CRYPTO_EIO, "cannot stat key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = set_err(err, CRYPTO_EPERM, "key file %s is not a regular file", path);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        rc = set_err(err, CRYPTO_EPERM,
                     "key file %s has mode %04o: group or others can access it; refusing it "
                     "(chmod 600 it if it was never exposed)",
                     path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_size != CRYPTO_KEY_LEN || read_full(fd, key, CRYPTO_KEY_LEN) != 0) {
        rc = set_err(err, CRYPTO_ESIZE, "key file %s is %lld bytes, expected %d", path,
                     (long long)st.st_size, CRYPTO_KEY_LEN);
        goto out;
    }
out:
    if (rc != CRYPTO_OK)
        crypto_wipe(key, CRYPTO_KEY_LEN);
    close(fd);
    return rc;
}

/* Writes a complete key under a temporary name, then link()s it into place: link fails with
 * EEXIST instead of replacing, so a concurrent creator's key wins and nobody sees a partial
 * file (which an O_CREAT|O_EXCL on the final name followed by a crash could leave). */
static int key_create(const char *path, char **err)
{
    unsigned char key[CRYPTO_KEY_LEN];
    char *tmp = xasprintf("%s.tmp.XXXXXX", path);
    int rc = CRYPTO_OK;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = set_err(err, CRYPTO_EIO, "cannot create key file %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fchmod(fd, 0600) != 0 || random_bytes(key, sizeof(key)) != 0 ||
        write_full(fd, key, sizeof(key)) != 0 || fsync(fd) != 0) {
        rc = set_err(err, CRYPTO_EIO, "cannot write key file %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (link(tmp, path) != 0) {
        if (errno == EEXIST)
            rc = KEY_EXISTS;
        else
            rc = set_err(err, CRYPTO_EIO, "cannot create key file %s: %s", path, strerror(errno));
        goto out;
    }
    fsync_parent(path);
    log_info(TAG, "created a new key file %s", path);
out:
    crypto_wipe(key, sizeof(key));
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

int crypto_key_load_or_create(const char *path, unsigned char key[CRYPTO_KEY_LEN], char **err)
{
    if (err != NULL)
        *err = NULL;
    /* Twice at most: a missing file is created (or another process creates it first), then
     * whatever is in place is loaded and checked like any existing key. */
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = key_load(path, key, err);
        if (rc != KEY_MISSING)
            return rc;
        rc = key_create(path, err);
        if (rc < 0)
            return rc;
    }
    return set_err(err, CRYPTO_EIO, "key file %s vanished while it was being created", path);
}

/* Prepares ctx for one GCM operation and feeds the authenticated header: the version byte
 * (so it cannot be changed) followed by the caller's AAD. */
static int gcm_begin(EVP_CIPHER_CTX *ctx, int encrypt, const unsigned char *key,
                     const unsigned char *blob_head, const void *aad, size_t aad_len)
{
    int outl = 0;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, blob_head + 1, encrypt) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &outl, blob_head, 1) != 1)
        return -1;
    if (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1)
        return -1;
    return 0;
}

int crypto_seal(const unsigned char key[CRYPTO_KEY_LEN], const void *plaintext, size_t len,
                const void *aad, size_t aad_len, unsigned char **blob, size_t *blob_len)
{
    int rc = CRYPTO_EINTERNAL, outl = 0, finl = 0;
    unsigned char *out = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    *blob = NULL;
    if (len > INT_MAX - CRYPTO_OVERHEAD || aad_len > INT_MAX)
        return CRYPTO_EINTERNAL;
    out = xmalloc(len + CRYPTO_OVERHEAD);
    unsigned char *body = out + 1 + CRYPTO_NONCE_LEN;
    out[0] = CRYPTO_BLOB_VERSION;
    if (random_bytes(out + 1, CRYPTO_NONCE_LEN) != 0 || (ctx = EVP_CIPHER_CTX_new()) == NULL ||
        gcm_begin(ctx, 1, key, out, aad, aad_len) != 0)
        goto fail;
    if (len > 0 && EVP_CipherUpdate(ctx, body, &outl, plaintext, (int)len) != 1)
        goto fail;
    if (EVP_CipherFinal_ex(ctx, body + outl, &finl) != 1 || (size_t)(outl + finl) != len ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTO_TAG_LEN, body + len) != 1)
        goto fail;
    *blob = out;
    *blob_len = len + CRYPTO_OVERHEAD;
    out = NULL;
    rc = CRYPTO_OK;
fail:
    if (rc != CRYPTO_OK)
        log_errorx(TAG, "AES-256-GCM encryption failed in OpenSSL");
    EVP_CIPHER_CTX_free(ctx);
    free(out);
    return rc;
}

int crypto_open(const unsigned char key[CRYPTO_KEY_LEN], const void *blob, size_t blob_len,
                const void *aad, size_t aad_len, unsigned char **plaintext, size_t *len)
{
    const unsigned char *in = blob;
    unsigned char tag[CRYPTO_TAG_LEN];
    unsigned char *out = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    int rc = CRYPTO_EINTERNAL, outl = 0, finl = 0;
    *plaintext = NULL;
    if (blob_len < CRYPTO_OVERHEAD || in[0] != CRYPTO_BLOB_VERSION)
        return CRYPTO_EFORMAT;
    size_t n = blob_len - CRYPTO_OVERHEAD;
    if (n > INT_MAX || aad_len > INT_MAX)
        return CRYPTO_EINTERNAL;
    const unsigned char *body = in + 1 + CRYPTO_NONCE_LEN;
    memcpy(tag, body + n, CRYPTO_TAG_LEN); /* the ctrl takes a non-const pointer */
    out = xmalloc(n + 1);
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL || gcm_begin(ctx, 0, key, in, aad, aad_len) != 0 ||
        (n > 0 && EVP_CipherUpdate(ctx, out, &outl, body, (int)n) != 1) ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTO_TAG_LEN, tag) != 1)
        goto fail;
    /* Final is where GCM compares the tag: failure here means wrong key, AAD or data. */
    if (EVP_CipherFinal_ex(ctx, out + outl, &finl) != 1) {
        rc = CRYPTO_EAUTH;
        goto fail;
    }
    out[n] = '\0';
    *plaintext = out;
    *len = n;
    out = NULL;
    rc = CRYPTO_OK;
fail:
    if (rc == CRYPTO_EINTERNAL)
        log_errorx(TAG, "AES-256-GCM decryption failed in OpenSSL");
    EVP_CIPHER_CTX_free(ctx);
    crypto_secret_free(out, n + 1);
    return rc;
}
