/* Ferry's configuration reader.
 *
 * The syntax is GLib's key-file syntax as operators write it: "[group]" lines, "key = value"
 * lines, blank lines and '#' comments. We read it ourselves instead of through GKeyFile
 * because GKeyFile stops at the first syntax error, names no line number, quotes the broken
 * line (which may hold the secret) and keeps a trailing "# comment" as part of the value,
 * while `ferry --check` must list every problem and the documented example has such comments.
 *
 * Rules: a '#' at the start of a value or after a blank begins a comment, so a value cannot
 * contain " #". Values are taken literally (no quotes, no escapes) without surrounding
 * blanks. The file is UTF-8 (an initial byte-order mark is skipped) without control
 * characters other than tab.
 *
 * Two passes: the first splits the text into entries in line order (a key and its value, or
 * a syntax problem), the second checks each entry against the table of known keys. Every
 * value of [component] secret is known before any message quotes a value, so no message can
 * echo the secret. */
#include "lib/config.h"

#include <errno.h>
#include <glib.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

#define MAX_FILE_BYTES (1024 * 1024)          /* a config is a page or two; more is a wrong file */
#define MAX_NAME_ECHO 64                      /* longer group names are not quoted back */
#define MIN_STANZA_BYTES 1024                 /* below this, ordinary stanzas would be refused */
#define MAX_STANZA_BYTES (64UL * 1024 * 1024) /* keeps per-stanza memory bounded */
#define MAX_LOGIN_RATE 1000.0
#define MAX_SECRETS 4 /* values of [component] secret hidden from messages */

enum kind {
    K_TEXT,     /* any non-empty text */
    K_WORD,     /* non-empty, no blanks: host names, protocol ids */
    K_DOMAIN,   /* a domain name: no blanks, '@', '/' or ',' */
    K_SECRET,   /* non-empty; never quoted in a message */
    K_OPT_PATH, /* empty means unset (NULL) */
    K_PORT,     /* 1..65535 */
    K_PORT0,    /* 0..65535, 0 meaning the protocol's default */
    K_DURATION, /* seconds > 0 with fractions, kept as int milliseconds */
    K_BYTES,    /* size_t in MIN_STANZA_BYTES..MAX_STANZA_BYTES */
    K_RATE,     /* double in (0, MAX_LOGIN_RATE] */
    K_BOOL,
    K_DOMAINS, /* a list of domain names; empty means any */
    K_LEVEL,
};

struct key_spec {
    const char *group;
    const char *key;
    enum kind kind;
    size_t offset; /* of the field in struct ferry_config */
    int required;
};

#define F(field) offsetof(struct ferry_config, field)
static const struct key_spec specs[] = {
    {"component", "jid", K_DOMAIN, F(component_jid), 1},
    {"component", "host", K_WORD, F(component_host), 0},
    {"component", "port", K_PORT, F(component_port), 0},
    {"component", "secret", K_SECRET, F(component_secret), 1},
    {"component", "keepalive_interval", K_DURATION, F(component_keepalive_ms), 0},
    {"component", "ping_interval", K_DURATION, F(component_ping_ms), 0},
    {"component", "ping_timeout", K_DURATION, F(component_ping_timeout_ms), 0},
    {"component", "reconnect_min", K_DURATION, F(component_reconnect_min_ms), 0},
    {"component", "reconnect_max", K_DURATION, F(component_reconnect_max_ms), 0},
    {"component", "max_stanza_size", K_BYTES, F(component_max_stanza_bytes), 0},
    {"legacy", "protocol", K_WORD, F(legacy_protocol), 1},
    {"legacy", "name", K_TEXT, F(legacy_name), 0},
    {"legacy", "server", K_WORD, F(legacy_server), 1},
    {"legacy", "port", K_PORT0, F(legacy_port), 0},
    {"legacy", "login_rate", K_RATE, F(legacy_login_rate), 0},
    {"legacy", "login_timeout", K_DURATION, F(legacy_login_timeout_ms), 0},
    {"legacy", "reconnect_min", K_DURATION, F(legacy_reconnect_min_ms), 0},
    {"legacy", "reconnect_max", K_DURATION, F(legacy_reconnect_max_ms), 0},
    {"legacy", "request_timeout", K_DURATION, F(legacy_request_timeout_ms), 0},
    {"legacy", "early_presence_timeout", K_DURATION, F(legacy_early_presence_ms), 0},
    {"registration", "enabled", K_BOOL, F(registration_enabled), 0},
    {"registration", "allowed_domains", K_DOMAINS, F(allowed_domains), 0},
    {"registration", "timeout", K_DURATION, F(registration_timeout_ms), 0},
    {"storage", "path", K_TEXT, F(storage_path), 0},
    {"log", "level", K_LEVEL, F(log_level), 0},
    {"log", "file", K_OPT_PATH, F(log_file), 0},
    {"log", "syslog", K_BOOL, F(log_syslog), 0},
};
#undef F

