/* bridge/search.c and bridge/vcard.c: the mapping between XMPP's search forms and the
 * protocol's (exact XML out), the vCard built from user info, and one owner's request table
 * driven by hand: native's commands are recorded (np_send), its events posted by the test,
 * stanzas out recorded (bridge_send). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/search.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xml.h"
#include "lib/xstream.h"

#define DOMAIN "irc.example.org"
#define OWNER "alice@example.org"
#define STREAM_OPEN                                                                                \
    "<stream:stream xmlns='jabber:component:accept' "                                              \
    "xmlns:stream='http://etherx.jabber.org/streams'>"
#define Q_SEARCH "<query xmlns='jabber:iq:search'>"
#define Q_EMPTY "<query xmlns='jabber:iq:search'/>"
#define X_FORM_TYPE "<field type='hidden' var='FORM_TYPE'><value>jabber:iq:search</value></field>"

/* ---- stubs: what search.c reaches outside bridge/ ---- */

static struct np_cmd *cmds[16];
static size_t ncmds;
static xn_t *sent[16];
static size_t nsent;

int np_send(struct np_cmd *cmd)
{
    assert_true(ncmds < FERRY_ARRAY_LEN(cmds));
    cmds[ncmds++] = cmd;
    return NP_OK;
}

const char *np_protocol_name(void)
{
    return "IRC";
}

int bridge_send(bridge_t *b, xn_t *stanza)
{
    (void)b;
    assert_true(nsent < FERRY_ARRAY_LEN(sent));
    sent[nsent++] = stanza;
    return 0;
}

/* ---- helpers ---- */

static char last_log[512];

static void quiet_log(enum log_level level, const char *line, void *ctx)
{
    (void)level;
    (void)ctx;
    snprintf(last_log, sizeof(last_log), "%s", line);
}

static void keep(void *ctx, xn_t *stanza)
{
    *(xn_t **)ctx = stanza;
}

/* One element written as in a component stream. */
static xn_t *parse(const char *xml)
{
    xn_t *out = NULL;
    struct xs_callbacks cb = {.stanza = keep};
    xs_parser_t *p = xs_new(&cb, &out, NULL);
    assert_int_equal(xs_feed(p, STREAM_OPEN, strlen(STREAM_OPEN)), XS_OK);
    assert_int_equal(xs_feed(p, xml, strlen(xml)), XS_OK);
    xs_free(p);
    assert_non_null(out);
    return out;
}

/* Asserts node serializes to exactly want (then drops node). */
static void expect_xml(xn_t *node, const char *want)
{
    char *got = xn_serialize(node, XN_NS_COMPONENT, 0, NULL);
    if (strcmp(got, want) != 0)
        fail_msg("got:\n  %s\nwant:\n  %s", got, want);
    free(got);
    xn_unref(node);
}

/* The next stanza sent must be exactly want. */
static void expect_sent(const char *want)
{
    assert_true(nsent > 0);
    xn_t *first = sent[0];
    memmove(sent, sent + 1, --nsent * sizeof(*sent));
    expect_xml(first, want);
}

/* The next command must be of this type; returned for inspection (caller frees). */
static struct np_cmd *take_cmd(enum np_cmd_type type)
{
    assert_true(ncmds > 0);
    struct np_cmd *cmd = cmds[0];
    memmove(cmds, cmds + 1, --ncmds * sizeof(*cmds));
    assert_int_equal(cmd->type, type);
    assert_string_equal(cmd->owner, OWNER);
    return cmd;
}

/* ---- names ---- */

static void test_vars(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int jid_too;
        const char *want;
    } cases[] = {
        {"First Name", 0, "first"},
        {"given name", 0, "first"},
        {"Last Name", 0, "last"},
        {"Surname", 0, "last"},
        {"Nickname", 0, "nick"},
        {"E-Mail", 0, "email"},
        {"Email Address", 0, "email"},
        {"JID", 1, "jid"},
        {"Jabber ID", 1, "jid"},
        {"Jabber ID", 0, "jabber_id"},
        {"UIN", 0, "uin"},
        {"Currently on", 1, "currently_on"},
        {"  Idle for: ", 0, "idle_for"},
        {"--", 0, "field"},
        {"", 0, "field"},
        {"Ort/Stadt", 0, "ort_stadt"},
    };
    for (size_t i = 0; i < FERRY_ARRAY_LEN(cases); i++) {
        char *got = search_var(cases[i].in, cases[i].jid_too);
        assert_string_equal(got, cases[i].want);
        free(got);
    }
    static const struct {
        struct np_field field;
        const char *want;
    } fields[] = {
        {{"nickname", "Nick"}, "nick"},
        {{"x1", "Given Name"}, "first"},
        {{"uin", "UIN"}, "uin"},
        {{"jid", "JID"}, "jid"},
        {{"", "City of birth"}, "city_of_birth"},
    };
    for (size_t i = 0; i < FERRY_ARRAY_LEN(fields); i++) {
        char *got = search_field_var(&fields[i].field);
        assert_string_equal(got, fields[i].want);
        free(got);
    }
}

