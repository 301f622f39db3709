"""Faults, end to end (issue 7): real Prosody, real ngircd and the real build/ferry broken on
purpose while messages flow, with short backoff caps from the configuration.

The invariant counted in every test: a message an owner sends reaches the IRC peer or comes
back as an error stanza; a message the IRC peer sends reaches the owner, or the peer's server
says the nick is gone (401), or it was in flight at the very moment a process was killed (Ferry
cannot answer for bytes a dead process had already taken). Nothing else may go missing."""

import os
import re
import socket
import sqlite3
import threading
import time
import unittest
import xml.etree.ElementTree as ET

import ferrytest as ft
import test_sessions as ts
from ferrytest import NS, COMPONENT
from test_sessions import c_tag, body_of, contact, is_message, is_presence

NS_DELAY = 'urn:xmpp:delay'
CROWD = 'crowd.localhost'
MODULES = ('"roster"; "saslauth"; "disco"; "ping"; "posix"; "register"; "version"; "time"; '
           '"uptime"; "lastactivity"; "presence"; "offline";')
IN_FLIGHT = 0.5  # seconds before a kill in which a message may die with the process


def delay_from(el, frm):
    for d in el.findall('{%s}delay' % NS_DELAY):
        if d.get('from') == frm:
            return d
    return None


def bodies(c, jid, prefix):
    """Bodies from jid starting with prefix, received so far (consumed or not)."""
    with c._cond:
        return [body_of(e) for e in c.received if is_message(e, jid) and
                (body_of(e) or '').startswith(prefix) and e.get('type') != 'error']


def stamp_seconds(stamp):
    return time.mktime(time.strptime(stamp[:19], '%Y-%m-%dT%H:%M:%S')) - time.timezone


