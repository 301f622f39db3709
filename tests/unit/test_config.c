/* Unit tests for lib/config: the documented example, defaults, every kind of problem (each
 * reported with its place, all of them at once), legacy options, durations, domains. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/config.h"
#include "lib/util.h"

/* The example of the operator's contract, comments and all. */
static const char example[] =
    "[component]\n"
    "jid = irc.example.org        # the transport's domain on the XMPP server\n"
    "host = 127.0.0.1             # where the XMPP server's component port listens\n"
    "port = 5347\n"
    "secret = change-me           # XEP-0114 shared secret\n"
    "\n"
    "[legacy]\n"
    "protocol = prpl-irc          # libpurple protocol id\n"
    "name = IRC                   # human name shown in discovery\n"
    "server = irc.example.net     # the legacy network's server\n"
    "port = 6667\n"
    "# any further key here is handed to the protocol as an account option (ssl, encoding, ...)\n"
    "\n"
    "[registration]\n"
    "allowed_domains = example.org   # XMPP domains whose users may register; empty means any\n"
    "enabled = true\n"
    "\n"
    "[storage]\n"
    "path = /var/lib/ferry        # data directory: database, key file, libpurple's own files\n"
    "\n"
    "[log]\n"
    "level = info\n";

/* The smallest valid file: only the required keys. */
#define MINIMAL                                                                                    \
    "[component]\njid = irc.localhost\nsecret = s3cret\n"                                          \
    "[legacy]\nprotocol = prpl-irc\nserver = 127.0.0.1\n"

static int load(const char *text, struct ferry_config *cfg, struct config_errors *errors)
{
    return config_load_data(text, strlen(text), "t.conf", cfg, errors);
}

