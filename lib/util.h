/* Small helpers every floor uses: allocation that cannot fail, hashing, random ids,
 * constant-time comparison. Functions with an x prefix abort the process on failure
 * (out of memory is fatal, never a silent retry). */
#ifndef FERRY_LIB_UTIL_H
#define FERRY_LIB_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define FERRY_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation: never returns NULL; aborts with a log line when memory is exhausted. */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a new string (caller frees) formatted like printf. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* SHA-1 of data[0..len) as 40 lowercase hex digits plus NUL, written to out. */
void sha1_hex(const void *data, size_t len, char out[41]);

/* Fills out[0..len) with random bytes from the kernel's CSPRNG (getrandom); 0 on success, -1
 * on failure. */
int random_bytes(void *out, size_t len);
/* Writes a random identifier of len-1 characters [a-zA-Z0-9] plus NUL into out (len >= 2). */
void random_id(char *out, size_t len);

/* Compares two buffers of the same length in time independent of their contents.
 * Returns 1 when equal, 0 otherwise. */
int ct_equal(const void *a, const void *b, size_t len);

/* Monotonic clock in milliseconds, for timeouts and backoff. */
int64_t now_ms(void);

#endif