class Crowd:
    """Many XMPP users at once without many client connections: a second component on the
    same Prosody (crowd.localhost) that plays u000@crowd.localhost ... and keeps every
    stanza Prosody routes to them."""

    def __init__(self, prosody, secret):
        self.sock = socket.create_connection(('127.0.0.1', prosody.component_port), timeout=10)
        ft.register_cleanup(self.close)
        self.received = []
        self._cond = threading.Condition()
        self._parser = ET.XMLPullParser(events=('start', 'end'))
        self._depth = 0
        self.sock.sendall(("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept'"
                           " xmlns:stream='http://etherx.jabber.org/streams' to='%s'>"
                           % CROWD).encode())
        data = b''
        while not re.search(rb"<stream:stream[^>]*\sid=['\"]([^'\"]+)['\"]", data):
            data += self.sock.recv(4096)
        sid = re.search(rb"\sid=['\"]([^'\"]+)['\"]", data).group(1)
        import hashlib
        digest = hashlib.sha1(sid + secret.encode()).hexdigest()
        self.sock.sendall(('<handshake>%s</handshake>' % digest).encode())
        self._feed(data)
        self._stop = threading.Event()
        self.up = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self.up.wait(10):
            raise ft.HarnessError('the crowd component was not accepted')

    def _feed(self, data):
        self._parser.feed(data)
        for event, el in self._parser.read_events():
            if event == 'start':
                self._depth += 1
                continue
            self._depth -= 1
            if self._depth != 1:
                continue
            if el.tag.endswith('handshake'):
                self.up.set()
                continue
            with self._cond:
                self.received.append(el)
                self._cond.notify_all()

    def _read(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            self._feed(data)

    def send(self, xml):
        self.sock.sendall(xml.encode())

    def matching(self, predicate):
        with self._cond:
            return [e for e in self.received if predicate(e)]

    def wait_count(self, predicate, n, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [e for e in self.received if predicate(e)]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError('crowd: %d of %d %s within %.0f s' % (
                        len(got), n, what, timeout))
                self._cond.wait(min(left, 0.5))

    def close(self):
        self._stop.set()
        try:
            self.sock.sendall(b'</stream:stream>')
        except OSError:
            pass
        self.sock.close()


def tag(el):
    return el.tag.split('}')[-1]


class StallProxy:
    """In front of ngircd: a client whose NICK is in .stall gets its TCP connection accepted
    and then never hears a word; every other client is piped to ngircd."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.stall = set()
        self.stalled = 0
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(('127.0.0.1', 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._conns = []
        threading.Thread(target=self._accept, daemon=True).start()
        ft.register_cleanup(self.close)

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b''
        conn.settimeout(0.2)
        nick = None
        while nick is None and not self._stop.is_set():
            try:
                data = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            buf += data
            m = re.search(rb'(?m)^NICK :?(\S+)', buf)
            if m:
                nick = m.group(1).decode()
        if nick in self.stall:
            self.stalled += 1
            while not self._stop.is_set():  # accept everything, say nothing
                try:
                    if not conn.recv(4096):
                        return
                except socket.timeout:
                    continue
                except OSError:
                    return
            return
        up = socket.create_connection(('127.0.0.1', self.upstream))
        self._conns.append(up)
        up.sendall(buf)
        threading.Thread(target=self._pipe, args=(up, conn), daemon=True).start()
        self._pipe(conn, up)

    def _pipe(self, src, dst):
        src.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self._stop.set()
        for s in self._conns + [self._sock]:
            try:
                s.close()
            except OSError:
                pass


class FaultCase(ts.SessionCase):
    def servers(self, prosody_extra='', ngircd=True, overrides=None):
        p = ft.Prosody(extra=prosody_extra)
        self.addCleanup(p.close)
        p.start()
        n = None
        if ngircd:
            n = ft.Ngircd(no_penalty=True)
            self.addCleanup(n.close)
            n.start()
        # Ferry paces IRC lines (ratelimit-burst, then one per ratelimit-interval, 2 s by
        # default) and answers every line it still holds when the connection goes away
        # (FloodControlTest). These counting tests are about other faults: pacing is off so
        # that they stay short (the test server has no flood limits either).
        o = {'legacy': {'reconnect_min': '0.5', 'reconnect_max': '2',
                        'ratelimit-interval': '0'},
             'component': {'reconnect_min': '0.2', 'reconnect_max': '1'}}
        for group, keys in (overrides or {}).items():
            o.setdefault(group, {}).update(keys)
        f = ft.Ferry(p, n, overrides=o)
        self.addCleanup(f.close)
        f.start()
        return p, n, f

    def peer_sends(self, peer, owner_nick, prefix, count, interval=0.0):
        """The peer sends prefix000 ...; returns their send times."""
        times = []
        for i in range(count):
            times.append(time.time())
            peer.privmsg(owner_nick, '%s%03d' % (prefix, i))
            if interval:
                time.sleep(interval)
        return times


class ProsodyKillTest(FaultCase):
    def test_prosody_killed_and_restarted_while_messages_flow(self):
        p, n, f = self.servers('modules_enabled = { %s }\n' % MODULES)
        peer = self.irc(n, 'patpal')
        c = self.owner(p, 'pat')
        jid = contact('patpal')
        self.peer_sends(peer, 'pat', 'pre', 10)
        for i in range(10):
            c.message(jid, 'up%03d' % i)
        wait = lambda prefix, k: ft.wait_until(lambda: len(bodies(c, jid, prefix)) >= k, 10,
                                               '%d x %s' % (k, prefix))
        wait('pre', 10)
        for i in range(10):
            self.assertEqual(self.privmsg(peer, 'pat'), 'up%03d' % i)

        # A burst in flight when the server dies, then messages while it is away.
        burst_times = self.peer_sends(peer, 'pat', 'burst', 20)
        killed_at = time.time()
        p.kill()
        f.wait_log(r'link to \S+ lost', 10)
        down_times = self.peer_sends(peer, 'pat', 'down', 30, 0.02)
        time.sleep(1)
        p.start()
        f.wait_ready(20)
        up_at = time.time()
        c2 = p.client('pat', resource='back')
        self.addCleanup(c2.disconnect)
        c2.xmpp.auto_authorize = None
        c2.xmpp.auto_subscribe = False
        c2.iq('get', None, "<query xmlns='jabber:iq:roster'/>")
        c2.presence()
        self.wait_signed_on(c2, 30)
        # Everything sent while the link was down arrives, once, in order, stamped by Ferry.
        ft.wait_until(lambda: len(bodies(c2, jid, 'down')) >= 30, 20, 'the 30 down messages')
        downs = [e for e in c2.received if is_message(e, jid) and
                 (body_of(e) or '').startswith('down')]
        self.assertEqual([body_of(e) for e in downs], ['down%03d' % i for i in range(30)])
        for e, sent in zip(downs, down_times):
            d = delay_from(e, COMPONENT)
            self.assertIsNotNone(d, 'no delay from the transport: %s' % ft.to_string(e))
            self.assertAlmostEqual(stamp_seconds(d.get('stamp')), sent, delta=2)
        # The burst: delivered (before the kill to the old client, or later), or written to
        # the socket of the dying server: Ferry's log shows the write.
        got = set(bodies(c, jid, 'burst')) | set(bodies(c2, jid, 'burst'))
        log = f.log_text()
        lost = ['burst%03d' % i for i in range(20) if 'burst%03d' % i not in got]
        for b in lost:
            self.assertRegex(log, r'send <message[^\n]*>%s<' % b,
                             '%s neither delivered nor written before the kill' % b)
        self.assertLessEqual(len(lost), 20)
        # Both ways again.
        self.peer_sends(peer, 'pat', 'post', 10)
        ft.wait_until(lambda: len(bodies(c2, jid, 'post')) >= 10, 10, 'post messages')
        for i in range(10):
            c2.message(jid, 'back%03d' % i)
        for i in range(10):
            self.assertEqual(self.privmsg(peer, 'pat'), 'back%03d' % i)
        # No duplicates anywhere.
        everything = bodies(c, jid, '') + bodies(c2, jid, '')
        self.assertEqual(len(everything), len(set(everything)), 'a message arrived twice')
        print('\n    prosody kill: %d burst message(s) died with the server; link back %.1f s '
              'after the restart' % (len(lost), up_at - killed_at))


    def test_messages_kept_across_a_ferry_restart(self):
        """Prosody is down, a contact writes, then Ferry itself is killed: what the contact
        wrote was in the store, and arrives once everything is back."""
        p, n, f = self.servers('modules_enabled = { %s }\n' % MODULES)
        peer = self.irc(n, 'keeppal')
        c = self.owner(p, 'kim')
        jid = contact('keeppal')
        p.kill()
        f.wait_log(r'link to \S+ lost', 10)
        times = self.peer_sends(peer, 'kim', 'kept', 5, 0.05)
        f.wait_log(r'kim@localhost: message from keeppal@irc.localhost kept in the store', 10,
                   count=5)
        f.stop(ft.signal.SIGKILL)
        p.start()
        f.start()
        c2 = p.client('kim', resource='again')
        self.addCleanup(c2.disconnect)
        c2.iq('get', None, "<query xmlns='jabber:iq:roster'/>")
        c2.presence()
        ft.wait_until(lambda: len(bodies(c2, jid, 'kept')) >= 5, 20, 'the kept messages')
        kept = [e for e in c2.received if is_message(e, jid) and
                (body_of(e) or '').startswith('kept')]
        self.assertEqual([body_of(e) for e in kept], ['kept%03d' % i for i in range(5)])
        for e, sent in zip(kept, times):
            d = delay_from(e, COMPONENT)
            self.assertIsNotNone(d, ft.to_string(e))
            self.assertAlmostEqual(stamp_seconds(d.get('stamp')), sent, delta=2)
        db = os.path.join(f.settings['storage']['path'], 'ferry.db')
        con = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
        left = con.execute('SELECT count(*) FROM pending_messages').fetchone()[0]
        con.close()
        self.assertEqual(left, 0)


class NgircdKillTest(FaultCase):
    def test_ngircd_killed_and_restarted_while_messages_flow(self):
        p, n, f = self.servers()
        owners = {}
        for name in ('nora', 'nils', 'nina'):
            owners[name] = self.owner(p, name)
        peer = self.irc(n, 'ircpal')
        jid = contact('ircpal')
        sent = {name: [] for name in owners}
        for name, c in owners.items():
            for i in range(5):
                body = '%s-pre%03d' % (name, i)
                c.message(jid, body)
                sent[name].append(body)
        got_by_peer = []
        for _ in range(15):
            got_by_peer.append(peer.wait_for(r'PRIVMSG ircpal :(.*)$').group(1))
        for name, c in owners.items():
            peer.privmsg(name, 'to %s before' % name)
            self.assertEqual(body_of(self.message_from(c, jid)), 'to %s before' % name)
        peer.sock.close()
        n.stop(ft.signal.SIGKILL)
        # Messages in the very breath of the crash, and while IRC is away.
        for name, c in owners.items():
            for i in range(5):
                body = '%s-down%03d' % (name, i)
                c.message(jid, body)
                sent[name].append(body)
        for name, c in owners.items():
            down = c.wait_for(lambda e: is_presence(e, COMPONENT, 'unavailable'), 10,
                              'the transport unavailable')
            self.assertIn('Not connected to IRC', down.findtext(c_tag('status')) or '')
        time.sleep(1)
        n.start()
        for name, c in owners.items():
            self.wait_signed_on(c, 20)
        peer = self.irc(n, 'ircpal')
        for name, c in owners.items():
            for i in range(5):
                body = '%s-post%03d' % (name, i)
                c.message(jid, body)
                sent[name].append(body)
        for _ in range(15):
            got_by_peer.append(peer.wait_for(r'PRIVMSG ircpal :(.*)$', 15).group(1))
        for name, c in owners.items():
            peer.privmsg(name, 'to %s after' % name)
            m = c.wait_for(lambda e: is_message(e, jid, 'chat') and body_of(e) is not None, 15,
                           'message after the restart')
            self.assertEqual(body_of(m), 'to %s after' % name)
        # Counting: every message either reached the peer or came back as an error.
        time.sleep(1)
        for name, c in owners.items():
            errors = [body_of(e) for e in c.received if is_message(e, jid, 'error')]
            delivered = [b for b in got_by_peer if b.startswith(name + '-')]
            self.assertEqual(sorted(delivered + errors), sorted(sent[name]),
                             '%s: delivered %s, errors %s' % (name, delivered, errors))
            self.assertEqual(len(errors), 5, errors)


class FerryKillTest(FaultCase):
    def test_ferry_killed_mid_traffic(self):
        p, n, f = self.servers()
        c = self.owner(p, 'tess')
        peer = self.irc(n, 'tesspal')
        jid = contact('tesspal')
        # ngircd holds a new client's first commands for about a second: one round trip
        # first, so that what the owner sends below is not still waiting inside ngircd.
        c.message(jid, 'warm-up')
        self.assertEqual(self.privmsg(peer, 'tess'), 'warm-up')
        sent_times = []
        owner_sent = []
        for i in range(40):
            sent_times.append(time.time())
            peer.privmsg('tess', 'n%03d' % i)
            if i % 4 == 0:
                owner_sent.append(('o%03d' % i, c.message(jid, 'o%03d' % i)))
            if i == 20:
                killed_at = time.time()
                f.stop(ft.signal.SIGKILL)
            time.sleep(0.05)
        # Every n... sent after the kill: the server says the nick is gone (401), until the
        # session is back.
        f.start()
        self.wait_signed_on(c, 30)
        self.wait_irc(peer, 'tess')
        for i in range(5):
            peer.privmsg('tess', 'after%03d' % i)
        ft.wait_until(lambda: len(bodies(c, jid, 'after')) >= 5, 15, 'messages after restart')
        got = bodies(c, jid, 'n')
        self.assertEqual(got, sorted(got), 'out of order')
        self.assertEqual(len(got), len(set(got)), 'duplicates')
        nosuch = len([line for line in peer.seen if re.search(r' 401 tesspal tess ', line)])
        missing = [i for i in range(40) if 'n%03d' % i not in got]
        in_flight = [i for i in missing if killed_at - IN_FLIGHT <= sent_times[i] <= killed_at]
        after_kill = [i for i in missing if sent_times[i] > killed_at]
        self.assertEqual(sorted(in_flight + after_kill), missing,
                         'lost before the kill: %s' % missing)
        self.assertGreaterEqual(nosuch, len(after_kill) - 1,
                                'the peer was not told about %d message(s)' % len(after_kill))
        # The owner's messages: at the peer, or an error back to the owner, or in flight.
        time.sleep(1)
        peer.send('PING :sync')
        peer.wait_for(r'PONG.*sync')
        at_peer = [line.split(' :', 1)[1] for line in peer.seen
                   if re.search(r'^:tess!\S* PRIVMSG tesspal :o\d+', line)]
        # (Prosody's own errors, while no component is attached, do not repeat the body)
        errors = [e.get('id') for e in c.received if is_message(e, jid, 'error')]
        unanswered = [b for b, i in owner_sent if b not in at_peer and i not in errors]
        self.assertLessEqual(len(unanswered), 1, 'owner messages lost: %s\n%s' % (
            unanswered, '\n'.join(l for l in peer.seen if 'PRIVMSG' in l)))
        print('\n    ferry kill: %d in flight, %d told 401, owner unanswered %s'
              % (len(in_flight), nosuch, unanswered))

    def test_ferry_killed_mid_registration(self):
        p, n, f = self.servers(prosody_extra='Component "%s"\n    component_secret = "crowd"\n'
                               % CROWD, overrides={
                                   'legacy': {'login_rate': '4'},
                                   'registration': {'allowed_domains': 'localhost ' + CROWD}})
        crowd = Crowd(p, 'crowd')
        users = ['u%03d' % i for i in range(12)]
        for u in users:
            crowd.send("<iq type='set' id='reg-%s' from='%s@%s/r' to='%s'><query xmlns='%s'>"
                       "<username>%s</username><password/></query></iq>"
                       % (u, u, CROWD, COMPONENT, NS['register'], 'c' + u))
        crowd.wait_count(lambda e: tag(e) == 'iq' and e.get('type') == 'result', 2, 20,
                         'registrations answered')
        f.stop(ft.signal.SIGKILL)
        answered = {e.get('id')[4:] for e in crowd.matching(
            lambda e: tag(e) == 'iq' and e.get('type') == 'result')}
        db = os.path.join(f.settings['storage']['path'], 'ferry.db')
        con = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
        self.assertEqual(con.execute('PRAGMA integrity_check').fetchone()[0], 'ok')
        con.close()
        f.start()
        registered = {}
        for u in users:
            crowd.send("<iq type='get' id='get-%s' from='%s@%s/r' to='%s'><query xmlns='%s'/>"
                       "</iq>" % (u, u, CROWD, COMPONENT, NS['register']))
        replies = crowd.wait_count(lambda e: tag(e) == 'iq' and (e.get('id') or '').startswith(
            'get-'), len(users), 10, 'registration forms')
        for r in replies:
            q = r.find('{%s}query' % NS['register'])
            if q.find('{%s}registered' % NS['register']) is not None:
                registered[r.get('id')[4:]] = q.findtext('{%s}username' % NS['register'])
        self.assertTrue(answered <= set(registered), 'acknowledged but lost: %s'
                        % (answered - set(registered)))
        for u, name in registered.items():
            self.assertEqual(name, 'c' + u)
        # Whole: each registration logs in with what was stored.
        for u in registered:
            crowd.send("<presence from='%s@%s/r' to='%s'/>" % (u, CROWD, COMPONENT))
        crowd.wait_count(lambda e: tag(e) == 'presence' and e.get('from') == COMPONENT and
                         e.get('type') is None, len(registered), 30, 'sessions signed on')
        # Absent: registering again works.
        rest = [u for u in users if u not in registered]
        for u in rest:
            crowd.send("<iq type='set' id='again-%s' from='%s@%s/r' to='%s'><query xmlns='%s'>"
                       "<username>%s</username><password/></query></iq>"
                       % (u, u, CROWD, COMPONENT, NS['register'], 'c' + u))
        crowd.wait_count(lambda e: tag(e) == 'iq' and (e.get('id') or '').startswith('again-')
                         and e.get('type') == 'result', len(rest), 30, 'registrations again')
        print('\n    ferry kill mid-registration: %d acknowledged, %d whole after restart, %d '
              'absent' % (len(answered), len(registered), len(rest)))


class StallTest(FaultCase):
    """A legacy server that accepts the connection and says nothing (only for some nicks:
    a proxy in front of ngircd stalls them and lets the others through)."""

    def test_stalled_registration_and_login_time_out_others_unaffected(self):
        n = ft.Ngircd(no_penalty=True)
        self.addCleanup(n.close)
        n.start()
        proxy = StallProxy(n.port)
        p = ft.Prosody()
        self.addCleanup(p.close)
        p.start()
        f = ft.Ferry(p, None, overrides={
            'legacy': {'port': proxy.port, 'login_timeout': '4', 'reconnect_min': '1',
                       'ratelimit-interval': '0',
                       'reconnect_max': '2'},
            'registration': {'timeout': '4'}})
        self.addCleanup(f.close)
        f.start()
        peer = self.irc(n, 'stallpal')
        jid = contact('stallpal')
        norma = self.owner(p, 'norma')
        # A registration against the stalled server, while norma chats.
        proxy.stall.add('stally')
        stan = self.owner(p, 'stan', register=False)
        result = {}

        def register():
            t0 = time.monotonic()
            result['reply'] = stan.iq('set', COMPONENT, "<query xmlns='%s'><username>stally"
                                      "</username><password/></query>" % NS['register'],
                                      timeout=20)
            result['took'] = time.monotonic() - t0
        th = threading.Thread(target=register)
        th.start()
        self.round_trip(norma, peer, jid, 'norma', 'during the stalled registration')
        th.join(25)
        r = result['reply']
        self.assertEqual(ft.error_of(r)[:2], ('wait', 'remote-server-timeout'), ft.to_string(r))
        self.assertIn('within 4 s', ft.error_of(r)[2])
        self.assertLess(result['took'], 9)
        # A login against the stalled server.
        self.register(stan, 'stan2')
        self.wait_signed_on(stan)
        stan.presence(type_='unavailable')
        f.wait_log(r'stan@localhost: session ended')
        proxy.stall.add('stan2')
        stan.send("<presence/><message to='%s' type='chat' id='stalled1'><body>waiting</body>"
                  "</message>" % jid)
        t0 = time.monotonic()
        self.round_trip(norma, peer, jid, 'norma', 'during the stalled login')
        down = stan.wait_for(lambda e: is_presence(e, COMPONENT, 'unavailable') and 'no answer'
                             in (e.findtext(c_tag('status')) or ''), 15,
                             'the transport unavailable after the stalled login')
        self.assertIn('no answer within 4 s', down.findtext(c_tag('status')) or '')
        self.assertLess(time.monotonic() - t0, 9)
        err = self.error_from(stan, jid)
        self.assertEqual((err.get('id'), body_of(err)), ('stalled1', 'waiting'))
        # Ferry keeps trying; once the server talks again the session comes back by itself.
        proxy.stall.discard('stan2')
        self.wait_signed_on(stan, 20)
        stan.message(jid, 'back from the stall')
        self.assertEqual(self.privmsg(peer, 'stan2'), 'back from the stall')
        self.assertGreaterEqual(proxy.stalled, 2)
        self.assertTrue(f.alive())

    def round_trip(self, c, peer, jid, nick, text):
        t0 = time.monotonic()
        c.message(jid, text)
        self.assertEqual(self.privmsg(peer, nick, 5), text)
        peer.privmsg(nick, 'echo ' + text)
        self.assertEqual(body_of(self.message_from(c, jid, 5)), 'echo ' + text)
        self.assertLess(time.monotonic() - t0, 3, 'an owner was slowed by the stall')


class CrowdTest(FaultCase):
    """100 registrations submitted at once, then 100 owners logging in at once: paced logins,
    no connection refused or reset by ngircd, every message counted."""

    N = 100

    def test_100_registrations_and_100_logins_at_once(self):
        p, n, f = self.servers(prosody_extra='Component "%s"\n    component_secret = "crowd"\n'
                               % CROWD, overrides={
                                   'legacy': {'login_rate': '10'},
                                   'registration': {'allowed_domains': 'localhost ' + CROWD}})
        crowd = Crowd(p, 'crowd')
        users = ['u%03d' % i for i in range(self.N)]
        t0 = time.monotonic()
        crowd.send(''.join(
            "<iq type='set' id='reg-%s' from='%s@%s/r' to='%s'><query xmlns='%s'><username>"
            "%s</username><password/></query></iq>" % (u, u, CROWD, COMPONENT, NS['register'],
                                                       'c' + u) for u in users))
        replies = crowd.wait_count(lambda e: tag(e) == 'iq' and (e.get('id') or '').startswith(
            'reg-'), self.N, 60, 'registration replies')
        reg_took = time.monotonic() - t0
        bad = [ft.to_string(r) for r in replies if r.get('type') != 'result']
        self.assertEqual(bad, [])
        t0 = time.monotonic()
        crowd.send(''.join("<presence from='%s@%s/r' to='%s'/>" % (u, CROWD, COMPONENT)
                           for u in users))
        crowd.wait_count(lambda e: tag(e) == 'presence' and e.get('from') == COMPONENT and
                         e.get('type') is None, self.N, 60, 'owners signed on')
        login_took = time.monotonic() - t0
        peer = self.irc(n, 'crowdpal')
        jid = contact('crowdpal')
        for i, u in enumerate(users):
            peer.privmsg('c' + u, 'hello %s' % u)
        got = crowd.wait_count(lambda e: tag(e) == 'message' and e.get('from') == jid, self.N,
                               30, 'messages to the owners')
        self.assertEqual(sorted(e.get('to') for e in got),
                         sorted('%s@%s' % (u, CROWD) for u in users))
        for e in got:
            u = e.get('to').split('@')[0]
            self.assertEqual(e.findtext('{jabber:component:accept}body'), 'hello %s' % u)
        crowd.send(''.join("<message from='%s@%s/r' to='%s' type='chat'><body>from %s</body>"
                           "</message>" % (u, CROWD, jid, u) for u in users))
        lines = [peer.wait_for(r'^:(cu\d+)!\S* PRIVMSG crowdpal :(.*)$', 30)
                 for _ in users]
        self.assertEqual(sorted(m.group(2) for m in lines), sorted('from ' + u for u in users))
        errors = crowd.matching(lambda e: e.get('type') == 'error')
        self.assertEqual([ft.to_string(e) for e in errors], [])
        # ngircd saw no trouble, Ferry saw no refused or failed login.
        out = n.log_text()
        self.assertNotRegex(out, r'(?i)reset|refused|too many|flood|excess')
        log = f.log_text()
        self.assertNotRegex(log, r'Not connected to IRC|no answer within')
        print('\n    crowd: %d registrations in %.1f s, %d logins in %.1f s'
              % (self.N, reg_took, self.N, login_took))


class FloodControlTest(FaultCase):
    """IRC flood control (libpurple's defaults: 5 lines at once, then one every 2 s) holds
    lines in Ferry, not in libpurple: what it holds when the connection or Ferry goes comes
    back as errors, one per message, and a message that would overflow the queue is refused
    at once."""

    LINES = r'^:%s!\S* PRIVMSG %s :(.*)$'

    def paced_servers(self):
        # None drops the counting tests' ratelimit-interval 0: libpurple's defaults apply.
        return self.servers(overrides={'legacy': {'ratelimit-interval': None}})

    def send_batch(self, c, jid, tag_):
        """Three messages of four lines and six one-line messages, at once."""
        sent = ['\n'.join('%s-m%d-l%d' % (tag_, i, k) for k in range(4)) for i in range(3)]
        sent += ['%s-s%d' % (tag_, i) for i in range(6)]
        for body in sent:
            c.message(jid, body)
        return sent

    def assert_counted(self, c, jid, sent, got):
        """Every message reached the peer whole or came back as an error with its body, never
        both; returns the bounced bodies."""
        def bounced():
            return [body_of(e) for e in c.received if is_message(e, jid, 'error')]
        whole = [b for b in sent if all(line in got for line in b.split('\n'))]
        ft.wait_until(lambda: len(whole) + len(bounced()) >= len(sent), 15,
                      'an answer for every message (whole at the peer: %d)' % len(whole))
        errors = bounced()
        self.assertEqual(sorted(whole + errors), sorted(sent),
                         'whole at the peer: %s; bounced: %s' % (whole, errors))
        for e in c.received:
            if is_message(e, jid, 'error'):
                cond, text = ft.error_of(e)[1:3]
                self.assertEqual(cond, 'recipient-unavailable', ft.to_string(e))
                self.assertIn('the connection to IRC was', text)
        return errors

    def test_held_lines_bounce_when_ngircd_dies(self):
        p, n, f = self.paced_servers()
        peer = self.irc(n, 'floodpal')
        c = self.owner(p, 'flo')
        jid = contact('floodpal')
        sent = self.send_batch(c, jid, 'k')  # 18 lines
        got = []
        t0 = time.monotonic()
        while len(got) < 7:  # the burst, then paced lines
            got.append(self.privmsg(peer, 'flo', 10))
        took = time.monotonic() - t0
        # The next line is due about 2 s after the last one: nothing is in flight.
        peer.sock.close()
        n.stop(ft.signal.SIGKILL)
        errors = self.assert_counted(c, jid, sent, got)
        self.assertGreater(took, 1.5, 'no flood control: %s' % got)
        self.assertGreaterEqual(len(errors), 4, errors)
        f.wait_log(r'flo@localhost: \d+ message\(s\) answered with an error \(\d+ partly sent, '
                   r'\d+ line\(s\) not sent\): the connection was lost', 5)
        print('\n    flood control: %d of %d messages bounced after ngircd died'
              % (len(errors), len(sent)))

    def test_held_lines_bounce_when_ferry_stops(self):
        p, n, f = self.paced_servers()
        peer = self.irc(n, 'stoppal')
        c = self.owner(p, 'stoppy')
        jid = contact('stoppal')
        sent = self.send_batch(c, jid, 't')
        got = []
        while len(got) < 6:
            got.append(self.privmsg(peer, 'stoppy', 10))
        self.assertEqual(f.stop(), 0)
        # What reached ngircd before Ferry quit is relayed to the peer.
        try:
            while True:
                got.append(self.privmsg(peer, 'stoppy', 1))
        except ft.HarnessError:
            pass
        errors = self.assert_counted(c, jid, sent, got)
        self.assertGreaterEqual(len(errors), 4, errors)

    def test_overflow_is_refused_at_once(self):
        p, n, f = self.paced_servers()
        peer = self.irc(n, 'fullpal')
        c = self.owner(p, 'fully')
        jid = contact('fullpal')
        c.message(jid, 'before')
        self.assertEqual(self.privmsg(peer, 'fully'), 'before')
        big = '\n'.join('big %03d' % i for i in range(300))  # more than 256 lines
        t0 = time.monotonic()
        c.message(jid, big, id_='big1')
        err = self.error_from(c, jid, 5)
        self.assertLess(time.monotonic() - t0, 2)
        self.assertEqual((err.get('id'), body_of(err)), ('big1', big))
        cond, text = ft.error_of(err)[1:3]
        self.assertEqual(cond, 'resource-constraint')
        self.assertIn('flood control', text)
        f.wait_log(r'fully@localhost: a message refused: 0 line\(s\) already wait', 5)
        # Nothing of it went out; the next message does.
        c.message(jid, 'after')
        self.assertEqual(self.privmsg(peer, 'fully'), 'after')