/* Loads text, expects failure with exactly the given messages (NULL-terminated) in order. */
static void expect_errors(const char *text, const char *const *expected)
{
    struct ferry_config cfg;
    struct config_errors errors;
    size_t n = 0;

    assert_int_equal(load(text, &cfg, &errors), -1);
    while (expected[n])
        n++;
    int same = errors.count == n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(errors.messages[i], expected[i]) == 0;
    for (size_t i = 0; !same && i < errors.count; i++)
        print_message("  got: %s\n", errors.messages[i]);
    assert_int_equal(errors.count, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(errors.messages[i], expected[i]);
    /* On failure the config is freed and zeroed already; freeing again is harmless. */
    assert_null(cfg.component_host);
    config_free(&cfg);
    config_errors_free(&errors);
}

/* Loads MINIMAL plus extra, which must be valid; the caller frees cfg. */
static void load_ok(const char *extra, struct ferry_config *cfg)
{
    struct config_errors errors;
    char *text = xasprintf("%s%s", MINIMAL, extra);
    int rc = load(text, cfg, &errors);

    for (size_t i = 0; i < errors.count; i++)
        print_message("  unexpected: %s\n", errors.messages[i]);
    assert_int_equal(rc, 0);
    assert_int_equal(errors.count, 0);
    config_errors_free(&errors);
    free(text);
}

static void test_example(void **state)
{
    struct ferry_config cfg;
    struct config_errors errors;

    assert_int_equal(load(example, &cfg, &errors), 0);
    assert_int_equal(errors.count, 0);
    assert_string_equal(cfg.component_jid, "irc.example.org");
    assert_string_equal(cfg.component_host, "127.0.0.1");
    assert_int_equal(cfg.component_port, 5347);
    assert_string_equal(cfg.component_secret, "change-me");
    assert_string_equal(cfg.legacy_protocol, "prpl-irc");
    assert_string_equal(cfg.legacy_name, "IRC");
    assert_string_equal(cfg.legacy_server, "irc.example.net");
    assert_int_equal(cfg.legacy_port, 6667);
    assert_int_equal(cfg.legacy_option_count, 0);
    assert_null(cfg.legacy_options);
    assert_int_equal(cfg.allowed_domain_count, 1);
    assert_string_equal(cfg.allowed_domains[0], "example.org");
    assert_int_equal(cfg.registration_enabled, 1);
    assert_string_equal(cfg.storage_path, "/var/lib/ferry");
    assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
    assert_null(cfg.log_file);
    assert_int_equal(cfg.log_syslog, 0);
    assert_true(config_domain_allowed(&cfg, "example.org"));
    assert_true(config_domain_allowed(&cfg, "EXAMPLE.Org"));
    assert_false(config_domain_allowed(&cfg, "example.net"));
    assert_false(config_domain_allowed(&cfg, "sub.example.org"));
    config_free(&cfg);
    config_errors_free(&errors);
}

static void test_defaults(void **state)
{
    struct ferry_config cfg;

    load_ok("", &cfg);
    assert_string_equal(cfg.component_jid, "irc.localhost");
    assert_string_equal(cfg.component_secret, "s3cret");
    assert_string_equal(cfg.component_host, "127.0.0.1");
    assert_int_equal(cfg.component_port, 5347);
    assert_int_equal(cfg.component_keepalive_ms, 60000);
    assert_int_equal(cfg.component_ping_ms, 120000);
    assert_int_equal(cfg.component_ping_timeout_ms, 30000);
    assert_int_equal(cfg.component_reconnect_min_ms, 1000);
    assert_int_equal(cfg.component_reconnect_max_ms, 60000);
    assert_int_equal(cfg.component_max_stanza_bytes, 524288);
    assert_string_equal(cfg.legacy_name, "IRC");
    assert_int_equal(cfg.legacy_port, 0);
    assert_true(cfg.legacy_login_rate == 5.0);
    assert_int_equal(cfg.legacy_login_timeout_ms, 30000);
    assert_int_equal(cfg.legacy_reconnect_min_ms, 5000);
    assert_int_equal(cfg.legacy_reconnect_max_ms, 300000);
    assert_int_equal(cfg.legacy_request_timeout_ms, 30000);
    assert_int_equal(cfg.legacy_option_count, 0);
    assert_int_equal(cfg.registration_enabled, 1);
    assert_int_equal(cfg.allowed_domain_count, 0);
    assert_int_equal(cfg.registration_timeout_ms, 30000);
    assert_string_equal(cfg.storage_path, "/var/lib/ferry");
    assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
    assert_null(cfg.log_file);
    assert_int_equal(cfg.log_syslog, 0);
    /* No list: every domain may register. */
    assert_true(config_domain_allowed(&cfg, "anything.example"));
    config_free(&cfg);
}

static void test_every_key_set(void **state)
{
    struct ferry_config cfg;

    load_ok("[component]\nkeepalive_interval = 10\nping_interval = 20\nping_timeout = 5\n"
            "reconnect_min = 2\nreconnect_max = 30\nmax_stanza_size = 65536\n"
            "[legacy]\nname = My IRC\nport = 0\nlogin_rate = 0.5\nlogin_timeout = 45\n"
            "reconnect_min = 10\nreconnect_max = 600\nrequest_timeout = 15\n"
            "[registration]\nenabled = no\ntimeout = 60\n"
            "[storage]\npath = /srv/ferry\n"
            "[log]\nlevel = debug\nfile = /var/log/ferry.log\nsyslog = yes\n",
            &cfg);
    assert_int_equal(cfg.component_keepalive_ms, 10000);
    assert_int_equal(cfg.component_ping_ms, 20000);
    assert_int_equal(cfg.component_ping_timeout_ms, 5000);
    assert_int_equal(cfg.component_reconnect_min_ms, 2000);
    assert_int_equal(cfg.component_reconnect_max_ms, 30000);
    assert_int_equal(cfg.component_max_stanza_bytes, 65536);
    assert_string_equal(cfg.legacy_name, "My IRC");
    assert_int_equal(cfg.legacy_port, 0);
    assert_true(cfg.legacy_login_rate == 0.5);
    assert_int_equal(cfg.legacy_login_timeout_ms, 45000);
    assert_int_equal(cfg.legacy_reconnect_min_ms, 10000);
    assert_int_equal(cfg.legacy_reconnect_max_ms, 600000);
    assert_int_equal(cfg.legacy_request_timeout_ms, 15000);
    assert_int_equal(cfg.legacy_option_count, 0); /* all of these are Ferry's own */
    assert_int_equal(cfg.registration_enabled, 0);
    assert_int_equal(cfg.registration_timeout_ms, 60000);
    assert_string_equal(cfg.storage_path, "/srv/ferry");
    assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
    assert_string_equal(cfg.log_file, "/var/log/ferry.log");
    assert_int_equal(cfg.log_syslog, 1);
    config_free(&cfg);
}

/* An empty [log] file means stderr, like no file at all. */
static void test_empty_log_file(void **state)
{
    struct ferry_config cfg;

    load_ok("[log]\nfile =\n", &cfg);
    assert_null(cfg.log_file);
    config_free(&cfg);
}

static void test_legacy_options(void **state)
{
    struct ferry_config cfg;

    load_ok("[legacy]\nssl = true\nencoding = UTF-8,ISO-8859-1\nport = 6697\n"
            "realname = Ferry bridge   # shown in WHOIS\nusername =\n",
            &cfg);
    assert_int_equal(cfg.legacy_port, 6697);
    assert_int_equal(cfg.legacy_option_count, 4);
    assert_string_equal(cfg.legacy_options[0].key, "ssl");
    assert_string_equal(cfg.legacy_options[0].value, "true");
    assert_string_equal(cfg.legacy_options[1].key, "encoding");
    assert_string_equal(cfg.legacy_options[1].value, "UTF-8,ISO-8859-1");
    assert_string_equal(cfg.legacy_options[2].key, "realname");
    assert_string_equal(cfg.legacy_options[2].value, "Ferry bridge");
    assert_string_equal(cfg.legacy_options[3].key, "username");
    assert_string_equal(cfg.legacy_options[3].value, "");
    assert_string_equal(config_legacy_option(&cfg, "encoding"), "UTF-8,ISO-8859-1");
    assert_string_equal(config_legacy_option(&cfg, "username"), "");
    assert_null(config_legacy_option(&cfg, "port"));
    assert_null(config_legacy_option(&cfg, "protocol"));
    assert_null(config_legacy_option(&cfg, "SSL"));
    config_free(&cfg);
}

static void test_durations(void **state)
{
    struct ferry_config cfg;

    load_ok("[component]\nkeepalive_interval = 0.5\nping_interval = 1.25\nping_timeout = .75\n"
            "reconnect_min = 0.001\nreconnect_max = 2147483\n"
            "[legacy]\nlogin_timeout = 30.\nrequest_timeout = 0.0006\n",
            &cfg);
    assert_int_equal(cfg.component_keepalive_ms, 500);
    assert_int_equal(cfg.component_ping_ms, 1250);
    assert_int_equal(cfg.component_ping_timeout_ms, 750);
    assert_int_equal(cfg.component_reconnect_min_ms, 1);
    assert_int_equal(cfg.component_reconnect_max_ms, 2147483000);
    assert_int_equal(cfg.legacy_login_timeout_ms, 30000);
    assert_int_equal(cfg.legacy_request_timeout_ms, 1); /* rounded to the nearest ms */
    config_free(&cfg);
}

static void test_bad_durations(void **state)
{
    static const char *const expected[] = {
        "t.conf:8: [component] keepalive_interval: '0' is not a duration in seconds "
        "(a number > 0, e.g. 30 or 0.5)",
        "t.conf:9: [component] ping_interval: '-1' is not a duration in seconds "
        "(a number > 0, e.g. 30 or 0.5)",
        "t.conf:10: [component] ping_timeout: '30s' is not a duration in seconds "
        "(a number > 0, e.g. 30 or 0.5)",
        "t.conf:12: [legacy] login_timeout: '1e3' is not a duration in seconds "
        "(a number > 0, e.g. 30 or 0.5)",
        "t.conf:13: [legacy] request_timeout: '0.0004' is shorter than a millisecond",
        "t.conf:15: [registration] timeout: '2147484' is too long (at most 2147483 seconds)",
        "t.conf:16: [registration] timeout: set again (first on line 15)",
        NULL,
    };
    expect_errors(MINIMAL "[component]\nkeepalive_interval = 0\nping_interval = -1\n"
                          "ping_timeout = 30s\n[legacy]\nlogin_timeout = 1e3\n"
                          "request_timeout = 0.0004\n[registration]\ntimeout = 2147484\n"
                          "timeout = .\n",
                  expected);
}

static void test_allowed_domains(void **state)
{
    struct ferry_config cfg;

    load_ok("[registration]\nallowed_domains = Example.ORG, jabber.example.net  other.org,,"
            "\tx.org ,\n",
            &cfg);
    assert_int_equal(cfg.allowed_domain_count, 4);
    assert_string_equal(cfg.allowed_domains[0], "example.org");
    assert_string_equal(cfg.allowed_domains[1], "jabber.example.net");
    assert_string_equal(cfg.allowed_domains[2], "other.org");
    assert_string_equal(cfg.allowed_domains[3], "x.org");
    assert_true(config_domain_allowed(&cfg, "example.org"));
    assert_true(config_domain_allowed(&cfg, "EXAMPLE.ORG"));
    assert_true(config_domain_allowed(&cfg, "Jabber.Example.Net"));
    assert_true(config_domain_allowed(&cfg, "x.org"));
    assert_false(config_domain_allowed(&cfg, "y.org"));
    assert_false(config_domain_allowed(&cfg, "org"));
    assert_false(config_domain_allowed(&cfg, ""));
    assert_false(config_domain_allowed(&cfg, "\xff"));
    config_free(&cfg);

    /* Written but empty: any domain. */
    load_ok("[registration]\nallowed_domains =\n", &cfg);
    assert_int_equal(cfg.allowed_domain_count, 0);
    assert_true(config_domain_allowed(&cfg, "whatever.example"));
    config_free(&cfg);

    /* Non-ASCII names are lower-cased too. */
    load_ok("[registration]\nallowed_domains = \303\211COLE.example\n", &cfg);
    assert_string_equal(cfg.allowed_domains[0], "\303\251cole.example");
    assert_true(config_domain_allowed(&cfg, "\303\211cole.EXAMPLE"));
    config_free(&cfg);
}

static void test_bad_domains(void **state)
{
    static const char *const expected[] = {
        "t.conf:8: [registration] allowed_domains: 'alice@example.org' is not a domain name",
        "t.conf:8: [registration] allowed_domains: 'x/y' is not a domain name",
        NULL,
    };
    expect_errors(MINIMAL "[registration]\nallowed_domains = good.org alice@example.org, x/y\n",
                  expected);
}

static void test_missing_required(void **state)
{
    static const char *const all_missing[] = {
        "t.conf: [component] jid: missing, required",
        "t.conf: [component] secret: missing, required",
        "t.conf: [legacy] protocol: missing, required",
        "t.conf: [legacy] server: missing, required",
        NULL,
    };
    static const char *const no_secret[] = {
        "t.conf: [component] secret: missing, required",
        NULL,
    };
    static const char *const empty_secret[] = {
        "t.conf:3: [component] secret: empty value",
        NULL,
    };
    expect_errors("", all_missing);
    expect_errors("# only a comment\n[log]\nlevel = warn\n", all_missing);
    expect_errors("[component]\njid = a.example\n[legacy]\nprotocol = prpl-irc\n"
                  "server = irc.example.net\n",
                  no_secret);
    expect_errors("[component]\njid = a.example\nsecret =    # no secret given\n"
                  "[legacy]\nprotocol = prpl-irc\nserver = irc.example.net\n",
                  empty_secret);
}

static void test_unknown_group_and_key(void **state)
{
    static const char *const expected[] = {
        "t.conf:8: [component] colour: unknown key",
        "t.conf:9: [paths]: unknown group (known: component, legacy, registration, storage, "
        "log)",
        "t.conf:13: [log] Level: unknown key",
        NULL,
    };
    /* Keys under an unknown group are not reported one by one. */
    expect_errors(MINIMAL "[component]\ncolour = blue\n[paths]\ndata = /tmp\nother = 1\n"
                          "[log]\nLevel = info\n",
                  expected);
}

static void test_wrong_values(void **state)
{
    static const char *const expected[] = {
        "t.conf:2: [component] jid: 'alice@irc.localhost' is not a domain name "
        "(no blanks, '@', '/' or ',')",
        "t.conf:3: [component] port: 'abc' is not a port number (1-65535)",
        "t.conf:4: [component] host: 'my host' must not contain blanks",
        "t.conf:5: [component] max_stanza_size: '100' is not a size in bytes (1024-67108864)",
        "t.conf:9: [legacy] port: '65536' is not a port number (1-65535, or 0 for the "
        "protocol's default)",
        "t.conf:10: [legacy] login_rate: '0' is not a rate per second (a number > 0 and at "
        "most 1000, e.g. 0.5)",
        "t.conf:13: [registration] enabled: 'maybe' is not a boolean (true/false, yes/no, 1/0)",
        "t.conf:15: [log] level: 'loud' is not a log level (error, warn, info, debug)",
        "t.conf:16: [log] syslog: empty value",
        NULL,
    };
    expect_errors("[component]\njid = alice@irc.localhost\nport = abc\nhost = my host\n"
                  "max_stanza_size = 100\nsecret = x\n[legacy]\nprotocol = prpl-irc\n"
                  "port = 65536\nlogin_rate = 0\nserver = s\n[registration]\n"
                  "enabled = maybe\n[log]\nlevel = loud\nsyslog =\n",
                  expected);
}

static void test_ports(void **state)
{
    static const char *const expected[] = {
        "t.conf:8: [component] port: '0' is not a port number (1-65535)",
        "t.conf:10: [legacy] port: '-1' is not a port number (1-65535, or 0 for the protocol's "
        "default)",
        NULL,
    };
    struct ferry_config cfg;

    load_ok("[component]\nport = 65535\n[legacy]\nport = 1\n", &cfg);
    assert_int_equal(cfg.component_port, 65535);
    assert_int_equal(cfg.legacy_port, 1);
    config_free(&cfg);
    expect_errors(MINIMAL "[component]\nport = 0\n[legacy]\nport = -1\n", expected);
}

static void test_booleans(void **state)
{
    static const struct {
        const char *text;
        int value;
    } cases[] = {{"true", 1}, {"false", 0}, {"yes", 1},  {"no", 0},
                 {"1", 1},    {"0", 0},     {"TRUE", 1}, {"No", 0}};
    struct ferry_config cfg;

    for (size_t i = 0; i < FERRY_ARRAY_LEN(cases); i++) {
        char *extra = xasprintf("[registration]\nenabled = %s\n[log]\nsyslog = %s\n", cases[i].text,
                                cases[i].text);
        load_ok(extra, &cfg);
        assert_int_equal(cfg.registration_enabled, cases[i].value);
        assert_int_equal(cfg.log_syslog, cases[i].value);
        config_free(&cfg);
        free(extra);
    }
}

static void test_syntax_errors(void **state)
{
    static const char *const expected[] = {
        "t.conf:1: orphan: key before any [group]",
        "t.conf:3: syntax error: expected '[group]', 'key = value' or a '#' comment",
        "t.conf:4: syntax error: '=' without a key before it",
        "t.conf:5: syntax error: '[' without a closing ']'",
        "t.conf:7: syntax error: text after the group header",
        "t.conf:8: syntax error: bad group name",
        "t.conf:9: syntax error: not valid UTF-8",
        "t.conf:10: syntax error: control character",
        NULL,
    };
    /* Line 6 sits under the broken header of line 5: not reported again. */
    expect_errors("orphan = 1\n[component]\nthis is not a pair\n= value\n[broken\n"
                  "key = under the broken header\n[component] trailing\n[]\nname = \xff\n"
                  "name = a\x7f"
                  "b\n" MINIMAL,
                  expected);
}

/* A NUL byte inside the data is a syntax error of its line, not the end of the text. */
static void test_nul_byte(void **state)
{
    static const char text[] = "[component]\njid = a\0b\nsecret = x\n[legacy]\n"
                               "protocol = prpl-irc\nserver = s\n";
    struct ferry_config cfg;
    struct config_errors errors;

    assert_int_equal(config_load_data(text, sizeof(text) - 1, "t.conf", &cfg, &errors), -1);
    assert_int_equal(errors.count, 2);
    assert_string_equal(errors.messages[0], "t.conf:2: syntax error: not valid UTF-8");
    assert_string_equal(errors.messages[1], "t.conf: [component] jid: missing, required");
    config_errors_free(&errors);
}

/* Several problems of every kind in one file: each is reported; those of single lines in
 * line order, then those between keys, then the missing keys. */
static void test_many_errors_at_once(void **state)
{
    static const char *const expected[] = {
        "t.conf:2: [component] port: 'abc' is not a port number (1-65535)",
        "t.conf:3: syntax error: expected '[group]', 'key = value' or a '#' comment",
        "t.conf:4: [component] nonsense: unknown key",
        "t.conf:5: [component] port: set again (first on line 2)",
        "t.conf:6: [extra]: unknown group (known: component, legacy, registration, storage, "
        "log)",
        "t.conf:14: [legacy] ssl: set again (first on line 13)",
        "t.conf:16: [log] level: 'verbose' is not a log level (error, warn, info, debug)",
        "t.conf:10: [legacy] reconnect_min: longer than reconnect_max (10.000 s > 2.500 s)",
        "t.conf: [component] jid: missing, required",
        "t.conf: [component] secret: missing, required",
        "t.conf: [legacy] server: missing, required",
        NULL,
    };
    expect_errors("[component]\nport = abc\nthis line is wrong\nnonsense = 1\nport = 5347\n"
                  "[extra]\nkey = value\n[legacy]\nprotocol = prpl-irc\nreconnect_min = 10\n"
                  "reconnect_max = 2.5\n# comment\nssl = true\nssl = false\n[log]\n"
                  "level = verbose\n",
                  expected);
}

/* No message may contain the secret, wherever it turns up. */
static void test_secret_never_in_messages(void **state)
{
    static const char *const expected[] = {
        "t.conf:3: [component] port: a value (not shown: it contains the secret) is not a port "
        "number (1-65535)",
        "t.conf:4: syntax error: expected '[group]', 'key = value' or a '#' comment",
        "t.conf:5: [component] secret: set again (first on line 2)",
        "t.conf:6: [component] host: a value (not shown: it contains the secret) must not "
        "contain blanks",
        "t.conf:9: [legacy] port: 'nope' is not a port number (1-65535, or 0 for the "
        "protocol's default)",
        "t.conf:11: syntax error: '[' without a closing ']'",
        "t.conf: [component] jid: missing, required",
        NULL,
    };
    const char *text = "[component]\nsecret = Hunter2-xyz\nport = Hunter2-xyz\n"
                       "secret Hunter2-xyz\nsecret = other\nhost = a Hunter2-xyz b\n[legacy]\n"
                       "protocol = prpl-irc\nport = nope\nserver = s\n[Hunter2-xyz\n";
    struct ferry_config cfg;
    struct config_errors errors;

    expect_errors(text, expected);
    assert_int_equal(load(text, &cfg, &errors), -1);
    for (size_t i = 0; i < errors.count; i++)
        assert_null(strstr(errors.messages[i], "Hunter2"));
    config_errors_free(&errors);
}

static void test_default_names(void **state)
{
    static const char *const cases[][2] = {
        {"prpl-irc", "IRC"},
        {"prpl-jabber", "XMPP"},
        {"prpl-simple", "SIMPLE"},
        {"prpl-gg", "Gadu-Gadu"},
        {"prpl-novell", "GroupWise"},
        {"prpl-meanwhile", "Sametime"},
        {"prpl-zephyr", "Zephyr"},
        {"prpl-bonjour", "Bonjour"},
        {"prpl-eionrobb-discord", "eionrobb-discord"},
        {"custom", "custom"},
    };
    struct ferry_config cfg;
    struct config_errors errors;

    for (size_t i = 0; i < FERRY_ARRAY_LEN(cases); i++) {
        char *text = xasprintf("[component]\njid = t.example\nsecret = x\n[legacy]\n"
                               "protocol = %s\nserver = s\n",
                               cases[i][0]);
        assert_int_equal(load(text, &cfg, &errors), 0);
        assert_string_equal(cfg.legacy_name, cases[i][1]);
        config_free(&cfg);
        config_errors_free(&errors);
        free(text);
    }
}

static void test_file_details(void **state)
{
    struct ferry_config cfg;
    struct config_errors errors;
    /* BOM, CRLF line ends, indentation, blanks around '=', comment lines and a value that
     * holds '#' not after a blank. */
    const char *text = "\xef\xbb\xbf# Ferry\r\n[component]\r\n  jid=irc.localhost\r\n"
                       "\tsecret   =   a#b c   \r\n   # indented comment\r\n"
                       "[legacy]   # group comment\r\nprotocol = prpl-irc\r\nserver = s\r\n"
                       "channel = #ferry\r\nnick = a # b\r\n";

    assert_int_equal(load(text, &cfg, &errors), 0);
    assert_string_equal(cfg.component_jid, "irc.localhost");
    assert_string_equal(cfg.component_secret, "a#b c");
    assert_int_equal(cfg.legacy_option_count, 2);
    assert_string_equal(config_legacy_option(&cfg, "channel"), "");
    assert_string_equal(config_legacy_option(&cfg, "nick"), "a");
    config_free(&cfg);
    config_errors_free(&errors);
}

static void test_load_file(void **state)
{
    char path[] = "/tmp/ferry-test-config-XXXXXX";
    int fd = mkstemp(path);
    struct ferry_config cfg;
    struct config_errors errors;
    char *expected;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, example, strlen(example)), (ssize_t)strlen(example));
    close(fd);
    assert_int_equal(config_load(path, &cfg, &errors), 0);
    assert_int_equal(errors.count, 0);
    assert_string_equal(cfg.component_jid, "irc.example.org");
    config_free(&cfg);
    config_errors_free(&errors);

    /* Messages from a file name it. */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "[bad\n", 5), 5);
    close(fd);
    assert_int_equal(config_load(path, &cfg, &errors), -1);
    assert_int_equal(errors.count, 5);
    expected = xasprintf("%s:1: syntax error: '[' without a closing ']'", path);
    assert_string_equal(errors.messages[0], expected);
    free(expected);
    config_errors_free(&errors);

    unlink(path);
    assert_int_equal(config_load(path, &cfg, &errors), -1);
    assert_int_equal(errors.count, 1);
    expected = xasprintf("%s: cannot read: No such file or directory", path);
    assert_string_equal(errors.messages[0], expected);
    free(expected);
    config_errors_free(&errors);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key_set),
        cmocka_unit_test(test_empty_log_file),
        cmocka_unit_test(test_legacy_options),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_bad_durations),
        cmocka_unit_test(test_allowed_domains),
        cmocka_unit_test(test_bad_domains),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_unknown_group_and_key),
        cmocka_unit_test(test_wrong_values),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_many_errors_at_once),
        cmocka_unit_test(test_secret_never_in_messages),
        cmocka_unit_test(test_default_names),
        cmocka_unit_test(test_file_details),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
