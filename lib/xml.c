/* XML nodes and the one serializer.
 *
 * Memory layout: an element is a single allocation holding the struct, then (for nodes made by
 * the parser or by xn_copy) its attribute array and attribute strings, then its name and
 * namespace. Such "inline" attributes are copied out to the heap the first time they are
 * changed (attr cap 0 means inline). Text nodes are internal: they never leave this file, and
 * keep their first text inline too; appending text moves it to a growing heap buffer.
 *
 * Walks over trees (free, copy, compare, serialize) are iterative, following parent and sibling
 * links, so a deep tree cannot overflow the stack. */
#include "lib/xml.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/xml_build.h"

struct xn_attr {
    char *name;
    char *value;
};

struct xn {
    struct xn *parent;
    struct xn *next;  /* next sibling */
    struct xn *first; /* first child */
    struct xn *last;  /* last child */
    const char *name; /* NULL for a text node */
    const char *ns;   /* NULL: the parent's namespace */
    union {
        struct {
            struct xn_attr *v;
            size_t n;
            size_t cap; /* 0: v and its strings are inline (or there are none) */
        } a;
        struct {
            char *v;
            size_t len;
            size_t cap; /* 0: v is inline */
        } t;
    } u;
    atomic_uint refs; /* meaningful on roots only */
};

#define IS_TEXT(n) ((n)->name == NULL)

static void misuse(const char *what)
{
    fatalx("xml", "misuse of the XML node API: %s", what);
}

/* ---- allocation ---- */

/* One block: struct, nattrs attribute slots, name, namespace, then extra bytes at *tail. */
static xn_t *alloc_element(const struct xn_span *ns, struct xn_span name, size_t nattrs,
                           size_t extra, char **tail)
{
    size_t size = sizeof(xn_t) + nattrs * sizeof(struct xn_attr) + name.len + 1 + extra;
    if (ns)
        size += ns->len + 1;
    xn_t *n = xmalloc(size);
    memset(n, 0, sizeof(*n));
    atomic_init(&n->refs, 1);
    n->u.a.v = nattrs ? (struct xn_attr *)(n + 1) : NULL;
    n->u.a.n = nattrs;
    char *s = (char *)(n + 1) + nattrs * sizeof(struct xn_attr);
    memcpy(s, name.s, name.len);
    s[name.len] = '\0';
    n->name = s;
    s += name.len + 1;
    if (ns) {
        memcpy(s, ns->s, ns->len);
        s[ns->len] = '\0';
        n->ns = s;
        s += ns->len + 1;
    }
    *tail = s;
    return n;
}

static void link_child(xn_t *parent, xn_t *child)
{
    child->parent = parent;
    if (parent->last)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
}

static void free_node(xn_t *n)
{
    if (IS_TEXT(n)) {
        if (n->u.t.cap)
            free(n->u.t.v);
    } else if (n->u.a.cap) {
        for (size_t i = 0; i < n->u.a.n; i++) {
            free(n->u.a.v[i].name);
            free(n->u.a.v[i].value);
        }
        free(n->u.a.v);
    }
    free(n);
}

/* Frees root and everything below it, deepest first, without recursion. */
static void free_tree(xn_t *root)
{
    xn_t *n = root;
    for (;;) {
        while (n->first)
            n = n->first;
        if (n == root) {
            free_node(n);
            return;
        }
        xn_t *parent = n->parent, *next = n->next;
        free_node(n);
        parent->first = next;
        n = next ? next : parent;
    }
}

/* ---- roots and references ---- */

xn_t *xn_new(const char *ns, const char *name)
{
    struct xn_span nss = {ns, ns ? strlen(ns) : 0};
    struct xn_span nm = {name, strlen(name)};
    char *tail;
    return alloc_element(ns ? &nss : NULL, nm, 0, 0, &tail);
}

