/* Logging: levels, a subsystem tag, timestamps, printf-format checking.
 * Goes to stderr by default, to a file ([log] file) or to syslog ([log] syslog = true).
 *
 * Secrets never reach the log: code never passes a password, component secret or handshake
 * digest to these functions, and as a second line of defence every string registered with
 * log_add_secret() is masked as "****" in any line before it is written. */
#ifndef FERRY_LIB_LOG_H
#define FERRY_LIB_LOG_H

#include <stdarg.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Where the log goes. file NULL and use_syslog 0: stderr. Returns 0, or -1 when the file
 * cannot be opened (errno set; the log then stays on stderr). */
int log_open(const char *ident, const char *file, int use_syslog);
/* Reopens the log file (after rotation, on SIGHUP). 0 on success, -1 on failure. */
int log_reopen(void);
void log_close(void);

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; 0 on success, -1 when unknown. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

/* Registers a string that must never appear in the log (copied; empty strings ignored). */
void log_add_secret(const char *secret);
/* Forgets every registered secret (for tests and shutdown). */
void log_clear_secrets(void);

/* Writes one line if level is enabled. tag names the subsystem ("component", "native", ...). */
void log_write(enum log_level level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vwrite(enum log_level level, const char *tag, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* log_warn and log_error append ": strerror(errno)"; the x forms do not. */
void log_error(const char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_errorx(const char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_warn(const char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_warnx(const char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_info(const char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_debug(const char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Log at error level and exit(1). fatal appends strerror(errno), fatalx does not. */
void fatal(const char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void fatalx(const char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Test hook: when set, every line that would be written is passed here instead (already
 * formatted and masked, without trailing newline). NULL restores normal output. */
typedef void (*log_sink_fn)(enum log_level level, const char *line, void *ctx);
void log_set_sink(log_sink_fn sink, void *ctx);

#endif
