"""The component link (issue 3): handshake and its failure at first start, a rival instance,
the server going away and coming back, keepalive and dead-link detection, signals. Each test
has its own servers; a FakeServer plays the XMPP server where Prosody cannot misbehave on
demand."""

import os
import re
import signal
import time
import unittest

import ferrytest as ft
import test_sessions as ts
from ferrytest import NS, COMPONENT
from test_sessions import body_of, contact


def identity_name(reply):
    ident = reply.find("info:query/info:identity[@category='gateway']", NS)
    return ident.get('name') if ident is not None else None


class LinkTest(unittest.TestCase):
    def prosody(self):
        p = ft.Prosody()
        self.addCleanup(p.close)
        return p.start()

    def ferry(self, *args, **kwargs):
        f = ft.Ferry(*args, **kwargs)
        self.addCleanup(f.close)
        self.addCleanup(f.assert_secret_not_logged)
        return f

    def assert_stops_cleanly(self, ferry, sig=signal.SIGTERM):
        rc = ferry.stop(sig)
        self.assertEqual(rc, 0, 'exit status after %s:\n%s' % (sig.name, ferry.log_tail()))

    def component_lines(self, prosody, text):
        return [line for line in prosody.log_text().splitlines() if text in line]

    # -- handshake

    def test_wrong_secret_at_first_start_exits_1_naming_the_domain(self):
        p = self.prosody()
        wrong = 'wrong-e2e-secret-' + os.urandom(4).hex()
        f = self.ferry(p, secret=wrong)
        f.start(wait=False)
        started = time.monotonic()
        rc = f.wait_exit(10)
        self.assertEqual(rc, 1, 'exit status with a wrong secret:\n%s' % f.log_tail())
        self.assertLess(time.monotonic() - started, 5)
        text = f.log_text()
        self.assertIn(COMPONENT, text, 'no log line names the domain:\n%s' % f.log_tail())
        self.assertNotIn(wrong, text)
        self.assertNotIn(p.secret, text)
        self.assertEqual(len(self.component_lines(p, 'Component authentication failed')), 1,
                         'Ferry retried after not-authorized at first start')

    def test_sigterm_closes_the_stream_and_exits_0(self):
        p = self.prosody()
        f = self.ferry(p).start()
        self.assert_stops_cleanly(f, signal.SIGTERM)
        ft.wait_until(lambda: self.component_lines(p, 'Received </stream:stream>'), 5,
                      'prosody to log the component\'s </stream:stream>')
        c = p.probe()
        r = c.iq('get', COMPONENT, "<query xmlns='%s'/>" % NS['info'])
        self.assertEqual(ft.error_of(r)[:2], ('wait', 'remote-server-timeout'))

    def test_sigint_exits_0(self):
        p = self.prosody()
        f = self.ferry(p).start()
        self.assert_stops_cleanly(f, signal.SIGINT)

    def test_sighup_reopens_the_log(self):
        p = self.prosody()
        f = self.ferry(p).start()
        os.rename(f.log, f.log + '.1')  # what logrotate does
        f.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertTrue(f.alive(), 'SIGHUP ended Ferry (%s)' % f.proc.returncode)
        # Something Ferry must log (the reconnection, at info): it goes to the new file.
        p.kill()
        p.start()
        f.wait_ready(8)
        ft.wait_until(lambda: os.path.exists(f.log) and os.path.getsize(f.log) > 0, 5,
                      'lines in the reopened log file')
        self.assert_stops_cleanly(f)

    # -- a rival instance

    def test_second_instance_is_refused_and_backs_off_then_takes_over(self):
        p = self.prosody()
        first = self.ferry(p, overrides={'legacy': {'name': 'First IRC'}}, name='ferry1').start()
        second = self.ferry(p, overrides={'legacy': {'name': 'Second IRC'},
                                          'component': {'reconnect_min': 0.2,
                                                        'reconnect_max': 1}}, name='ferry2')
        second.start(wait=False)
        t0 = time.monotonic()
        conflicts = lambda: len(self.component_lines(p, 'Second component attempted'))  # noqa
        ft.wait_until(lambda: conflicts() >= 2, 8, 'the second Ferry to try again')
        time.sleep(max(0, 4 - (time.monotonic() - t0)))
        n = conflicts()
        # 0.2 s doubling to 1 s gives about 6 tries in 4 s; a retry loop without backoff
        # would make hundreds.
        self.assertTrue(2 <= n <= 14, '%d attempts in 4 s' % n)
        self.assertTrue(second.alive(), 'second Ferry exited (%s) on conflict:\n%s' % (
            second.proc.returncode, second.log_tail()))
        self.assertRegex(second.log_text(), r'(?i)conflict')
        self.assertEqual(identity_name(first.wait_ready(5)), 'First IRC')
        # The first goes away: the second takes over within its backoff cap (1 s) + slack.
        self.assert_stops_cleanly(first)
        stopped = time.monotonic()
        reply = second.wait_ready(6)
        self.assertEqual(identity_name(reply), 'Second IRC')
        self.assertLess(time.monotonic() - stopped, 6)
        self.assert_stops_cleanly(second)

    # -- the server goes away

    def check_server_restart(self, sig):
        p = self.prosody()
        f = self.ferry(p, overrides={'component': {'reconnect_min': 0.2,
                                                   'reconnect_max': 2}}).start()
        p.stop(sig)
        time.sleep(3)  # long enough for the backoff to reach its cap
        self.assertTrue(f.alive(), 'Ferry exited (%s) when the server went away:\n%s' % (
            f.proc.returncode, f.log_tail()))
        p.start()
        back = time.monotonic()
        f.wait_ready(8)
        self.assertLess(time.monotonic() - back, 2 + 3, 'not back within the cap (2 s) + 3 s')
        self.assert_stops_cleanly(f)

    def test_prosody_killed_and_restarted(self):
        self.check_server_restart(signal.SIGKILL)

    def test_prosody_stopped_and_restarted(self):
        self.check_server_restart(signal.SIGTERM)

    def test_reconnect_backs_off_up_to_the_cap(self):
        secret = 'fake-secret-' + os.urandom(4).hex()
        fake = ft.FakeServer(secret, mode='accept')
        self.addCleanup(fake.close)
        f = self.ferry(None, secret=secret, port=fake.port,
                       overrides={'component': {'reconnect_min': 0.2, 'reconnect_max': 1}})
        f.start(wait=False)
        fake.wait_count(1, 10)
        ft.wait_until(lambda: fake.connections[0]['digest_ok'], 5, 'the handshake')
        time.sleep(0.3)
        fake.mode = 'close'
        fake.drop_all()
        dropped = time.monotonic()
        time.sleep(5)
        times = [c['at'] for c in fake.connections[1:]]
        self.assertTrue(f.alive(), f.log_tail())
        gaps = [b - a for a, b in zip([dropped] + times, times)]
        shown = ', '.join('%.2f' % g for g in gaps)
        # 0.2, 0.4, 0.8, 1, 1, ... s: about 7 attempts in 5 s.
        self.assertTrue(3 <= len(times) <= 14, 'attempts: %d (gaps %s)' % (len(times), shown))
        # Bounds leave room for a loaded machine: the cap is 1 s, uncapped would reach 3.2 s.
        self.assertLess(max(gaps), 1 * 1.5 + 0.5, 'a gap above the cap: %s' % shown)
        self.assertLess(gaps[0], 1.0, 'first retry too late: %s' % shown)
        self.assertGreater(max(gaps[-2:]), 0.4, 'the delay did not grow: %s' % shown)
        self.assert_stops_cleanly(f)

    # -- keeping the link honest

    def test_idle_link_sends_keepalive_and_ping(self):
        secret = 'fake-secret-' + os.urandom(4).hex()
        fake = ft.FakeServer(secret, mode='accept')
        self.addCleanup(fake.close)
        f = self.ferry(None, secret=secret, port=fake.port,
                       overrides={'component': {'keepalive_interval': 0.3, 'ping_interval': 1,
                                                'ping_timeout': 1}})
        f.start(wait=False)
        fake.wait_count(1, 10)
        time.sleep(3.5)
        conn = fake.connections[0]
        self.assertTrue(conn['digest_ok'], conn['data'][:300])
        after = conn['data'][conn.get('handshake_end', 0):]
        self.assertRegex(after, rb"<iq[^>]*type=['\"]get['\"][^>]*>\s*<ping xmlns=['\"]"
                                rb"urn:xmpp:ping['\"]")
        self.assertRegex(re.sub(rb'<[^>]*>', b'', after), rb'[ \t\r\n]',
                         'no whitespace keepalive between stanzas')
        self.assertEqual(fake.count(), 1, 'reconnected although the pings were answered')
        self.assertTrue(f.alive(), f.log_tail())
        self.assert_stops_cleanly(f)

    def test_silent_server_is_a_dead_link(self):
        secret = 'fake-secret-' + os.urandom(4).hex()
        fake = ft.FakeServer(secret, mode='silent')
        self.addCleanup(fake.close)
        f = self.ferry(None, secret=secret, port=fake.port,
                       overrides={'component': {'keepalive_interval': 0.3, 'ping_interval': 0.5,
                                                'ping_timeout': 0.5}})
        f.start(wait=False)
        fake.wait_count(1, 10)
        fake.wait_count(2, 8)
        first = fake.connections[0]
        self.assertTrue(first['digest_ok'])
        self.assertRegex(first['data'], rb"<ping xmlns=['\"]urn:xmpp:ping['\"]")
        self.assertTrue(f.alive(), f.log_tail())
        self.assert_stops_cleanly(f)


