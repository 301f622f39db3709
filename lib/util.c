/* Small helpers: allocation that cannot fail, SHA-1 hex, random ids, constant-time compare. */
#include "lib/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lib/log.h"

static void *check_alloc(void *p, size_t size)
{
    if (p == NULL && size != 0)
        fatalx("util", "out of memory allocating %zu bytes", size);
    return p;
}

void *xmalloc(size_t size)
{
    return check_alloc(malloc(size ? size : 1), size);
}

void *xcalloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        fatalx("util", "allocation overflow: %zu x %zu", count, size);
    return check_alloc(calloc(count ? count : 1, size ? size : 1), count * size);
}

void *xrealloc(void *ptr, size_t size)
{
    return check_alloc(realloc(ptr, size ? size : 1), size);
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *copy = xmalloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0)
        fatalx("util", "out of memory formatting a string");
    return out;
}

void sha1_hex(const void *data, size_t len, char out[41])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;

    if (!EVP_Digest(data, len, digest, &digest_len, EVP_sha1(), NULL) || digest_len != 20)
        fatalx("util", "SHA-1 is not available from OpenSSL");
    for (unsigned int i = 0; i < digest_len; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0x0f];
    }
    out[40] = '\0';
    OPENSSL_cleanse(digest, sizeof(digest));
}

/* The kernel's CSPRNG (getrandom) rather than OpenSSL's RAND_bytes: OpenSSL 3 gives every
 * thread that asks its own DRBG pair with cipher contexts (about 3 kB), and with one session
 * thread per online owner that was 3 MB at 1000 owners, measured with heaptrack. */
int random_bytes(void *out, size_t len)
{
    unsigned char *p = out;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void random_id(char *out, size_t len)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char raw[64];

    for (size_t i = 0; i + 1 < len; i++) {
        if (i % sizeof(raw) == 0 && random_bytes(raw, sizeof(raw)) != 0)
            fatalx("util", "the random number generator failed");
        /* 62 does not divide 256; the slight bias is irrelevant for identifiers. */
        out[i] = alphabet[raw[i % sizeof(raw)] % (sizeof(alphabet) - 1)];
    }
    if (len > 0)
        out[len - 1] = '\0';
}

int ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
