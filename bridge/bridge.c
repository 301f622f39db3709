/* The bridge's core: opening the store and the native thread, and dispatching what transport/
 * hands over to the registration flow and the sessions. */
#include "bridge/internal.h"

#include <stdlib.h>
#include <string.h>

#include "lib/crypto.h"
#include "lib/log.h"
#include "lib/stanza.h"
#include "lib/util.h"
#include "native/native.h"

#define KEY_FILE_NAME "ferry.key"

static struct store *open_store(const struct ferry_config *cfg, char **error)
{
    unsigned char key[CRYPTO_KEY_LEN];
    char *key_path = NULL, *err = NULL;
    struct store *st = NULL;

    if (store_prepare_dir(cfg->storage_path, &err) != 0)
        goto fail;
    key_path = xasprintf("%s/%s", cfg->storage_path, KEY_FILE_NAME);
    if (crypto_key_load_or_create(key_path, key, &err) != 0)
        goto fail;
    st = store_open(cfg->storage_path, key, &err);
fail:
    crypto_wipe(key, sizeof(key));
    free(key_path);
    if (st == NULL)
        *error = err ? err : xstrdup("the store could not be opened");
    return st;
}

bridge_t *bridge_new(const struct ferry_config *cfg, const struct bridge_sink *sink, char **error)
{
    bridge_t *b = xcalloc(1, sizeof(*b));
    b->cfg = cfg;
    b->sink = *sink;
    *error = NULL;

    /* [legacy] is checked first: a bad option must not leave a key file or a database. */
    if (np_start(cfg, error) != 0)
        goto fail;
    b->store = open_store(cfg, error);
    if (b->store == NULL)
        goto fail;
    b->pending = pending_new(b);
    b->sessions = sessions_new(b);
    return b;
fail:
    np_stop(); /* nothing when np_start failed */
    free(b);
    return NULL;
}

int bridge_check_config(const struct ferry_config *cfg, char ***problems, size_t *count)
{
    return np_check_config(cfg, problems, count);
}

void bridge_free(bridge_t *b)
{
    if (b == NULL)
        return;
    register_shutdown(b);
    sessions_free(b->sessions);
    np_stop();
    pending_free(b->pending);
    store_close(b->store);
    free(b);
}

int bridge_send(bridge_t *b, xn_t *stanza)
{
    if (b->pending && pending_keep(b->pending, stanza))
        return 0;
    return b->sink.send(b->sink.ctx, stanza);
}

void bridge_bounce(bridge_t *b, const xn_t *stanza, const char *condition, const char *text)
{
    if (stanza_may_bounce(stanza))
        bridge_send(b, stanza_error(stanza, condition, text));
}

void bridge_link_up(bridge_t *b)
{
    pending_link_up(b->pending); /* what waited goes before anything the probes bring */
    sessions_probe_all(b->sessions);
}

void bridge_link_down(bridge_t *b)
{
    pending_link_down(b->pending);
}

void bridge_link_drained(bridge_t *b)
{
    pending_link_up(b->pending); /* a flush the full queue cut short goes on */
}

void bridge_shutdown(bridge_t *b)
{
    sessions_shutdown(b->sessions);
}

void bridge_iq_register(bridge_t *b, xn_t *iq)
{
    register_iq(b, iq);
}

void bridge_iq_search(bridge_t *b, xn_t *iq)
{
    /* The search runs on the legacy network, in the owner's session (bridge/search.c). */
    sessions_request(b->sessions, iq);
}

void bridge_presence(bridge_t *b, xn_t *presence)
{
    if (register_presence(b, presence))
        return;
    sessions_presence(b->sessions, presence);
}

void bridge_to_contact(bridge_t *b, xn_t *stanza)
{
    sessions_to_contact(b->sessions, stanza);
}
