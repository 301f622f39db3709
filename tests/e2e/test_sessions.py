"""Sessions (issue 5), end to end: a real client through a real Prosody, Ferry, a real ngircd
and a scripted raw IRC peer. An owner registers (jabber:iq:register), comes online, gets a
legacy login; messages go both ways unchanged (markup characters, accents, emoji), IRC
formatting and broken UTF-8 arrive cleaned, IRC nicks with [ ] \\ ` ^ { } | round-trip through
their escaped JIDs; delivery errors, messages sent before the sign-on, resources and
priorities, subscriptions, going offline, a taken nick, ngircd and Ferry restarts, SIGTERM."""

import re
import time
import unittest

import ferrytest as ft
from ferrytest import NS, COMPONENT
from test_register import SlowIrcServer

NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'
NS_NICK = 'http://jabber.org/protocol/nick'
NS_IDLE = 'urn:xmpp:idle:1'
ROSTER_NS = 'jabber:iq:roster'
LOGIN_TIMEOUT = 25  # a real IRC login: ngircd holds a new client about a second
FFFD = '\ufffd'


def c_tag(name):
    return '{jabber:client}%s' % name


def is_presence(el, frm, type_=None):
    return (el.tag == c_tag('presence') and el.get('from') == frm
            and el.get('type') == type_)


def is_message(el, frm, type_=None):
    return (el.tag == c_tag('message') and el.get('from') == frm
            and (type_ is None or el.get('type') == type_))


def body_of(el):
    return el.findtext(c_tag('body'))


def show_of(el):
    return el.findtext(c_tag('show'))


REMOVE = "<query xmlns='%s'><remove/></query>" % NS['register']
ERROR_PRESENCE = ("<presence to='%s' type='error'><error type='cancel'><remote-server-not-found "
                  "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>" % COMPONENT)


def component_presences(prosody, to):
    """(from, type) of every presence to `to` that Prosody received from the component, from
    its debug log: Prosody passes an unsubscribe or unsubscribed on to the client only when it
    changes the roster, so the log is where every one of them shows."""
    out = []
    for m in re.finditer(r'Received\[component\]: (<presence\b[^>]*>)', prosody.log_text()):
        attrs = dict(re.findall(r"""(\w+)=['"]([^'"]*)['"]""", m.group(1)))
        if attrs.get('to') == to:
            out.append((attrs.get('from'), attrs.get('type')))
    return out


ESCAPED = ' "&\'/:<>@'
ESCAPE_CODES = {'%02x' % ord(ch) for ch in ESCAPED + '\\'}


def contact(nick):
    """The JID of an IRC nick: XEP-0106 escaped (a backslash only where it would start an
    escape sequence), then lowercased (nodeprep folds ASCII case)."""
    out = []
    for i, ch in enumerate(nick):
        if ch in ESCAPED:
            out.append('\\%02x' % ord(ch))
        elif ch == '\\' and nick[i + 1:i + 3].lower() in ESCAPE_CODES:
            out.append('\\5c')
        else:
            out.append(ch)
    return '%s@%s' % (''.join(out).lower(), COMPONENT)


class SessionCase(unittest.TestCase):
    """Owners: a registered, online XMPP user with a running session."""

    def owner(self, prosody, name, resource='e2e', register=True, priority=None,
              approve=True, online=True):
        """A client for name@localhost that fetched its roster, sent available presence and,
        with register, registered nick name with the transport (subscriptions approved both
        ways as XEP-0100 has it). Returns the client once the legacy login is done."""
        c = prosody.client(name, resource=resource)
        self.addCleanup(c.disconnect)
        c.xmpp.auto_authorize = None  # the test answers subscription requests itself
        c.xmpp.auto_subscribe = False
        r = c.iq('get', None, "<query xmlns='%s'/>" % ROSTER_NS)
        self.assertEqual(r.get('type'), 'result', ft.to_string(r))
        if online:
            c.presence(payload=self.prio(priority))
        if register:
            self.register(c, name)
            if approve:
                self.wait_signed_on(c)
        return c

    @staticmethod
    def prio(priority):
        return '<priority>%d</priority>' % priority if priority is not None else ''

    def register(self, c, username, password=''):
        r = c.iq('set', COMPONENT, "<query xmlns='%s'><username>%s</username>"
                 "<password>%s</password></query>" % (NS['register'], ft.xml_escape(username),
                                                      ft.xml_escape(password)), timeout=30)
        self.assertEqual(r.get('type'), 'result', ft.to_string(r))
        c.wait_for(lambda e: is_presence(e, COMPONENT, 'subscribe'), 10,
                   'subscribe from the transport')
        c.presence(COMPONENT, 'subscribed')
        c.presence(COMPONENT, 'subscribe')
        c.wait_for(lambda e: is_presence(e, COMPONENT, 'subscribed'), 10,
                   'subscribed from the transport')

    def wait_signed_on(self, c, timeout=LOGIN_TIMEOUT):
        """The transport's available presence: the legacy login is done."""
        return c.wait_for(lambda e: is_presence(e, COMPONENT), timeout,
                          'available presence from the transport')

    def subscribe(self, c, nick):
        """The owner adds an IRC nick to its roster; the contact answers subscribed."""
        jid = contact(nick)
        c.presence(jid, 'subscribe')
        c.wait_for(lambda e: is_presence(e, jid, 'subscribed'), 10, 'subscribed from ' + jid)
        return jid

    def no_stanza(self, c, predicate, seconds=1.5):
        time.sleep(seconds)
        extra = [ft.to_string(e) for e in c.pending() if predicate(e)]
        self.assertEqual(extra, [])

    def irc(self, ngircd, nick):
        peer = ngircd.client(nick)
        self.addCleanup(peer.close)
        return peer

    def privmsg(self, peer, frm, timeout=10):
        """The next PRIVMSG to the peer from nick frm: its text (str, from UTF-8)."""
        m = peer.wait_for(r'^:%s!\S* PRIVMSG %s :(.*)$' % (re.escape(frm), re.escape(peer.nick)),
                          timeout)
        return m.group(1)

    def message_from(self, c, jid, timeout=10):
        return c.wait_for(lambda e: is_message(e, jid) and body_of(e) is not None, timeout,
                          'message from ' + jid)

    def error_from(self, c, jid, timeout=10):
        return c.wait_for(lambda e: is_message(e, jid, 'error'), timeout, 'error from ' + jid)

    def away_text(self, peer, nick):
        """nick's IRC away message (WHOIS), or None when nick is not away."""
        peer.send('WHOIS %s' % nick)
        away = None
        while True:
            m = peer.wait_for(r'^:\S+ (301|318|401) \S+ (\S+) :?(.*)$')
            if m.group(1) == '301':
                away = m.group(3)
            elif m.group(1) == '401':
                raise AssertionError('%s is not on IRC' % nick)
            else:
                return away

    def on_irc(self, peer, nick):
        """1 when nick is connected to the IRC server (ISON)."""
        peer.send('ISON %s' % nick)
        m = peer.wait_for(r'^:\S+ 303 \S+ :?(.*)$')
        return nick.lower() in m.group(1).lower().split()

    def wait_irc(self, peer, nick, present=True, timeout=15):
        ft.wait_until(lambda: self.on_irc(peer, nick) == present, timeout,
                      '%s %s IRC' % (nick, 'on' if present else 'off'), interval=0.3)

    def wait_away(self, peer, nick, text, timeout=10):
        """Waits until nick's away message is text (None: not away)."""
        ft.wait_until(lambda: self.away_text(peer, nick) == text, timeout,
                      'away message of %s to be %r' % (nick, text), interval=0.3)