xn_t *xn_ref(xn_t *root)
{
    if (root->parent)
        misuse("xn_ref on a child");
    atomic_fetch_add_explicit(&root->refs, 1, memory_order_relaxed);
    return root;
}

void xn_unref(xn_t *root)
{
    if (!root)
        return;
    if (root->parent)
        misuse("xn_unref on a child");
    /* acq_rel: the last owner must see every write the other owners made before letting go */
    if (atomic_fetch_sub_explicit(&root->refs, 1, memory_order_acq_rel) == 1)
        free_tree(root);
}

/* ---- the parser's constructor ---- */

static int span_is(struct xn_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.s, lit, n) == 0;
}

static size_t attr_name_len(const struct xn_build_attr *a)
{
    if (!a->ns.s)
        return a->name.len;
    if (span_is(a->ns, XN_NS_XML))
        return 4 + a->name.len;
    return a->ns.len + 2 + a->name.len;
}

static char *put_attr_name(char *s, const struct xn_build_attr *a)
{
    if (a->ns.s && span_is(a->ns, XN_NS_XML)) {
        memcpy(s, "xml:", 4);
        s += 4;
    } else if (a->ns.s) {
        *s++ = '{';
        memcpy(s, a->ns.s, a->ns.len);
        s += a->ns.len;
        *s++ = '}';
    }
    memcpy(s, a->name.s, a->name.len);
    s += a->name.len;
    *s++ = '\0';
    return s;
}

xn_t *xn_build_element(xn_t *parent, const struct xn_span *ns, struct xn_span name,
                       const struct xn_build_attr *attrs, size_t nattrs)
{
    size_t extra = 0;
    for (size_t i = 0; i < nattrs; i++)
        extra += attr_name_len(&attrs[i]) + attrs[i].value.len + 2;
    char *s;
    xn_t *n = alloc_element(ns, name, nattrs, extra, &s);
    for (size_t i = 0; i < nattrs; i++) {
        n->u.a.v[i].name = s;
        s = put_attr_name(s, &attrs[i]);
        n->u.a.v[i].value = s;
        memcpy(s, attrs[i].value.s, attrs[i].value.len);
        s += attrs[i].value.len;
        *s++ = '\0';
    }
    if (parent)
        link_child(parent, n);
    return n;
}

/* ---- accessors ---- */

const char *xn_name(const xn_t *node)
{
    return node->name;
}

const char *xn_ns(const xn_t *node)
{
    for (; node; node = node->parent)
        if (node->ns)
            return node->ns;
    return "";
}

xn_t *xn_parent(const xn_t *node)
{
    return node->parent;
}

/* ---- attributes ---- */

static size_t find_attr(const xn_t *node, const char *name)
{
    size_t i;
    for (i = 0; i < node->u.a.n; i++)
        if (strcmp(node->u.a.v[i].name, name) == 0)
            break;
    return i;
}

const char *xn_attr(const xn_t *node, const char *name)
{
    size_t i = find_attr(node, name);
    return i < node->u.a.n ? node->u.a.v[i].value : NULL;
}

size_t xn_attr_count(const xn_t *node)
{
    return node->u.a.n;
}

int xn_attr_at(const xn_t *node, size_t i, const char **name, const char **value)
{
    if (i >= node->u.a.n)
        return -1;
    if (name)
        *name = node->u.a.v[i].name;
    if (value)
        *value = node->u.a.v[i].value;
    return 0;
}

/* Moves inline attributes to the heap so they can be changed one by one, with room for one more. */
static void own_attrs(xn_t *node)
{
    size_t n = node->u.a.n;
    if (node->u.a.cap > n)
        return;
    if (node->u.a.cap) {
        node->u.a.cap *= 2;
        node->u.a.v = xrealloc(node->u.a.v, node->u.a.cap * sizeof(struct xn_attr));
        return;
    }
    struct xn_attr *v = xmalloc((n + 4) * sizeof(struct xn_attr));
    for (size_t i = 0; i < n; i++) {
        v[i].name = xstrdup(node->u.a.v[i].name);
        v[i].value = xstrdup(node->u.a.v[i].value);
    }
    node->u.a.v = v;
    node->u.a.cap = n + 4;
}

