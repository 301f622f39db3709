/* Logging with levels, subsystem tags and timestamps; secrets are masked before any write. */
#include "lib/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>

#define LOG_LINE_MAX 8192
#define LOG_SECRETS_MAX 32
#define MASK_TEXT "****"

static struct {
    pthread_mutex_t lock; /* guards everything below and serializes writes */
    enum log_level level;
    FILE *file; /* NULL: stderr */
    char *file_path;
    int use_syslog;
    char *secrets[LOG_SECRETS_MAX];
    size_t secret_count;
    log_sink_fn sink;
    void *sink_ctx;
} logger = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .level = LOG_LEVEL_INFO,
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_open(const char *ident, const char *file, int use_syslog)
{
    int rc = 0;
    pthread_mutex_lock(&logger.lock);
    logger.use_syslog = use_syslog;
    if (use_syslog)
        openlog(ident ? ident : "ferry", LOG_PID, LOG_DAEMON);
    free(logger.file_path);
    logger.file_path = file ? strdup(file) : NULL;
    if (logger.file)
        fclose(logger.file);
    logger.file = NULL;
    if (file) {
        logger.file = fopen(file, "ae");
        if (logger.file)
            setvbuf(logger.file, NULL, _IOLBF, 0);
        else
            rc = -1;
    }
    pthread_mutex_unlock(&logger.lock);
    return rc;
}

int log_reopen(void)
{
    int rc = 0;
    pthread_mutex_lock(&logger.lock);
    if (logger.file_path) {
        FILE *f = fopen(logger.file_path, "ae");
        if (f) {
            setvbuf(f, NULL, _IOLBF, 0);
            if (logger.file)
                fclose(logger.file);
            logger.file = f;
        } else {
            rc = -1; /* keep writing to the old file rather than lose lines */
        }
    }
    pthread_mutex_unlock(&logger.lock);
    return rc;
}

void log_close(void)
{
    pthread_mutex_lock(&logger.lock);
    if (logger.file)
        fclose(logger.file);
    logger.file = NULL;
    free(logger.file_path);
    logger.file_path = NULL;
    if (logger.use_syslog)
        closelog();
    logger.use_syslog = 0;
    pthread_mutex_unlock(&logger.lock);
    log_clear_secrets();
}

void log_set_level(enum log_level level)
{
    pthread_mutex_lock(&logger.lock);
    __atomic_store_n(&logger.level, level, __ATOMIC_RELAXED); /* read without the lock too */
    pthread_mutex_unlock(&logger.lock);
}

enum log_level log_get_level(void)
{
    pthread_mutex_lock(&logger.lock);
    enum log_level level = logger.level;
    pthread_mutex_unlock(&logger.lock);
    return level;
}

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = LOG_LEVEL_WARN;
        return 0;
    }
    return -1;
}

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level < sizeof(level_names) / sizeof(level_names[0]))
        return level_names[level];
    return "?";
}

void log_add_secret(const char *secret)
{
    if (secret == NULL || secret[0] == '\0')
        return;
    pthread_mutex_lock(&logger.lock);
    int known = 0;
    for (size_t i = 0; i < logger.secret_count; i++)
        known |= strcmp(logger.secrets[i], secret) == 0;
    if (!known && logger.secret_count < LOG_SECRETS_MAX) {
        char *copy = strdup(secret);
        if (copy)
            logger.secrets[logger.secret_count++] = copy;
    } else if (!known) {
        /* Never fail open silently: the caller must not log this secret anyway. */
        fprintf(stderr, "log: too many secrets registered; one is not masked\n");
    }
    pthread_mutex_unlock(&logger.lock);
}

void log_clear_secrets(void)
{
    pthread_mutex_lock(&logger.lock);
    for (size_t i = 0; i < logger.secret_count; i++) {
        explicit_bzero(logger.secrets[i], strlen(logger.secrets[i]));
        free(logger.secrets[i]);
    }
    logger.secret_count = 0;
    pthread_mutex_unlock(&logger.lock);
}

