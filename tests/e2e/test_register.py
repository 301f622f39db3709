"""jabber:iq:register on the transport's JID (issue 4), driven by a real client through a real
Prosody, with the credentials checked by a real login to a real ngircd: the form (plain and
x:data), registration and the transport's subscribe, the required fields, the policy
(domains, registration disabled), wrong and right passwords against an ngircd that requires
one, an unreachable legacy server, update, removal, two sets at once, a restart, and the legacy
password found nowhere in clear under the data directory nor in the debug log."""

import os
import secrets
import signal
import socket
import sqlite3
import time
import unittest

import threading

import ferrytest as ft
from ferrytest import NS, COMPONENT, DOMAIN

NICK_NS = 'http://jabber.org/protocol/nick'
ROSTER_NS = 'jabber:iq:roster'
CHECK_TIMEOUT = 25  # a check is a real IRC login; ngircd holds a new client ~1 s
# Distinctive, so that finding it anywhere means it leaked.
SERVER_PASSWORD = 'FerryLegacyPw-' + secrets.token_hex(8)


def plain_set(username=None, password=None):
    parts = []
    if username is not None:
        parts.append('<username>%s</username>' % ft.xml_escape(username))
    if password is not None:
        parts.append('<password>%s</password>' % ft.xml_escape(password))
    return "<query xmlns='%s'>%s</query>" % (NS['register'], ''.join(parts))


def xdata_set(username=None, password=None):
    """A submitted form whose fields carry no type attribute (XEP-0004 allows that)."""
    fields = ["<field var='FORM_TYPE'><value>jabber:iq:register</value></field>"]
    if username is not None:
        fields.append("<field var='username'><value>%s</value></field>" % ft.xml_escape(username))
    if password is not None:
        fields.append("<field var='password'><value>%s</value></field>" % ft.xml_escape(password))
    return "<query xmlns='%s'><x xmlns='%s' type='submit'>%s</x></query>" % (
        NS['register'], NS['data'], ''.join(fields))


REMOVE = "<query xmlns='%s'><remove/></query>" % NS['register']
GET = "<query xmlns='%s'/>" % NS['register']


def field(x, var):
    return x.find("data:field[@var='%s']" % var, NS)


def is_presence(el, type_, frm=COMPONENT):
    return (el.tag == '{jabber:client}presence' and el.get('type') == type_
            and el.get('from') == frm)


