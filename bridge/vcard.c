/* A contact's vCard (vcard-temp) from what the legacy network says about the user: libpurple's
 * user info, a list of label/value pairs in the network's words (IRC's WHOIS: Nick, Realname,
 * Username, Hostname, Server, Currently on, Idle for ...; XMPP's vCard: Full Name, Nickname,
 * Given Name, Email ...). Pairs whose label names a vCard field go there; the rest is kept,
 * in the network's order, as lines of DESC, so nothing the network gave is lost. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/search.h"
#include "bridge/text.h"
#include "lib/util.h"

enum slot {
    SLOT_DESC = 0, /* no proper field: a line of DESC */
    SLOT_FN,
    SLOT_NICKNAME,
    SLOT_GIVEN,
    SLOT_FAMILY,
    SLOT_MIDDLE,
    SLOT_EMAIL,
    SLOT_URL,
    SLOT_BDAY,
    SLOT_ORGNAME,
    SLOT_ORGUNIT,
    SLOT_TITLE,
    SLOT_ROLE,
    SLOT_TEL,
    SLOT_ABOUT, /* free text about the user: the head of DESC */
    SLOT_COUNT,
};

/* Labels compared in lower case with everything but letters and digits left out. */
static const struct {
    const char *label;
    enum slot slot;
} labels[] = {
    {"realname", SLOT_FN},
    {"fullname", SLOT_FN},
    {"name", SLOT_FN},
    {"nick", SLOT_NICKNAME},
    {"nickname", SLOT_NICKNAME},
    {"givenname", SLOT_GIVEN},
    {"firstname", SLOT_GIVEN},
    {"familyname", SLOT_FAMILY},
    {"lastname", SLOT_FAMILY},
    {"surname", SLOT_FAMILY},
    {"middlename", SLOT_MIDDLE},
    {"email", SLOT_EMAIL},
    {"emailaddress", SLOT_EMAIL},
    {"url", SLOT_URL},
    {"homepage", SLOT_URL},
    {"website", SLOT_URL},
    {"birthday", SLOT_BDAY},
    {"organization", SLOT_ORGNAME},
    {"organizationname", SLOT_ORGNAME},
    {"organizationunit", SLOT_ORGUNIT},
    {"jobtitle", SLOT_TITLE},
    {"title", SLOT_TITLE},
    {"role", SLOT_ROLE},
    {"telephone", SLOT_TEL},
    {"phone", SLOT_TEL},
    {"aboutme", SLOT_ABOUT},
    {"description", SLOT_ABOUT},
};

static enum slot slot_of(const char *label)
{
    char key[32];
    size_t n = 0;
    for (const char *p = label; *p; p++) {
        if (!isalnum((unsigned char)*p))
            continue;
        if (n + 1 >= sizeof(key))
            return SLOT_DESC;
        key[n++] = (char)tolower((unsigned char)*p);
    }
    key[n] = '\0';
    for (size_t i = 0; i < FERRY_ARRAY_LEN(labels); i++)
        if (strcmp(labels[i].label, key) == 0)
            return labels[i].slot;
    return SLOT_DESC;
}

/* IRC marks a nick "alice (ircop)" or "alice (identified)": the vCard's NICKNAME is the nick. */
static char *bare_nick(const char *value, const char *who)
{
    size_t len = strlen(who);
    if (strncmp(value, who, len) == 0 && value[len] == ' ' && value[len + 1] == '(')
        return xstrdup(who);
    return xstrdup(value);
}

static void append_line(char **desc, const char *label, const char *value)
{
    char *next =
        *desc ? xasprintf("%s\n%s: %s", *desc, label, value) : xasprintf("%s: %s", label, value);
    free(*desc);
    *desc = next;
}

static void add_text(xn_t *parent, const char *name, const char *text)
{
    if (text)
        xn_add_child_text(parent, NULL, name, text);
}

static void build(xn_t *vcard, char **v, const char *desc)
{
    add_text(vcard, "FN", v[SLOT_FN]);
    if (v[SLOT_GIVEN] || v[SLOT_FAMILY] || v[SLOT_MIDDLE]) {
        xn_t *n = xn_add_child(vcard, NULL, "N");
        add_text(n, "FAMILY", v[SLOT_FAMILY]);
        add_text(n, "GIVEN", v[SLOT_GIVEN]);
        add_text(n, "MIDDLE", v[SLOT_MIDDLE]);
    }
    add_text(vcard, "NICKNAME", v[SLOT_NICKNAME]);
    add_text(vcard, "URL", v[SLOT_URL]);
    add_text(vcard, "BDAY", v[SLOT_BDAY]);
    if (v[SLOT_ORGNAME] || v[SLOT_ORGUNIT]) {
        xn_t *org = xn_add_child(vcard, NULL, "ORG");
        add_text(org, "ORGNAME", v[SLOT_ORGNAME] ? v[SLOT_ORGNAME] : "");
        add_text(org, "ORGUNIT", v[SLOT_ORGUNIT]);
    }
    add_text(vcard, "TITLE", v[SLOT_TITLE]);
    add_text(vcard, "ROLE", v[SLOT_ROLE]);
    if (v[SLOT_TEL]) {
        xn_t *tel = xn_add_child(vcard, NULL, "TEL");
        xn_add_child(tel, NULL, "VOICE");
        xn_add_child_text(tel, NULL, "NUMBER", v[SLOT_TEL]);
    }
    if (v[SLOT_EMAIL]) {
        xn_t *email = xn_add_child(vcard, NULL, "EMAIL");
        xn_add_child(email, NULL, "INTERNET");
        xn_add_child_text(email, NULL, "USERID", v[SLOT_EMAIL]);
    }
    add_text(vcard, "DESC", desc);
}

xn_t *vcard_from_userinfo(const char *who, const struct np_field *pairs, size_t count)
{
    char *v[SLOT_COUNT] = {0};
    char *desc = NULL;
    for (size_t i = 0; i < count; i++) {
        char *label = text_from_legacy_str(pairs[i].name ? pairs[i].name : "");
        char *value = text_from_legacy_str(pairs[i].value ? pairs[i].value : "");
        enum slot slot = slot_of(label);
        if (!*value) {
            /* a heading or an empty field: nothing to say */
        } else if (slot == SLOT_DESC || v[slot]) {
            append_line(&desc, *label ? label : "Info", value);
        } else {
            v[slot] = slot == SLOT_NICKNAME ? bare_nick(value, who) : xstrdup(value);
        }
        free(label);
        free(value);
    }
    if (v[SLOT_ABOUT]) { /* the user's own words first, the network's details after */
        char *all = desc ? xasprintf("%s\n\n%s", v[SLOT_ABOUT], desc) : xstrdup(v[SLOT_ABOUT]);
        free(desc);
        desc = all;
    }
    if (!v[SLOT_FN])
        v[SLOT_FN] = text_from_legacy_str(v[SLOT_NICKNAME] ? v[SLOT_NICKNAME] : who);
    xn_t *vcard = xn_new(NS_VCARD, "vCard");
    build(vcard, v, desc);
    for (size_t i = 0; i < SLOT_COUNT; i++)
        free(v[i]);
    free(desc);
    return vcard;
}
