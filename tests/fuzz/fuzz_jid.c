/* libFuzzer target for lib/jid: arbitrary bytes as a JID (parsing must be idempotent: the
 * normalized form parses back to an equal JID), and as a legacy name (escaping must round-trip
 * exactly, and a node made from it must be a valid node). Any violation aborts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/jid.h"
#include "lib/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_parse(const char *s)
{
    jid_t *j = jid_parse(s);
    jid_t *again;

    if (!j)
        return;
    again = jid_parse(jid_full(j));
    if (!again || !jid_equal(j, again) || strcmp(jid_full(j), jid_full(again)) != 0)
        abort();
    if (!jid_bare_equal(j, again) || strcmp(jid_bare(j), jid_bare(again)) != 0)
        abort();
    jid_free(again);
    again = jid_new(jid_node(j), jid_domain(j), jid_resource(j));
    if (!again || !jid_equal(j, again))
        abort();
    jid_free(again);
    jid_free(j);
}

static void check_escape(const char *s)
{
    char *e = jid_escape_node(s);
    char *u, *node;

    if (!e) /* invalid UTF-8: every function refuses it */
        return;
    u = jid_unescape_node(e);
    if (!u || strcmp(u, s) != 0)
        abort();
    node = jid_node_from_legacy(s);
    if (node) {
        jid_t *j = jid_new(node, "example.com", NULL);
        if (!j || strcmp(jid_node(j), node) != 0)
            abort();
        jid_free(j);
    }
    free(node);
    free(u);
    free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A NUL-terminated copy: the API takes C strings, so an embedded NUL ends the input. */
    char *s = xmalloc(size + 1);

    memcpy(s, data, size);
    s[size] = '\0';
    check_parse(s);
    check_escape(s);
    free(s);
    return 0;
}