void xn_set_attr(xn_t *node, const char *name, const char *value)
{
    size_t i = find_attr(node, name);
    if (i == node->u.a.n && !value)
        return;
    own_attrs(node);
    struct xn_attr *a = node->u.a.v;
    if (i == node->u.a.n) {
        a[i].name = xstrdup(name);
        a[i].value = xstrdup(value);
        node->u.a.n++;
    } else if (value) {
        char *copy = xstrdup(value); /* value may point into the string it replaces */
        free(a[i].value);
        a[i].value = copy;
    } else {
        free(a[i].name);
        free(a[i].value);
        memmove(a + i, a + i + 1, (node->u.a.n - i - 1) * sizeof(*a));
        node->u.a.n--;
    }
}

/* ---- children ---- */

xn_t *xn_append(xn_t *parent, xn_t *child)
{
    if (child->parent || atomic_load(&child->refs) != 1 || IS_TEXT(parent))
        misuse("xn_append of a child or of a shared root");
    link_child(parent, child);
    return child;
}

xn_t *xn_add_child(xn_t *parent, const char *ns, const char *name)
{
    return xn_append(parent, xn_new(ns, name));
}

xn_t *xn_add_child_text(xn_t *parent, const char *ns, const char *name, const char *text)
{
    xn_t *child = xn_add_child(parent, ns, name);
    if (text)
        xn_add_text(child, text, strlen(text));
    return child;
}

void xn_add_text(xn_t *parent, const char *text, size_t len)
{
    if (len == 0)
        return;
    xn_t *last = parent->last;
    if (last && IS_TEXT(last)) {
        size_t need = last->u.t.len + len + 1;
        if (need > last->u.t.cap) {
            size_t cap = need < 64 ? 64 : need * 2;
            char *v = xmalloc(cap);
            memcpy(v, last->u.t.v, last->u.t.len);
            if (last->u.t.cap)
                free(last->u.t.v);
            last->u.t.v = v;
            last->u.t.cap = cap;
        }
        memcpy(last->u.t.v + last->u.t.len, text, len);
        last->u.t.len += len;
        last->u.t.v[last->u.t.len] = '\0';
        return;
    }
    xn_t *t = xmalloc(sizeof(xn_t) + len + 1);
    memset(t, 0, sizeof(*t));
    t->u.t.v = (char *)(t + 1);
    memcpy(t->u.t.v, text, len);
    t->u.t.v[len] = '\0';
    t->u.t.len = len;
    link_child(parent, t);
}

void xn_remove(xn_t *child)
{
    xn_t *parent = child->parent;
    if (!parent)
        misuse("xn_remove of a root");
    xn_t *prev = NULL;
    for (xn_t *c = parent->first; c != child; c = c->next)
        prev = c;
    if (prev)
        prev->next = child->next;
    else
        parent->first = child->next;
    if (parent->last == child)
        parent->last = prev;
    child->parent = NULL;
    child->next = NULL;
    free_tree(child);
}

static xn_t *skip_text(const xn_t *n)
{
    while (n && IS_TEXT(n))
        n = n->next;
    return (xn_t *)n;
}

xn_t *xn_first_element(const xn_t *node)
{
    return skip_text(node->first);
}

xn_t *xn_next_element(const xn_t *node)
{
    return skip_text(node->next);
}

xn_t *xn_child(const xn_t *node, const char *ns, const char *name)
{
    const char *parent_ns = NULL;
    for (xn_t *c = xn_first_element(node); c; c = xn_next_element(c)) {
        if (name && strcmp(c->name, name) != 0)
            continue;
        if (ns) {
            const char *cns = c->ns;
            if (!cns)
                cns = parent_ns ? parent_ns : (parent_ns = xn_ns(node));
            if (strcmp(cns, ns) != 0)
                continue;
        }
        return c;
    }
    return NULL;
}

