"""A lightweight asyncio XMPP client for the end-to-end benchmark (bench/e2e.py).

One plain TCP stream per user on loopback: no TLS, SASL PLAIN, resource binding, nothing else.
slixmpp costs a thread, a scheduler and a full stanza object per message; a thousand users
each sending hundreds of messages would make the client the bottleneck of the measurement.
Here a connection is one asyncio.Protocol and one C-accelerated pull parser; messages are
handed to a callback as ElementTree elements without any further processing.

Only what the benchmark needs: IQs with replies matched by id (futures), messages and
presences to callbacks, subscription requests approved automatically.
"""

import asyncio
import base64
import itertools
import time
import xml.etree.ElementTree as ET

C = '{jabber:client}'
NS_SASL = '{urn:ietf:params:xml:ns:xmpp-sasl}'
NS_STREAM = '{http://etherx.jabber.org/streams}'
NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind'

_ids = itertools.count(1)


class XmppError(Exception):
    pass


def esc(s):
    return (s.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
            .replace("'", '&apos;').replace('"', '&quot;'))


class XmppConn(asyncio.Protocol):
    """One logged-in client stream. on_message(conn, element, t) and on_presence(conn,
    element, t) are called for every message and presence (t: time.perf_counter() when the
    bytes arrived); IQ replies resolve the futures returned by iq()."""

    def __init__(self, user, domain, password, resource='bench'):
        self.user = user
        self.domain = domain
        self.password = password
        self.resource = resource
        self.bare = '%s@%s' % (user, domain)
        self.jid = None
        self.transport = None
        self.on_message = None
        self.on_presence = None
        self.auto_approve = True
        self._parser = None
        self._depth = 0
        self._root = None
        self._authed = False
        self._iqs = {}
        self._logged_in = None
        self.closed = None

    # ---- connection

    async def connect(self, host, port, timeout=30):
        loop = asyncio.get_running_loop()
        self._logged_in = loop.create_future()
        self.closed = loop.create_future()
        await asyncio.wait_for(loop.create_connection(lambda: self, host, port), timeout)
        try:
            await asyncio.wait_for(self._logged_in, timeout)
        except BaseException:
            self.transport.close()
            raise
        return self

    def connection_made(self, transport):
        self.transport = transport
        self._restart()

    def connection_lost(self, exc):
        for fut in list(self._iqs.values()) + [self._logged_in]:
            if fut is not None and not fut.done():
                fut.set_exception(XmppError('%s: connection lost' % self.bare))
        self._iqs.clear()
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(True)

    def _restart(self):
        self._parser = ET.XMLPullParser(events=('start', 'end'))
        self._depth = 0
        self.transport.write((
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream="
            "'http://etherx.jabber.org/streams' to='%s' version='1.0'>" % self.domain).encode())

    def data_received(self, data):
        t = time.perf_counter()
        parser = self._parser
        try:
            parser.feed(data)
            events = parser.read_events()
            for ev, el in events:
                if ev == 'start':
                    self._depth += 1
                    if self._depth == 1:
                        self._root = el
                    continue
                self._depth -= 1
                if self._depth == 1:
                    self._root.remove(el)  # keep the document from growing
                    self._dispatch(el, t)
                    if self._parser is not parser:  # stream restarted after SASL
                        return
                elif self._depth == 0:
                    self.transport.close()
        except ET.ParseError as e:
            self._fail('XML error from the server: %s' % e)

    def _fail(self, reason):
        if self._logged_in is not None and not self._logged_in.done():
            self._logged_in.set_exception(XmppError('%s: %s' % (self.bare, reason)))
        if self.transport is not None:
            self.transport.close()

    # ---- stanzas in

    def _dispatch(self, el, t):
        tag = el.tag
        if tag == C + 'message':
            if self.on_message:
                self.on_message(self, el, t)
        elif tag == C + 'presence':
            self._presence(el, t)
        elif tag == C + 'iq':
            self._iq(el)
        elif tag == NS_STREAM + 'features':
            self._features(el)
        elif tag == NS_SASL + 'success':
            self._authed = True
            self._restart()
        elif tag == NS_SASL + 'failure':
            self._fail('authentication failed')
        elif tag == NS_STREAM + 'error':
            self._fail('stream error %s' % [c.tag for c in el])

    def _features(self, el):
        if not self._authed:
            token = base64.b64encode(('\0%s\0%s' % (self.user, self.password)).encode()).decode()
            self.transport.write(("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                                  "mechanism='PLAIN'>%s</auth>" % token).encode())
            return
        fut = self.iq('set', None, "<bind xmlns='%s'><resource>%s</resource></bind>"
                      % (NS_BIND, esc(self.resource)))
        fut.add_done_callback(self._bound)

    def _bound(self, fut):
        if fut.cancelled() or fut.exception() is not None:
            return self._fail('bind failed')
        jid = fut.result().findtext('{%s}bind/{%s}jid' % (NS_BIND, NS_BIND))
        if fut.result().get('type') != 'result' or not jid:
            return self._fail('bind refused')
        self.jid = jid
        if not self._logged_in.done():
            self._logged_in.set_result(True)

    def _iq(self, el):
        fut = self._iqs.pop(el.get('id'), None)
        if fut is not None:
            if not fut.done():
                fut.set_result(el)
            return
        if el.get('type') in ('get', 'set'):  # nothing here serves requests
            self.send("<iq type='error' id='%s' to='%s'><error type='cancel'><service-unavail"
                      "able xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                      % (esc(el.get('id', '')), esc(el.get('from', ''))))

    def _presence(self, el, t):
        if self.auto_approve and el.get('type') == 'subscribe':
            self.presence(el.get('from'), 'subscribed')
        if self.on_presence:
            self.on_presence(self, el, t)

    # ---- stanzas out

    def send(self, xml):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(xml.encode() if isinstance(xml, str) else xml)

    def iq(self, type_, to, payload):
        """Sends an IQ; returns a future that gets the reply element (result or error)."""
        id_ = 'b%d' % next(_ids)
        fut = asyncio.get_running_loop().create_future()
        self._iqs[id_] = fut
        to_attr = " to='%s'" % esc(to) if to else ''
        self.send("<iq type='%s' id='%s'%s>%s</iq>" % (type_, id_, to_attr, payload))
        return fut

    async def request(self, type_, to, payload, timeout=30):
        try:
            return await asyncio.wait_for(self.iq(type_, to, payload), timeout)
        except asyncio.TimeoutError:
            raise XmppError('%s: no reply to an iq %s to %s within %s s'
                            % (self.bare, type_, to, timeout))

    def message(self, to, body, type_='chat'):
        self.send("<message to='%s' type='%s'><body>%s</body></message>"
                  % (esc(to), type_, esc(body)))

    def presence(self, to=None, type_=None, payload=''):
        attrs = (" to='%s'" % esc(to) if to else '') + (" type='%s'" % type_ if type_ else '')
        self.send('<presence%s>%s</presence>' % (attrs, payload))

    def close(self):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"<presence type='unavailable'/></stream:stream>")
            self.transport.close()


def error_condition(el):
    """The defined condition of a stanza's error, or None."""
    err = el.find(C + 'error')
    if err is None:
        return None
    for child in err:
        if child.tag.startswith('{urn:ietf:params:xml:ns:xmpp-stanzas}') and \
                not child.tag.endswith('}text'):
            return child.tag.split('}', 1)[1]
    return 'unknown'


def error_text(el):
    return el.findtext(C + 'error/{urn:ietf:params:xml:ns:xmpp-stanzas}text')