static const char *const groups[] = {"component", "legacy", "registration", "storage", "log"};

/* Human names shown in discovery for the protocols Debian's libpurple ships. */
static const struct {
    const char *id;
    const char *name;
} protocol_names[] = {
    {"prpl-irc", "IRC"},       {"prpl-jabber", "XMPP"},      {"prpl-simple", "SIMPLE"},
    {"prpl-gg", "Gadu-Gadu"},  {"prpl-novell", "GroupWise"}, {"prpl-meanwhile", "Sametime"},
    {"prpl-zephyr", "Zephyr"}, {"prpl-bonjour", "Bonjour"},
};

enum entry_type { E_PAIR, E_SYNTAX, E_UNKNOWN_GROUP, E_OUTSIDE };

/* One line that matters, in file order. */
struct entry {
    enum entry_type type;
    const char *group;   /* E_PAIR: one of groups[] */
    char *key;           /* E_PAIR, E_OUTSIDE: the key; E_UNKNOWN_GROUP: the group name */
    char *value;         /* E_PAIR */
    const char *problem; /* E_SYNTAX: what is wrong */
    int line;
};

struct loader {
    const char *origin;
    struct ferry_config *cfg;
    struct config_errors *errors;
    struct entry *entries;
    size_t entry_count;
    size_t entry_cap;
    const char *group; /* current group while splitting; NULL before the first */
    int skipping;      /* inside an unknown or broken group: its keys are not reported */
    const char *secrets[MAX_SECRETS];
    int seen[FERRY_ARRAY_LEN(specs)]; /* line of each known key, 0 while absent */
    GHashTable *option_lines;         /* [legacy] option key -> first line */
};

static void add_error(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds "origin:line: what" (or "origin: what" when line is 0) to the error list. */
static void add_error(struct loader *ld, int line, const char *fmt, ...)
{
    struct config_errors *errors = ld->errors;
    char *what = NULL;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&what, fmt, ap) < 0)
        fatalx("config", "out of memory formatting a message");
    va_end(ap);
    errors->messages = xrealloc(errors->messages, (errors->count + 1) * sizeof(char *));
    if (line > 0)
        errors->messages[errors->count++] = xasprintf("%s:%d: %s", ld->origin, line, what);
    else
        errors->messages[errors->count++] = xasprintf("%s: %s", ld->origin, what);
    free(what);
}

static int holds_secret(const struct loader *ld, const char *text)
{
    for (size_t i = 0; i < MAX_SECRETS && ld->secrets[i]; i++) {
        if (strstr(text, ld->secrets[i]))
            return 1;
    }
    return 0;
}

/* "[group] key: 'text' what", without quoting a text that contains the secret. */
static void quoted_error(struct loader *ld, const struct entry *e, const char *text,
                         const char *what)
{
    if (holds_secret(ld, text))
        add_error(ld, e->line, "[%s] %s: a value (not shown: it contains the secret) %s", e->group,
                  e->key, what);
    else
        add_error(ld, e->line, "[%s] %s: '%s' %s", e->group, e->key, text, what);
}