class SessionTest(SessionCase):
    """One Prosody, one ngircd, one Ferry for the tests that leave the servers running."""

    @classmethod
    def setUpClass(cls):
        cls.prosody = ft.Prosody()
        cls.addClassCleanup(cls.prosody.close)
        cls.prosody.start()
        cls.ngircd = ft.Ngircd(no_penalty=True)
        cls.addClassCleanup(cls.ngircd.close)
        cls.ngircd.start()
        cls.ferry = ft.Ferry(cls.prosody, cls.ngircd)
        cls.addClassCleanup(cls.ferry.close)
        cls.ferry.start()

    @classmethod
    def tearDownClass(cls):
        cls.ferry.stop_cleanly()

    def setUp(self):
        self.ferry.assert_running()

    def test_online_then_messages_both_ways(self):
        peer = self.irc(self.ngircd, 'pia')
        c = self.owner(self.prosody, 'alice')
        jid = contact('pia')
        text = 'x < y > z & \'q\' "dq" caf\u00e9 na\u00efve \u00c5 \U0001f600 \u2603'
        c.message(jid, text)
        self.assertEqual(self.privmsg(peer, 'alice'), text)
        peer.privmsg('alice', text)
        m = self.message_from(c, jid)
        self.assertEqual(body_of(m), text)
        self.assertEqual(m.get('type'), 'chat')
        self.assertEqual(m.get('to'), c.jid.split('/')[0])
        # The reply keeps the type and thread the owner used last.
        c.message(jid, 'threaded', type_='normal', payload='<thread>t-42</thread>')
        self.assertEqual(self.privmsg(peer, 'alice'), 'threaded')
        peer.privmsg('alice', 'in the thread')
        m = self.message_from(c, jid)
        self.assertEqual((m.get('type'), m.findtext(c_tag('thread')), body_of(m)),
                         ('normal', 't-42', 'in the thread'))
        # Chat states from the owner are accepted (IRC has none to carry them).
        c.message(jid, payload="<composing xmlns='%s'/>" % NS_CHATSTATES)
        # A contact answers disco#info and ping.
        r = c.iq('get', jid, "<query xmlns='%s'/>" % NS['info'])
        self.assertEqual(r.get('type'), 'result', ft.to_string(r))
        features = [f.get('var') for f in r.findall('info:query/info:feature', NS)]
        self.assertIn(NS_CHATSTATES, features)
        r = c.iq('get', jid, "<ping xmlns='%s'/>" % NS['ping'])
        self.assertEqual(r.get('type'), 'result', ft.to_string(r))
        r = c.iq('get', jid, "<query xmlns='%s'/>" % NS['version'])
        self.assertEqual(ft.error_of(r)[:2], ('cancel', 'service-unavailable'))

    def test_irc_formatting_and_broken_text_cleaned(self):
        peer = self.irc(self.ngircd, 'fmt')
        c = self.owner(self.prosody, 'fmtowner')
        jid = contact('fmt')
        peer.privmsg('fmtowner', b'\x02bold\x02 \x0304,12red\x0f \x1ditalic\x1d \x1funder\x1f '
                     b'\x1estrike\x1e \x11mono\x11 \x16rev\x16 \x04ff8800hex\x04 '
                     b'bell\x07 esc\x1b[0m nul-less caf\xe9 sur\xed\xa0\x80 ok \xf0\x9f\x98\x80')
        m = self.message_from(c, jid)
        # libpurple turns IRC bytes that are not UTF-8 into '?' before Ferry sees them; Ferry
        # removes every formatting code and control character it is left with.
        self.assertEqual(body_of(m), 'bold red italic under strike mono rev hex bell esc[0m '
                         'nul-less caf? sur??? ok \U0001f600')
        # The link survived: a plain message still goes through.
        peer.privmsg('fmtowner', 'still here')
        self.assertEqual(body_of(self.message_from(c, jid)), 'still here')

    def test_special_nicks_round_trip(self):
        c = self.owner(self.prosody, 'nickfan')
        for nick in ('[x]\\y`^{z}|', 'A\\5cB_{}', 'Zed[X]|'):
            peer = self.irc(self.ngircd, nick)
            jid = contact(nick)
            peer.privmsg('nickfan', 'hello from ' + nick)
            m = self.message_from(c, jid)
            self.assertEqual(body_of(m), 'hello from ' + nick)
            c.message(jid, 'reply to ' + nick)
            self.assertEqual(self.privmsg(peer, 'nickfan'), 'reply to ' + nick)
        # Writing first, to a JID typed in lower case: IRC nicks ignore case.
        peer = self.irc(self.ngircd, 'Cap[S]')
        c.message(contact('Cap[S]'), 'first word')
        self.assertEqual(self.privmsg(peer, 'nickfan'), 'first word')

    def test_message_to_missing_nick_bounces(self):
        c = self.owner(self.prosody, 'lost')
        jid = contact('nobody-here')
        mid = c.message(jid, 'anyone <there>?')
        err = self.error_from(c, jid)
        self.assertEqual(err.get('id'), mid)
        self.assertEqual(err.get('to'), c.jid)
        self.assertEqual(ft.error_of(err)[:2], ('cancel', 'item-not-found'), ft.to_string(err))
        self.assertEqual(body_of(err), 'anyone <there>?')

    def test_message_in_the_same_breath_as_the_first_presence(self):
        peer = self.irc(self.ngircd, 'quick')
        c = self.owner(self.prosody, 'hasty')
        c.presence(type_='unavailable')
        self.wait_irc(peer, 'hasty', present=False)
        c.send("<presence/><message to='%s' type='chat' id='early1'><body>before the login"
               "</body></message>" % contact('quick'))
        self.assertEqual(self.privmsg(peer, 'hasty', LOGIN_TIMEOUT), 'before the login')
        self.wait_signed_on(c)

    def test_two_resources_with_priorities(self):
        peer = self.irc(self.ngircd, 'watcher')
        a = self.owner(self.prosody, 'dora', resource='desk', priority=10)
        b = self.owner(self.prosody, 'dora', resource='phone', register=False, priority=5)
        self.wait_away(peer, 'dora', None)
        # The highest priority decides, whatever the other resource says.
        a.presence(payload='<show>away</show><status>at lunch</status><priority>10</priority>')
        self.wait_away(peer, 'dora', 'at lunch')
        b.presence(payload='<show>dnd</show><status>busy phone</status><priority>5</priority>')
        time.sleep(0.5)
        self.assertEqual(self.away_text(peer, 'dora'), 'at lunch')
        # A message from IRC goes to the bare JID: the server picks the higher priority.
        peer.privmsg('dora', 'to the desk')
        self.assertEqual(body_of(self.message_from(a, contact('watcher'))), 'to the desk')
        self.assertEqual([e for e in b.pending() if is_message(e, contact('watcher'))], [])
        # The desk leaves: the phone's status takes over; the session stays.
        a.presence(type_='unavailable')
        self.wait_away(peer, 'dora', 'busy phone')
        b.presence(payload='<priority>5</priority>')
        self.wait_away(peer, 'dora', None)
        # The last resource leaves: legacy logout.
        b.presence(type_='unavailable')
        self.wait_irc(peer, 'dora', present=False)
        self.ferry.wait_log(r'dora@localhost: session ended')

    def test_nick_already_in_use(self):
        squatter = self.irc(self.ngircd, 'erin')
        peer = self.irc(self.ngircd, 'erinpal')
        c = self.owner(self.prosody, 'erin', register=True, approve=False)
        p = self.wait_signed_on(c)
        status = p.findtext(c_tag('status')) or ''
        self.assertRegex(status, r'as erin\S+', ft.to_string(p))
        got = re.search(r'as (\S+)', status).group(1)
        note = self.message_from(c, COMPONENT)
        self.assertIn('erin', body_of(note))
        self.assertIn(got, body_of(note))
        c.message(contact('erinpal'), 'who am I')
        self.assertEqual(self.privmsg(peer, got), 'who am I')
        squatter.close()

    def test_subscribe_to_a_contact_and_probe(self):
        peer = self.irc(self.ngircd, 'gus')
        c = self.owner(self.prosody, 'hank')
        jid = self.subscribe(c, 'gus')
        c.wait_for(lambda e: is_presence(e, jid), 10, 'available presence of gus')
        c.presence(jid, 'probe')
        c.wait_for(lambda e: is_presence(e, jid) and e.get('to') == c.jid, 10, 'probe answer')
        # The contact is remembered: at the next login it is followed again, without asking.
        c.presence(type_='unavailable')
        self.wait_irc(peer, 'hank', present=False)
        c.presence()
        self.wait_signed_on(c)
        c.wait_for(lambda e: is_presence(e, jid), 15, 'available presence of gus again')
        self.assertEqual([ft.to_string(e) for e in c.pending()
                          if is_presence(e, jid, 'subscribe')], [])
        # Unsubscribing ends the presence flow.
        c.presence(jid, 'unsubscribe')
        c.wait_for(lambda e: is_presence(e, jid, 'unavailable'), 10, 'unavailable from gus')

    def test_remove_while_online_ends_the_session_with_goodbyes(self):
        """issue 4: <remove/> while the session runs: the legacy session ends (the IRC side
        sees the owner leave), and the transport and every stored contact send unsubscribe,
        unsubscribed and unavailable."""
        peer = self.irc(self.ngircd, 'remy')
        c = self.owner(self.prosody, 'rhea')
        bare = c.jid.split('/')[0]
        remy = self.subscribe(c, 'remy')
        c.wait_for(lambda e: is_presence(e, remy), 10, 'remy available')
        rollo = self.subscribe(c, 'rollo')  # not on IRC: a stored contact all the same
        self.wait_irc(peer, 'rhea')
        r = c.iq('set', COMPONENT, REMOVE, timeout=20)
        self.assertEqual(r.get('type'), 'result', ft.to_string(r))
        self.wait_irc(peer, 'rhea', present=False)
        for type_ in ('unsubscribe', 'unsubscribed', 'unavailable'):
            c.wait_for(lambda e: is_presence(e, COMPONENT, type_), 10, type_ + ' from transport')
        # The owner followed the contacts (subscription "to"): Prosody passes unsubscribed on.
        for jid in (remy, rollo):
            c.wait_for(lambda e: is_presence(e, jid, 'unsubscribed'), 10, 'unsubscribed ' + jid)
        c.wait_for(lambda e: is_presence(e, remy, 'unavailable'), 10, 'remy unavailable')
        want = {(jid, t) for jid in (remy, rollo, COMPONENT)
                for t in ('unsubscribe', 'unsubscribed', 'unavailable')}
        ft.wait_until(lambda: want <= set(component_presences(self.prosody, bare)), 5,
                      'every goodbye in the Prosody log')
        self.ferry.wait_log(r'rhea@localhost: unregistered \(2 contacts\)')
        # Unregistered: a presence to the transport starts nothing.
        c.presence(COMPONENT)
        self.no_stanza(c, lambda e: is_presence(e, COMPONENT))
        self.assertNotIn('rhea@localhost: session started',
                         self.ferry.log_text().split('rhea@localhost: unregistered')[1])

    def test_error_presence_from_the_owner_ends_the_session(self):
        """issue 5: a presence of type error from the owner's side ends the session: legacy
        logout, the transport goes unavailable."""
        peer = self.irc(self.ngircd, 'ezpal')
        c = self.owner(self.prosody, 'ezra')
        self.wait_irc(peer, 'ezra')
        c.send(ERROR_PRESENCE)
        c.wait_for(lambda e: is_presence(e, COMPONENT, 'unavailable'), 10,
                   'the transport unavailable')
        self.wait_irc(peer, 'ezra', present=False)
        self.ferry.wait_log(r'ezra@localhost: session ended')

    def test_errors_without_a_session(self):
        stranger = self.prosody.client('stranger')
        self.addCleanup(stranger.disconnect)
        stranger.message(contact('pia'), 'hi')
        err = self.error_from(stranger, contact('pia'))
        self.assertEqual(ft.error_of(err)[:2], ('auth', 'registration-required'))
        c = self.owner(self.prosody, 'sleepy')
        c.presence(type_='unavailable')
        self.ferry.wait_log(r'sleepy@localhost: session ended')
        c.message(contact('pia'), 'hi')
        err = self.error_from(c, contact('pia'))
        cond = ft.error_of(err)
        self.assertEqual(cond[:2], ('wait', 'recipient-unavailable'), ft.to_string(err))
        self.assertIn('online', cond[2])


