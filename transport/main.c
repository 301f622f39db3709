/* ferry: the process. Reads the configuration, sets up logging and signals, and runs the
 * component thread: one poll loop over the link to the XMPP server, the outbound queue and a
 * signalfd. SIGTERM/SIGINT close the stream and exit 0; SIGHUP reopens the log file; a
 * secret the server refuses at first start exits 1. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "bridge/bridge.h"
#include "lib/config.h"
#include "lib/log.h"
#include "transport/component.h"
#include "transport/router.h"
#include "transport/service.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "unknown"
#endif

#define TAG "main"
#define EXIT_USAGE 2
#define SHUTDOWN_LINGER_MS 3000 /* how long a stop waits for the server to take our goodbye */

struct options {
    const char *config;
    int check;
};

/* The component thread's objects, shared as the callbacks' context. */
struct app {
    component_t *component;
    router_t *router;
    bridge_t *bridge;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: ferry -c FILE          run in the foreground\n"
                 "       ferry --check -c FILE  check the configuration and exit\n"
                 "       ferry --version\n"
                 "       ferry --help\n");
}

/* 0 to run; otherwise the exit status (after --help or --version, or a usage error) + 1. */
static int parse_args(int argc, char **argv, struct options *opt)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":c:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            opt->config = optarg;
            break;
        case 'k':
            opt->check = 1;
            break;
        case 'V':
            printf("ferry %s\n", FERRY_VERSION);
            return EXIT_SUCCESS + 1;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS + 1;
        default:
            fprintf(stderr, "ferry: %s '%s'\n",
                    ch == ':' ? "missing argument for" : "unknown option", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE + 1;
        }
    }
    if (optind != argc || opt->config == NULL) {
        if (optind != argc)
            fprintf(stderr, "ferry: unexpected argument '%s'\n", argv[optind]);
        else
            fprintf(stderr, "ferry: -c FILE is required\n");
        usage(stderr);
        return EXIT_USAGE + 1;
    }
    return 0;
}

/* Loads the configuration and prints every problem on stderr. 0 when it is valid. */
static int load_config(const char *path, struct ferry_config *cfg)
{
    struct config_errors errors = {0};
    int rc = config_load(path, cfg, &errors);
    for (size_t i = 0; i < errors.count; i++)
        fprintf(stderr, "ferry: %s\n", errors.messages[i]);
    config_errors_free(&errors);
    return rc;
}

/* One problem line on stderr, with the component secret masked: a [legacy] value is echoed
 * in the protocol's problems, and the secret must never be, whatever key it was put under. */
static void print_problem(const char *path, const char *problem, const char *secret)
{
    const char *hit;
    fprintf(stderr, "ferry: %s: ", path);
    while (secret && *secret && (hit = strstr(problem, secret)) != NULL) {
        fprintf(stderr, "%.*s****", (int)(hit - problem), problem);
        problem = hit + strlen(secret);
    }
    fprintf(stderr, "%s\n", problem);
}

/* --check, once the file itself is valid: [legacy] against what libpurple declares. Prints
 * every problem; 0 when there is none. This process must exit afterwards (see
 * bridge_check_config). */
static int check_protocol(const char *path, const struct ferry_config *cfg)
{
    char **problems = NULL;
    size_t count = 0;
    int rc = bridge_check_config(cfg, &problems, &count);
    for (size_t i = 0; i < count; i++) {
        print_problem(path, problems[i], cfg->component_secret);
        free(problems[i]);
    }
    free(problems);
    return rc;
}

static int setup_log(const struct ferry_config *cfg)
{
    log_add_secret(cfg->component_secret);
    log_set_level(cfg->log_level);
    if (log_open("ferry", cfg->log_file, cfg->log_syslog) != 0) {
        log_error(TAG, "cannot open the log file %s", cfg->log_file);
        return -1;
    }
    return 0;
}

/* A descriptor that reports SIGTERM, SIGINT and SIGHUP (blocked for normal delivery, which
 * threads started later inherit). SIGPIPE is ignored: a closed socket is an error code. */
static int signal_fd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* 1 when the process should stop. */
static int handle_signals(int fd)
{
    struct signalfd_siginfo si;
    int stop = 0;

    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            if (log_reopen() != 0)
                log_warn(TAG, "SIGHUP: cannot reopen the log file");
            else
                log_info(TAG, "SIGHUP: log reopened");
        } else {
            log_info(TAG, "%s: stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            stop = 1;
        }
    }
    return stop;
}

/* The component's codes are handed to the bridge unchanged: they must mean the same. */
_Static_assert((int)COMPONENT_EINVAL == (int)BRIDGE_SINK_EINVAL &&
                   (int)COMPONENT_EFULL == (int)BRIDGE_SINK_EFULL &&
                   (int)COMPONENT_ECLOSED == (int)BRIDGE_SINK_ECLOSED,
               "bridge sink codes differ from the component's");

static int sink_send(void *ctx, xn_t *stanza)
{
    struct app *app = ctx;
    return component_send(app->component, stanza);
}