static void value_error(struct loader *ld, const struct entry *e, const char *what)
{
    quoted_error(ld, e, e->value, what);
}

/* ---- first pass: lines into entries ---- */

static struct entry *push_entry(struct loader *ld, enum entry_type type, int line)
{
    if (ld->entry_count == ld->entry_cap) {
        ld->entry_cap = ld->entry_cap ? 2 * ld->entry_cap : 32;
        ld->entries = xrealloc(ld->entries, ld->entry_cap * sizeof(*ld->entries));
    }
    struct entry *e = &ld->entries[ld->entry_count++];
    *e = (struct entry){.type = type, .group = ld->group, .line = line};
    return e;
}

static void syntax_error(struct loader *ld, int line, const char *problem)
{
    push_entry(ld, E_SYNTAX, line)->problem = problem;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_blank(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_blank((*s)[*n - 1]))
        (*n)--;
}

static int has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 1;
    }
    return 0;
}

static int is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

static void parse_group(struct loader *ld, const char *s, size_t n, int line)
{
    const char *close = memchr(s, ']', n);
    const char *rest;
    size_t name_len, rest_len;

    /* Keys under a broken or unknown header were not meant for any group we know: the
     * header's own error says enough. */
    ld->group = NULL;
    ld->skipping = 1;
    if (!close) {
        syntax_error(ld, line, "'[' without a closing ']'");
        return;
    }
    name_len = (size_t)(close - s) - 1;
    rest = close + 1;
    rest_len = n - (size_t)(rest - s);
    trim(&rest, &rest_len);
    if (rest_len > 0 && rest[0] != '#') {
        syntax_error(ld, line, "text after the group header");
        return;
    }
    if (name_len == 0 || memchr(s + 1, '[', name_len)) {
        syntax_error(ld, line, "bad group name");
        return;
    }
    for (size_t i = 0; i < FERRY_ARRAY_LEN(groups); i++) {
        if (strlen(groups[i]) == name_len && memcmp(groups[i], s + 1, name_len) == 0) {
            ld->group = groups[i];
            ld->skipping = 0;
            return;
        }
    }
    if (name_len > MAX_NAME_ECHO)
        syntax_error(ld, line, "unknown group with an overlong name");
    else
        push_entry(ld, E_UNKNOWN_GROUP, line)->key = xstrndup(s + 1, name_len);
}

/* Cuts a trailing comment ('#' at the start or after a blank) and surrounding blanks. */
static void clean_value(const char **s, size_t *n)
{
    trim(s, n);
    for (size_t i = 0; i < *n; i++) {
        if ((*s)[i] == '#' && (i == 0 || is_blank((*s)[i - 1]))) {
            *n = i;
            break;
        }
    }
    trim(s, n);
}

static void parse_pair(struct loader *ld, const char *s, size_t n, int line)
{
    size_t k = 0, eq;
    const char *value;
    size_t value_len;
    struct entry *e;

    while (k < n && is_key_char(s[k]))
        k++;
    for (eq = k; eq < n && is_blank(s[eq]); eq++)
        ;
    /* The line itself is never quoted: it may be a mistyped secret. */
    if (eq == n || s[eq] != '=') {
        syntax_error(ld, line, "expected '[group]', 'key = value' or a '#' comment");
        return;
    }
    if (k == 0) {
        syntax_error(ld, line, "'=' without a key before it");
        return;
    }
    if (ld->skipping)
        return;
    value = s + eq + 1;
    value_len = n - eq - 1;
    clean_value(&value, &value_len);
    e = push_entry(ld, ld->group ? E_PAIR : E_OUTSIDE, line);
    e->key = xstrndup(s, k);
    if (ld->group)
        e->value = xstrndup(value, value_len);
}