class RestartTest(SessionCase):
    """Servers going away under a running session: ngircd stopped and started again, Ferry
    stopped (SIGTERM) and started again with the owner online, a login that fails."""

    @classmethod
    def setUpClass(cls):
        cls.prosody = ft.Prosody()
        cls.addClassCleanup(cls.prosody.close)
        cls.prosody.start()
        cls.ngircd = ft.Ngircd(no_penalty=True)
        cls.addClassCleanup(cls.ngircd.close)
        cls.ngircd.start()
        cls.ferry = ft.Ferry(cls.prosody, cls.ngircd, overrides={
            'legacy': {'reconnect_min': '0.5', 'reconnect_max': '2'}})
        cls.addClassCleanup(cls.ferry.close)
        cls.ferry.start()

    def setUp(self):
        if not self.ngircd.proc.alive():
            self.ngircd.start()
        if not self.ferry.alive():
            self.ferry.start()

    def test_ngircd_stopped_and_started(self):
        c = self.owner(self.prosody, 'ivy')
        peer = self.irc(self.ngircd, 'ivypal')
        jid = self.subscribe(c, 'ivypal')
        c.wait_for(lambda e: is_presence(e, jid), 10, 'available presence of ivypal')
        self.ngircd.stop()
        down = c.wait_for(lambda e: is_presence(e, COMPONENT, 'unavailable'), 10,
                          'the transport going unavailable')
        self.assertIn('Not connected to IRC', down.findtext(c_tag('status')) or '')
        c.wait_for(lambda e: is_presence(e, jid, 'unavailable'), 5, 'ivypal unavailable')
        # While the network is away, a message comes back at once with its body.
        c.message(jid, 'are you there?')
        err = self.error_from(c, jid)
        self.assertEqual(ft.error_of(err)[:2], ('wait', 'recipient-unavailable'))
        self.assertEqual(body_of(err), 'are you there?')
        peer.sock.close()
        self.ngircd.start()
        self.wait_signed_on(c, 15)
        peer = self.irc(self.ngircd, 'ivypal')
        c.wait_for(lambda e: is_presence(e, jid), 15, 'ivypal available again')
        c.message(jid, 'back again')
        self.assertEqual(self.privmsg(peer, 'ivy'), 'back again')

    def test_message_bounced_when_the_login_fails(self):
        c = self.owner(self.prosody, 'jules')
        c.presence(type_='unavailable')
        self.ferry.wait_log(r'jules@localhost: session ended')
        self.ngircd.stop()
        c.send("<presence/><message to='%s' type='chat' id='doomed'><body>lost &amp; found"
               "</body></message>" % contact('anyone'))
        err = self.error_from(c, contact('anyone'), 15)
        self.assertEqual(err.get('id'), 'doomed')
        self.assertEqual(ft.error_of(err)[:2], ('wait', 'recipient-unavailable'))
        self.assertEqual(body_of(err), 'lost & found')
        self.ngircd.start()
        self.wait_signed_on(c, 15)

    def test_ferry_restarted_with_the_owner_online(self):
        c = self.owner(self.prosody, 'kate')
        peer = self.irc(self.ngircd, 'katepal')
        jid = self.subscribe(c, 'katepal')
        c.wait_for(lambda e: is_presence(e, jid), 10, 'available presence of katepal')
        self.assertEqual(self.ferry.stop(), 0, self.ferry.log_tail())
        # SIGTERM: unavailable from the contacts and the transport before the link closes.
        c.wait_for(lambda e: is_presence(e, jid, 'unavailable'), 5, 'katepal unavailable')
        bye = c.wait_for(lambda e: is_presence(e, COMPONENT, 'unavailable'), 5,
                         'the transport unavailable')
        self.assertIn('shutting down', bye.findtext(c_tag('status')) or '')
        self.ferry.start()
        # The probe at link up brings the session back without the owner doing anything.
        self.wait_signed_on(c, 20)
        c.wait_for(lambda e: is_presence(e, jid), 15, 'katepal available again')
        peer.privmsg('kate', 'welcome back')
        self.assertEqual(body_of(self.message_from(c, jid)), 'welcome back')