/* ---- the form of a get ---- */

static void test_form_query(void **state)
{
    (void)state;
    const struct np_field form[] = {
        {"firstname", "First name"}, {"last", "Last Name"}, {"city", "City"},
        {"x y", "Odd <one>"},        {"nick", ""},          {"nickname", "Nickname"},
    };
    expect_xml(
        search_form_query("Search for users on IRC", "Fill in & go", form, FERRY_ARRAY_LEN(form)),
        Q_SEARCH "<instructions>Fill in &amp; go</instructions><first/><last/><city/>"
                 "<nick/><x xmlns='jabber:x:data' type='form'><title>Search for users on IRC"
                 "</title><instructions>Fill in &amp; go</instructions>" X_FORM_TYPE
                 "<field type='text-single' var='first' label='First name'/>"
                 "<field type='text-single' var='last' label='Last Name'/>"
                 "<field type='text-single' var='city' label='City'/>"
                 "<field type='text-single' var='x y' label='Odd &lt;one&gt;'/>"
                 "<field type='text-single' var='nick'/></x></query>");
    expect_xml(search_form_query(NULL, NULL, NULL, 0),
               Q_SEARCH "<x xmlns='jabber:x:data' type='form'>" X_FORM_TYPE "</x></query>");
}

/* ---- the owner's fields ---- */

static void expect_fields(const char *query_xml, int want_form, const char *const *want,
                          size_t want_count)
{
    xn_t *query = parse(query_xml);
    struct np_field *fields;
    int is_form = -1;
    size_t n = search_fields_from_query(query, &fields, &is_form);
    assert_int_equal(is_form, want_form);
    assert_int_equal(n, want_count);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(fields[i].name, want[2 * i]);
        assert_string_equal(fields[i].value, want[2 * i + 1]);
    }
    search_fields_free(fields, n);
    xn_unref(query);
}

static void test_fields_from_query(void **state)
{
    (void)state;
    static const char *const plain[] = {"nick", "bob", "email", "a@b"};
    expect_fields(Q_SEARCH "<instructions>x</instructions><nick> bob\n</nick><first/>"
                           "<last>  </last><email>a@b</email><item jid='a@b'/>"
                           "<x xmlns='urn:other'/></query>",
                  0, plain, 2);
    static const char *const form[] = {"nick", "bob", "city", "Köln"};
    expect_fields(Q_SEARCH "<nick>ignored</nick><x xmlns='jabber:x:data' type='submit'>" X_FORM_TYPE
                           "<field var='nick'><value>bob</value><value>2nd</value></field>"
                           "<field var='first'/><field var='last'><value/></field>"
                           "<field var='city'><value> Köln </value></field></x></query>",
                  1, form, 2);
    expect_fields(Q_SEARCH "</query>", 0, NULL, 0);
}

static void test_fields_to_protocol(void **state)
{
    (void)state;
    const struct np_field form[] = {
        {"firstname", "First name"}, {"nickname", "Nickname"}, {"uin", "UIN"}, {"c", "City"}};
    struct np_field *fields = xcalloc(5, sizeof(*fields));
    const char *in[] = {"first", "A", "nick", "B", "uin", "1", "other", "z", "c", "K"};
    for (size_t i = 0; i < 5; i++) {
        fields[i].name = xstrdup(in[2 * i]);
        fields[i].value = xstrdup(in[2 * i + 1]);
    }
    search_fields_to_protocol(fields, 5, form, FERRY_ARRAY_LEN(form));
    const char *want[] = {"firstname", "nickname", "uin", "other", "c"};
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(fields[i].name, want[i]);
    assert_string_equal(fields[0].value, "A");
    search_fields_free(fields, 5);
}

/* ---- results ---- */

static const char *const columns[] = {"JID",      "First Name", "Last Name",
                                      "Nickname", "Email",      "City"};
