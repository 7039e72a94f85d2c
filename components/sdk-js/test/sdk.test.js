// Unit tests of the SDK's plain-JavaScript parts (everything but index.js, which
// imports the contract's interfaces and exists only inside a component).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { escape } from '../src/html.js';
import { Metadata, Cacheability } from '../src/metadata.js';
import { Fragment, HeadEntry } from '../src/fragment.js';
import { Context } from '../src/context.js';
import { Props } from '../src/props.js';
import { jsonBus, errorText } from '../src/bus.js';
import { logger } from '../src/log.js';
import { defineComponent } from '../src/component.js';

test('html.escape escapes the five characters and nothing else', () => {
  assert.equal(
    escape(`<a href="x" title='y'>Tom & Jerry</a>`),
    '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;Tom &amp; Jerry&lt;/a&gt;',
  );
  assert.equal(escape(''), '');
  assert.equal(escape('Zürich · 20:00 €'), 'Zürich · 20:00 €');
  assert.equal(escape('&amp;'), '&amp;amp;');
  assert.equal(escape(42), '42');
});

test('metadata builder gives the contract record', () => {
  const m = new Metadata('ticket-picker')
    .subscribes('event')
    .publishes(['ticket-selection'])
    .assets('ticket-picker.js', 'ticket-picker.css')
    .cacheability(Cacheability.Volatile)
    .reuse(60);
  assert.deepEqual(m.toRecord(), {
    name: 'ticket-picker',
    subscribes: ['event'],
    publishes: ['ticket-selection'],
    assets: ['ticket-picker.js', 'ticket-picker.css'],
    cacheability: 'volatile',
    reuse: 60,
  });
  assert.deepEqual(new Metadata('x').toRecord(), {
    name: 'x', subscribes: [], publishes: [], assets: [], cacheability: 'public', reuse: undefined,
  });
  assert.equal(new Metadata('x').reuse(60).reuse(0).toRecord().reuse, undefined);
});

test('metadata refuses what the host would refuse', () => {
  assert.throws(() => new Metadata(''), /non-empty/);
  assert.throws(() => new Metadata('x').cacheability(/** @type {any} */ ('private')), /cacheability must be one of/);
  assert.throws(() => new Metadata('x').reuse(86401), /0 to 86400/);
  assert.throws(() => new Metadata('x').reuse(1.5), /whole number/);
  assert.throws(() => new Metadata('x').subscribes(/** @type {any} */ (3)), /non-empty strings/);
});

test('fragments and head entries', () => {
  const f = Fragment.html('<p>x</p>')
    .withHead(HeadEntry.title('T'))
    .withHead(HeadEntry.metaName('description', 'D'))
    .withHead(HeadEntry.metaProperty('og:title', 'O'))
    .withHead(HeadEntry.link('stylesheet', '/a.css'));
  assert.deepEqual(Fragment.toRecord(f), {
    html: '<p>x</p>',
    head: [
      { tag: 'title', attrs: [], content: 'T' },
      { tag: 'meta', attrs: [['name', 'description'], ['content', 'D']], content: undefined },
      { tag: 'meta', attrs: [['property', 'og:title'], ['content', 'O']], content: undefined },
      { tag: 'link', attrs: [['rel', 'stylesheet'], ['href', '/a.css']], content: undefined },
    ],
  });
  assert.deepEqual(Fragment.toRecord('<p>y</p>'), { html: '<p>y</p>', head: [] });
  assert.deepEqual(Fragment.toRecord({ html: 'z', head: [{ tag: 'title', content: 'Z' }] }), {
    html: 'z',
    head: [{ tag: 'title', attrs: [], content: 'Z' }],
  });
  assert.deepEqual(Fragment.toRecord(Fragment.empty()), { html: '', head: [] });
  assert.throws(() => Fragment.toRecord(/** @type {any} */ (undefined)), /must return a Fragment/);
  assert.throws(() => Fragment.toRecord(/** @type {any} */ ({ html: 1 })), /must return a Fragment/);
});

const witContext = {
  path: '/events/42',
  params: /** @type {[string, string][]} */ ([['id', '42']]),
  query: /** @type {[string, string][]} */ ([['qty', '3'], ['qty', '4'], ['type', 'vip']]),
  locale: 'en-GB',
  user: undefined,
  requestId: 'r1',
};

test('context looks up params, query and user', () => {
  const ctx = new Context(witContext);
  assert.equal(ctx.path, '/events/42');
  assert.equal(ctx.locale, 'en-GB');
  assert.equal(ctx.requestId, 'r1');
  assert.equal(ctx.param('id'), '42');
  assert.equal(ctx.param('nope'), undefined);
  assert.equal(ctx.query('qty'), '3');
  assert.equal(ctx.query('type'), 'vip');
  assert.equal(ctx.user, undefined);

  const signedIn = new Context({ ...witContext, user: { id: 'https://idp.example/a%23b#u1#x', roles: ['admin'] } });
  const user = signedIn.user;
  assert.ok(user);
  assert.equal(user.subject, 'u1#x');
  assert.equal(user.issuer, 'https://idp.example/a#b');
  assert.ok(user.hasRole('admin'));
  assert.ok(!user.hasRole('staff'));
});