class SlowIrcServer:
    """Just enough of an IRC server for a login, answering each client only `delay` seconds
    after its NICK and USER: slow enough that two submissions certainly overlap. Counts the
    connections it accepted."""

    WELCOME = ['001 {n} :Welcome', '002 {n} :Your host is slow.test', '003 {n} :Created today',
               '004 {n} slow.test fake-1 i o', '251 {n} :1 user', '255 {n} :1 client',
               '422 {n} :MOTD File is missing']

    def __init__(self, delay):
        self.delay = delay
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(('127.0.0.1', 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf, nick, user = b'', None, False
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set() and not (nick and user):
                try:
                    data = conn.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buf += data
                for line in buf.split(b'\r\n'):
                    if line.startswith(b'NICK '):
                        nick = line.split()[1].decode()
                    user = user or line.startswith(b'USER ')
            time.sleep(self.delay)
            try:
                for line in self.WELCOME:
                    conn.sendall((':slow.test %s\r\n' % line.format(n=nick)).encode())
                while not self._stop.is_set() and conn.recv(4096):
                    pass
            except OSError:
                return

    def close(self):
        self._stop.set()
        self._sock.close()


class RegisterCase(unittest.TestCase):
    """Helpers shared by the classes below."""

    def user(self, prosody, name, online=True):
        """A client for name@DOMAIN. online: it fetched its roster and sent available presence
        (Prosody delivers subscription stanzas only then), and answers no subscription request
        by itself."""
        c = prosody.client(name)
        self.addCleanup(c.disconnect)
        c.xmpp.auto_authorize = None
        c.xmpp.auto_subscribe = False
        if online:
            r = c.iq('get', None, "<query xmlns='%s'/>" % ROSTER_NS)
            self.assertEqual(r.get('type'), 'result', ft.to_string(r))
            c.presence()
        return c

    def bare(self, client):
        return client.jid.split('/')[0]

    def assert_error(self, reply, type_, condition, client):
        self.assertEqual(reply.get('type'), 'error', ft.to_string(reply))
        self.assertEqual(reply.get('from'), COMPONENT)
        self.assertEqual(reply.get('to'), client.jid)
        self.assertEqual(ft.error_of(reply)[:2], (type_, condition), ft.to_string(reply))
        return ft.error_of(reply)[2]

    def assert_result(self, reply, client):
        self.assertEqual(reply.get('type'), 'result', ft.to_string(reply))
        self.assertEqual(reply.get('from'), COMPONENT)
        self.assertEqual(reply.get('to'), client.jid)

    def form(self, client):
        r = client.iq('get', COMPONENT, GET, timeout=10)
        self.assert_result(r, client)
        q = r.find('register:query', NS)
        self.assertIsNotNone(q, ft.to_string(r))
        return q

    def register(self, client, payload, timeout=CHECK_TIMEOUT):
        return client.iq('set', COMPONENT, payload, timeout=timeout)

    def assert_registered_as(self, client, username):
        q = self.form(client)
        self.assertIsNotNone(q.find('register:registered', NS), ft.to_string(q))
        self.assertEqual(q.findtext('register:username', None, NS), username)
        self.assertFalse(q.findtext('register:password', '', NS), 'password echoed')
        x = q.find('data:x', NS)
        self.assertEqual(x.findtext("data:field[@var='username']/data:value", None, NS),
                         username)
        self.assertIsNone(field(x, 'password').find('data:value', NS), 'password echoed')

    def assert_not_registered(self, client):
        q = self.form(client)
        self.assertIsNone(q.find('register:registered', NS), ft.to_string(q))

    def count_registrations(self, ferry, owner):
        path = os.path.join(ferry.settings['storage']['path'], 'ferry.db')
        db = sqlite3.connect('file:%s?mode=ro' % path, uri=True, timeout=10)
        try:
            return db.execute('SELECT count(*) FROM registrations WHERE owner = ?',
                              (owner,)).fetchone()[0]
        finally:
            db.close()

    def no_stanza(self, client, predicate, seconds=1.5):
        time.sleep(seconds)
        extra = [ft.to_string(e) for e in client.pending() if predicate(e)]
        self.assertEqual(extra, [])


class RegisterTest(RegisterCase):
    """One Prosody, one ngircd without a server password, one Ferry."""

    @classmethod
    def setUpClass(cls):
        cls.prosody = ft.Prosody()
        cls.addClassCleanup(cls.prosody.close)
        cls.prosody.start()
        cls.ngircd = ft.Ngircd()
        cls.addClassCleanup(cls.ngircd.close)
        cls.ngircd.start()
        cls.ferry = ft.Ferry(cls.prosody, cls.ngircd,
                             overrides={'registration': {'timeout': '20'}})
        cls.addClassCleanup(cls.ferry.close)
        cls.ferry.start()

    @classmethod
    def tearDownClass(cls):
        cls.ferry.stop_cleanly()
        cls.ferry.assert_secret_not_logged()

    def setUp(self):
        self.ferry.assert_running()

    def test_form_plain_and_xdata(self):
        c = self.user(self.prosody, 'formuser', online=False)
        q = self.form(c)
        self.assertTrue(q.findtext('register:instructions', '', NS).strip())
        self.assertIsNotNone(q.find('register:username', NS))
        self.assertIsNotNone(q.find('register:password', NS))
        self.assertIsNone(q.find('register:registered', NS))
        self.assertFalse(q.findtext('register:username', '', NS))
        x = q.find('data:x', NS)
        self.assertIsNotNone(x, ft.to_string(q))
        self.assertEqual(x.get('type'), 'form')
        self.assertTrue(x.findtext('data:title', '', NS))
        self.assertTrue(x.findtext('data:instructions', '', NS))
        ft_field = field(x, 'FORM_TYPE')
        self.assertEqual(ft_field.get('type'), 'hidden')
        self.assertEqual(ft_field.findtext('data:value', None, NS), NS['register'])
        user = field(x, 'username')
        self.assertEqual(user.get('type'), 'text-single')
        self.assertIsNotNone(user.find('data:required', NS))
        pw = field(x, 'password')
        self.assertEqual(pw.get('type'), 'text-private')
        # IRC logs in without a password: the field is offered, not required.
        self.assertIsNone(pw.find('data:required', NS))

    def test_register_then_transport_subscribes(self):
        c = self.user(self.prosody, 'alice')
        self.assert_not_registered(c)
        self.assert_result(self.register(c, plain_set('alice', '')), c)
        sub = c.wait_for(lambda e: is_presence(e, 'subscribe'), 10, 'subscribe from transport')
        self.assertEqual(sub.get('to'), self.bare(c))
        self.assertTrue(sub.findtext('{%s}nick' % NICK_NS, ''), ft.to_string(sub))
        self.assert_registered_as(c, 'alice')
        # XEP-0100 4.1: the user approves and subscribes back; the transport approves.
        c.presence(COMPONENT, 'subscribed')
        c.presence(COMPONENT, 'subscribe')
        c.wait_for(lambda e: is_presence(e, 'subscribed'), 10, 'subscribed from transport')

    def test_register_with_xdata_form(self):
        c = self.user(self.prosody, 'bob')
        self.assert_result(self.register(c, xdata_set('bob', '')), c)
        c.wait_for(lambda e: is_presence(e, 'subscribe'), 10, 'subscribe from transport')
        self.assert_registered_as(c, 'bob')

    def test_missing_username_is_not_acceptable(self):
        c = self.user(self.prosody, 'nousername', online=False)
        for payload in (plain_set(None, 'x'), plain_set('  ', 'x'), xdata_set(None, 'x')):
            text = self.assert_error(self.register(c, payload, 10), 'modify', 'not-acceptable', c)
            self.assertIn('username', text or '', payload)
        self.assert_not_registered(c)

    def test_unregistered_user_subscribe_refused_and_remove_needs_registration(self):
        c = self.user(self.prosody, 'stranger')
        c.presence(COMPONENT, 'subscribe')
        c.wait_for(lambda e: is_presence(e, 'unsubscribed'), 10, 'unsubscribed from transport')
        self.assert_error(self.register(c, REMOVE, 10), 'auth', 'registration-required', c)

    def test_remove_with_other_children_is_bad_request(self):
        c = self.user(self.prosody, 'badremove', online=False)
        payload = "<query xmlns='%s'><remove/><username>x</username></query>" % NS['register']
        self.assert_error(self.register(c, payload, 10), 'modify', 'bad-request', c)

    def test_update_changes_the_username(self):
        c = self.user(self.prosody, 'dave')
        self.assert_result(self.register(c, plain_set('dave', '')), c)
        c.wait_for(lambda e: is_presence(e, 'subscribe'), 10, 'subscribe from transport')
        self.assert_result(self.register(c, plain_set('dave2', '')), c)
        self.assert_registered_as(c, 'dave2')
        # An update is not a new registration: no second subscription request.
        self.no_stanza(c, lambda e: is_presence(e, 'subscribe'))

    def test_remove(self):
        c = self.user(self.prosody, 'erin')
        self.assert_result(self.register(c, plain_set('erin', '')), c)
        c.wait_for(lambda e: is_presence(e, 'subscribe'), 10, 'subscribe from transport')
        c.presence(COMPONENT, 'subscribed')
        c.presence(COMPONENT, 'subscribe')
        c.wait_for(lambda e: is_presence(e, 'subscribed'), 10, 'subscribed from transport')
        self.assert_result(self.register(c, REMOVE, 20), c)
        c.wait_for(lambda e: is_presence(e, 'unsubscribe'), 10, 'unsubscribe from transport')
        c.wait_for(lambda e: is_presence(e, 'unsubscribed'), 10, 'unsubscribed from transport')
        self.assert_not_registered(c)
        self.assert_error(self.register(c, REMOVE, 10), 'auth', 'registration-required', c)
        self.assertEqual(self.count_registrations(self.ferry, self.bare(c)), 0)

    def test_registration_survives_a_restart(self):
        c = self.user(self.prosody, 'grace', online=False)
        self.assert_result(self.register(c, plain_set('grace', '')), c)
        rc = self.ferry.stop()
        self.assertEqual(rc, 0, self.ferry.log_tail())
        self.ferry.start()
        self.assert_registered_as(c, 'grace')


class PasswordServerTest(RegisterCase):
    """An ngircd that requires a server password: wrong credentials are refused with the
    legacy server's reason; right ones are stored sealed and never written in clear."""

    def setUp(self):
        self.prosody = ft.Prosody()
        self.addCleanup(self.prosody.close)
        self.prosody.start()
        self.ngircd = ft.Ngircd(password=SERVER_PASSWORD)
        self.addCleanup(self.ngircd.close)
        self.ngircd.start()
        self.ferry = ft.Ferry(self.prosody, self.ngircd,
                              overrides={'registration': {'timeout': '20'}})
        self.addCleanup(self.ferry.close)
        self.ferry.start()

    def test_wrong_password_is_not_authorized_with_the_reason(self):
        c = self.user(self.prosody, 'mallory', online=False)
        text = self.assert_error(self.register(c, plain_set('mallory', 'not-the-password')),
                                 'auth', 'not-authorized', c)
        self.assertTrue(text, 'no legacy reason in the error')
        self.assertRegex(text.lower(), 'password|denied', text)
        self.assert_not_registered(c)

    def test_right_password_is_stored_sealed_and_never_logged(self):
        c = self.user(self.prosody, 'heidi', online=False)
        self.assert_result(self.register(c, xdata_set('heidi', SERVER_PASSWORD)), c)
        self.assert_registered_as(c, 'heidi')
        # An empty password in an update keeps the one on file (XEP-0077 3.3): the check
        # still passes against the password-protected server.
        self.assert_result(self.register(c, plain_set('heidi2', '')), c)
        self.assert_registered_as(c, 'heidi2')
        self.assertEqual(self.ferry.stop(), 0, self.ferry.log_tail())
        self.assert_nowhere_in_clear(SERVER_PASSWORD)
        self.ferry.start()
        self.assert_registered_as(c, 'heidi2')
        self.assert_result(self.register(c, plain_set('heidi', '')), c)
        self.assertEqual(self.ferry.stop(), 0, self.ferry.log_tail())
        self.assert_nowhere_in_clear(SERVER_PASSWORD)
        self.ferry.assert_secret_not_logged()

    def assert_nowhere_in_clear(self, secret):
        needle = secret.encode()
        data_dir = self.ferry.settings['storage']['path']
        scanned = []
        for root, _dirs, files in os.walk(data_dir):
            for name in files:
                path = os.path.join(root, name)
                with open(path, 'rb') as f:
                    self.assertNotIn(needle, f.read(), 'the password is in clear in %s' % path)
                scanned.append(os.path.relpath(path, data_dir))
        self.assertIn('ferry.db', scanned)
        self.assertIn(os.path.join('purple', 'accounts.xml'), scanned)
        log = self.ferry.log_text()
        self.assertIn('DEBUG', log.upper(), 'the log is not at debug level')
        self.assertNotIn(secret, log, 'the password is in Ferry\'s log')


class PolicyTest(RegisterCase):
    """Who may register, and a legacy server that cannot be reached. One Prosody; each test
    runs its own Ferry."""

    @classmethod
    def setUpClass(cls):
        cls.prosody = ft.Prosody()
        cls.addClassCleanup(cls.prosody.close)
        cls.prosody.start()

    def start_ferry(self, overrides):
        f = ft.Ferry(self.prosody, None, overrides=overrides)
        self.addCleanup(f.close)
        f.start()
        return f

    def test_domain_not_allowed(self):
        self.start_ferry({'registration': {'allowed_domains': 'elsewhere.test'}})
        c = self.user(self.prosody, 'ivan', online=False)
        self.assert_error(self.register(c, plain_set('ivan', 'pw'), 10), 'cancel',
                          'not-allowed', c)
        self.assert_error(c.iq('get', COMPONENT, GET, timeout=10), 'cancel', 'not-allowed', c)

    def test_registration_disabled(self):
        self.start_ferry({'registration': {'enabled': 'false'}})
        c = self.user(self.prosody, 'judy', online=False)
        self.assert_error(self.register(c, xdata_set('judy', ''), 10), 'cancel',
                          'not-allowed', c)

    def test_unreachable_legacy_server_is_remote_server_timeout(self):
        # The default [legacy] port of a Ferry without ngircd is a free, closed port.
        self.start_ferry({'registration': {'timeout': '8', 'allowed_domains': DOMAIN}})
        c = self.user(self.prosody, 'karl', online=False)
        started = time.monotonic()
        text = self.assert_error(self.register(c, plain_set('karl', '')), 'wait',
                                 'remote-server-timeout', c)
        self.assertTrue(text)
        self.assertLess(time.monotonic() - started, 15)
        self.assert_not_registered(c)

    def silent_server(self):
        """A legacy 'server' that accepts connections (the kernel's backlog does) and never
        says a word."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(('127.0.0.1', 0))
        s.listen(16)
        return s.getsockname()[1]

    def test_two_sets_at_once_make_one_registration(self):
        irc = SlowIrcServer(delay=1.5)
        self.addCleanup(irc.close)
        f = self.start_ferry({'legacy': {'port': irc.port}, 'registration': {'timeout': '10'}})
        c = self.user(self.prosody, 'frank')
        c.send("<iq type='set' id='twin1' to='%s'>%s</iq>" % (COMPONENT, plain_set('frank', '')))
        c.send("<iq type='set' id='twin2' to='%s'>%s</iq>" % (COMPONENT, plain_set('frank', '')))
        replies = {}
        for i in ('twin1', 'twin2'):
            replies[i] = c.wait_for(lambda e, i=i: e.get('id') == i and e.get('type') in
                                    ('result', 'error'), CHECK_TIMEOUT, 'reply to ' + i)
        # The second arrived while the first was being checked: refused, never checked.
        self.assert_error(replies['twin2'], 'cancel', 'conflict', c)
        self.assert_result(replies['twin1'], c)
        self.assertEqual(irc.connections, 1)
        c.wait_for(lambda e: is_presence(e, 'subscribe'), 10, 'subscribe from transport')
        self.no_stanza(c, lambda e: is_presence(e, 'subscribe'))
        self.assertEqual(self.count_registrations(f, self.bare(c)), 1)
        self.assert_registered_as(c, 'frank')
        # Once it is over, the same user may submit again (an update).
        self.assert_result(self.register(c, plain_set('frank', '')), c)
        self.assertEqual(irc.connections, 2)
        self.assertEqual(self.count_registrations(f, self.bare(c)), 1)

    def test_silent_legacy_server_times_out(self):
        port = self.silent_server()
        f = self.start_ferry({'legacy': {'port': port}, 'registration': {'timeout': '3'}})
        c = self.user(self.prosody, 'liam', online=False)
        started = time.monotonic()
        text = self.assert_error(self.register(c, plain_set('liam', '')), 'wait',
                                 'remote-server-timeout', c)
        self.assertGreaterEqual(time.monotonic() - started, 2.5)
        self.assertIn('3 s', text or '')
        self.assert_not_registered(c)
        # The check was logged out: the transport still registers after a timeout.
        self.assertEqual(f.stop(), 0, f.log_tail())

    def test_sigterm_during_a_check_exits_promptly(self):
        port = self.silent_server()
        f = self.start_ferry({'legacy': {'port': port}, 'registration': {'timeout': '30'}})
        c = self.user(self.prosody, 'mia', online=False)
        c.send("<iq type='set' id='pending1' to='%s'>%s</iq>" % (COMPONENT, plain_set('mia', '')))
        f.wait_log(r'reg/\w+: connecting', 10)
        started = time.monotonic()
        rc = f.stop(signal.SIGTERM, timeout=20)
        self.assertEqual(rc, 0, f.log_tail())
        self.assertLess(time.monotonic() - started, 8, 'shutdown waited for the check')


if __name__ == '__main__':
    unittest.main()