static const char *const cells[] = {
    "carol@legacy.example",
    "Carol",
    "Ames",
    "caro",
    "",
    "Bonn",
    "",
    "Nobody",
    "",
    "",
    "",
    "", /* no name: left out */
    "dan o'neil",
    "D\x02"
    "an",
    NULL,
    "dan",
    "d@x",
    "",
};

static void test_result_plain(void **state)
{
    (void)state;
    expect_xml(search_result_query(DOMAIN, columns, 6, cells, 3, 0), Q_SEARCH
               "<item jid='carol\\40legacy.example@irc.example.org'><first>Carol"
               "</first><last>Ames</last><nick>caro</nick></item>"
               "<item jid='dan\\20o\\27neil@irc.example.org'><first>Dan</first><nick>dan</nick>"
               "<email>d@x</email></item></query>");
    expect_xml(search_result_query(DOMAIN, NULL, 0, NULL, 0, 0), Q_EMPTY);
}

static void test_result_form(void **state)
{
    (void)state;
    expect_xml(search_result_query(DOMAIN, columns, 6, cells, 1, 1), Q_SEARCH
               "<x xmlns='jabber:x:data' type='result'>" X_FORM_TYPE "<reported>"
               "<field var='jid' label='JID' type='jid-single'/>"
               "<field var='first' label='First Name' type='text-single'/>"
               "<field var='last' label='Last Name' type='text-single'/>"
               "<field var='nick' label='Nickname' type='text-single'/>"
               "<field var='email' label='Email' type='text-single'/>"
               "<field var='city' label='City' type='text-single'/></reported>"
               "<item><field var='jid'><value>carol\\40legacy.example@irc.example.org</value>"
               "</field><field var='first'><value>Carol</value></field><field var='last'>"
               "<value>Ames</value></field><field var='nick'><value>caro</value></field>"
               "<field var='email'/><field var='city'><value>Bonn</value></field></item>"
               "</x></query>");
    /* Without a JID column the first column names the user; repeated vars are kept once. */
    const char *const cols[] = {"Nickname", "Nick", "Server"};
    const char *const row[] = {"Zed[X]", "zed", "irc.example.net"};
    expect_xml(search_result_query(DOMAIN, cols, 3, row, 1, 1), Q_SEARCH
               "<x xmlns='jabber:x:data' type='result'>" X_FORM_TYPE "<reported>"
               "<field var='jid' label='JID' type='jid-single'/>"
               "<field var='nick' label='Nickname' type='text-single'/>"
               "<field var='server' label='Server' type='text-single'/></reported>"
               "<item><field var='jid'><value>zed[x]@irc.example.org</value></field>"
               "<field var='nick'><value>Zed[X]</value></field>"
               "<field var='server'><value>irc.example.net</value></field></item></x></query>");
}

/* ---- vCards ---- */

static void test_vcard_from_irc_whois(void **state)
{
    (void)state;
    const struct np_field whois[] = {
        {"Nick", "Zed (ircop)"},
        {"Real name", "Zed \x03"
                      "4Zulu"},
        {"Ident name", "~zed"},
        {"Host name", "10.0.0.1"},
        {"Server", "irc.x (Test)"},
        {"Currently on", "@#a #b"},
        {"Idle for", "5 minutes"},
        {"Away", ""},
    };
    expect_xml(vcard_from_userinfo("Zed", whois, FERRY_ARRAY_LEN(whois)),
               "<vCard xmlns='vcard-temp'><FN>Zed Zulu</FN><NICKNAME>Zed</NICKNAME>"
               "<DESC>Ident name: ~zed\nHost name: 10.0.0.1\nServer: irc.x (Test)\n"
               "Currently on: @#a #b\nIdle for: 5 minutes</DESC></vCard>");
    /* Nothing known: the name asked is the full name. */
    expect_xml(vcard_from_userinfo("bob", NULL, 0),
               "<vCard xmlns='vcard-temp'><FN>bob</FN></vCard>");
}