static void parse_line(struct loader *ld, const char *s, size_t n, int line)
{
    if (n > 0 && s[n - 1] == '\r')
        n--;
    if (!g_utf8_validate_len(s, n, NULL)) {
        syntax_error(ld, line, "not valid UTF-8");
        return;
    }
    if (has_control(s, n)) {
        syntax_error(ld, line, "control character");
        return;
    }
    trim(&s, &n);
    if (n == 0 || s[0] == '#')
        return;
    if (s[0] == '[')
        parse_group(ld, s, n, line);
    else
        parse_pair(ld, s, n, line);
}

static void split_lines(struct loader *ld, const char *data, size_t len)
{
    size_t pos = 0;
    int line = 0;

    /* Some editors start UTF-8 files with a byte-order mark. */
    if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
        pos = 3;
    while (pos < len && line < INT_MAX) {
        const char *start = data + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl ? 1 : 0);
        parse_line(ld, start, n, ++line);
    }
}

/* ---- second pass: entries into the config ---- */

static int find_spec(const char *group, const char *key)
{
    for (size_t i = 0; i < FERRY_ARRAY_LEN(specs); i++) {
        if (strcmp(specs[i].group, group) == 0 && strcmp(specs[i].key, key) == 0)
            return (int)i;
    }
    return -1;
}

static void collect_secrets(struct loader *ld)
{
    size_t n = 0;
    for (size_t i = 0; i < ld->entry_count && n < MAX_SECRETS; i++) {
        const struct entry *e = &ld->entries[i];
        if (e->type == E_PAIR && strcmp(e->group, "component") == 0 &&
            strcmp(e->key, "secret") == 0 && e->value[0])
            ld->secrets[n++] = e->value;
    }
}

static void set_string(char **field, const char *value)
{
    free(*field);
    *field = value[0] ? xstrdup(value) : NULL;
}

static int is_domain(const char *s)
{
    return s[0] && !strpbrk(s, " \t@/,");
}

/* Plain decimal digits, no sign or blanks, at most max (max well below ULONG_MAX / 10). */
static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

/* A plain decimal number such as "30", "0.5" or ".5": no sign, exponent, hex, inf or nan. */
static int parse_decimal(const char *s, double *out)
{
    size_t digits = strspn(s, "0123456789");
    const char *p = s + digits;

    if (*p == '.') {
        size_t frac = strspn(p + 1, "0123456789");
        digits += frac;
        p += 1 + frac;
    }
    if (digits == 0 || *p)
        return -1;
    *out = g_ascii_strtod(s, NULL); /* not strtod: the locale must not change the syntax */
    return isfinite(*out) ? 0 : -1;
}

static void apply_port(struct loader *ld, const struct entry *e, int *field, unsigned long min)
{
    unsigned long v;

    if (parse_uint(e->value, 65535, &v) < 0 || v < min)
        value_error(ld, e,
                    min ? "is not a port number (1-65535)"
                        : "is not a port number (1-65535, or 0 for the protocol's default)");
    else
        *field = (int)v;
}

static void apply_duration(struct loader *ld, const struct entry *e, int *field)
{
    double sec;

    if (parse_decimal(e->value, &sec) < 0 || sec <= 0)
        value_error(ld, e, "is not a duration in seconds (a number > 0, e.g. 30 or 0.5)");
    else if (sec * 1000 > INT_MAX)
        value_error(ld, e, "is too long (at most 2147483 seconds)");
    else if (sec * 1000 < 0.5)
        value_error(ld, e, "is shorter than a millisecond");
    else
        *field = (int)(sec * 1000 + 0.5);
}

static void apply_bytes(struct loader *ld, const struct entry *e, size_t *field)
{
    unsigned long v;

    if (parse_uint(e->value, MAX_STANZA_BYTES, &v) < 0 || v < MIN_STANZA_BYTES)
        value_error(ld, e, "is not a size in bytes (1024-67108864)");
    else
        *field = v;
}

static void apply_rate(struct loader *ld, const struct entry *e, double *field)
{
    double v;

    if (parse_decimal(e->value, &v) < 0 || v <= 0 || v > MAX_LOGIN_RATE)
        value_error(ld, e, "is not a rate per second (a number > 0 and at most 1000, e.g. 0.5)");
    else
        *field = v;
}

