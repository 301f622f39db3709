/* libpurple's socket watches on one epoll set, seen by GLib as a single source.
 *
 * Why: with one GIOChannel watch per socket, every iteration of the native thread's main loop
 * prepared, polled and checked every online owner's IRC connection (perf at 100 owners: about
 * half of the native thread's CPU in g_main_context_prepare/check and poll(), growing with the
 * number of owners). With epoll GLib polls one descriptor and we only visit the ready ones.
 *
 * Level-triggered, as poll() was. Several watches may share a descriptor (libpurple adds a
 * write watch next to the read one while a send is pending): the descriptor is registered
 * once with the union of their conditions. A callback may add or remove any watch, its own
 * included: dispatch looks every handle up again before calling it. Native thread only. */
#include "native/internal.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

struct np_input {
    int fd;
    PurpleInputCondition cond;
    PurpleInputFunction fn;
    gpointer data;
};

struct np_fd {
    guint *handles; /* the watches on this descriptor */
    size_t n;
    uint32_t events; /* registered with epoll */
};

static struct {
    int epfd; /* -1 until the first watch */
    GSource *source;
    GHashTable *inputs; /* handle -> struct np_input */
    GHashTable *fds;    /* fd -> struct np_fd */
    guint next_handle;
} lp = {.epfd = -1};

static void free_fd(gpointer p)
{
    struct np_fd *f = p;
    g_free(f->handles);
    g_free(f);
}

/* Registers fd with the union of its watches' conditions, or drops it when none is left. */
static void update_fd(int fd, struct np_fd *f)
{
    uint32_t events = 0;
    for (size_t i = 0; i < f->n; i++) {
        struct np_input *in = g_hash_table_lookup(lp.inputs, GUINT_TO_POINTER(f->handles[i]));
        events |= (in->cond & PURPLE_INPUT_READ) ? EPOLLIN : 0;
        events |= (in->cond & PURPLE_INPUT_WRITE) ? EPOLLOUT : 0;
    }
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (f->n == 0) {
        /* Fails harmlessly when the descriptor was closed first (epoll forgot it then). */
        epoll_ctl(lp.epfd, EPOLL_CTL_DEL, fd, NULL);
        g_hash_table_remove(lp.fds, GINT_TO_POINTER(fd));
        return;
    }
    if (events == f->events)
        return;
    if (epoll_ctl(lp.epfd, f->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0) {
        /* The kernel forgot a descriptor closed (and reused) before its watch was removed:
         * ENOENT, add it; or still knows one we dropped: EEXIST, modify it. */
        int retry = errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        if ((errno != ENOENT && errno != EEXIST) || epoll_ctl(lp.epfd, retry, fd, &ev) < 0)
            log_warn(NP_TAG, "cannot watch descriptor %d", fd);
    }
    f->events = events;
}

/* Calls each watch on fd whose condition is met, as GLib's watch did. */
static void dispatch_fd(int fd, uint32_t revents)
{
    struct np_fd *f = g_hash_table_lookup(lp.fds, GINT_TO_POINTER(fd));
    if (!f)
        return;
    /* Callbacks may change f->handles: work on a copy, and look each handle up again. */
    size_t n = f->n;
    guint *handles = g_memdup2(f->handles, n * sizeof(*handles));
    int errs = (revents & (EPOLLERR | EPOLLHUP)) != 0;
    for (size_t i = 0; i < n; i++) {
        struct np_input *in = g_hash_table_lookup(lp.inputs, GUINT_TO_POINTER(handles[i]));
        if (!in || in->fd != fd)
            continue;
        int pc = 0;
        if ((in->cond & PURPLE_INPUT_READ) && ((revents & EPOLLIN) || errs))
            pc |= PURPLE_INPUT_READ;
        if ((in->cond & PURPLE_INPUT_WRITE) && ((revents & EPOLLOUT) || errs))
            pc |= PURPLE_INPUT_WRITE;
        if (pc == 0)
            continue;
        np_set_context_account(NULL);
        in->fn(in->data, fd, (PurpleInputCondition)pc);
    }
    g_free(handles);
}

static gboolean loop_dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
    struct epoll_event evs[64];
    int n = epoll_wait(lp.epfd, evs, (int)FERRY_ARRAY_LEN(evs), 0);
    for (int i = 0; i < n; i++)
        dispatch_fd(evs[i].data.fd, evs[i].events);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs loop_funcs = {.dispatch = loop_dispatch};

int np_loop_init(void)
{
    if (lp.epfd >= 0)
        return 0;
    lp.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (lp.epfd < 0)
        return -1;
    lp.inputs = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    lp.fds = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, free_fd);
    lp.source = g_source_new(&loop_funcs, sizeof(GSource));
    g_source_add_unix_fd(lp.source, lp.epfd, G_IO_IN);
    g_source_attach(lp.source, NULL);
    return 0;
}

guint np_input_add(gint fd, PurpleInputCondition cond, PurpleInputFunction fn, gpointer data)
{
    if (lp.epfd < 0)
        return 0; /* np_loop_init failed and core_start refused to go on: never here */
    struct np_input *in = g_new0(struct np_input, 1);
    in->fd = fd;
    in->cond = cond;
    in->fn = fn;
    in->data = data;
    if (++lp.next_handle == 0)
        lp.next_handle = 1; /* 0 means "no watch" to libpurple */
    guint handle = lp.next_handle;
    g_hash_table_insert(lp.inputs, GUINT_TO_POINTER(handle), in);
    struct np_fd *f = g_hash_table_lookup(lp.fds, GINT_TO_POINTER(fd));
    if (!f) {
        f = g_new0(struct np_fd, 1);
        g_hash_table_insert(lp.fds, GINT_TO_POINTER(fd), f);
    }
    f->handles = g_renew(guint, f->handles, f->n + 1);
    f->handles[f->n++] = handle;
    update_fd(fd, f);
    return handle;
}

gboolean np_input_remove(guint handle)
{
    struct np_input *in =
        lp.inputs ? g_hash_table_lookup(lp.inputs, GUINT_TO_POINTER(handle)) : NULL;
    if (!in)
        return FALSE;
    int fd = in->fd;
    struct np_fd *f = g_hash_table_lookup(lp.fds, GINT_TO_POINTER(fd));
    for (size_t i = 0; i < f->n; i++) {
        if (f->handles[i] == handle) {
            f->handles[i] = f->handles[--f->n];
            break;
        }
    }
    g_hash_table_remove(lp.inputs, GUINT_TO_POINTER(handle));
    update_fd(fd, f);
    return TRUE;
}

void np_loop_free(void)
{
    if (lp.epfd < 0)
        return;
    g_source_destroy(lp.source);
    g_source_unref(lp.source);
    g_hash_table_destroy(lp.inputs);
    g_hash_table_destroy(lp.fds);
    close(lp.epfd);
    lp.epfd = -1;
    lp.source = NULL;
    lp.inputs = lp.fds = NULL;
}