class FatalLoginTest(SessionCase):
    """An ngircd whose password changes after the registration: the login is refused, the owner
    is told how to register again, and Ferry does not retry."""

    @classmethod
    def setUpClass(cls):
        cls.prosody = ft.Prosody()
        cls.addClassCleanup(cls.prosody.close)
        cls.prosody.start()
        cls.ngircd = ft.Ngircd(password='first-secret')
        cls.addClassCleanup(cls.ngircd.close)
        cls.ngircd.start()
        cls.ferry = ft.Ferry(cls.prosody, cls.ngircd, overrides={
            'legacy': {'reconnect_min': '0.3', 'reconnect_max': '1'}})
        cls.addClassCleanup(cls.ferry.close)
        cls.ferry.start()

    def test_wrong_password_is_not_retried(self):
        c = self.owner(self.prosody, 'liam', register=False)
        self.register(c, 'liam', 'first-secret')
        self.wait_signed_on(c)
        self.ngircd.stop()
        with open(self.ngircd.config) as f:
            conf = f.read()
        with open(self.ngircd.config, 'w') as f:
            f.write(conf.replace('Password = first-secret', 'Password = second-secret'))
        self.ngircd.start()
        note = c.wait_for(lambda e: is_message(e, COMPONENT) and 'refused' in
                          (body_of(e) or ''), 20, 'the message about the refused login')
        self.assertIn('register', body_of(note))
        p = c.wait_for(lambda e: is_presence(e, COMPONENT, 'unavailable') and 'refused' in
                       (e.findtext(c_tag('status')) or ''), 5, 'transport presence')
        self.assertIn('IRC', p.findtext(c_tag('status')))
        attempts = len(re.findall(r'liam@localhost: logging in', self.ferry.log_text()))
        time.sleep(3)
        self.assertEqual(len(re.findall(r'liam@localhost: logging in', self.ferry.log_text())),
                         attempts, 'Ferry tried again after a refused password')
        # Registering again with the right password brings the session back.
        self.register_again(c, 'liam', 'second-secret')
        self.wait_signed_on(c, 20)

    def register_again(self, c, username, password):
        r = c.iq('set', COMPONENT, "<query xmlns='%s'><username>%s</username>"
                 "<password>%s</password></query>" % (NS['register'], username, password),
                 timeout=30)
        self.assertEqual(r.get('type'), 'result', ft.to_string(r))