static void apply_bool(struct loader *ld, const struct entry *e, int *field)
{
    static const char *const yes[] = {"true", "yes", "1"}, *const no[] = {"false", "no", "0"};

    for (size_t i = 0; i < FERRY_ARRAY_LEN(yes); i++) {
        if (strcasecmp(e->value, yes[i]) == 0) {
            *field = 1;
            return;
        }
        if (strcasecmp(e->value, no[i]) == 0) {
            *field = 0;
            return;
        }
    }
    value_error(ld, e, "is not a boolean (true/false, yes/no, 1/0)");
}

static void apply_level(struct loader *ld, const struct entry *e, enum log_level *field)
{
    if (log_level_parse(e->value, field) < 0)
        value_error(ld, e, "is not a log level (error, warn, info, debug)");
}

/* A list separated by commas and/or blanks, stored lower-case; bad items are reported. */
static void apply_domains(struct loader *ld, const struct entry *e)
{
    struct ferry_config *cfg = ld->cfg;
    char *copy = xstrdup(e->value), *save = NULL;

    for (char *d = strtok_r(copy, ", \t", &save); d; d = strtok_r(NULL, ", \t", &save)) {
        if (!is_domain(d)) {
            quoted_error(ld, e, d, "is not a domain name");
            continue;
        }
        gchar *lower = g_utf8_strdown(d, -1);
        cfg->allowed_domains =
            xrealloc(cfg->allowed_domains, (cfg->allowed_domain_count + 1) * sizeof(char *));
        cfg->allowed_domains[cfg->allowed_domain_count++] = xstrdup(lower);
        g_free(lower);
    }
    free(copy);
}

static void apply_text(struct loader *ld, const struct entry *e, enum kind kind, char **field)
{
    if (kind == K_WORD && strpbrk(e->value, " \t"))
        value_error(ld, e, "must not contain blanks");
    else if (kind == K_DOMAIN && !is_domain(e->value))
        value_error(ld, e, "is not a domain name (no blanks, '@', '/' or ',')");
    else
        set_string(field, e->value);
}

static void apply_known(struct loader *ld, size_t idx, const struct entry *e)
{
    const struct key_spec *sp = &specs[idx];
    void *field = (char *)ld->cfg + sp->offset;

    if (ld->seen[idx]) {
        add_error(ld, e->line, "[%s] %s: set again (first on line %d)", e->group, e->key,
                  ld->seen[idx]);
        return;
    }
    ld->seen[idx] = e->line;
    if (!e->value[0] && sp->kind != K_DOMAINS && sp->kind != K_OPT_PATH) {
        add_error(ld, e->line, "[%s] %s: empty value", e->group, e->key);
        return;
    }
    switch (sp->kind) {
    case K_TEXT:
    case K_WORD:
    case K_DOMAIN:
    case K_SECRET:
    case K_OPT_PATH:
        apply_text(ld, e, sp->kind, field);
        break;
    case K_PORT:
    case K_PORT0:
        apply_port(ld, e, field, sp->kind == K_PORT ? 1 : 0);
        break;
    case K_DURATION:
        apply_duration(ld, e, field);
        break;
    case K_BYTES:
        apply_bytes(ld, e, field);
        break;
    case K_RATE:
        apply_rate(ld, e, field);
        break;
    case K_BOOL:
        apply_bool(ld, e, field);
        break;
    case K_DOMAINS:
        apply_domains(ld, e);
        break;
    case K_LEVEL:
        apply_level(ld, e, field);
        break;
    }
}

/* A [legacy] key that is not Ferry's own: an account option for the protocol. */
static void add_option(struct loader *ld, const struct entry *e)
{
    struct ferry_config *cfg = ld->cfg;
    int first = GPOINTER_TO_INT(g_hash_table_lookup(ld->option_lines, e->key));

    if (first) {
        add_error(ld, e->line, "[legacy] %s: set again (first on line %d)", e->key, first);
        return;
    }
    g_hash_table_insert(ld->option_lines, e->key, GINT_TO_POINTER(e->line));
    cfg->legacy_options = xrealloc(cfg->legacy_options,
                                   (cfg->legacy_option_count + 1) * sizeof(struct config_option));
    cfg->legacy_options[cfg->legacy_option_count++] =
        (struct config_option){.key = xstrdup(e->key), .value = xstrdup(e->value)};
}

