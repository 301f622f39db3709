/* The native thread: GLib's main loop running libpurple headless, fed by a command queue.
 *
 * Other threads only ever touch the queue (under a lock) and wake the loop by making a source
 * ready (g_source_set_ready_time takes the context's lock and wakes it: safe from any thread).
 * g_main_context_invoke would not do: with no thread owning the context it runs the function
 * on the caller's thread.
 *
 * Senders allocate nothing from GLib: GLib 2.74's GSlice (behind GList and g_idle_add's
 * GSource) gives every thread that uses it its own magazines, about 4 kB per session thread
 * (4 MB at 1000 online owners, measured with heaptrack). So the queue is a malloc'd array and
 * the wake-up a source made once by the native thread. */
#include "native/internal.h"

#include <assert.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "lib/util.h"

static struct {
    pthread_mutex_t lock; /* guards running, commands, wake_pending and the init result */
    pthread_cond_t init_cond;
    int running;      /* np_send accepts commands */
    int started;      /* a thread exists (np_stop must join it) */
    int ever_started; /* np_start or np_check_config was called once already */
    int checked;      /* np_check_config ran: np_start must never follow */
    int init_done;
    int init_rc;
    char *init_error;
    struct np_cmd **commands; /* queued, oldest first; the drain takes the whole array */
    size_t ncommands, commands_cap;
    int wake_pending; /* a drain is scheduled */
    GSource *wake;    /* made ready by np_send; lives while running */
    pthread_t thread;
    /* native thread only */
    const struct ferry_config *cfg; /* during init only */
    char *user_dir;
    char *created_dir; /* the topmost directory np_start created: removed if the start fails */
    int core_up;
    GMainLoop *loop;
} np = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .init_cond = PTHREAD_COND_INITIALIZER,
};

/* ---- the event loop, GLib-backed ----
 * Every callback libpurple schedules runs through these wrappers, which first clear the
 * "account being handled" context (see np_context_account). */

struct np_timeout {
    GSourceFunc fn;
    gpointer data;
};

static gboolean timeout_invoke(gpointer data)
{
    struct np_timeout *t = data;
    np_set_context_account(NULL);
    return t->fn(t->data);
}

static guint ev_timeout_add(guint ms, GSourceFunc fn, gpointer data)
{
    struct np_timeout *t = g_new0(struct np_timeout, 1);
    t->fn = fn;
    t->data = data;
    return g_timeout_add_full(G_PRIORITY_DEFAULT, ms, timeout_invoke, t, g_free);
}

static guint ev_timeout_add_seconds(guint seconds, GSourceFunc fn, gpointer data)
{
    struct np_timeout *t = g_new0(struct np_timeout, 1);
    t->fn = fn;
    t->data = data;
    return g_timeout_add_seconds_full(G_PRIORITY_DEFAULT, seconds, timeout_invoke, t, g_free);
}

static gboolean ev_source_remove(guint handle)
{
    return g_source_remove(handle);
}

/* ---- debug output: into our log at debug level only, passwords masked ---- */

static gboolean debug_enabled(PurpleDebugLevel level, const char *category)
{
    return log_get_level() >= LOG_LEVEL_DEBUG;
}

static void debug_print(PurpleDebugLevel level, const char *category, const char *text)
{
    char *masked = np_mask_passwords(text);
    g_strchomp(masked);
    log_debug("purple", "%s: %s", category ? category : "-", masked);
    g_free(masked);
}

static void core_ui_init(void)
{
    /* Every UI op is installed before purple_core_init, in install_ui_ops. */
}

/* ---- every UI op, in one place ---- */

static PurpleCoreUiOps core_ops = {
    .ui_init = core_ui_init, /* nothing left to do once the core is up */
};

static PurpleEventLoopUiOps eventloop_ops = {
    .timeout_add = ev_timeout_add,      /* g_timeout_add through a wrapper */
    .timeout_remove = ev_source_remove, /* g_source_remove */
    .input_add = np_input_add,          /* one epoll set for every socket: loop.c */
    .input_remove = np_input_remove,
    .timeout_add_seconds = ev_timeout_add_seconds, /* coarse timers, fewer wake-ups */
};

static PurpleDebugUiOps debug_ops = {
    .print = debug_print,        /* into lib/log at debug level, passwords masked */
    .is_enabled = debug_enabled, /* formatted only when someone reads it */
};

static PurpleConnectionUiOps connection_ops = {
    .connected = np_on_connected,       /* NP_EV_SIGNED_ON with the display name used */
    .disconnected = np_on_disconnected, /* NP_EV_SIGNED_OFF */
    .report_disconnect_reason = np_on_disconnect_reason, /* NP_EV_CONNECTION_ERROR */
};