static void test_vcard_from_xmpp(void **state)
{
    (void)state;
    const struct np_field info[] = {
        {"Full Name", "Dora Carter"}, {"Family Name", "Carter"},     {"Given Name", "Dora"},
        {"Nickname", "dee"},          {"Email", "dora@example.org"}, {"URL", "https://d.example"},
        {"Birthday", "1990-01-02"},   {"Organization Unit", "Ops"},  {"Telephone", "+49 1"},
        {"Status", "Away"},           {"About Me", "Hi <there>"},    {"Email", "second@x"},
    };
    expect_xml(vcard_from_userinfo("dora@x", info, FERRY_ARRAY_LEN(info)),
               "<vCard xmlns='vcard-temp'><FN>Dora Carter</FN><N><FAMILY>Carter</FAMILY>"
               "<GIVEN>Dora</GIVEN></N><NICKNAME>dee</NICKNAME><URL>https://d.example</URL>"
               "<BDAY>1990-01-02</BDAY><ORG><ORGNAME/><ORGUNIT>Ops</ORGUNIT></ORG>"
               "<TEL><VOICE/><NUMBER>+49 1</NUMBER></TEL><EMAIL><INTERNET/>"
               "<USERID>dora@example.org</USERID></EMAIL><DESC>Hi &lt;there&gt;\n\n"
               "Status: Away\nEmail: second@x</DESC></vCard>");
}

/* ---- one owner's requests ---- */

struct fx {
    struct ferry_config cfg;
    struct bridge b;
    struct searches *ss;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->cfg.component_jid = DOMAIN;
    f->cfg.legacy_name = "IRC";
    f->cfg.legacy_request_timeout_ms = 30000;
    f->b.cfg = &f->cfg;
    f->ss = searches_new(&f->b, OWNER);
    ncmds = nsent = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    searches_free(f->ss);
    for (size_t i = 0; i < ncmds; i++)
        np_cmd_free(cmds[i]);
    for (size_t i = 0; i < nsent; i++)
        xn_unref(sent[i]);
    assert_int_equal(ncmds + nsent, 0); /* every command and stanza was looked at */
    free(f);
    return 0;
}

static void request(struct fx *f, const char *iq_xml, int online)
{
    searches_request(f->ss, parse(iq_xml), online, NULL);
}

static void event(struct fx *f, struct np_event *ev)
{
    assert_int_equal(searches_event(f->ss, ev), 1);
    np_event_free(ev);
}

#define IQ(type, id, to, payload)                                                                  \
    "<iq type='" type "' id='" id "' from='" OWNER "/pc' to='" to "'>" payload "</iq>"
#define RESULT(id, from, payload)                                                                  \
    "<iq type='result' id='" id "' from='" from "' to='" OWNER "/pc'>" payload "</iq>"
#define ERROR(id, from, type, cond, text)                                                          \
    "<iq type='error' id='" id "' from='" from "' to='" OWNER "/pc'><error type='" type "'>"       \
    "<" cond " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "                                \
    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>" text "</text></error></iq>"
#define LOOKUP_FORM                                                                                \
    Q_SEARCH "<instructions>IRC has no user directory: enter a nickname and Ferry looks that "     \
             "user up.</instructions><nick/><x xmlns='jabber:x:data' type='form'><title>"          \
             "Search for users on IRC</title><instructions>IRC has no user directory: enter a "    \
             "nickname and Ferry looks that user up.</instructions>" X_FORM_TYPE                   \
             "<field type='text-single' var='nick' label='Nickname'/></x></query>"

/* IRC: the form request says "no directory"; searches become lookups of the nick. */
static void test_lookup_without_directory(void **state)
{
    struct fx *f = *state;
    request(f, IQ("get", "g1", DOMAIN, Q_SEARCH "</query>"), 1);
    struct np_cmd *cmd = take_cmd(NP_CMD_SEARCH);
    assert_int_equal(cmd->u.search.field_count, 0);
    uint64_t id = cmd->u.search.request_id;
    np_cmd_free(cmd);
    event(f,
          np_event_search_results(OWNER, id, NP_REQ_UNSUPPORTED, "no directory", NULL, 0, NULL, 0));
    expect_sent(RESULT("g1", DOMAIN, LOOKUP_FORM));
    /* The form is kept: the next get is answered at once, even offline. */
    request(f, IQ("get", "g2", DOMAIN, Q_SEARCH "</query>"), 0);
    expect_sent(RESULT("g2", DOMAIN, LOOKUP_FORM));

    request(f, IQ("set", "s1", DOMAIN, Q_SEARCH "<nick>Zed</nick></query>"), 1);
    cmd = take_cmd(NP_CMD_GET_INFO);
    assert_string_equal(cmd->u.info.who, "Zed");
    const struct np_field pairs[] = {{"Nick", "Zed"}, {"Real name", "Zed Z"}};
    event(f, np_event_userinfo(OWNER, cmd->u.info.request_id, "Zed", NP_REQ_OK, NULL, pairs, 2));
    np_cmd_free(cmd);
    expect_sent(RESULT("s1", DOMAIN,
                       Q_SEARCH "<item jid='zed@irc.example.org'><nick>Zed"
                                "</nick></item></query>"));

    request(f, IQ("set", "s2", DOMAIN, Q_SEARCH "<nick>ghost</nick></query>"), 1);
    cmd = take_cmd(NP_CMD_GET_INFO);
    event(f, np_event_userinfo(OWNER, cmd->u.info.request_id, "ghost", NP_REQ_NOT_FOUND,
                               "No such nick", NULL, 0));
    np_cmd_free(cmd);
    expect_sent(RESULT("s2", DOMAIN, Q_EMPTY));

    request(f, IQ("set", "s3", DOMAIN, Q_SEARCH "<first>A</first><last>B</last></query>"), 1);
    expect_sent(ERROR("s3", DOMAIN, "modify", "not-acceptable",
                      "IRC has no user directory: fill in the nickname to look up"));

    /* A line break would end IRC's WHOIS line and run the rest as a command. */
    request(f, IQ("set", "s4", DOMAIN, Q_SEARCH "<nick>zed&#13;JOIN #x</nick></query>"), 1);
    expect_sent(ERROR("s4", DOMAIN, "modify", "bad-request",
                      "a nickname cannot contain control characters"));
    request(f, IQ("set", "s5", DOMAIN, Q_SEARCH "<nick>zed&#10;QUIT</nick></query>"), 1);
    expect_sent(ERROR("s5", DOMAIN, "modify", "bad-request",
                      "a nickname cannot contain control characters"));
}