static void check_entry(struct loader *ld, const struct entry *e)
{
    int idx;

    switch (e->type) {
    case E_SYNTAX:
        add_error(ld, e->line, "syntax error: %s", e->problem);
        break;
    case E_UNKNOWN_GROUP:
        add_error(ld, e->line,
                  "[%s]: unknown group (known: component, legacy, registration, "
                  "storage, log)",
                  e->key);
        break;
    case E_OUTSIDE:
        add_error(ld, e->line, "%s: key before any [group]", e->key);
        break;
    case E_PAIR:
        idx = find_spec(e->group, e->key);
        if (idx >= 0)
            apply_known(ld, (size_t)idx, e);
        else if (strcmp(e->group, "legacy") == 0)
            add_option(ld, e);
        else
            add_error(ld, e->line, "[%s] %s: unknown key", e->group, e->key);
        break;
    }
}

static void check_required(struct loader *ld)
{
    for (size_t i = 0; i < FERRY_ARRAY_LEN(specs); i++) {
        if (specs[i].required && !ld->seen[i])
            add_error(ld, 0, "[%s] %s: missing, required", specs[i].group, specs[i].key);
    }
}

static void check_backoff(struct loader *ld, const char *group, int min_ms, int max_ms)
{
    int min_line = ld->seen[find_spec(group, "reconnect_min")];
    int max_line = ld->seen[find_spec(group, "reconnect_max")];

    if (min_ms > max_ms)
        add_error(ld, min_line ? min_line : max_line,
                  "[%s] reconnect_min: longer than reconnect_max (%d.%03d s > %d.%03d s)", group,
                  min_ms / 1000, min_ms % 1000, max_ms / 1000, max_ms % 1000);
}

static char *default_name(const char *protocol)
{
    for (size_t i = 0; i < FERRY_ARRAY_LEN(protocol_names); i++) {
        if (strcmp(protocol, protocol_names[i].id) == 0)
            return xstrdup(protocol_names[i].name);
    }
    if (strncmp(protocol, "prpl-", 5) == 0 && protocol[5])
        return xstrdup(protocol + 5);
    return xstrdup(protocol);
}

static void set_defaults(struct ferry_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->component_host = xstrdup("127.0.0.1");
    cfg->component_port = 5347;
    cfg->component_keepalive_ms = 60 * 1000;
    cfg->component_ping_ms = 120 * 1000;
    cfg->component_ping_timeout_ms = 30 * 1000;
    cfg->component_reconnect_min_ms = 1 * 1000;
    cfg->component_reconnect_max_ms = 60 * 1000;
    cfg->component_max_stanza_bytes = 512 * 1024;
    cfg->legacy_port = 0;
    cfg->legacy_login_rate = 5;
    cfg->legacy_login_timeout_ms = 30 * 1000;
    cfg->legacy_reconnect_min_ms = 5 * 1000;
    cfg->legacy_reconnect_max_ms = 300 * 1000;
    cfg->legacy_request_timeout_ms = 30 * 1000;
    cfg->legacy_early_presence_ms = 120 * 1000;
    cfg->registration_enabled = 1;
    cfg->registration_timeout_ms = 30 * 1000;
    cfg->storage_path = xstrdup("/var/lib/ferry");
    cfg->log_level = LOG_LEVEL_INFO;
}

static void loader_free(struct loader *ld)
{
    for (size_t i = 0; i < ld->entry_count; i++) {
        free(ld->entries[i].key);
        free(ld->entries[i].value);
    }
    free(ld->entries);
    g_hash_table_destroy(ld->option_lines);
}

