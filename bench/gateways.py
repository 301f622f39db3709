"""The two gateways of the end-to-end benchmark behind one driver interface, so that every
figure is measured by the same code for both:

    start(probe)            start the process, wait until it answers disco#info
    prepare(conn, nick)     once per user: Ferry registers, biboumi is configured
    online(conn, nick)      the user asks to be on IRC (Ferry: available presence; biboumi:
                            joins the IRC server's own room, which connects without a channel)
    contact(nick)           the JID of an IRC nick
    relogin_by_gateway      True when the gateway brings its users back on IRC by itself after
                            a restart (Ferry probes its registered users); False when each user
                            has to ask again (biboumi)

A step a gateway cannot do raises GatewayError: that gateway's figure prints n/a (reason)."""

import asyncio
import os
import shutil

import rig
from ferrytest import Ferry
from rawxmpp import C, error_condition, error_text, esc

NS_INFO = 'http://jabber.org/protocol/disco#info'
NS_REGISTER = 'jabber:iq:register'
NS_COMMANDS = 'http://jabber.org/protocol/commands'


class GatewayError(Exception):
    pass


def first_line(text, limit=140):
    text = str(text).strip().splitlines()[0] if str(text).strip() else repr(text)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def xep0106(node):
    """XEP-0106 escaping of a JID node (IRC nicks may hold ' " & / : < > @ \\)."""
    out = []
    for ch in node:
        if ch in ' "&\'/:<>@\\':
            out.append('\\%02x' % ord(ch))
        else:
            out.append(ch)
    return ''.join(out).lower()


async def wait_identity(probe, domain, category, alive, timeout):
    """Polls disco#info on domain until an identity of category answers."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        if not alive():
            raise GatewayError('exited before answering disco#info')
        try:
            reply = await probe.request('get', domain, "<query xmlns='%s'/>" % NS_INFO, 2)
            if reply.get('type') == 'result' and reply.find(
                    '{%s}query/{%s}identity[@category="%s"]' % (NS_INFO, NS_INFO, category)
            ) is not None:
                return
            last = error_condition(reply)
        except Exception as e:  # a timeout: the component is not there yet
            last = first_line(e)
        await asyncio.sleep(0.1)
    raise GatewayError('no disco#info answer within %d s (last: %s)' % (timeout, last))


class FerryGateway:
    name = 'Ferry'
    nick_prefix = 'f'
    relogin_by_gateway = True

    def __init__(self, binary, prosody, ngircd, login_rate):
        self.binary = binary
        self.prosody = prosody
        self.ngircd = ngircd
        self.login_rate = login_rate
        self.domain = prosody.component
        self.proc = None
        self._ferry = None

    def _make(self):
        os.environ['FERRY_BINARY'] = self.binary
        # Logging at info: what an operator runs (debug would measure the log, not Ferry).
        # ratelimit-interval = 0 (a prpl-irc account option) turns off libpurple's own flood
        # control (5 lines, then one every 2 s), as throttle_limit = -1 does for biboumi.
        return Ferry(self.prosody, self.ngircd, overrides={
            'log': {'level': 'info'},
            'legacy': {'login_rate': str(self.login_rate), 'login_timeout': '60',
                       'ratelimit-interval': '0'},
        })

    @property
    def pid(self):
        return self._ferry.proc.pid if self._ferry and self._ferry.proc else None

    def alive(self):
        return self._ferry is not None and self._ferry.alive()

    async def start(self, probe, timeout=30):
        if not os.access(self.binary, os.X_OK):
            raise GatewayError('no binary at %s' % self.binary)
        if self._ferry is None:
            self._ferry = self._make()
        try:
            self._ferry.start(wait=False)
        except Exception as e:
            raise GatewayError('cannot start: %s' % first_line(e))
        await wait_identity(probe, self.domain, 'gateway', self.alive, timeout)

    def log_tail(self):
        return self._ferry.log_tail() if self._ferry else ''

    async def stop(self):
        if self._ferry:
            await asyncio.to_thread(self._ferry.stop)

    async def prepare(self, conn, nick, timeout=120):
        reply = await conn.request('set', self.domain,
                                   "<query xmlns='%s'><username>%s</username><password/>"
                                   "</query>" % (NS_REGISTER, esc(nick)), timeout)
        if reply.get('type') != 'result':
            raise GatewayError('registration of %s: %s (%s)' % (
                nick, error_condition(reply), error_text(reply)))

    def online(self, conn, nick):
        conn.presence()

    def contact(self, nick):
        return '%s@%s' % (xep0106(nick), self.domain)


class BiboumiGateway:
    name = 'biboumi'
    nick_prefix = 'b'
    relogin_by_gateway = False

    def __init__(self, prosody, ngircd):
        self.prosody = prosody
        self.ngircd = ngircd
        self.domain = rig.BIBOUMI_DOMAIN
        self.server = '127.0.0.1@' + self.domain
        self._b = None

    @property
    def pid(self):
        return self._b.proc.pid if self._b and self._b.proc else None

    def alive(self):
        return self._b is not None and self._b.alive()

    async def start(self, probe, timeout=30):
        if not shutil.which(rig.BIBOUMI):
            raise GatewayError('%s is not installed (scripts/deps installs it)' % rig.BIBOUMI)
        if self._b is None:
            self._b = rig.Biboumi(self.prosody)
        try:
            self._b.start()
        except Exception as e:
            raise GatewayError('cannot start: %s' % first_line(e))
        await wait_identity(probe, self.domain, 'conference', self.alive, timeout)

    def log_tail(self):
        return self._b.log_tail() if self._b else ''

    async def stop(self):
        if self._b:
            await asyncio.to_thread(self._b.stop)

    async def prepare(self, conn, nick, timeout=60):
        """Ad-hoc configure on the IRC server's JID: ngircd's port, no TLS, no throttle."""
        reply = await conn.request('set', self.server, "<command xmlns='%s' node='configure' "
                                   "action='execute'/>" % NS_COMMANDS, timeout)
        cmd = reply.find('{%s}command' % NS_COMMANDS)
        if reply.get('type') != 'result' or cmd is None or not cmd.get('sessionid'):
            raise GatewayError('configure of %s: %s' % (nick, error_condition(reply)))
        form = ("<x xmlns='jabber:x:data' type='submit'>"
                "<field var='ports'><value>%d</value></field><field var='tls_ports'/>"
                "<field var='throttle_limit'><value>-1</value></field>"
                "<field var='nick'><value>%s</value></field></x>" % (self.ngircd.port, esc(nick)))
        reply = await conn.request('set', self.server, "<command xmlns='%s' node='configure' "
                                   "sessionid='%s' action='complete'>%s</command>"
                                   % (NS_COMMANDS, esc(cmd.get('sessionid')), form), timeout)
        if reply.get('type') != 'result':
            raise GatewayError('configure of %s refused: %s' % (nick, error_condition(reply)))

    def online(self, conn, nick):
        conn.presence('%%%s/%s' % (self.server, nick),
                      payload="<x xmlns='http://jabber.org/protocol/muc'>"
                      "<history maxstanzas='0'/></x>")

    def contact(self, nick):
        return '%s%%%s' % (xep0106(nick), self.server)


def body_of(el):
    return el.findtext(C + 'body')
