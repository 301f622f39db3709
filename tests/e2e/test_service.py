"""The transport's own answers on its JID (issue 3), asked by a real client through a real
Prosody: disco, agents/agent, gateway, version, time, last, vCard, ping, and the router's
errors. One Prosody and one Ferry serve the whole class."""

import datetime
import re
import time
import unittest

import ferrytest as ft
from ferrytest import NS, COMPONENT

NAME = 'E2E IRC'  # [legacy] name: the answers must take it from the config
PROMPT = 'IRC nickname'  # service_prompt("prpl-irc")
REQUIRED_FEATURES = {
    NS['info'], NS['items'], NS['agents'], NS['agent'], NS['gateway'], NS['version'],
    NS['time'], NS['oldtime'], NS['last'], NS['vcard'], NS['ping'],
}
# Features that are not IQ namespaces (nothing to 'get'); later issues may advertise these.
NON_IQ_FEATURES = {
    'http://jabber.org/protocol/chatstates', 'urn:xmpp:receipts', 'jabber:x:data',
    'http://jabber.org/protocol/xhtml-im', 'urn:xmpp:chat-markers:0', 'jabber:x:conference',
    'vcard-temp:x:update', 'urn:xmpp:avatar:metadata+notify',
}
PAYLOAD_ELEMENT = {NS['time']: 'time', NS['ping']: 'ping', NS['vcard']: 'vCard'}


def children(el):
    return [ft.local(c) for c in el]


class ServiceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prosody = ft.Prosody()
        cls.addClassCleanup(cls.prosody.close)
        cls.prosody.start()
        cls.ferry = ft.Ferry(cls.prosody, overrides={'legacy': {'name': NAME}})
        cls.addClassCleanup(cls.ferry.close)
        cls.ferry.start()
        cls.client = cls.prosody.client('alice')
        cls.addClassCleanup(cls.client.disconnect)

    @classmethod
    def tearDownClass(cls):
        cls.client.disconnect()
        cls.ferry.stop_cleanly()
        cls.ferry.assert_secret_not_logged()

    def setUp(self):
        self.ferry.assert_running()

    # -- helpers

    def ask(self, type_, payload, to=COMPONENT):
        return self.client.iq(type_, to, payload)

    def result(self, ns, element='query', type_='get', inner='', to=COMPONENT):
        """Sends <element xmlns=ns>inner</element>; asserts a result from `to` to us with
        exactly one child of that name and namespace (or none); returns that child."""
        r = self.ask(type_, "<%s xmlns='%s'>%s</%s>" % (element, ns, inner, element), to)
        self.assertEqual(r.get('type'), 'result', ft.to_string(r))
        self.assertEqual(r.get('from'), to)
        self.assertEqual(r.get('to'), self.client.jid)
        kids = list(r)
        self.assertLessEqual(len(kids), 1, ft.to_string(r))
        if kids:
            self.assertEqual(ft.local(kids[0]), (ns, element), ft.to_string(r))
            return kids[0]
        return None

    def assert_error(self, reply, type_, condition, frm=COMPONENT):
        self.assertEqual(reply.get('type'), 'error', ft.to_string(reply))
        self.assertEqual(reply.get('from'), frm)
        self.assertEqual(reply.get('to'), self.client.jid)
        self.assertEqual(ft.error_of(reply)[:2], (type_, condition), ft.to_string(reply))

    def features(self):
        q = self.result(NS['info'])
        return [f.get('var') for f in q.findall('info:feature', NS)]

    def agent_of(self, ns):
        q = self.result(ns)
        agents = q.findall('%s:agent' % ('agents' if ns == NS['agents'] else 'agent'), NS)
        self.assertEqual(len(agents), 1, ft.to_string(q))
        self.assertEqual(len(list(q)), 1, ft.to_string(q))
        return agents[0]

    # -- service discovery

    def test_disco_info_identity_and_features(self):
        q = self.result(NS['info'])
        self.assertIsNone(q.get('node'))
        ids = [(i.get('category'), i.get('type'), i.get('name'))
               for i in q.findall('info:identity', NS)]
        self.assertEqual(ids, [('gateway', 'irc', NAME)])
        feats = [f.get('var') for f in q.findall('info:feature', NS)]
        self.assertEqual(len(feats), len(set(feats)), 'duplicate features: %s' % feats)
        self.assertEqual(REQUIRED_FEATURES - set(feats), set(), 'missing features')
        for kind, _ in children(q):
            self.assertEqual(kind, NS['info'])

    def test_every_advertised_feature_answers_a_get(self):
        for ns in self.features():
            if ns in NON_IQ_FEATURES:
                continue
            with self.subTest(feature=ns):
                el = PAYLOAD_ELEMENT.get(ns, 'query')
                r = self.ask('get', "<%s xmlns='%s'/>" % (el, ns))
                if ns == NS['search']:  # searched through the owner's legacy session (issue 6)
                    self.assert_error(r, 'auth', 'registration-required')
                    continue
                self.assertEqual(r.get('type'), 'result', ft.to_string(r))

    def test_disco_items_empty(self):
        q = self.result(NS['items'])
        self.assertEqual(list(q), [])

    # -- the white paper's agents

    def check_agent(self, agent):
        self.assertEqual(agent.get('jid'), COMPONENT)
        self.assertEqual(sorted(name for _, name in children(agent)),
                         sorted(['name', 'description', 'transport', 'service', 'register',
                                 'search']))
        ns = ft.local(agent)[0]
        text = {name: (c.text or '') for (_, name), c in zip(children(agent), agent)}
        self.assertIn(NAME, text['name'])
        self.assertTrue(text['description'].strip())
        self.assertEqual(text['transport'], PROMPT)
        self.assertEqual(text['service'], 'irc')
        for empty in ('register', 'search'):
            el = agent.find('{%s}%s' % (ns, empty))
            self.assertEqual((el.text or '', list(el)), ('', []))

    def test_agents(self):
        self.check_agent(self.agent_of(NS['agents']))

    def test_agent(self):
        self.check_agent(self.agent_of(NS['agent']))

    # -- XEP-0100 jabber:iq:gateway

    def test_gateway_get(self):
        q = self.result(NS['gateway'])
        self.assertEqual(sorted(name for _, name in children(q)), ['desc', 'prompt'])
        self.assertTrue(q.findtext('gateway:desc', namespaces=NS).strip())
        self.assertEqual(q.findtext('gateway:prompt', namespaces=NS), PROMPT)

    def test_gateway_set_maps_to_escaped_jid(self):
        cases = [
            ('a b@c', 'a\\20b\\40c@irc.localhost'),
            ('a"b&c\'d/e:f<g>h', 'a\\22b\\26c\\27d\\2fe\\3af\\3cg\\3eh@irc.localhost'),
            ('[x]^{y}|_-', '[x]^{y}|_-@irc.localhost'),
            ('bob', 'bob@irc.localhost'),
        ]
        for legacy, jid in cases:
            with self.subTest(legacy=legacy):
                q = self.result(NS['gateway'], type_='set',
                                inner='<prompt>%s</prompt>' % ft.xml_escape(legacy))
                self.assertEqual([name for _, name in children(q)], ['jid'])
                self.assertEqual(q.findtext('gateway:jid', namespaces=NS), jid)

    def test_gateway_set_without_legacy_id_is_bad_request(self):
        for inner in ('<prompt/>', '<prompt></prompt>', ''):
            with self.subTest(inner=inner):
                r = self.ask('set', "<query xmlns='%s'>%s</query>" % (NS['gateway'], inner))
                self.assert_error(r, 'modify', 'bad-request')

    # -- version, time, last, vCard, ping

    def test_version(self):
        q = self.result(NS['version'])
        self.assertEqual(sorted(name for _, name in children(q)), ['name', 'os', 'version'])
        self.assertEqual(q.findtext('version:name', namespaces=NS), 'Ferry')
        cli = ft.run_ferry('--version')
        self.assertEqual(cli.returncode, 0)
        version = q.findtext('version:version', namespaces=NS)
        self.assertRegex(version, r'^\d+\.\d+\.\d+')
        self.assertIn(version, cli.stdout)
        self.assertTrue(q.findtext('version:os', namespaces=NS).strip())

    def test_time(self):
        q = self.result(NS['time'], element='time')
        self.assertEqual(sorted(name for _, name in children(q)), ['tzo', 'utc'])
        self.assertRegex(q.findtext('time:tzo', namespaces=NS), r'^([+-]\d\d:\d\d|Z)$')
        utc = q.findtext('time:utc', namespaces=NS)
        m = re.match(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$', utc)
        self.assertIsNotNone(m, utc)
        self.assert_near_now(datetime.datetime.strptime(m.group(1), '%Y-%m-%dT%H:%M:%S'))

    def test_legacy_time(self):
        q = self.result(NS['oldtime'])
        utc = q.findtext('oldtime:utc', namespaces=NS)
        self.assertRegex(utc or '', r'^\d{8}T\d\d:\d\d:\d\d$')
        self.assert_near_now(datetime.datetime.strptime(utc, '%Y%m%dT%H:%M:%S'))
        for _, name in children(q):
            self.assertIn(name, ('utc', 'tz', 'display'))

    def assert_near_now(self, when):
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.assertLess(abs((now - when).total_seconds()), 10, '%s vs now %s' % (when, now))

    def test_last_is_seconds_since_start(self):
        q = self.result(NS['last'])
        seconds = q.get('seconds')
        self.assertRegex(seconds or '', r'^\d+$')
        self.assertLessEqual(int(seconds), time.monotonic() - self.ferry.started_at + 1)
        self.assertEqual(list(q), [])

    def test_vcard(self):
        v = self.result(NS['vcard'], element='vCard')
        for field in ('FN', 'DESC', 'URL'):
            with self.subTest(field=field):
                self.assertTrue((v.findtext('vcard:' + field, namespaces=NS) or '').strip(),
                                ft.to_string(v))

    def test_ping(self):
        r = self.ask('get', "<ping xmlns='%s'/>" % NS['ping'])
        self.assertEqual(r.get('type'), 'result', ft.to_string(r))
        self.assertEqual(r.get('from'), COMPONENT)
        self.assertEqual(list(r), [])

    # -- the router's errors

    def test_unknown_namespace_is_service_unavailable(self):
        for type_ in ('get', 'set'):
            with self.subTest(type=type_):
                r = self.ask(type_, "<query xmlns='urn:example:e2e:nothing'/>")
                self.assert_error(r, 'cancel', 'service-unavailable')

    def test_known_namespace_wrong_type_is_service_unavailable(self):
        r = self.ask('set', "<query xmlns='%s'/>" % NS['version'])
        self.assert_error(r, 'cancel', 'service-unavailable')

    # Stanzas to contact@domain from a user who has not registered: issue 3 alone answers
    # service-unavailable ("until sessions exist"); with sessions (issues 4 and 5) the answer
    # is registration-required. Either way an error comes back, never silence.
    STRANGER_ERRORS = (('cancel', 'service-unavailable'), ('auth', 'registration-required'))

    def test_iq_to_contact_from_stranger_gets_an_error(self):
        for to in ('someone@irc.localhost', 'a\\20b@irc.localhost/res'):
            with self.subTest(to=to):
                r = self.ask('get', "<query xmlns='%s'/>" % NS['version'], to=to)
                self.assertEqual(r.get('type'), 'error', ft.to_string(r))
                self.assertEqual((r.get('from'), r.get('to')), (to, self.client.jid))
                self.assertIn(ft.error_of(r)[:2], self.STRANGER_ERRORS, ft.to_string(r))

    def test_message_to_contact_from_stranger_gets_an_error(self):
        to = 'someone@irc.localhost'
        mid = self.client.message(to, 'hello there')
        m = self.client.wait_for(lambda el: el.tag == '{jabber:client}message'
                                 and el.get('id') == mid, 5, 'the bounced message')
        self.assertEqual(m.get('type'), 'error', ft.to_string(m))
        self.assertEqual((m.get('from'), m.get('to')), (to, self.client.jid))
        self.assertIn(ft.error_of(m)[:2], self.STRANGER_ERRORS, ft.to_string(m))

    def test_results_and_errors_are_never_answered(self):
        c = self.client
        c.send("<iq type='result' id='e2e-unasked-result' to='%s'/>" % COMPONENT)
        c.send("<iq type='error' id='e2e-unasked-error' to='%s'><error type='cancel'>"
               "<item-not-found xmlns='%s'/></error></iq>" % (COMPONENT, NS['stanzas']))
        c.send("<message type='error' id='e2e-unasked-msg' to='someone@%s'><error type='cancel'>"
               "<item-not-found xmlns='%s'/></error></message>" % (COMPONENT, NS['stanzas']))
        c.send("<message type='error' id='e2e-unasked-msg2' to='%s'><error type='cancel'>"
               "<item-not-found xmlns='%s'/></error></message>" % (COMPONENT, NS['stanzas']))
        # A ping behind them: once its answer is here, any answer to those would be too.
        self.test_ping()
        time.sleep(0.3)
        stray = [ft.to_string(el) for el in c.pending()
                 if (el.get('id') or '').startswith('e2e-unasked')]
        self.assertEqual(stray, [])


if __name__ == '__main__':
    unittest.main()