class OwnersAcrossARestartTest(ts.SessionCase):
    """Prosody killed under signed-on owners (issue 7): every client is gone with it. At link
    up Ferry probes each owner; once Prosody answered (a presence per resource online, or an
    unavailable from the bare JID), a resource that does not come back is dropped within the
    grace period, and an owner with none left leaves the legacy network; one that comes back
    keeps the legacy login without a logout/login flap. (Without any answer every resource is
    kept: tests/unit/test_session.c.)"""

    GRACE = 5  # bridge/session.h SESS_LINK_GRACE_MS
    DEBOUNCE = 1  # bridge/session.c LINGER_MS

    def servers(self, reconnect=0.2):
        p = ft.Prosody()
        self.addCleanup(p.close)
        p.start()
        n = ft.Ngircd(no_penalty=True)
        self.addCleanup(n.close)
        n.start()
        f = ft.Ferry(p, n, overrides={'component': {'reconnect_min': reconnect,
                                                    'reconnect_max': max(reconnect, 1)}})
        self.addCleanup(f.close)
        f.start()
        return p, n, f

    def two_resources(self, p, name):
        """name online at desk (priority 5) and phone (priority 10, away): the phone decides
        the IRC away message."""
        desk = self.owner(p, name, resource='desk', priority=5)
        phone = self.owner(p, name, resource='phone', register=False)
        phone.presence(payload='<show>away</show><status>on the phone</status>'
                               '<priority>10</priority>')
        return desk, phone

    def kill_prosody(self, p, f):
        p.kill()
        f.wait_log(r'link to \S+ lost', 10)
        p.start()

    def logins(self, f, name):
        return len(re.findall(r'%s@localhost: logging in to' % name, f.log_text()))

    def test_a_resource_that_does_not_come_back_is_dropped(self):
        # Ferry waits 3 s before it tries the link again: the desk is back first, and the
        # probe finds it online (Prosody answers with its presence, not the phone's).
        p, n, f = self.servers(reconnect=3)
        peer = self.irc(n, 'ritapal')
        self.two_resources(p, 'rita')
        self.wait_away(peer, 'rita', 'on the phone')
        self.kill_prosody(p, f)
        desk = p.client('rita', resource='desk')
        self.addCleanup(desk.disconnect)
        desk.xmpp.auto_authorize = None
        desk.xmpp.auto_subscribe = False
        desk.iq('get', None, "<query xmlns='jabber:iq:roster'/>")
        desk.presence(payload=self.prio(5))
        f.wait_ready(10)
        back = time.monotonic()
        # The phone's away message goes with the phone, within the grace period.
        self.wait_away(peer, 'rita', None, timeout=self.GRACE + 5)
        self.assertLess(time.monotonic() - back, self.GRACE + 4)
        f.wait_log(r'rita@localhost: resource rita@localhost/phone offline', 5)
        # The same legacy login all along: no logout, no second login.
        self.assertTrue(self.on_irc(peer, 'rita'))
        self.assertEqual(self.logins(f, 'rita'), 1, f.log_tail())
        self.assertNotIn('rita@localhost: session ended', f.log_text())
        peer.privmsg('rita', 'still there?')
        self.assertEqual(body_of(self.message_from(desk, contact('ritapal'))), 'still there?')

    def test_nobody_comes_back_and_the_owner_leaves_irc(self):
        p, n, f = self.servers()
        peer = self.irc(n, 'sampal')
        self.two_resources(p, 'sam')
        self.wait_away(peer, 'sam', 'on the phone')
        self.kill_prosody(p, f)
        f.wait_ready(10)
        back = time.monotonic()
        self.wait_irc(peer, 'sam', present=False, timeout=self.GRACE + self.DEBOUNCE + 5)
        self.assertLess(time.monotonic() - back, self.GRACE + self.DEBOUNCE + 4)
        f.wait_log(r'sam@localhost: session ended', 5)
        f.stop_cleanly()


if __name__ == '__main__':
    unittest.main()