test('props: typed getters over the JSON', () => {
  const p = Props.fromJson('{"name":"x","qty":5,"ratio":0.5,"on":true,"tags":["a"],"nothing":null}');
  assert.equal(p.str('name'), 'x');
  assert.equal(p.str('qty'), undefined);
  assert.equal(p.int('qty'), 5);
  assert.equal(p.int('ratio'), undefined);
  assert.equal(p.number('ratio'), 0.5);
  assert.equal(p.bool('on'), true);
  assert.equal(p.bool('qty'), undefined);
  assert.deepEqual(p.array('tags'), ['a']);
  assert.equal(p.get('nothing'), null);
  assert.equal(p.get('toString'), undefined, 'inherited members are not props');
  assert.deepEqual(p.with({ qty: 2, extra: 1 }), { name: 'x', qty: 5, ratio: 0.5, on: true, tags: ['a'], nothing: null, extra: 1 });
});

test('props: absent props use defaults, bad props fail', () => {
  for (const text of ['', '  ', 'null']) {
    const p = Props.fromJson(text);
    assert.equal(p.value, null);
    assert.equal(p.str('name'), undefined);
    assert.deepEqual(p.with({ qty: 2 }), { qty: 2 });
  }
  assert.throws(() => Props.fromJson('{'), /invalid props JSON/);
  assert.throws(() => Props.fromJson('[1]').with({}), /expected a JSON object/);
  assert.equal(Props.fromJson('[1]').get('0'), undefined);
});

/** A raw bus like the host's: declared topics only, JSON text. */
function fakeBus() {
  const published = /** @type {[string, string][]} */ ([]);
  const raw = {
    /** @param {string} topic */
    get: (topic) => ({ event: '{"name":"Gig"}', broken: '{', count: '21' })[topic],
    /** @param {string} topic @param {string} value */
    publish: (topic, value) => {
      if (topic !== 'greeting') {
        throw Object.assign(new Error('ComponentError'), { payload: `topic ${topic} is not declared in publishes` });
      }
      published.push([topic, value]);
    },
  };
  return { raw, published };
}

test('bus.get decodes JSON leniently', () => {
  const bus = jsonBus(fakeBus().raw);
  assert.deepEqual(bus.get('event'), { name: 'Gig' });
  assert.equal(bus.get('count'), 21);
  assert.equal(bus.get('broken'), undefined);
  assert.equal(bus.get('absent'), undefined);
  assert.equal(bus.getRaw('broken'), '{');
});

test('bus.publish encodes JSON and reports refusals', () => {
  const { raw, published } = fakeBus();
  const bus = jsonBus(raw);
  bus.publish('greeting', { hello: 'x', n: 1 });
  bus.publishRaw('greeting', '[1]');
  assert.deepEqual(published, [['greeting', '{"hello":"x","n":1}'], ['greeting', '[1]']]);
  assert.throws(() => bus.publish('other', 1), { message: 'publish other: topic other is not declared in publishes' });
  assert.throws(() => bus.publish('greeting', undefined), /cannot encode greeting/);
  const cycle = /** @type {any} */ ({});
  cycle.self = cycle;
  assert.throws(() => bus.publish('greeting', cycle), /cannot encode greeting/);
  assert.equal(published.length, 2);
});

test('errorText', () => {
  assert.equal(errorText(new Error('m')), 'm');
  assert.equal(errorText({ payload: 'p' }), 'p');
  assert.equal(errorText('s'), 's');
  assert.equal(errorText(undefined), 'undefined');
});

test('log goes to the raw function with its level', () => {
  const lines = /** @type {string[]} */ ([]);
  const log = logger((level, message) => lines.push(`${level}:${message}`));
  log.debug('a');
  log.info('b');
  log.warn('c');
  log.error('d');
  log.log('info', 'e');
  assert.deepEqual(lines, ['debug:a', 'info:b', 'warn:c', 'error:d', 'info:e']);
});

test('defineComponent adapts describe and render to the contract', () => {
  const { describe, render } = defineComponent({
    describe: () => new Metadata('hello').subscribes('event'),
    render: (ctx, props) => {
      if (props.bool('fail')) throw new Error('no event');
      if (props.bool('throwString')) throw 'plain';
      return Fragment.html(`<p>${escape(props.str('who') ?? 'world')} ${ctx.param('id')}</p>`);
    },
  });
  assert.equal(describe().name, 'hello');
  assert.deepEqual(describe().subscribes, ['event']);
  assert.deepEqual(render(witContext, '{"who":"<you>"}'), { html: '<p>&lt;you&gt; 42</p>', head: [] });
  assert.deepEqual(render(witContext, ''), { html: '<p>world 42</p>', head: [] });
  // A throw is the contract's `err`, as a string.
  assert.throws(() => render(witContext, '{"fail":true}'), (e) => e === 'no event');
  assert.throws(() => render(witContext, '{"throwString":true}'), (e) => e === 'plain');
  assert.throws(() => render(witContext, '{'), (e) => typeof e === 'string' && e.startsWith('invalid props JSON'));
  assert.throws(() => defineComponent(/** @type {any} */ ({ render() {} })), /describe, render/);
  const logged = [];
  const bad = defineComponent(
    { describe: () => /** @type {any} */ ({ name: 'x' }), render: () => '' },
    { logError: (message) => logged.push(message) },
  );
  assert.throws(() => bad.describe(), /must return a Metadata/);
  // What describe throws is logged first: the host's refusal gives that line.
  assert.deepEqual(logged, ['describe failed: TypeError: describe must return a Metadata']);
});