static PurpleAccountUiOps account_ops = {
    .request_authorize = np_on_request_authorize,         /* NP_EV_AUTH_REQUEST, kept by id */
    .close_account_request = np_on_close_account_request, /* libpurple withdrew it */
};

static PurpleRequestUiOps request_ops = {
    .request_input = np_on_request_input,   /* a search's directory; others refused */
    .request_choice = np_on_request_choice, /* refused */
    .request_action = np_on_request_action, /* left unanswered (certificates: no) */
    .request_fields = np_on_request_fields, /* a search form: captured as data */
    .request_file = np_on_request_file,     /* refused: no file transfers */
    .request_folder = np_on_request_folder, /* refused */
    .close_request = np_on_close_request,   /* frees what the ops above kept */
};

static PurpleNotifyUiOps notify_ops = {
    .notify_message = np_on_notify_message,             /* a search's error, else logged */
    .notify_formatted = np_on_notify_formatted,         /* logged */
    .notify_searchresults = np_on_notify_searchresults, /* NP_EV_SEARCH_RESULTS */
    .notify_userinfo = np_on_notify_userinfo,           /* NP_EV_USERINFO */
};

static PurpleConversationUiOps conversation_ops = {
    .write_conv = np_on_write_conv, /* IM_RECEIVED, delivery errors, IRC's "no such nick" */
};

static void install_ui_ops(void)
{
    purple_core_set_ui_ops(&core_ops);                  /* core: headless, no UI info */
    purple_eventloop_set_ui_ops(&eventloop_ops);        /* eventloop: GLib's default context */
    purple_debug_set_ui_ops(&debug_ops);                /* debug: our log */
    purple_connections_set_ui_ops(&connection_ops);     /* connection: sign on/off, errors */
    purple_accounts_set_ui_ops(&account_ops);           /* account: authorization requests */
    purple_request_set_ui_ops(&request_ops);            /* request: search forms as data */
    purple_notify_set_ui_ops(&notify_ops);              /* notify: user info, search results */
    purple_conversations_set_ui_ops(&conversation_ops); /* conversation: messages in; typing
                                                           comes from signals */
    /* blist: no UI ops; presence and roster changes come from signals (events.c) */
}

/* ---- init and teardown, on the native thread ---- */

static void set_prefs(void)
{
    /* Nothing of the users' conversations is written to disk, and no idle or auto-away
     * status is made up from the (absent) local user's activity. */
    purple_prefs_set_bool("/purple/logging/log_ims", FALSE);
    purple_prefs_set_bool("/purple/logging/log_chats", FALSE);
    purple_prefs_set_bool("/purple/logging/log_system", FALSE);
    purple_prefs_set_string("/purple/away/idle_reporting", "none");
    purple_prefs_set_bool("/purple/away/away_when_idle", FALSE);
}

/* libpurple up, headless, in np.user_dir, on the calling thread: the native thread for
 * np_start, the caller's for np_check_config. */
static int core_start(char **error)
{
    purple_util_set_user_dir(np.user_dir);
    purple_debug_set_enabled(FALSE); /* libpurple's own stdout printing */
    if (np_loop_init() < 0) {
        *error = xasprintf("cannot create an epoll descriptor: %s", strerror(errno));
        return -1;
    }
    install_ui_ops();
    if (!purple_core_init(NP_UI_ID)) {
        *error = xstrdup("libpurple failed to initialise");
        return -1;
    }
    np.core_up = 1;
    set_prefs();
    purple_set_blist(purple_blist_new());
    purple_blist_load();
    return 0;
}

/* Runs what is due now (libpurple schedules some work with g_idle_add directly, which must
 * not fire once the core is gone): call it before purple_core_quit, never after. */
static void run_due_callbacks(void)
{
    for (int i = 0; i < 100 && g_main_context_iteration(NULL, FALSE); i++)
        ;
}

/* [legacy] checked by the code np_start and np_check_config share: every problem in the list
 * (a new array, caller frees), or NULL when there is none. */
static GPtrArray *legacy_problems(const struct ferry_config *cfg)
{
    GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
    if (np_legacy_load(cfg, problems) == 0 && problems->len == 0) {
        g_ptr_array_free(problems, TRUE);
        return NULL;
    }
    return problems;
}

static void make_wake_source(void);

static int native_init(char **error)
{
    if (core_start(error) < 0)
        return -1;
    np_accounts_init();
    np_accounts_delete_leftovers();
    GPtrArray *problems = legacy_problems(np.cfg);
    if (problems) {
        g_ptr_array_add(problems, NULL);
        char *joined = g_strjoinv("; ", (char **)problems->pdata);
        *error = xstrdup(joined);
        g_free(joined);
        g_ptr_array_free(problems, TRUE);
        return -1;
    }
    np_events_connect_signals();
    np_outbox_init();
    np.loop = g_main_loop_new(NULL, FALSE);
    make_wake_source();
    return 0;
}

