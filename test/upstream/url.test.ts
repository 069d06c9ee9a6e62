import t from 'tap';
import { UserError } from '../../src/core/errors.js';
import { assertHubUrlAllowed } from '../../src/upstream/url.js';

t.test('accepts https anywhere and http on loopback', async (t) => {
  for (const url of [
    'https://eodatahub.org.uk',
    'https://staging.eodatahub.org.uk/base/',
    'http://127.0.0.1:8080',
    'http://127.5.6.7',
    'http://127.1:9',
    'http://localhost:3000',
    'http://LOCALHOST',
    'http://[::1]:4000',
  ]) {
    t.type(assertHubUrlAllowed(url), URL, url);
  }
});

t.test('refuses anything that could leak the key', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['http://eodatahub.org.uk', /plain http; API keys are only sent over https/],
    ['http://192.168.1.5:8080', /plain http/],
    ['http://10.0.0.1', /plain http/],
    ['http://localhost.example.com', /plain http/],
    ['http://[::ffff:127.0.0.1]', /plain http/],
    ['http://0.0.0.0', /plain http/],
    ['ftp://eodatahub.org.uk', /must use https/],
    ['https://user:pw@eodatahub.org.uk', /must not contain a user name or password/],
    ['https://eodatahub.org.uk/?key=1', /query string or fragment/],
    ['https://eodatahub.org.uk/?', /query string or fragment/],
    ['https://eodatahub.org.uk/#x', /query string or fragment/],
    ['eodatahub.org.uk', /not a valid absolute URL/],
    ['', /not a valid absolute URL/],
  ];
  for (const [url, message] of cases) {
    t.throws(() => assertHubUrlAllowed(url), { name: 'UserError', exitCode: 78, message }, url);
  }
  const withPassword = t.throws(
    () => assertHubUrlAllowed('https://user:hunter2@eodatahub.org.uk'),
    UserError,
    'a URL with a password is refused',
  );
  t.ok(withPassword instanceof UserError, 'with a UserError');
  t.notMatch(withPassword instanceof Error ? withPassword.message : '', /hunter2/, 'the password is not repeated');
});
