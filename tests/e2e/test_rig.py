"""The rig itself, without Ferry: the harness's Prosody and ngircd behave as the other tests
assume (RIG.md). When one of these fails, fix the rig before reading any other failure."""

import signal
import unittest

import ferrytest as ft
from ferrytest import NS


class ProsodyRigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prosody = ft.Prosody().start()

    @classmethod
    def tearDownClass(cls):
        cls.prosody.close()

    def test_client_logs_in_and_server_answers_disco(self):
        c = self.prosody.client('rigalice')
        self.addCleanup(c.disconnect)
        self.assertEqual(c.jid, 'rigalice@localhost/e2e')
        r = c.iq('get', 'localhost', "<query xmlns='%s'/>" % NS['info'])
        self.assertEqual(r.get('type'), 'result')
        self.assertEqual(r.get('from'), 'localhost')
        self.assertIsNotNone(r.find("info:query/info:identity[@category='server']", NS))

    def test_wrong_password_is_refused(self):
        self.prosody.register('rigbob', 'right')
        with self.assertRaisesRegex(AssertionError, 'authentication failed'):
            ft.XmppClient('rigbob@localhost/x', 'wrong', self.prosody.c2s_port)

    def test_component_port_checks_the_secret(self):
        bad = ft.RawComponent(self.prosody.component_port)
        self.addCleanup(bad.close)
        self.assertEqual(bad.handshake('not-the-secret'), 'not-authorized')
        first = ft.RawComponent(self.prosody.component_port)
        self.addCleanup(first.close)
        self.assertEqual(first.handshake(self.prosody.secret), 'ok')
        second = ft.RawComponent(self.prosody.component_port)
        self.addCleanup(second.close)
        self.assertEqual(second.handshake(self.prosody.secret), 'conflict')

    def test_component_stanzas_reach_the_client(self):
        c = self.prosody.client('rigcarol')
        self.addCleanup(c.disconnect)
        comp = ft.RawComponent(self.prosody.component_port)
        self.addCleanup(comp.close)
        self.assertEqual(comp.handshake(self.prosody.secret), 'ok')
        comp.send("<message from='x@irc.localhost' to='%s' type='chat'><body>hi &amp; bye"
                  "</body></message>" % c.jid)
        m = c.wait_for(lambda el: el.tag == '{jabber:client}message', 5)
        self.assertEqual(m.get('from'), 'x@irc.localhost')
        self.assertEqual(m.findtext('c:body', namespaces=NS), 'hi & bye')

    def test_absent_component_bounces_remote_server_timeout(self):
        c = self.prosody.client('rigdave')
        self.addCleanup(c.disconnect)
        r = c.iq('get', ft.COMPONENT, "<query xmlns='%s'/>" % NS['info'])
        self.assertEqual(r.get('type'), 'error')
        self.assertEqual(ft.error_of(r)[:2], ('wait', 'remote-server-timeout'))


class ProsodyRestartRigTest(unittest.TestCase):
    def test_killed_and_restarted_on_same_ports_and_data(self):
        p = ft.Prosody().start()
        self.addCleanup(p.close)
        p.register('rigerin', 'pw')
        c = p.client('rigerin')
        ports = (p.c2s_port, p.component_port)
        p.kill()
        self.assertFalse(ft.port_open(p.c2s_port))
        ft.wait_until(lambda: not c.connected, 5, 'the client to notice')
        c.disconnect()
        p.start()
        self.assertEqual((p.c2s_port, p.component_port), ports)
        c = p.client('rigerin')  # the account survived
        c.disconnect()
        self.assertEqual(p.stop(signal.SIGTERM), 0)


class NgircdRigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.irc = ft.Ngircd(no_penalty=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.irc.close()

    def test_peers_exchange_messages(self):
        a = self.irc.client('rigann')
        self.addCleanup(a.close)
        b = self.irc.client('rig[b]^{x}|')
        self.addCleanup(b.close)
        a.privmsg('rig[b]^{x}|', 'caf\u00e9 <&> \U0001f600')
        m = b.wait_for(r'^:rigann!\S+ PRIVMSG rig\[b\]\^\{x\}\| :(.*)$')
        self.assertEqual(m.group(1), 'caf\u00e9 <&> \U0001f600')
        b.privmsg('rigann', b'\x02bold\x02 \xff')
        raw, _ = a.wait_for_raw(r'PRIVMSG rigann :')
        self.assertTrue(raw.endswith(b':\x02bold\x02 \xff'))

    def test_taken_nick_is_refused(self):
        a = self.irc.client('rigtaken')
        self.addCleanup(a.close)
        with self.assertRaisesRegex(AssertionError, '433'):
            self.irc.client('rigtaken', timeout=5)

    def test_password_server(self):
        irc = ft.Ngircd(password='rigpass').start()
        self.addCleanup(irc.close)
        with self.assertRaisesRegex(AssertionError, 'Bad password'):
            irc.client('rigx', password='wrong')
        irc.client('rigy').close()


if __name__ == '__main__':
    unittest.main()