char *xn_text(const xn_t *node)
{
    size_t len = 0;
    for (const xn_t *c = node->first; c; c = c->next)
        if (IS_TEXT(c))
            len += c->u.t.len;
    char *out = xmalloc(len + 1), *p = out;
    for (const xn_t *c = node->first; c; c = c->next) {
        if (IS_TEXT(c)) {
            memcpy(p, c->u.t.v, c->u.t.len);
            p += c->u.t.len;
        }
    }
    *p = '\0';
    return out;
}

char *xn_child_text(const xn_t *node, const char *ns, const char *name)
{
    const xn_t *c = xn_child(node, ns, name);
    return c ? xn_text(c) : NULL;
}

/* ---- copy ---- */

/* A copy of element src with its attributes inline, appended to parent when given. */
static xn_t *copy_element(const xn_t *src, const char *ns, xn_t *parent)
{
    size_t n = src->u.a.n, extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += strlen(src->u.a.v[i].name) + strlen(src->u.a.v[i].value) + 2;
    struct xn_span nss = {ns, ns ? strlen(ns) : 0};
    struct xn_span name = {src->name, strlen(src->name)};
    char *s;
    xn_t *c = alloc_element(ns ? &nss : NULL, name, n, extra, &s);
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(src->u.a.v[i].name) + 1, vl = strlen(src->u.a.v[i].value) + 1;
        c->u.a.v[i].name = memcpy(s, src->u.a.v[i].name, nl);
        c->u.a.v[i].value = memcpy(s + nl, src->u.a.v[i].value, vl);
        s += nl + vl;
    }
    if (parent)
        link_child(parent, c);
    return c;
}

xn_t *xn_copy(const xn_t *node)
{
    /* A child's copy becomes a root, so it must carry the namespace it had by inheritance. */
    const char *ns = node->ns ? node->ns : node->parent ? xn_ns(node) : NULL;
    xn_t *root = copy_element(node, ns, NULL), *d = root;
    const xn_t *s = node->first;
    while (s) {
        if (IS_TEXT(s)) {
            xn_add_text(d, s->u.t.v, s->u.t.len);
        } else {
            xn_t *c = copy_element(s, s->ns, d);
            if (s->first) {
                d = c;
                s = s->first;
                continue;
            }
        }
        while (!s->next) {
            s = s->parent;
            if (s == node)
                return root;
            d = d->parent;
        }
        s = s->next;
    }
    return root;
}

/* ---- comparison ---- */

static int attrs_equal(const xn_t *a, const xn_t *b)
{
    if (a->u.a.n != b->u.a.n)
        return 0;
    for (size_t i = 0; i < a->u.a.n; i++) {
        const char *v = xn_attr(b, a->u.a.v[i].name);
        if (!v || strcmp(v, a->u.a.v[i].value) != 0)
            return 0;
    }
    return 1;
}

/* Name, namespace and attributes of two elements whose parents are known to be equal. */
static int shallow_equal(const xn_t *a, const xn_t *b)
{
    if (strcmp(a->name, b->name) != 0 || !attrs_equal(a, b))
        return 0;
    if (a->ns && b->ns)
        return strcmp(a->ns, b->ns) == 0;
    if (!a->ns && !b->ns)
        return 1; /* both inherit from equal parents */
    return strcmp(xn_ns(a), xn_ns(b)) == 0;
}

/* Compares the runs of adjacent text nodes starting at *pa and *pb (either may be empty) as
 * if each run were one string, and moves both past their runs. */