class SlowLoginTest(SessionCase):
    """A legacy server that takes its time to welcome a client (SlowIrcServer, of
    test_register): longer than [legacy] early_presence_timeout, shorter than login_timeout."""

    DELAY = 2.5

    @classmethod
    def setUpClass(cls):
        cls.prosody = ft.Prosody()
        cls.addClassCleanup(cls.prosody.close)
        cls.prosody.start()
        cls.irc_server = SlowIrcServer(delay=cls.DELAY)
        cls.addClassCleanup(cls.irc_server.close)
        cls.ferry = ft.Ferry(cls.prosody, None, overrides={
            'legacy': {'port': cls.irc_server.port, 'early_presence_timeout': '1',
                       'login_timeout': '20'}})
        cls.addClassCleanup(cls.ferry.close)
        cls.ferry.start()

    def test_early_presence_expires_with_a_log_line(self):
        """issue 5: presence for a contact sent before the sign-on waits at most
        early_presence_timeout, then is dropped with a log line, and not replayed."""
        c = self.owner(self.prosody, 'tess', approve=False)  # the session's login is under way
        nemo = contact('nemo')
        started = time.monotonic()
        c.presence(nemo, 'probe')
        self.ferry.wait_log(r'tess@localhost: presence probe to %s from before the sign-on '
                            r'expired' % re.escape(nemo), 10)
        self.assertLess(time.monotonic() - started, self.DELAY, 'the login finished first')
        self.wait_signed_on(c, 15)
        self.no_stanza(c, lambda e: e.get('from') == nemo)


