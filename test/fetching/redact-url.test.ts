import t from 'tap'
import { redactUrl, REDACTED_URL_MAX_LENGTH } from '../../src/fetching/redact-url.js'

t.test('keeps scheme, host, port and path; drops credentials, query and fragment', async (t) => {
  const cases: Array<[string, string]> = [
    ['https://cdn.example.com/hotels/1/photo.jpg?X-Amz-Signature=abc&token=s3cret#top', 'https://cdn.example.com/hotels/1/photo.jpg'],
    ['http://user:pass@example.com:8080/a/b?q=1', 'http://example.com:8080/a/b'],
    ['https://example.com:443/x', 'https://example.com/x'],
    ['http://EXAMPLE.com', 'http://example.com/'],
    ['http://[::1]:3000/p?x', 'http://[::1]:3000/p'],
    ['http://example.com/a b/ü', 'http://example.com/a%20b/%C3%BC'],
    ['http://example.com/path\n?x', 'http://example.com/path'],
    ['file:///etc/passwd', 'file:///etc/passwd'],
  ]
  for (const [input, expected] of cases) {
    t.equal(redactUrl(input), expected, input)
  }
  t.equal(redactUrl(new URL('https://a:b@example.com/p?q#f')), 'https://example.com/p')
})

t.test('never echoes what it cannot make safe', async (t) => {
  t.equal(redactUrl('not a url?token=secret'), '<unparsable URL>')
  t.equal(redactUrl(''), '<unparsable URL>')
  t.equal(redactUrl('data:image/png;base64,iVBORw0KGgo='), 'data:')
  t.equal(redactUrl('javascript:alert(document.cookie)'), 'javascript:')
  t.equal(redactUrl('mailto:someone@example.com'), 'mailto:')
})

t.test('long paths are cut', async (t) => {
  const redacted = redactUrl(`https://example.com/${'a'.repeat(5000)}?q=1`)
  t.equal(redacted.length, REDACTED_URL_MAX_LENGTH)
  t.ok(redacted.endsWith('…'))
  t.ok(redacted.startsWith('https://example.com/aaa'))
})