static void on_stanza(void *ctx, xn_t *stanza)
{
    struct app *app = ctx;
    router_route(app->router, stanza);
}

/* The router's hooks and the link's events, handed to the bridge. */
static void on_presence(void *ctx, xn_t *stanza)
{
    bridge_presence(((struct app *)ctx)->bridge, stanza);
}

static void on_to_contact(void *ctx, xn_t *stanza)
{
    bridge_to_contact(((struct app *)ctx)->bridge, stanza);
}

static void on_register(void *ctx, xn_t *stanza)
{
    bridge_iq_register(((struct app *)ctx)->bridge, stanza);
}

static void on_search(void *ctx, xn_t *stanza)
{
    bridge_iq_search(((struct app *)ctx)->bridge, stanza);
}

static void on_link_up(void *ctx)
{
    bridge_link_up(((struct app *)ctx)->bridge);
}

static void on_link_down(void *ctx)
{
    bridge_link_down(((struct app *)ctx)->bridge);
}

static void on_drained(void *ctx)
{
    bridge_link_drained(((struct app *)ctx)->bridge);
}

/* The component thread's loop. Returns the exit status. */
static int loop(struct app *app, int sig_fd)
{
    for (;;) {
        struct pollfd fds[3];
        size_t n = component_pollfds(app->component, fds);
        fds[n] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
        /* Only a bad argument is fatal; a signal, a debugger attaching (which can show as
         * the kernel's ERESTART_RESTARTBLOCK) or a passing ENOMEM just means poll again. */
        if (poll(fds, n + 1, component_timeout(app->component)) < 0 && errno != EINTR) {
            if (errno == EFAULT || errno == EINVAL) {
                log_error(TAG, "poll");
                return EXIT_FAILURE;
            }
            log_warn(TAG, "poll failed, polling again");
            continue;
        }
        if ((fds[n].revents & POLLIN) && handle_signals(sig_fd)) {
            /* The owners' goodbye presences are queued before the stream closes. */
            bridge_shutdown(app->bridge);
            component_shutdown(app->component, SHUTDOWN_LINGER_MS);
            return EXIT_SUCCESS;
        }
        if (component_dispatch(app->component, fds, n) == COMPONENT_EFATAL)
            return EXIT_FAILURE;
    }
}

static int run(const struct ferry_config *cfg)
{
    struct app app = {0};
    struct router_sink sink = {sink_send, &app};
    struct bridge_sink bridge_sink = {sink_send, &app};
    struct router_hooks hooks = {.to_contact = on_to_contact,
                                 .presence = on_presence,
                                 .register_iq = on_register,
                                 .search_iq = on_search,
                                 .ctx = &app};
    struct component_events events = {.stanza = on_stanza,
                                      .link_up = on_link_up,
                                      .link_down = on_link_down,
                                      .drained = on_drained,
                                      .ctx = &app};
    char *error = NULL;
    int rc = EXIT_FAILURE;
    int sig_fd = signal_fd();
    service_t *service = service_new(cfg, NULL);

    if (sig_fd < 0) {
        log_error(TAG, "cannot set up signal handling");
        goto done;
    }
    app.component = component_new(cfg, &events, NULL);
    if (app.component == NULL)
        goto done;
    /* After the component: the bridge's sink queues on it. Before the router and the first
     * tick: nothing reaches the bridge until it exists. */
    app.bridge = bridge_new(cfg, &bridge_sink, &error);
    if (app.bridge == NULL) {
        log_errorx(TAG, "%s", error);
        goto done;
    }
    app.router = router_new(cfg->component_jid, service, &sink, &hooks);
    if (app.router == NULL)
        goto done;
    log_info(TAG, "ferry %s starting: %s (%s) via %s:%d", FERRY_VERSION, cfg->component_jid,
             cfg->legacy_protocol, cfg->component_host, cfg->component_port);
    rc = loop(&app, sig_fd);
done:
    /* Registration threads may still answer through the component (dropped once it is shut
     * down), so the bridge goes first. */
    bridge_free(app.bridge);
    free(error);
    component_free(app.component);
    router_free(app.router);
    service_free(service);
    if (sig_fd >= 0)
        close(sig_fd);
    return rc;
}

int main(int argc, char **argv)
{
    struct options opt = {0};
    struct ferry_config cfg;
    int rc = parse_args(argc, argv, &opt);

    if (rc != 0)
        return rc - 1;
    if (load_config(opt.config, &cfg) != 0) {
        fprintf(stderr, "ferry: %s: the configuration is not valid\n", opt.config);
        return EXIT_FAILURE;
    }
    if (opt.check) {
        rc = check_protocol(opt.config, &cfg) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
        if (rc == EXIT_SUCCESS)
            printf("ferry: %s: the configuration is valid\n", opt.config);
        else
            fprintf(stderr, "ferry: %s: the configuration is not valid\n", opt.config);
        config_free(&cfg);
        return rc;
    }
    rc = setup_log(&cfg) == 0 ? run(&cfg) : EXIT_FAILURE;
    log_close();
    config_free(&cfg);
    return rc;
}
