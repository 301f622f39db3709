/* Private to lib/xml.c and lib/xstream.c: the fast constructor the stream parser builds trees
 * with. Other modules use lib/xml.h only.
 *
 * It exists because the public calls (xn_new, xn_set_attr) need NUL-terminated strings and
 * allocate once per string, while expat hands over "uri\x01local" names: this call takes
 * lengths and puts the node, its name, namespace and every attribute in a single allocation. */
#ifndef FERRY_LIB_XML_BUILD_H
#define FERRY_LIB_XML_BUILD_H

#include <stddef.h>
#include "lib/xml.h"

/* A string that need not be NUL-terminated. */
struct xn_span {
    const char *s;
    size_t len;
};

/* One attribute: ns.s NULL means no namespace. An attribute in XN_NS_XML is named "xml:local",
 * one in any other namespace "{uri}local" (the form xn_serialize writes back with a prefix). */
struct xn_build_attr {
    struct xn_span ns;
    struct xn_span name;
    struct xn_span value;
};

/* Makes an element with the given attributes (strings copied). ns NULL: inherited from the
 * parent. parent NULL: returns a new root (caller owns one reference); otherwise the element is
 * appended to parent and owned by it. */
xn_t *xn_build_element(xn_t *parent, const struct xn_span *ns, struct xn_span name,
                       const struct xn_build_attr *attrs, size_t nattrs);

#endif