LEGACY = 'legacy.localhost'
# A legacy user name in Hebrew letters is a valid node; the contact's name adds '@' and the
# Latin letters of the domain, which nodeprep's bidi rule refuses in one node (RFC 3454 6).
BIDI_USER = '\u05d0\u05d1\u05d2'


class XmppLegacyTest(SessionCase):
    """A second, different legacy network: libpurple's XMPP protocol (prpl-jabber) against a
    second virtual host of the same Prosody, so that authorization requests, a roster that
    arrives from the legacy server, status messages, idle times and chat states are real."""

    @classmethod
    def setUpClass(cls):
        cls.prosody = ft.Prosody(extra='VirtualHost "%s"\n' % LEGACY)
        cls.addClassCleanup(cls.prosody.close)
        cls.prosody.start()
        cls.passwords = {}
        for user in ('lbob', 'carol', 'dave', 'lgina', 'hugo', 'lpat', 'quinn', 'lrosa',
                     'sven', 'luma', 'lnina', 'olga', 'lotto', 'pete', BIDI_USER):
            cls.passwords[user] = cls.legacy_register(user)
        cls.ferry = ft.Ferry(cls.prosody, None, overrides={'legacy': {
            'protocol': 'prpl-jabber', 'name': 'XMPP', 'server': LEGACY,
            'port': cls.prosody.c2s_port, 'connect_server': '127.0.0.1',
            'connection_security': 'opportunistic_tls', 'auth_plain_in_clear': 'true'}})
        cls.addClassCleanup(cls.ferry.close)
        cls.ferry.start()

    @classmethod
    def legacy_register(cls, user):
        # (SASLprep refuses a password that mixes Latin and right-to-left letters)
        password = 'legacy-' + (user if user.isascii() else user.encode().hex())
        r = ft.subprocess.run([ft.PROSODYCTL, '--config', cls.prosody.config, 'register', user,
                               LEGACY, password], stdin=ft.subprocess.DEVNULL,
                              stdout=ft.subprocess.PIPE, stderr=ft.subprocess.STDOUT,
                              timeout=30)
        if r.returncode != 0:
            raise ft.HarnessError('prosodyctl register %s@%s: %s' % (user, LEGACY, r.stdout))
        return password

    def legacy_client(self, user, auto=True):
        c = ft.XmppClient('%s@%s/legacy' % (user, LEGACY), self.passwords[user],
                          self.prosody.c2s_port)
        self.addCleanup(c.disconnect)
        if not auto:
            c.xmpp.auto_authorize = None
            c.xmpp.auto_subscribe = False
        r = c.iq('get', None, "<query xmlns='%s'/>" % ROSTER_NS)
        self.assertEqual(r.get('type'), 'result', ft.to_string(r))
        return c

    def test_xmpp_network(self):
        # lbob's legacy roster already holds dave, before Ferry ever logs in for alice.
        lbob = self.legacy_client('lbob')
        r = lbob.iq('set', None, "<query xmlns='%s'><item jid='dave@%s' name='Dave D'/></query>"
                    % (ROSTER_NS, LEGACY))
        self.assertEqual(r.get('type'), 'result', ft.to_string(r))
        lbob.disconnect()

        c = self.owner(self.prosody, 'alice', register=False)
        self.register(c, 'lbob', self.passwords['lbob'])
        self.wait_signed_on(c)
        dave = contact('dave@' + LEGACY)
        carol = contact('carol@' + LEGACY)
        self.assertEqual(dave, 'dave\\40legacy.localhost@' + COMPONENT)
        # The legacy roster reaches the owner: one subscribe, with the nickname.
        sub = c.wait_for(lambda e: is_presence(e, dave, 'subscribe'), 10, 'subscribe from dave')
        self.assertEqual(sub.findtext('{%s}nick' % NS_NICK), 'Dave D')
        c.presence(dave, 'subscribed')

        # The owner follows carol (carol's client accepts by itself: the subscribed comes from
        # carol's client, through libpurple; test_xmpp_subscribe_waits_* cover the waiting).
        cl = self.legacy_client('carol')
        cl.presence()
        c.presence(carol, 'subscribe')
        c.wait_for(lambda e: is_presence(e, carol, 'subscribed'), 10, 'subscribed from carol')
        c.wait_for(lambda e: is_presence(e, carol), 10, 'carol available')
        # carol asks to see lbob's presence on the legacy side: the owner decides.
        cl.presence('lbob@' + LEGACY, 'subscribe')
        ask = c.wait_for(lambda e: is_presence(e, carol, 'subscribe'), 10, 'subscribe from carol')
        self.assertEqual(ask.get('to'), c.jid.split('/')[0])
        c.presence(carol, 'subscribed')
        cl.wait_for(lambda e: is_presence(e, 'lbob@' + LEGACY, 'subscribed'), 10,
                    'lbob accepting carol')

        # Status message and idle time.
        cl.presence(payload="<show>away</show><status>coffee &amp; cake</status>"
                    "<query xmlns='jabber:iq:last' seconds='600'/>")
        # (libpurple reports the status and the idle time one after the other)
        p = c.wait_for(lambda e: is_presence(e, carol) and e.findtext(c_tag('show')) == 'away'
                       and e.find('{%s}idle' % NS_IDLE) is not None, 10, 'carol away, idle')
        self.assertEqual(p.findtext(c_tag('status')), 'coffee & cake')
        idle = p.find('{%s}idle' % NS_IDLE)
        since = time.mktime(time.strptime(idle.get('since'), '%Y-%m-%dT%H:%M:%SZ')) - time.timezone
        self.assertAlmostEqual(time.time() - since, 600, delta=60)

        # Messages and chat states, both ways.
        text = '< > & \' " caf\u00e9 \U0001f600'
        c.message(carol, text, payload="<active xmlns='%s'/>" % NS_CHATSTATES)
        m = cl.wait_for(lambda e: e.tag == c_tag('message') and body_of(e) is not None and
                        (e.get('from') or '').startswith('lbob@' + LEGACY), 10,
                        'message to carol')
        self.assertEqual(body_of(m), text)
        cl.send("<message to='lbob@%s' type='chat'><composing xmlns='%s'/></message>"
                % (LEGACY, NS_CHATSTATES))
        c.wait_for(lambda e: is_message(e, carol) and
                   e.find('{%s}composing' % NS_CHATSTATES) is not None, 10, 'carol composing')
        c.message(carol, payload="<composing xmlns='%s'/>" % NS_CHATSTATES)
        cl.wait_for(lambda e: e.tag == c_tag('message') and
                    e.find('{%s}composing' % NS_CHATSTATES) is not None, 10, 'lbob composing')

        # Next login: dave is not asked about again.
        c.presence(type_='unavailable')
        self.ferry.wait_log(r'alice@localhost: session ended')
        c.presence()
        self.wait_signed_on(c)
        c.wait_for(lambda e: is_presence(e, carol) and
                   e.findtext(c_tag('show')) == 'away', 15, 'carol away again')
        self.no_stanza(c, lambda e: e.get('type') == 'subscribe')

    def follow_each_other(self, c, legacy_user, owner_legacy):
        """The owner follows legacy_user (whose client accepts by itself) and agrees to be
        followed back. Returns (the legacy user's client, the contact's JID)."""
        lc = self.legacy_client(legacy_user)
        lc.presence()
        jid = self.subscribe(c, '%s@%s' % (legacy_user, LEGACY))
        c.wait_for(lambda e: is_presence(e, jid), 10, legacy_user + ' available')
        lc.presence(owner_legacy, 'subscribe')
        c.wait_for(lambda e: is_presence(e, jid, 'subscribe'), 10, 'subscribe from ' + jid)
        c.presence(jid, 'subscribed')
        lc.wait_for(lambda e: is_presence(e, owner_legacy, 'subscribed'), 10,
                    owner_legacy + ' accepting ' + legacy_user)
        return lc, jid

    def owner_asks(self, c, lc, legacy_user, owner_legacy):
        """The owner subscribes to legacy_user, whose client (auto=False) sees the legacy
        subscribe from owner_legacy; the owner is not told subscribed meanwhile. Returns the
        contact's JID."""
        jid = contact('%s@%s' % (legacy_user, LEGACY))
        c.presence(jid, 'subscribe')
        lc.wait_for(lambda e: e.tag == c_tag('presence') and e.get('type') == 'subscribe' and
                    (e.get('from') or '').split('/')[0] == owner_legacy, 10,
                    'subscribe from ' + owner_legacy)
        self.no_stanza(c, lambda e: e.get('from') == jid and
                       e.get('type') in ('subscribed', 'unsubscribed'))
        return jid

    def test_xmpp_subscribe_waits_for_the_contact(self):
        """issue 5: the owner's subscribe to a contact on a network with a consent step is
        answered subscribed only once the legacy contact accepted; asked again, it is answered
        at once."""
        c = self.owner(self.prosody, 'nina', register=False)
        self.register(c, 'lnina', self.passwords['lnina'])
        self.wait_signed_on(c)
        lnina = 'lnina@' + LEGACY
        olga = self.legacy_client('olga', auto=False)
        olga.presence()
        jid = self.owner_asks(c, olga, 'olga', lnina)
        olga.presence(lnina, 'subscribed')
        c.wait_for(lambda e: is_presence(e, jid, 'subscribed'), 10, 'subscribed from olga')
        c.wait_for(lambda e: is_presence(e, jid), 10, 'olga available')
        # The legacy side has agreed already: olga is not asked again and Ferry answers at
        # once (the owner's server keeps that second subscribed for itself: nothing pending).
        c.presence(jid, 'subscribe')
        self.ferry.wait_log(r"send <presence from='olga\\40legacy\.localhost@irc\.localhost' "
                            r"to='nina@localhost' type='subscribed'/>", count=2)
        self.no_stanza(olga, lambda e: e.get('type') == 'subscribe', seconds=0.5)

    def test_xmpp_subscribe_refused_by_the_contact(self):
        """issue 5: a legacy contact that refuses the owner's subscribe: the owner receives
        unsubscribed, never subscribed."""
        c = self.owner(self.prosody, 'otto', register=False)
        self.register(c, 'lotto', self.passwords['lotto'])
        self.wait_signed_on(c)
        lotto = 'lotto@' + LEGACY
        pete = self.legacy_client('pete', auto=False)
        pete.presence()
        jid = self.owner_asks(c, pete, 'pete', lotto)
        pete.presence(lotto, 'unsubscribed')
        c.wait_for(lambda e: is_presence(e, jid, 'unsubscribed'), 10, 'unsubscribed from pete')
        self.no_stanza(c, lambda e: is_presence(e, jid, 'subscribed') or is_presence(e, jid))
        self.ferry.wait_log(r'otto@localhost: pete@legacy\.localhost refused or withdrew')

    def test_xmpp_presence_states_both_ways(self):
        """issue 5: extended away, busy and offline reach the owner from a legacy contact; the
        owner's dnd and xa reach the legacy contact."""
        c = self.owner(self.prosody, 'pat', register=False)
        self.register(c, 'lpat', self.passwords['lpat'])
        self.wait_signed_on(c)
        lpat = 'lpat@' + LEGACY
        q, quinn = self.follow_each_other(c, 'quinn', lpat)

        def from_lpat(show):
            return lambda e: (e.tag == c_tag('presence') and e.get('type') is None and
                              (e.get('from') or '').startswith(lpat + '/') and
                              show_of(e) == show)
        c.presence(payload='<show>dnd</show><status>in a meeting</status>')
        p = q.wait_for(from_lpat('dnd'), 10, 'lpat busy')
        self.assertEqual(p.findtext(c_tag('status')), 'in a meeting')
        c.presence(payload='<show>xa</show><status>on holiday</status>')
        p = q.wait_for(from_lpat('xa'), 10, 'lpat extended away')
        self.assertEqual(p.findtext(c_tag('status')), 'on holiday')

        q.presence(payload='<show>xa</show><status>gone fishing</status>')
        p = c.wait_for(lambda e: is_presence(e, quinn) and show_of(e) == 'xa', 10, 'quinn xa')
        self.assertEqual((p.get('to'), p.findtext(c_tag('status'))),
                         (c.jid.split('/')[0], 'gone fishing'))
        q.presence(payload='<show>dnd</show>')
        p = c.wait_for(lambda e: is_presence(e, quinn) and show_of(e) == 'dnd', 10, 'quinn dnd')
        self.assertIsNone(p.find(c_tag('status')), ft.to_string(p))
        q.presence(type_='unavailable')
        c.wait_for(lambda e: is_presence(e, quinn, 'unavailable'), 10, 'quinn offline')

    def test_xmpp_remove_says_goodbye_from_every_contact(self):
        """issue 4: <remove/> while the session runs, with a contact the owner follows and is
        followed by: the owner receives unsubscribe and unsubscribed from the contact and from
        the transport, and the legacy account goes offline."""
        c = self.owner(self.prosody, 'rosa', register=False)
        self.register(c, 'lrosa', self.passwords['lrosa'])
        self.wait_signed_on(c)
        lrosa = 'lrosa@' + LEGACY
        sv, sven = self.follow_each_other(c, 'sven', lrosa)
        r = c.iq('set', COMPONENT, REMOVE, timeout=20)
        self.assertEqual(r.get('type'), 'result', ft.to_string(r))
        for frm in (sven, COMPONENT):
            for type_ in ('unsubscribe', 'unsubscribed', 'unavailable'):
                c.wait_for(lambda e: is_presence(e, frm, type_), 10, '%s from %s' % (type_, frm))
        sv.wait_for(lambda e: e.tag == c_tag('presence') and e.get('type') == 'unavailable' and
                    (e.get('from') or '').startswith(lrosa + '/'), 10, 'lrosa offline')
        self.ferry.wait_log(r'rosa@localhost: unregistered \(1 contacts\)')

    def test_xmpp_remove_reaches_a_contact_without_a_node_of_its_own(self):
        """issue 4: a stored contact whose legacy name has no JID node of its own (it goes by
        a digest node) says goodbye on <remove/> all the same."""
        c = self.owner(self.prosody, 'uma', register=False)
        self.register(c, 'luma', self.passwords['luma'])
        self.wait_signed_on(c)
        lc = self.legacy_client(BIDI_USER)
        lc.presence()
        lc.message('luma@' + LEGACY, 'from a bidi name')
        m = c.wait_for(lambda e: e.tag == c_tag('message') and body_of(e) == 'from a bidi name',
                       10, 'message from the bidi name')
        jid = m.get('from')
        self.assertTrue(jid.startswith('\\5cx') and jid.endswith('@' + COMPONENT), jid)
        c.presence(jid, 'subscribe')
        c.wait_for(lambda e: is_presence(e, jid, 'subscribed'), 10, 'subscribed from ' + jid)
        r = c.iq('set', COMPONENT, REMOVE, timeout=20)
        self.assertEqual(r.get('type'), 'result', ft.to_string(r))
        c.wait_for(lambda e: is_presence(e, jid, 'unsubscribed'), 10, 'unsubscribed from ' + jid)
        bare = c.jid.split('/')[0]
        ft.wait_until(lambda: (jid, 'unsubscribe') in component_presences(self.prosody, bare),
                      5, 'unsubscribe from %s in the Prosody log' % jid)

    def test_xmpp_message_from_a_resource(self):
        """A legacy XMPP contact writes from a full JID (with a resource): the owner sees the
        message from the contact's one JID, the one in the roster."""
        c = self.owner(self.prosody, 'gina', register=False)
        self.register(c, 'lgina', self.passwords['lgina'])
        self.wait_signed_on(c)
        hugo = self.legacy_client('hugo')
        hugo.presence()
        jid = self.subscribe(c, 'hugo@' + LEGACY)
        c.wait_for(lambda e: is_presence(e, jid), 10, 'hugo available')
        hugo.message('lgina@' + LEGACY, 'from my resource')
        m = c.wait_for(lambda e: e.tag == c_tag('message') and body_of(e) is not None, 10,
                       'message from hugo')
        self.assertEqual((m.get('from'), body_of(m)), (jid, 'from my resource'))