static void drop_queued_commands(void)
{
    pthread_mutex_lock(&np.lock);
    struct np_cmd **pending = np.commands;
    size_t n = np.ncommands;
    np.commands = NULL;
    np.ncommands = np.commands_cap = 0;
    pthread_mutex_unlock(&np.lock);
    for (size_t i = 0; i < n; i++)
        np_cmd_free(pending[i]);
    free(pending);
}

static void native_teardown(void)
{
    drop_queued_commands();
    if (np.wake) {
        g_source_destroy(np.wake);
        g_source_unref(np.wake);
        np.wake = NULL;
    }
    if (np.core_up) {
        np_accounts_shutdown();
        run_due_callbacks();
        np_events_disconnect_signals();
        np_outbox_quit();
        purple_core_quit();
        np.core_up = 0;
    }
    np_loop_free();
    np_legacy_free();
    if (np.loop)
        g_main_loop_unref(np.loop);
    np.loop = NULL;
}

static void *native_main(void *arg)
{
    char *error = NULL;
    /* Named so that top -H, perf and the bench tell the threads apart (15 bytes at most). */
    pthread_setname_np(pthread_self(), "ferry-native");
    int rc = native_init(&error);
    pthread_mutex_lock(&np.lock);
    np.init_rc = rc;
    np.init_error = error;
    np.running = rc == 0;
    np.init_done = 1;
    pthread_cond_signal(&np.init_cond);
    pthread_mutex_unlock(&np.lock);
    if (rc == 0)
        g_main_loop_run(np.loop);
    native_teardown();
    return NULL;
}

/* ---- the command queue ---- */

/* The wake source's dispatch: disarm first, so a send after the batch is taken re-arms it. */
static gboolean drain_dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
    g_source_set_ready_time(source, -1);
    pthread_mutex_lock(&np.lock);
    struct np_cmd **batch = np.commands;
    size_t n = np.ncommands;
    np.commands = NULL;
    np.ncommands = np.commands_cap = 0;
    np.wake_pending = 0;
    pthread_mutex_unlock(&np.lock);
    for (size_t i = 0; i < n; i++) {
        np_handle_command(batch[i]);
        np_cmd_free(batch[i]);
    }
    free(batch);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs drain_funcs = {.dispatch = drain_dispatch};

/* On the native thread, before np_send accepts anything. */
static void make_wake_source(void)
{
    np.wake = g_source_new(&drain_funcs, sizeof(GSource));
    g_source_attach(np.wake, NULL);
}

int np_send(struct np_cmd *cmd)
{
    pthread_mutex_lock(&np.lock);
    if (!np.running) {
        pthread_mutex_unlock(&np.lock);
        np_cmd_free(cmd);
        return NP_ESTOPPED;
    }
    if (np.ncommands == np.commands_cap) {
        np.commands_cap = np.commands_cap ? 2 * np.commands_cap : 16;
        np.commands = xrealloc(np.commands, np.commands_cap * sizeof(*np.commands));
    }
    np.commands[np.ncommands++] = cmd;
    if (!np.wake_pending) {
        np.wake_pending = 1;
        g_source_set_ready_time(np.wake, 0);
    }
    pthread_mutex_unlock(&np.lock);
    return NP_OK;
}

static gboolean stop_cb(gpointer data)
{
    np_accounts_shutdown();
    g_main_loop_quit(np.loop);
    return G_SOURCE_REMOVE;
}

/* ---- start and stop, from the caller's thread ---- */

