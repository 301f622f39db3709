-- Attaching Ferry to Prosody: add these lines to /etc/prosody/prosody.cfg.lua (or to a file
-- in /etc/prosody/conf.d/), then run `prosodyctl reload`.

-- The component port. Keep it on loopback (or a private network): the handshake proves the
-- secret, but the stream itself is not encrypted. Ferry's [component] host and port.
component_ports = { 5347 }
component_interfaces = { "127.0.0.1" }

-- One Component line per Ferry process; the name is Ferry's [component] jid.
Component "irc.example.org"
    -- The same value as [component] secret in ferry.conf.
    component_secret = "change-me"

-- Prosody caps the stanzas of a component at 512 KiB: keep Ferry's [component]
-- max_stanza_size at or below 524288.
--
-- Users of this server reach the transport at once. Users of other servers need the domain
-- to resolve to this server: an SRV record _xmpp-server._tcp.irc.example.org (or an A/AAAA
-- record), and Prosody's s2s port open.
