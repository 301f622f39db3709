"""A lightweight asyncio IRC client for the end-to-end benchmark (bench/e2e.py): the scripted
IRC peers and an observer that counts the users on the server. One asyncio.Protocol per
connection, lines split by hand, PINGs answered, PRIVMSGs to a callback."""

import asyncio
import re
import time

_RPL_LUSERCLIENT = re.compile(rb' 251 \S+ :There are (\d+) users and (\d+) services')
_RPL_STATSCONN = re.compile(rb' 250 \S+ :.*\((\d+) connections received\)')


class IrcError(Exception):
    pass


class IrcConn(asyncio.Protocol):
    """on_privmsg(conn, source_nick, text_bytes, t) for every PRIVMSG (t: perf_counter when
    the bytes arrived)."""

    def __init__(self, nick, password=None):
        self.nick = nick
        self.password = password
        self.transport = None
        self.on_privmsg = None
        self._buf = b''
        self._registered = None
        self._lusers = []
        self._received = []
        self.refused = None  # the line that refused the login, if any
        self.closed = None

    async def connect(self, host, port, timeout=30):
        loop = asyncio.get_running_loop()
        self._registered = loop.create_future()
        self.closed = loop.create_future()
        await asyncio.wait_for(loop.create_connection(lambda: self, host, port), timeout)
        try:
            await asyncio.wait_for(self._registered, timeout)
        except BaseException:
            self.transport.close()
            raise
        return self

    def connection_made(self, transport):
        self.transport = transport
        lines = []
        if self.password:
            lines.append('PASS %s' % self.password)
        lines += ['NICK %s' % self.nick, 'USER %s 0 * :bench peer' % self.nick]
        transport.write(('\r\n'.join(lines) + '\r\n').encode())

    def connection_lost(self, exc):
        for fut in [self._registered] + self._lusers + self._received:
            if fut is not None and not fut.done():
                fut.set_exception(IrcError('%s: connection lost' % self.nick))
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(True)

    def data_received(self, data):
        t = time.perf_counter()
        buf = self._buf + data
        lines = buf.split(b'\n')
        self._buf = lines.pop()
        for line in lines:
            self._line(line.rstrip(b'\r'), t)

    def _line(self, line, t):
        if line.startswith(b':'):
            prefix, _, rest = line.partition(b' ')
            cmd, _, args = rest.partition(b' ')
            if cmd == b'PRIVMSG':
                if self.on_privmsg:
                    text = args.partition(b' :')[2]
                    self.on_privmsg(self, prefix[1:].split(b'!', 1)[0].decode(), text, t)
            elif cmd == b'001':
                if not self._registered.done():
                    self._registered.set_result(True)
            elif cmd in (b'433', b'432', b'464'):
                self._refuse(line)
            elif cmd == b'250':
                m = _RPL_STATSCONN.search(line)
                if m and self._received:
                    fut = self._received.pop(0)
                    if not fut.done():
                        fut.set_result(int(m.group(1)))
            elif cmd == b'251':
                m = _RPL_LUSERCLIENT.search(line)
                if m and self._lusers:
                    fut = self._lusers.pop(0)
                    if not fut.done():
                        fut.set_result(int(m.group(1)) + int(m.group(2)))
        elif line.startswith(b'PING '):
            self.transport.write(b'PONG ' + line[5:] + b'\r\n')
        elif line.startswith(b'ERROR '):
            self._refuse(line)

    def _refuse(self, line):
        self.refused = line.decode('utf-8', 'replace')
        if self._registered is not None and not self._registered.done():
            self._registered.set_exception(IrcError('%s: login refused: %s'
                                                    % (self.nick, self.refused)))

    def send(self, data):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def privmsg(self, target, text):
        self.send(b'PRIVMSG %s :%s\r\n' % (target.encode(), text.encode()))

    async def users(self, timeout=10):
        """The number of clients on the server (RPL_LUSERCLIENT users + services)."""
        fut = asyncio.get_running_loop().create_future()
        self._lusers.append(fut)
        self.send(b'LUSERS\r\n')
        return await asyncio.wait_for(fut, timeout)

    async def connections_received(self, timeout=10):
        """How many connections the server accepted since it started (ngircd's RPL_STATSCONN
        in the LUSERS reply)."""
        fut = asyncio.get_running_loop().create_future()
        self._received.append(fut)
        self.send(b'LUSERS\r\n')
        return await asyncio.wait_for(fut, timeout)

    def close(self):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b'QUIT :bench done\r\n')
            self.transport.close()