static int make_private_dir(const char *path, char **error)
{
    if (g_mkdir_with_parents(path, 0700) < 0 || chmod(path, 0700) < 0) {
        *error = xasprintf("cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* GStreamer would load every plugin it finds (Mesa, LLVM, Vulkan: ~65 MB) when libpurple
 * initialises media: point it at an empty directory and a private registry in np.user_dir. */
static int keep_gstreamer_off(char **error)
{
    char *empty = xasprintf("%s/no-gst-plugins", np.user_dir);
    char *registry = xasprintf("%s/gst-registry.bin", np.user_dir);
    int rc = -1;
    if (make_private_dir(empty, error) < 0)
        goto out;
    setenv("GST_PLUGIN_SYSTEM_PATH_1_0", empty, 1);
    setenv("GST_PLUGIN_PATH_1_0", empty, 1);
    setenv("GST_REGISTRY_1_0", registry, 1);
    rc = 0;
out:
    free(empty);
    free(registry);
    return rc;
}

/* The data directory is made like the store makes it (mode 0700, its parent must exist);
 * what this call creates is remembered, so that a failed start leaves nothing behind. */
static int prepare_dirs(const struct ferry_config *cfg, char **error)
{
    const char *storage = cfg->storage_path ? cfg->storage_path : "/var/lib/ferry";
    np.user_dir = xasprintf("%s/purple", storage);
    if (mkdir(storage, 0700) == 0) {
        log_info(NP_TAG, "created data directory %s", storage);
        np.created_dir = xstrdup(storage);
    } else if (errno != EEXIST) {
        *error = xasprintf("cannot create data directory %s: %s", storage, strerror(errno));
        return -1;
    } else if (access(np.user_dir, F_OK) != 0) {
        np.created_dir = xstrdup(np.user_dir);
    }
    if (make_private_dir(np.user_dir, error) < 0)
        return -1;
    return keep_gstreamer_off(error);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (remove(path) != 0)
        log_warn(NP_TAG, "cannot remove %s", path);
    return 0; /* remove what can be removed */
}

/* Removes a directory this process created, with everything in it (symbolic links are
 * removed, never followed). */
static void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void reset_state(void)
{
    free(np.init_error);
    free(np.user_dir);
    free(np.created_dir);
    np.init_error = NULL;
    np.user_dir = NULL;
    np.created_dir = NULL;
    np.init_done = np.init_rc = np.started = np.running = 0;
    np.cfg = NULL;
}

int np_start(const struct ferry_config *cfg, char **error)
{
    *error = NULL;
    /* np_check_config is for a process that exits right after (ferry --check). */
    assert(!np.checked);
    /* libpurple cannot be initialised a second time in one process (plugins keep state
     * across purple_core_quit). */
    if (np.ever_started) {
        *error = xstrdup("libpurple can be started only once per process");
        return -1;
    }
    np.ever_started = 1;
    if (prepare_dirs(cfg, error) < 0)
        goto fail;
    np.cfg = cfg;
    np.init_done = 0;
    if (pthread_create(&np.thread, NULL, native_main, NULL) != 0)
        fatalx(NP_TAG, "cannot create the native thread");
    np.started = 1;
    pthread_mutex_lock(&np.lock);
    while (!np.init_done)
        pthread_cond_wait(&np.init_cond, &np.lock);
    int rc = np.init_rc;
    pthread_mutex_unlock(&np.lock);
    if (rc == 0) {
        log_info(NP_TAG, "libpurple %s ready, protocol %s, files in %s", purple_core_get_version(),
                 np.cfg->legacy_protocol, np.user_dir);
        np.cfg = NULL;
        return 0;
    }
    pthread_join(np.thread, NULL);
    *error = np.init_error;
    np.init_error = NULL;
fail:
    if (np.created_dir)
        remove_tree(np.created_dir);
    reset_state();
    return -1;
}

void np_stop(void)
{
    pthread_mutex_lock(&np.lock);
    int was_running = np.running;
    np.running = 0;
    pthread_mutex_unlock(&np.lock);
    if (!np.started)
        return;
    if (was_running)
        g_idle_add(stop_cb, NULL);
    pthread_join(np.thread, NULL);
    reset_state();
}

const char *np_protocol_name(void)
{
    return np.started ? np_legacy_protocol_name() : NULL;
}

/* ---- ferry --check ---- */

/* The problems as a new malloc'd array of malloc'd strings (NULL when there is none). */
static char **export_problems(GPtrArray *problems, size_t *count)
{
    *count = problems ? problems->len : 0;
    if (*count == 0)
        return NULL;
    char **out = xcalloc(*count, sizeof(*out));
    for (size_t i = 0; i < *count; i++)
        out[i] = xstrdup(g_ptr_array_index(problems, i));
    return out;
}

int np_check_config(const struct ferry_config *cfg, char ***problems, size_t *count)
{
    char *tmpl = xasprintf("%s/ferry-check-XXXXXX", g_get_tmp_dir());
    char *error = NULL;
    GPtrArray *found = NULL;
    /* libpurple comes up once per process, and np_start must never follow this. */
    assert(!np.ever_started);
    np.ever_started = np.checked = 1;
    if (mkdtemp(tmpl) == NULL) {
        error = xasprintf("cannot create a directory in %s: %s", g_get_tmp_dir(), strerror(errno));
        goto out;
    }
    np.user_dir = xstrdup(tmpl);
    if (keep_gstreamer_off(&error) < 0 || core_start(&error) < 0)
        goto out;
    found = legacy_problems(cfg);
out:
    if (error) {
        found = g_ptr_array_new_with_free_func(g_free);
        g_ptr_array_add(found, g_strdup_printf("[legacy] protocol: cannot be checked: %s", error));
    }
    if (np.core_up) {
        run_due_callbacks();
        purple_core_quit();
        np.core_up = 0;
    }
    np_loop_free();
    np_legacy_free();
    if (np.user_dir)
        remove_tree(np.user_dir);
    *problems = export_problems(found, count);
    if (found)
        g_ptr_array_free(found, TRUE);
    free(error);
    free(tmpl);
    reset_state();
    return *count ? -1 : 0;
}