/* Replaces every occurrence of each secret in line (in place, never past size bytes). */
static void mask_secrets(char *line, size_t size)
{
    size_t mask_len = strlen(MASK_TEXT);
    for (size_t i = 0; i < logger.secret_count; i++) {
        const char *secret = logger.secrets[i];
        size_t secret_len = strlen(secret);
        char *from = line, *hit;
        /* Search after each mask, so a secret that occurs in the mask cannot loop. */
        while ((hit = strstr(from, secret)) != NULL) {
            size_t offset = (size_t)(hit - line);
            if (offset + mask_len >= size) {
                *hit = '\0';
                break;
            }
            size_t tail = strlen(hit + secret_len);
            if (offset + mask_len + tail + 1 > size)
                tail = size - 1 - offset - mask_len;
            memmove(hit + mask_len, hit + secret_len, tail);
            memcpy(hit, MASK_TEXT, mask_len);
            hit[mask_len + tail] = '\0';
            from = hit + mask_len;
        }
    }
}

static void format_time(char *out, size_t size)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

static void emit(enum log_level level, const char *message)
{
    static const int syslog_priority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    if (logger.sink) {
        logger.sink(level, message, logger.sink_ctx);
    } else if (logger.use_syslog) {
        syslog(syslog_priority[level], "%s", message);
    } else {
        char stamp[40];
        format_time(stamp, sizeof(stamp));
        fprintf(logger.file ? logger.file : stderr, "%s %-5s %s\n", stamp, level_names[level],
                message);
    }
}

static void log_line(enum log_level level, const char *tag, int add_errno, const char *fmt,
                     va_list ap) __attribute__((format(printf, 4, 0)));

static void log_line(enum log_level level, const char *tag, int add_errno, const char *fmt,
                     va_list ap)
{
    /* A filtered level must cost nothing: no formatting, no lock (every session thread logs
     * debug lines per message). The level is read atomically; the check under the lock below
     * stays authoritative. */
    if (level > __atomic_load_n(&logger.level, __ATOMIC_RELAXED))
        return;
    int saved_errno = errno;
    char line[LOG_LINE_MAX];
    int n = snprintf(line, sizeof(line), "[%s] ", tag ? tag : "-");
    size_t used = n > 0 ? (size_t)n : 0;

    vsnprintf(line + used, sizeof(line) - used, fmt, ap);
    if (add_errno) {
        used = strlen(line);
        snprintf(line + used, sizeof(line) - used, ": %s", strerror(saved_errno));
    }
    /* One line per call: a newline inside a message must not forge a second entry. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';

    pthread_mutex_lock(&logger.lock);
    if (level <= logger.level) {
        mask_secrets(line, sizeof(line));
        emit(level, line);
    }
    pthread_mutex_unlock(&logger.lock);
    errno = saved_errno;
}

void log_vwrite(enum log_level level, const char *tag, const char *fmt, va_list ap)
{
    log_line(level, tag, 0, fmt, ap);
}

void log_write(enum log_level level, const char *tag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(level, tag, 0, fmt, ap);
    va_end(ap);
}

#define LOG_FN(name, level, add_errno)                                                             \
    void name(const char *tag, const char *fmt, ...)                                               \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_line(level, tag, add_errno, fmt, ap);                                                  \
        va_end(ap);                                                                                \
    }

LOG_FN(log_error, LOG_LEVEL_ERROR, 1)
LOG_FN(log_errorx, LOG_LEVEL_ERROR, 0)
LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)

void fatal(const char *tag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(LOG_LEVEL_ERROR, tag, 1, fmt, ap);
    va_end(ap);
    exit(1);
}

void fatalx(const char *tag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(LOG_LEVEL_ERROR, tag, 0, fmt, ap);
    va_end(ap);
    exit(1);
}

void log_set_sink(log_sink_fn sink, void *ctx)
{
    pthread_mutex_lock(&logger.lock);
    logger.sink = sink;
    logger.sink_ctx = ctx;
    pthread_mutex_unlock(&logger.lock);
}
