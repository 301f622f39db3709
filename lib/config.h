/* Ferry's configuration: an INI file (GLib key-file syntax) with the groups [component],
 * [legacy], [registration], [storage], [log] (see conf/ferry.conf for every key).
 *
 * Loading reports every problem at once, each naming its group and key and what is wrong,
 * so `ferry --check` can print them all. Keys have defaults where a sensible one exists. */
#ifndef FERRY_LIB_CONFIG_H
#define FERRY_LIB_CONFIG_H

#include <stddef.h>
#include "lib/log.h"

/* One key of [legacy] that is not one of Ferry's own: handed to the protocol as an account
 * option (validated against the protocol's declared options by native/ at start). */
struct config_option {
    char *key;
    char *value;
};

struct ferry_config {
    /* [component] */
    char *component_jid;    /* required: the transport's domain */
    char *component_host;   /* default 127.0.0.1 */
    int component_port;     /* default 5347 */
    char *component_secret; /* required */
    /* Durations are written in seconds in the file (fractions allowed) and kept in ms. */
    int component_keepalive_ms;     /* keepalive_interval: whitespace ping when idle; default 60 */
    int component_ping_ms;          /* ping_interval: XEP-0199 ping after silence; default 120 */
    int component_ping_timeout_ms;  /* ping_timeout: no answer means a dead link; default 30 */
    int component_reconnect_min_ms; /* reconnect_min: first backoff step; default 1 */
    int component_reconnect_max_ms; /* reconnect_max: backoff cap; default 60 */
    size_t component_max_stanza_bytes; /* max_stanza_size: in and out; default 524288 */

    /* [legacy] */
    char *legacy_protocol; /* required: libpurple protocol id, e.g. prpl-irc */
    char *legacy_name;     /* default: derived from the protocol ("IRC") */
    char *legacy_server;   /* required */
    int legacy_port;       /* default 0: the protocol's default */
    struct config_option *legacy_options;
    size_t legacy_option_count;
    double legacy_login_rate;      /* login_rate: logins per second, process-wide; default 5 */
    int legacy_login_timeout_ms;   /* login_timeout: default 30 */
    int legacy_reconnect_min_ms;   /* reconnect_min: default 5 */
    int legacy_reconnect_max_ms;   /* reconnect_max: default 300 */
    int legacy_request_timeout_ms; /* request_timeout: search and user info; default 30 */
    /* early_presence_timeout: how long presence for contacts that arrives before the legacy
     * sign-on is kept for replay; default 120 */
    int legacy_early_presence_ms;

    /* [registration] */
    int registration_enabled; /* default true */
    char **allowed_domains;   /* empty: any domain */
    size_t allowed_domain_count;
    int registration_timeout_ms; /* timeout: the credential check by legacy login; default 30 */

    /* [storage] */
    char *storage_path; /* default /var/lib/ferry */

    /* [log] */
    enum log_level log_level; /* default info */
    char *log_file;           /* default NULL: stderr */
    int log_syslog;           /* default false */
};

/* The list of problems found while loading. */
struct config_errors {
    char **messages; /* each "[group] key: what is wrong" */
    size_t count;
};

/* Loads path into *cfg (which the call initializes). Returns 0 when the file is valid, -1 when
 * it is not; every problem is added to *errors either way (caller frees with
 * config_errors_free). On -1, *cfg is freed already. */
int config_load(const char *path, struct ferry_config *cfg, struct config_errors *errors);
/* The same from a string in memory (for tests and fuzzing); origin names it in messages. */
int config_load_data(const char *data, size_t len, const char *origin, struct ferry_config *cfg,
                     struct config_errors *errors);
void config_free(struct ferry_config *cfg);
void config_errors_free(struct config_errors *errors);

/* 1 when registrations from this XMPP domain are allowed by [registration], else 0. */
int config_domain_allowed(const struct ferry_config *cfg, const char *domain);
/* The value of a [legacy] account option, or NULL. */
const char *config_legacy_option(const struct ferry_config *cfg, const char *key);

#endif
