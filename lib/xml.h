/* XML nodes: elements with a namespace, attributes, and children (elements and text, in order).
 *
 * Ownership: a node made by xn_new() or xn_copy() is a root with reference count 1; the caller
 * owns that reference and drops it with xn_unref(). Children belong to their parent and are
 * freed with it; never xn_unref() a child. The reference count is atomic, so a root stanza can be
 * handed to another thread with xn_ref() before sending and xn_unref() by the receiver. A tree
 * shared between threads must not be modified while shared.
 *
 * Strings passed in are copied; strings returned as const char * belong to the node and live as
 * long as it does. Functions returning char * return a new string the caller frees. */
#ifndef FERRY_LIB_XML_H
#define FERRY_LIB_XML_H

#include <stddef.h>

#define XN_NS_STREAMS "http://etherx.jabber.org/streams"
#define XN_NS_COMPONENT "jabber:component:accept"
#define XN_NS_XML "http://www.w3.org/XML/1998/namespace"
#define XN_NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define XN_NS_STREAM_ERRORS "urn:ietf:params:xml:ns:xmpp-streams"

typedef struct xn xn_t;

/* Returns a new root element (caller owns one reference). ns NULL: the element takes the
 * namespace of the parent it is later appended to (or none). */
xn_t *xn_new(const char *ns, const char *name);
/* Adds a reference to a root and returns it. */
xn_t *xn_ref(xn_t *root);
/* Drops a reference to a root; the last one frees the tree. NULL is ignored. */
void xn_unref(xn_t *root);
/* Returns a deep copy of node (of any node, root or child) as a new root. */
xn_t *xn_copy(const xn_t *node);
/* 1 when a and b have the same name, namespace, attributes (in any order) and children
 * (adjacent text merged), else 0. */
int xn_equal(const xn_t *a, const xn_t *b);

const char *xn_name(const xn_t *node);
/* The element's namespace URI (inherited from the parent when made with ns NULL), or "" */
const char *xn_ns(const xn_t *node);
xn_t *xn_parent(const xn_t *node);

/* Attributes are named as written in XMPP: "to", "xml:lang". Value NULL when absent.
 * One in any other namespace (rare) is named "{uri}local"; xn_serialize gives it a prefix. */
const char *xn_attr(const xn_t *node, const char *name);
/* Sets (copies) or, with value NULL, removes an attribute. */
void xn_set_attr(xn_t *node, const char *name, const char *value);
size_t xn_attr_count(const xn_t *node);
/* The i-th attribute, in insertion order; returns 0, or -1 when i is out of range. */
int xn_attr_at(const xn_t *node, size_t i, const char **name, const char **value);

/* Appends child (a root with one reference, which the parent takes over) and returns it. */
xn_t *xn_append(xn_t *parent, xn_t *child);
/* Makes a new child element of parent and returns it (owned by the parent). ns NULL: parent's. */
xn_t *xn_add_child(xn_t *parent, const char *ns, const char *name);
/* Makes <name>text</name> under parent and returns it (owned by the parent). */
xn_t *xn_add_child_text(xn_t *parent, const char *ns, const char *name, const char *text);
/* Appends len bytes of text (merged with a preceding text child). */
void xn_add_text(xn_t *parent, const char *text, size_t len);
/* Detaches child from its parent and frees it. */
void xn_remove(xn_t *child);

/* The first element child whose namespace and name match (either NULL matches any). */
xn_t *xn_child(const xn_t *node, const char *ns, const char *name);
/* Iteration over element children (text children are skipped). NULL at the end. */
xn_t *xn_first_element(const xn_t *node);
xn_t *xn_next_element(const xn_t *node);
/* New string: the concatenated text of node's direct text children ("" when none). */
char *xn_text(const xn_t *node);
/* New string: the text of the first matching child, or NULL when there is no such child. */
char *xn_child_text(const xn_t *node, const char *ns, const char *name);

enum xn_serialize_flags {
    XN_SER_DEFAULT = 0,
    /* Replace the text of <password/>, <handshake/> and x:data fields of type
     * text-private (or whose var names a password) with "****": the only form fit for a
     * log line. */
    XN_SER_REDACT = 1 << 0,
};

/* Serializes node and its subtree as UTF-8 XML into a new NUL-terminated string (caller frees);
 * *len (when not NULL) receives its length. Every attribute value and text is escaped. A
 * namespace is declared only where it differs from the one in scope: default_ns is the default
 * namespace in scope at node (XN_NS_COMPONENT inside a component stream, or NULL).
 * Elements in XN_NS_STREAMS are written with the prefix "stream:", declared unless
 * default_ns is non-NULL (inside a stream the prefix is already declared). */
char *xn_serialize(const xn_t *node, const char *default_ns, int flags, size_t *len);
/* Only the start tag of node, with its attributes and the declarations of default_ns and the
 * "stream" prefix: for the opening <stream:stream ...> of a stream. Caller frees. */
char *xn_serialize_start(const xn_t *node, const char *default_ns, size_t *len);

#endif