static int text_runs_equal(const xn_t **pa, const xn_t **pb)
{
    const xn_t *a = *pa, *b = *pb;
    size_t ia = 0, ib = 0;
    for (;;) {
        while (a && IS_TEXT(a) && ia == a->u.t.len) {
            a = a->next;
            ia = 0;
        }
        while (b && IS_TEXT(b) && ib == b->u.t.len) {
            b = b->next;
            ib = 0;
        }
        int ta = a && IS_TEXT(a), tb = b && IS_TEXT(b);
        if (!ta || !tb) {
            *pa = a;
            *pb = b;
            return !ta && !tb;
        }
        size_t n = a->u.t.len - ia < b->u.t.len - ib ? a->u.t.len - ia : b->u.t.len - ib;
        if (memcmp(a->u.t.v + ia, b->u.t.v + ib, n) != 0)
            return 0;
        ia += n;
        ib += n;
    }
}

int xn_equal(const xn_t *a, const xn_t *b)
{
    if (strcmp(xn_ns(a), xn_ns(b)) != 0 || !shallow_equal(a, b))
        return 0;
    const xn_t *ea = a, *eb = b; /* the elements whose children are being compared */
    const xn_t *ca = a->first, *cb = b->first;
    for (;;) {
        if ((ca && IS_TEXT(ca)) || (cb && IS_TEXT(cb))) {
            if (!text_runs_equal(&ca, &cb))
                return 0;
        } else if (ca && cb) {
            if (!shallow_equal(ca, cb))
                return 0;
            ea = ca;
            eb = cb;
            ca = ca->first;
            cb = cb->first;
        } else if (ca || cb) {
            return 0;
        } else if (ea == a) {
            return 1;
        } else {
            ca = ea->next;
            cb = eb->next;
            ea = ea->parent;
            eb = eb->parent;
        }
    }
}

/* ---- serialization ---- */

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_grow(struct sbuf *b, size_t need)
{
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < need)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

static inline void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->cap - b->len < n)
        sb_grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static inline void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static char *sb_finish(struct sbuf *b, size_t *len)
{
    sb_put(b, "", 1);
    if (len)
        *len = b->len - 1;
    return b->p;
}

/* clang-format off */
#define R16(x) x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x
/* Byte classes: 0 copy as is; 1 write a reference (see escape_ref); 2 first byte of a UTF-8
 * sequence to check; 3 not an XML 1.0 character at all, not even as a reference. */
static const unsigned char text_class[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 3, 3, 1, 3, 3, /* \t \n as is; \r survives only as &#13; */
    R16(3),
    0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* & */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, /* < > */
    R16(0), R16(0), R16(0), R16(0),
    R16(2), R16(2), R16(2), R16(2), R16(2), R16(2), R16(2), R16(2),
};
/* In attribute values tab and newlines would be normalized to spaces by a reparse. */
static const unsigned char attr_class[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 3, 3, 1, 3, 3,
    R16(3),
    0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, /* " & ' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, /* < > */
    R16(0), R16(0), R16(0), R16(0),
    R16(2), R16(2), R16(2), R16(2), R16(2), R16(2), R16(2), R16(2),
};
/* clang-format on */

static const char *escape_ref(unsigned char c)
{
    switch (c) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '\'':
        return "&apos;";
    case '"':
        return "&quot;";
    case '\t':
        return "&#9;";
    case '\n':
        return "&#10;";
    default:
        return "&#13;";
    }
}

/* Length of the well-formed UTF-8 sequence at s that encodes an XML 1.0 character, else 0
 * (overlong forms, surrogates, U+FFFE, U+FFFF and beyond U+10FFFF are refused). */
static size_t utf8_xml_char(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    if (c < 0xc2 || c > 0xf4)
        return 0;
    size_t n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) ||
        (c == 0xef && s[1] == 0xbf && s[2] >= 0xbe) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

/* Writes s escaped for cls. Bytes that are not XML characters (control characters, broken
 * UTF-8, as text from a legacy network may carry) become U+FFFD: one of them would make the
 * peer drop the whole stream. */