int config_load_data(const char *data, size_t len, const char *origin, struct ferry_config *cfg,
                     struct config_errors *errors)
{
    struct loader ld = {.origin = origin ? origin : "config", .cfg = cfg, .errors = errors};

    memset(errors, 0, sizeof(*errors));
    set_defaults(cfg);
    ld.option_lines = g_hash_table_new(g_str_hash, g_str_equal);
    split_lines(&ld, data, len);
    collect_secrets(&ld);
    for (size_t i = 0; i < ld.entry_count; i++)
        check_entry(&ld, &ld.entries[i]);
    /* Problems of single lines come in line order, then those between keys, then absences. */
    check_backoff(&ld, "component", cfg->component_reconnect_min_ms,
                  cfg->component_reconnect_max_ms);
    check_backoff(&ld, "legacy", cfg->legacy_reconnect_min_ms, cfg->legacy_reconnect_max_ms);
    check_required(&ld);
    if (!cfg->legacy_name && cfg->legacy_protocol)
        cfg->legacy_name = default_name(cfg->legacy_protocol);
    loader_free(&ld);
    if (errors->count == 0)
        return 0;
    config_free(cfg);
    return -1;
}

/* Reads the whole file; -1 with errno set on failure (EFBIG when it is implausibly large). */
static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;
    int saved;

    if (!f)
        return -1;
    buf = xmalloc(MAX_FILE_BYTES + 1);
    n = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    if (ferror(f))
        goto fail;
    if (n > MAX_FILE_BYTES) {
        errno = EFBIG;
        goto fail;
    }
    fclose(f);
    *out = buf;
    *len = n;
    return 0;
fail:
    saved = errno;
    fclose(f);
    free(buf);
    errno = saved;
    return -1;
}

int config_load(const char *path, struct ferry_config *cfg, struct config_errors *errors)
{
    char *data = NULL;
    size_t len = 0;
    int rc;

    if (read_file(path, &data, &len) < 0) {
        struct loader ld = {.origin = path, .errors = errors};
        int saved = errno;
        memset(cfg, 0, sizeof(*cfg));
        memset(errors, 0, sizeof(*errors));
        add_error(&ld, 0, "cannot read: %s", strerror(saved));
        return -1;
    }
    rc = config_load_data(data, len, path, cfg, errors);
    free(data);
    return rc;
}

void config_free(struct ferry_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->component_jid);
    free(cfg->component_host);
    free(cfg->component_secret);
    free(cfg->legacy_protocol);
    free(cfg->legacy_name);
    free(cfg->legacy_server);
    for (size_t i = 0; i < cfg->legacy_option_count; i++) {
        free(cfg->legacy_options[i].key);
        free(cfg->legacy_options[i].value);
    }
    free(cfg->legacy_options);
    for (size_t i = 0; i < cfg->allowed_domain_count; i++)
        free(cfg->allowed_domains[i]);
    free(cfg->allowed_domains);
    free(cfg->storage_path);
    free(cfg->log_file);
    memset(cfg, 0, sizeof(*cfg));
}

void config_errors_free(struct config_errors *errors)
{
    if (!errors)
        return;
    for (size_t i = 0; i < errors->count; i++)
        free(errors->messages[i]);
    free(errors->messages);
    errors->messages = NULL;
    errors->count = 0;
}

int config_domain_allowed(const struct ferry_config *cfg, const char *domain)
{
    int allowed = 0;
    gchar *lower;

    if (cfg->allowed_domain_count == 0)
        return 1;
    if (!domain || !g_utf8_validate(domain, -1, NULL))
        return 0;
    lower = g_utf8_strdown(domain, -1);
    for (size_t i = 0; i < cfg->allowed_domain_count && !allowed; i++)
        allowed = strcmp(lower, cfg->allowed_domains[i]) == 0;
    g_free(lower);
    return allowed;
}

const char *config_legacy_option(const struct ferry_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->legacy_option_count; i++) {
        if (strcmp(cfg->legacy_options[i].key, key) == 0)
            return cfg->legacy_options[i].value;
    }
    return NULL;
}