/* A directory: the form is fetched first, the fields mapped onto it, one search at a time. */
static void test_directory_search(void **state)
{
    struct fx *f = *state;
    request(f, IQ("set", "s1", DOMAIN, Q_SEARCH "<first>Car</first></query>"), 1);
    request(f,
            IQ("set", "s2", DOMAIN,
               Q_SEARCH "<x xmlns='jabber:x:data' type='submit'><field var='nick'><value>d"
                        "</value></field></x></query>"),
            1);
    struct np_cmd *cmd = take_cmd(NP_CMD_SEARCH); /* one form fetch for both */
    assert_int_equal(ncmds, 0);
    const struct np_field form[] = {{"given", "First Name"}, {"nickname", "Nickname"}};
    event(f, np_event_search_form(OWNER, cmd->u.search.request_id, "Fill in", form, 2));
    np_cmd_free(cmd);
    cmd = take_cmd(NP_CMD_SEARCH);
    assert_int_equal(ncmds, 0); /* the second waits for the first */
    assert_int_equal(cmd->u.search.field_count, 1);
    assert_string_equal(cmd->u.search.fields[0].name, "given");
    assert_string_equal(cmd->u.search.fields[0].value, "Car");
    const char *const cols[] = {"JID", "First Name"};
    const char *const rows[] = {"carol@l", "Carol", "carla@l", "Carla"};
    event(f, np_event_search_results(OWNER, cmd->u.search.request_id, NP_REQ_OK, NULL, cols, 2,
                                     rows, 2));
    np_cmd_free(cmd);
    expect_sent(RESULT("s1", DOMAIN,
                       Q_SEARCH
                       "<item jid='carol\\40l@irc.example.org'><first>"
                       "Carol</first></item><item jid='carla\\40l@irc.example.org'><first>Carla"
                       "</first></item></query>"));
    cmd = take_cmd(NP_CMD_SEARCH);
    assert_string_equal(cmd->u.search.fields[0].name, "nickname");
    event(f, np_event_search_results(OWNER, cmd->u.search.request_id, NP_REQ_FAILED,
                                     "Directory Query Failed", NULL, 0, NULL, 0));
    np_cmd_free(cmd);
    expect_sent(ERROR("s2", DOMAIN, "cancel", "service-unavailable",
                      "IRC answered with an error: Directory Query Failed"));
    /* Nothing to search for. */
    request(f, IQ("set", "s3", DOMAIN, Q_SEARCH "<first> </first></query>"), 1);
    expect_sent(ERROR("s3", DOMAIN, "modify", "not-acceptable", "fill in at least one field"));
}

