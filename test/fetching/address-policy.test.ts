import t from 'tap'
import { classifyAddress, createAddressPolicy, isIpAddress, isRefusedAddress } from '../../src/fetching/address-policy.js'

t.test('classifyAddress: IPv4 special-purpose ranges are refused', async (t) => {
  const cases: Array<[string, string]> = [
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['100.127.255.254', 'carrierGradeNat'],
    ['127.0.0.1', 'loopback'],
    ['127.255.0.1', 'loopback'],
    ['169.254.169.254', 'linkLocal'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.0.0.170', 'reserved'],
    ['192.0.2.5', 'documentation'],
    ['192.88.99.1', 'reserved'],
    ['192.168.0.1', 'private'],
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['198.51.100.7', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'broadcast'],
  ]
  for (const [address, range] of cases) {
    t.match(classifyAddress(address), { address, family: 4, range, refused: true }, address)
  }
})

t.test('classifyAddress: public IPv4 is accepted, including the neighbours of refused blocks', async (t) => {
  for (const address of ['8.8.8.8', '1.1.1.1', '93.184.215.14', '100.63.255.255', '100.128.0.0', '172.15.255.255', '172.32.0.0', '192.169.0.0', '169.253.255.255', '223.255.255.255', '11.0.0.0']) {
    t.match(classifyAddress(address), { family: 4, range: 'public', refused: false }, address)
  }
})

t.test('classifyAddress: IPv6 ranges', async (t) => {
  const cases: Array<[string, string]> = [
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['::127.0.0.1', 'ipv4Compatible'],
    ['::8.8.8.8', 'ipv4Compatible'], // ipaddr.js alone would read this as ::ffff:8.8.8.8 (public)
    ['::ffff:0:127.0.0.1', 'reserved'],
    ['fe80::1%eth0', 'linkLocal'],
    ['::ffff:0:7f00:1', 'reserved'], // RFC 6145 translated form
    ['100::1', 'discard'],
    ['64:ff9b:1::a00:1', 'nat64Local'],
    ['2001::1', 'teredo'],
    ['2001:2::1', 'benchmarking'],
    ['2001:10::1', 'reserved'],
    ['2001:db8::1', 'documentation'],
    ['3fff::1', 'documentation'],
    ['fc00::1', 'uniqueLocal'],
    ['fd12:3456::1', 'uniqueLocal'],
    ['fe80::1', 'linkLocal'],
    ['febf::1', 'linkLocal'],
    ['fec0::1', 'siteLocal'],
    ['ff02::1', 'multicast'],
    ['ff0e::1', 'multicast'],
    ['4000::1', 'reserved'], // outside 2000::/3: not allocated
    ['1::1', 'reserved'],
  ]
  for (const [address, range] of cases) {
    t.match(classifyAddress(address), { family: 6, range, refused: true }, address)
  }
  for (const address of ['2606:4700:4700::1111', '2a00:1450:4001:82a::200e', '2001:4860:4860::8888']) {
    t.match(classifyAddress(address), { family: 6, range: 'public', refused: false }, address)
  }
})

t.test('classifyAddress: IPv6 forms embedding IPv4 are judged by the embedded address', async (t) => {
  const cases: Array<[string, string, string, boolean]> = [
    ['::ffff:127.0.0.1', '127.0.0.1', 'loopback', true],
    ['::ffff:7f00:1', '127.0.0.1', 'loopback', true],
    ['::ffff:10.1.2.3', '10.1.2.3', 'private', true],
    ['::ffff:169.254.169.254', '169.254.169.254', 'linkLocal', true],
    ['::ffff:8.8.8.8', '8.8.8.8', 'public', false],
    ['64:ff9b::127.0.0.1', '127.0.0.1', 'loopback', true],
    ['64:ff9b::a9fe:a9fe', '169.254.169.254', 'linkLocal', true],
    ['64:ff9b::808:808', '8.8.8.8', 'public', false],
    ['2002:7f00:1::', '127.0.0.1', 'loopback', true],
    ['2002:c0a8:101::1', '192.168.1.1', 'private', true],
    ['2002:a9fe:a9fe:1::5', '169.254.169.254', 'linkLocal', true],
    ['2002:808:808::1', '8.8.8.8', 'public', false],
  ]
  for (const [address, embeddedIPv4, range, refused] of cases) {
    t.match(classifyAddress(address), { family: 6, embeddedIPv4, range, refused }, address)
  }
})

t.test('classifyAddress: canonical form, and non-addresses throw', async (t) => {
  t.equal(classifyAddress('2001:4860:4860:0:0:0:0:8888').address, '2001:4860:4860::8888')
  t.equal(classifyAddress('::FFFF:127.0.0.1').address, '::ffff:7f00:1')
  t.equal(classifyAddress('::8.8.8.8').address, '::808:808')
  for (const bad of ['example.com', '', '127.1', '0x7f000001', '2130706433', '1.2.3.4.5', '::ffff:999.0.0.1', '[1.2.3.4]']) {
    t.throws(() => classifyAddress(bad), { name: 'TypeError', message: /expected an IPv4 or IPv6 address/ }, JSON.stringify(bad))
  }
  t.equal(isIpAddress('[fe80::1]'), true)
  t.equal(isIpAddress('localhost'), false)
  t.equal(isRefusedAddress('127.0.0.1'), true)
  t.equal(isRefusedAddress('8.8.8.8'), false)
})

t.test('default policy: public only', async (t) => {
  const policy = createAddressPolicy()
  t.same(policy.allow, [])
  t.same(policy.checkAddress('8.8.8.8'), { allowed: true, range: 'public', via: 'public' })
  t.same(policy.checkAddress('127.0.0.1', 'localhost'), { allowed: false, range: 'loopback' })
  t.same(policy.checkAddress('::ffff:127.0.0.1'), { allowed: false, range: 'loopback' })
  t.equal(policy.isHostAllowlisted('localhost'), false)
  t.throws(() => policy.checkAddress('localhost'), { name: 'TypeError' })
  t.ok(Object.isFrozen(policy) && Object.isFrozen(policy.allow))
})

t.test('allowlist: CIDRs and single addresses override the deny list', async (t) => {
  const policy = createAddressPolicy({ allow: ['10.20.0.0/16', '127.0.0.1', 'fd00:abcd::/32', '::1'] })
  t.same(policy.allow, ['10.20.0.0/16', '127.0.0.1/32', 'fd00:abcd::/32', '::1/128'])
  t.same(policy.checkAddress('10.20.3.4'), { allowed: true, range: 'private', via: 'allowlisted-cidr' })
  t.same(policy.checkAddress('10.21.0.1'), { allowed: false, range: 'private' })
  t.same(policy.checkAddress('127.0.0.1'), { allowed: true, range: 'loopback', via: 'allowlisted-cidr' })
  t.same(policy.checkAddress('127.0.0.2'), { allowed: false, range: 'loopback' })
  t.match(policy.checkAddress('::ffff:127.0.0.1'), { allowed: true }, 'an IPv4 entry covers the IPv4-mapped form')
  t.match(policy.checkAddress('::ffff:10.20.0.9'), { allowed: true })
  t.match(policy.checkAddress('64:ff9b::7f00:1'), { allowed: false }, 'but not the NAT64 form')
  t.match(policy.checkAddress('fd00:abcd:1::5'), { allowed: true })
  t.match(policy.checkAddress('fd00:abce::5'), { allowed: false })
  t.match(policy.checkAddress('::1'), { allowed: true })
  t.match(policy.checkAddress('8.8.8.8'), { allowed: true, via: 'public' })

  const dotted = createAddressPolicy({ allow: ['::ffff:10.0.0.0/104'] })
  t.same(dotted.allow, ['::ffff:a00:0/104'])
  t.match(dotted.checkAddress('::ffff:10.9.9.9'), { allowed: true })
})

t.test('allowlist: hostnames, exact or *.suffix, accept every address they resolve to', async (t) => {
  const policy = createAddressPolicy({ allow: ['Images.Intranet.', '*.cdn.corp'] })
  t.same(policy.allow, ['images.intranet', '*.cdn.corp'])
  t.equal(policy.isHostAllowlisted('images.intranet'), true)
  t.equal(policy.isHostAllowlisted('IMAGES.intranet.'), true)
  t.equal(policy.isHostAllowlisted('x.images.intranet'), false, 'an exact entry does not cover subdomains')
  t.equal(policy.isHostAllowlisted('a.cdn.corp'), true)
  t.equal(policy.isHostAllowlisted('a.b.cdn.corp'), true)
  t.equal(policy.isHostAllowlisted('cdn.corp'), false, '*.suffix does not cover the suffix itself')
  t.equal(policy.isHostAllowlisted('evilcdn.corp'), false)
  t.equal(policy.isHostAllowlisted('cdn.corp.evil.com'), false)
  t.same(policy.checkAddress('10.0.0.7', 'images.intranet'), { allowed: true, range: 'private', via: 'allowlisted-host' })
  t.same(policy.checkAddress('10.0.0.7', 'other.intranet'), { allowed: false, range: 'private' })
  t.same(policy.checkAddress('10.0.0.7'), { allowed: false, range: 'private' })
})

t.test('allowlist entries are validated, naming the bad entry', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['10.0.0.0/33', /^Invalid address policy allow\[0\] "10\.0\.0\.0\/33": the prefix length must be an integer from 0 to 32 for IPv4$/],
    ['fd00::/129', /prefix length must be an integer from 0 to 128 for IPv6/],
    ['10.0.0.0/', /prefix length/],
    ['10.0.0.0/8/8', /prefix length/],
    ['10.0.0.1/8', /host bits are set; did you mean 10\.0\.0\.0\/8\?/],
    ['fd00::1/8', /did you mean fd00::\/8\?/],
    ['10.0.0.256/24', /"10\.0\.0\.256" is not an IP address/],
    ['example.com/24', /"example\.com" is not an IP address/],
    ['10.0.0.256', /expected a hostname, "\*\.suffix", an IP address or a CIDR/],
    ['*', /expected a hostname/],
    ['*.', /"" is not a valid hostname suffix/],
    ['foo.*.com', /expected a hostname/],
    ['http://example.com', /expected a hostname/],
    ['exa mple.com', /expected a hostname/],
    ['-bad.com', /expected a hostname/],
    ['', /expected a hostname/],
    ['   ', /expected a hostname/],
    [42, /expected a hostname, .* got number/],
    [`${'a'.repeat(64)}.com`, /expected a hostname/],
  ]
  for (const [entry, message] of cases) {
    t.throws(() => createAddressPolicy({ allow: ['ok.example.com', entry as string].slice(1) }), { name: 'TypeError', message }, JSON.stringify(entry))
  }
  t.throws(() => createAddressPolicy({ allow: ['good.example', '10.0.0.0/8', 'bad host'] }), { message: /^Invalid address policy allow\[2\] "bad host"/ }, 'the index is reported')
  t.throws(() => createAddressPolicy({ allow: 'localhost' as never }), { message: /expected an array of strings, got string/ })
  t.doesNotThrow(() => createAddressPolicy({ allow: [' spaced.example ', '0.0.0.0/0', '::/0', 'under_score.example', 'xn--bcher-kva.example'] }))
})