static void put_escaped(struct sbuf *b, const char *s, size_t n, const unsigned char *cls)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
    while (p < end) {
        unsigned k = cls[*p];
        if (k == 0) {
            p++;
            continue;
        }
        if (k == 2) {
            size_t l = utf8_xml_char(p, (size_t)(end - p));
            if (l) {
                p += l;
                continue;
            }
        }
        sb_put(b, (const char *)run, (size_t)(p - run));
        if (k == 1)
            sb_str(b, escape_ref(*p));
        else
            sb_put(b, "\xef\xbf\xbd", 3);
        run = ++p;
    }
    sb_put(b, (const char *)run, (size_t)(p - run));
}

/* What is in scope at one element while writing its children. */
struct scope {
    const char *eff;    /* the element's namespace */
    const char *dflt;   /* default namespace in scope for its children ("" none) */
    const char *prefix; /* "stream:", "xml:" or NULL */
    unsigned char stream_decl, redact, redacted;
};

struct ser {
    struct sbuf b;
    int flags;
    struct scope *sc;
    size_t cap;
    struct scope local[32];
};

static int is_secret(const xn_t *n)
{
    if (strcmp(n->name, "password") == 0 || strcmp(n->name, "handshake") == 0)
        return 1;
    if (strcmp(n->name, "value") != 0 || !n->parent || strcmp(n->parent->name, "field") != 0)
        return 0;
    const char *type = xn_attr(n->parent, "type");
    if (type && strcmp(type, "text-private") == 0)
        return 1;
    /* A submitted form may leave out the field types (XEP-0004 section 3.2): go by name. */
    const char *var = xn_attr(n->parent, "var");
    return var && strstr(var, "password") != NULL;
}

static void put_attrs(struct sbuf *b, const xn_t *n)
{
    unsigned prefix = 0;
    for (size_t i = 0; i < n->u.a.n; i++) {
        const char *name = n->u.a.v[i].name, *close;
        /* namespaces come from the nodes; a stray xmlns attribute would duplicate or contradict */
        if (strncmp(name, "xmlns", 5) == 0 && (name[5] == '\0' || name[5] == ':'))
            continue;
        sb_put(b, " ", 1);
        /* the last '}': a URI may contain one, a local name may not */
        if (name[0] == '{' && (close = strrchr(name, '}'))) {
            /* a fresh prefix per attribute: binding one URI to two prefixes is legal */
            char decl[32];
            int dl = snprintf(decl, sizeof(decl), "xmlns:ns%u='", ++prefix);
            sb_put(b, decl, (size_t)dl);
            put_escaped(b, name + 1, (size_t)(close - name - 1), attr_class);
            dl = snprintf(decl, sizeof(decl), "' ns%u:", prefix);
            sb_put(b, decl, (size_t)dl);
            name = close + 1;
        }
        sb_str(b, name);
        sb_put(b, "='", 2);
        put_escaped(b, n->u.a.v[i].value, strlen(n->u.a.v[i].value), attr_class);
        sb_put(b, "'", 1);
    }
}

/* Writes "<name ..." (without the closing '>') and fills in the element's scope. */
static void open_tag(struct ser *s, const xn_t *n, const struct scope *up, struct scope *me)
{
    struct sbuf *b = &s->b;
    *me = *up;
    me->eff = n->ns ? n->ns : up->eff;
    me->prefix = NULL;
    if (strcmp(me->eff, XN_NS_STREAMS) == 0)
        me->prefix = "stream:";
    else if (strcmp(me->eff, XN_NS_XML) == 0)
        me->prefix = "xml:"; /* bound by definition; declaring it as the default is an error */
    me->redact = up->redact || ((s->flags & XN_SER_REDACT) && is_secret(n));
    me->redacted = 0;
    sb_put(b, "<", 1);
    if (me->prefix) {
        sb_str(b, me->prefix);
        sb_str(b, n->name);
        if (me->prefix[0] == 's' && !up->stream_decl) {
            sb_str(b, " xmlns:stream='" XN_NS_STREAMS "'");
            me->stream_decl = 1;
        }
    } else {
        sb_str(b, n->name);
        if (me->eff != up->dflt && strcmp(me->eff, up->dflt) != 0) {
            sb_put(b, " xmlns='", 8);
            put_escaped(b, me->eff, strlen(me->eff), attr_class);
            sb_put(b, "'", 1);
        }
        me->dflt = me->eff;
    }
    put_attrs(b, n);
}