static void test_vcard_timeout_and_late_answer(void **state)
{
    struct fx *f = *state;
    f->cfg.legacy_request_timeout_ms = 1000;
    int64_t before = now_ms();
    request(f, IQ("get", "v1", "zed\\5b1\\5d@" DOMAIN, "<vCard xmlns='vcard-temp'/>"), 1);
    struct np_cmd *cmd = take_cmd(NP_CMD_GET_INFO);
    assert_string_equal(cmd->u.info.who, "zed\\5b1\\5d");
    int64_t deadline = searches_deadline(f->ss);
    assert_true(deadline >= before + 1000 && deadline <= now_ms() + 1000);
    searches_expire(f->ss, deadline - 1);
    assert_int_equal(nsent, 0);
    searches_expire(f->ss, deadline);
    expect_sent(ERROR("v1", "zed\\5b1\\5d@" DOMAIN, "wait", "remote-server-timeout",
                      "IRC did not answer within 1 s"));
    assert_true(searches_deadline(f->ss) == INT64_MAX);
    /* The answer that comes too late is dropped. */
    event(f, np_event_userinfo(OWNER, cmd->u.info.request_id, "zed", NP_REQ_OK, NULL, NULL, 0));
    np_cmd_free(cmd);
    assert_int_equal(nsent, 0);

    request(f, IQ("get", "v2", "zed@" DOMAIN, "<vCard xmlns='vcard-temp'/>"), 1);
    cmd = take_cmd(NP_CMD_GET_INFO);
    const struct np_field pairs[] = {{"Nick", "zed"}, {"Real name", "Zed Z"}};
    event(f, np_event_userinfo(OWNER, cmd->u.info.request_id, "zed", NP_REQ_OK, NULL, pairs, 2));
    np_cmd_free(cmd);
    expect_sent(RESULT("v2", "zed@" DOMAIN,
                       "<vCard xmlns='vcard-temp'><FN>Zed Z</FN>"
                       "<NICKNAME>zed</NICKNAME></vCard>"));
    request(f, IQ("get", "v3", "nobody@" DOMAIN, "<vCard xmlns='vcard-temp'/>"), 1);
    cmd = take_cmd(NP_CMD_GET_INFO);
    event(f, np_event_userinfo(OWNER, cmd->u.info.request_id, "nobody", NP_REQ_NOT_FOUND,
                               "No such nick", NULL, 0));
    np_cmd_free(cmd);
    expect_sent(ERROR("v3", "nobody@" DOMAIN, "cancel", "item-not-found", "no such user on IRC"));
}

static void test_offline_and_abort(void **state)
{
    struct fx *f = *state;
    searches_request(f->ss, parse(IQ("get", "v1", "zed@" DOMAIN, "<vCard xmlns='vcard-temp'/>")), 0,
                     "Not connected to IRC: refused. Trying again in 5 s.");
    expect_sent(ERROR("v1", "zed@" DOMAIN, "wait", "recipient-unavailable",
                      "Not connected to IRC: refused. Trying again in 5 s."));
    request(f, IQ("set", "s1", DOMAIN, Q_SEARCH "<nick>a</nick></query>"), 0);
    expect_sent(ERROR("s1", DOMAIN, "wait", "recipient-unavailable",
                      "The login to IRC is still under way: try again in a moment."));
    request(f, IQ("get", "v2", "zed@" DOMAIN, "<vCard xmlns='vcard-temp'/>"), 1);
    request(f, IQ("get", "g1", DOMAIN, Q_SEARCH "</query>"), 1);
    np_cmd_free(take_cmd(NP_CMD_GET_INFO));
    np_cmd_free(take_cmd(NP_CMD_SEARCH));
    searches_abort(f->ss, "recipient-unavailable", "the session ended");
    expect_sent(ERROR("v2", "zed@" DOMAIN, "wait", "recipient-unavailable", "the session ended"));
    expect_sent(ERROR("g1", DOMAIN, "wait", "recipient-unavailable", "the session ended"));
    assert_non_null(strstr(last_log, "alice@example.org: g1 answered recipient-unavailable"));
    /* Events that belong to nobody are taken and dropped; others are not ours. */
    struct np_event *ev = np_event_signed_on(OWNER, "zed");
    assert_int_equal(searches_event(f->ss, ev), 0);
    np_event_free(ev);
}

int main(void)
{
    log_set_sink(quiet_log, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vars),
        cmocka_unit_test(test_form_query),
        cmocka_unit_test(test_fields_from_query),
        cmocka_unit_test(test_fields_to_protocol),
        cmocka_unit_test(test_result_plain),
        cmocka_unit_test(test_result_form),
        cmocka_unit_test(test_vcard_from_irc_whois),
        cmocka_unit_test(test_vcard_from_xmpp),
        cmocka_unit_test_setup_teardown(test_lookup_without_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vcard_timeout_and_late_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_and_abort, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
