/* Secrets at rest: an operator-controlled key file and AES-256-GCM sealing (OpenSSL EVP).
 *
 * A sealed blob is self-describing and authenticated:
 *     version (1 byte) | nonce (12 random bytes) | ciphertext (len bytes) | tag (16 bytes)
 * The version byte and the caller's associated data (AAD) are authenticated but not stored.
 * Callers bind the AAD to where the blob lives (for a password: its owner's JID), so a blob
 * copied to another row does not open there.
 *
 * Keys and plaintexts are wiped (OPENSSL_cleanse) before their memory is released; callers
 * wipe their own copies with crypto_secret_free / crypto_wipe. */
#ifndef FERRY_LIB_CRYPTO_H
#define FERRY_LIB_CRYPTO_H

#include <stddef.h>

#define CRYPTO_KEY_LEN 32
#define CRYPTO_NONCE_LEN 12
#define CRYPTO_TAG_LEN 16
#define CRYPTO_BLOB_VERSION 1
/* Bytes a blob adds to its plaintext. */
#define CRYPTO_OVERHEAD (1 + CRYPTO_NONCE_LEN + CRYPTO_TAG_LEN)

enum crypto_result {
    CRYPTO_OK = 0,
    CRYPTO_EIO = -1,       /* the key file cannot be read or created (errno in the message) */
    CRYPTO_EPERM = -2,     /* key file readable by group or others, or not a regular file */
    CRYPTO_ESIZE = -3,     /* key file is not exactly CRYPTO_KEY_LEN bytes */
    CRYPTO_EAUTH = -4,     /* tag mismatch: wrong key, tampered blob or other AAD */
    CRYPTO_EFORMAT = -5,   /* blob too short or of an unknown version */
    CRYPTO_EINTERNAL = -6, /* OpenSSL failed (logged) or sizes out of range */
};

/* Loads the key from path, or creates it when the file does not exist: 32 bytes from the
 * CSPRNG, mode 0600, written to a temporary file, fsynced and linked into place, so a crash
 * never leaves a short key file and two processes starting together agree on one key.
 * The directory must exist. An existing file must be a regular file that group and others
 * cannot access and of exactly CRYPTO_KEY_LEN bytes; it is refused otherwise (never fixed:
 * a key that others could read must be replaced by the operator).
 * Returns CRYPTO_OK, or a negative code with *err set to a new message naming the file
 * (caller frees). err may be NULL. */
int crypto_key_load_or_create(const char *path, unsigned char key[CRYPTO_KEY_LEN], char **err);

/* Seals plaintext[0..len) with associated data aad[0..aad_len) (aad may be NULL when aad_len
 * is 0). On CRYPTO_OK *blob is a new buffer of *blob_len = len + CRYPTO_OVERHEAD bytes
 * (caller frees with free()). Otherwise CRYPTO_EINTERNAL and *blob is NULL. */
int crypto_seal(const unsigned char key[CRYPTO_KEY_LEN], const void *plaintext, size_t len,
                const void *aad, size_t aad_len, unsigned char **blob, size_t *blob_len);

/* Opens a blob sealed with the same key and AAD. On CRYPTO_OK *plaintext is a new buffer of
 * *len + 1 bytes, NUL-terminated so a text secret is a C string; release it with
 * crypto_secret_free(*plaintext, *len + 1). Otherwise CRYPTO_EFORMAT or CRYPTO_EAUTH (or
 * CRYPTO_EINTERNAL), nothing is allocated and *plaintext is NULL. */
int crypto_open(const unsigned char key[CRYPTO_KEY_LEN], const void *blob, size_t blob_len,
                const void *aad, size_t aad_len, unsigned char **plaintext, size_t *len);

/* Overwrites len bytes in a way the compiler cannot remove. */
void crypto_wipe(void *p, size_t len);
/* Wipes size bytes at p and frees p (NULL is fine). */
void crypto_secret_free(void *p, size_t size);
/* Wipes a NUL-terminated secret, terminator included, and frees it (NULL is fine). */
void crypto_secret_free_str(char *s);

#endif