static void close_tag(struct sbuf *b, const xn_t *n, const struct scope *me)
{
    sb_put(b, "</", 2);
    if (me->prefix)
        sb_str(b, me->prefix);
    sb_str(b, n->name);
    sb_put(b, ">", 1);
}

static void put_text(struct sbuf *b, const xn_t *t, struct scope *in)
{
    if (!in->redact) {
        put_escaped(b, t->u.t.v, t->u.t.len, text_class);
    } else if (!in->redacted) {
        sb_put(b, "****", 4);
        in->redacted = 1;
    }
}

static struct scope *scope_at(struct ser *s, size_t d)
{
    if (d >= s->cap) {
        size_t cap = s->cap * 2;
        if (s->sc == s->local) {
            s->sc = xmalloc(cap * sizeof(struct scope));
            memcpy(s->sc, s->local, sizeof(s->local));
        } else {
            s->sc = xrealloc(s->sc, cap * sizeof(struct scope));
        }
        s->cap = cap;
    }
    return &s->sc[d];
}

static void ser_init(struct ser *s, const xn_t *node, const char *default_ns, int flags)
{
    memset(&s->b, 0, sizeof(s->b));
    s->flags = flags;
    s->sc = s->local;
    s->cap = FERRY_ARRAY_LEN(s->local);
    memset(&s->sc[0], 0, sizeof(s->sc[0]));
    s->sc[0].eff = node->parent ? xn_ns(node->parent) : "";
    s->sc[0].dflt = default_ns ? default_ns : "";
    s->sc[0].stream_decl = default_ns != NULL;
}

char *xn_serialize(const xn_t *node, const char *default_ns, int flags, size_t *len)
{
    struct ser s;
    ser_init(&s, node, default_ns, flags);
    const xn_t *n = node;
    size_t d = 0; /* depth of n's parent; sc[d] is its scope */
    for (;;) {
        if (IS_TEXT(n)) {
            put_text(&s.b, n, scope_at(&s, d));
        } else {
            struct scope *me = scope_at(&s, d + 1);
            open_tag(&s, n, &s.sc[d], me);
            if (n->first) {
                sb_put(&s.b, ">", 1);
                d++;
                n = n->first;
                continue;
            }
            sb_put(&s.b, "/>", 2);
        }
        while (n != node && !n->next) {
            n = n->parent;
            close_tag(&s.b, n, &s.sc[d]);
            d--;
        }
        if (n == node)
            break;
        n = n->next;
    }
    if (s.sc != s.local)
        free(s.sc);
    return sb_finish(&s.b, len);
}

char *xn_serialize_start(const xn_t *node, const char *default_ns, size_t *len)
{
    struct sbuf b = {0};
    const char *eff = xn_ns(node);
    sb_put(&b, "<", 1);
    if (strcmp(eff, XN_NS_STREAMS) == 0) {
        sb_put(&b, "stream:", 7);
        sb_str(&b, node->name);
        if (default_ns) {
            sb_put(&b, " xmlns='", 8);
            put_escaped(&b, default_ns, strlen(default_ns), attr_class);
            sb_put(&b, "'", 1);
        }
    } else {
        sb_str(&b, node->name);
        if (*eff) {
            sb_put(&b, " xmlns='", 8);
            put_escaped(&b, eff, strlen(eff), attr_class);
            sb_put(&b, "'", 1);
        }
    }
    sb_str(&b, " xmlns:stream='" XN_NS_STREAMS "'");
    put_attrs(&b, node);
    sb_put(&b, ">", 1);
    return sb_finish(&b, len);
}
