/**
 * Which network addresses the image fetcher may connect to.
 *
 * Everything here is pure: no DNS, no sockets. The fetcher resolves a hostname once,
 * asks the policy about every address that came back, and connects only to an address
 * the policy accepted (see fetch-image.ts).
 *
 * Default: only globally routable unicast is accepted. IPv4 special-purpose blocks and
 * every IPv6 address outside 2000::/3 (plus the special blocks inside it) are refused.
 * IPv6 forms that embed an IPv4 address the network would reach (IPv4-mapped, NAT64
 * 64:ff9b::/96, 6to4 2002::/16) are judged by the IPv4 address they embed.
 *
 * An allowlist (hostnames, `*.suffix` wildcards, IP addresses and CIDRs) overrides the
 * deny list, for intranet image stores and for tests.
 */
import net from 'node:net'
import ipaddr from 'ipaddr.js'

type IPv4 = ipaddr.IPv4
type IPv6 = ipaddr.IPv6
type IP = IPv4 | IPv6

/** Why an address is (or is not) refused. `public` is the only range accepted by default. */
export type AddressRange =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'linkLocal'
  | 'carrierGradeNat'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'benchmarking'
  | 'documentation'
  | 'uniqueLocal'
  | 'siteLocal'
  | 'ipv4Compatible'
  | 'nat64Local'
  | 'teredo'
  | 'discard'

export interface AddressClassification {
  /** The address in canonical form (dotted quad, or RFC 5952 for IPv6). */
  readonly address: string
  readonly family: 4 | 6
  /** For an IPv6 address that embeds an IPv4 one, the range of the embedded address. */
  readonly range: AddressRange
  /** `range !== 'public'`. */
  readonly refused: boolean
  /** The IPv4 address carried by an IPv4-mapped, NAT64 or 6to4 address. */
  readonly embeddedIPv4?: string
}

type RangeTable<T extends IP> = ReadonlyArray<readonly [AddressRange, T, number]>

function table<T extends IP>(parse: (cidr: string) => [T, number], rows: ReadonlyArray<readonly [AddressRange, string]>): RangeTable<T> {
  return rows.map(([range, cidr]) => {
    const [network, bits] = parse(cidr)
    return [range, network, bits] as const
  })
}

/**
 * IPv4 special-purpose blocks (IANA registry, RFC 6890 and successors). First match
 * wins, so the broadcast address is listed before 240.0.0.0/4.
 */
const IPV4_REFUSED = table((cidr) => ipaddr.IPv4.parseCIDR(cidr), [
  ['unspecified', '0.0.0.0/8'], // "this network"
  ['private', '10.0.0.0/8'],
  ['carrierGradeNat', '100.64.0.0/10'],
  ['loopback', '127.0.0.0/8'],
  ['linkLocal', '169.254.0.0/16'], // includes the 169.254.169.254 metadata services
  ['private', '172.16.0.0/12'],
  ['reserved', '192.0.0.0/24'], // IETF protocol assignments (incl. NAT64 discovery)
  ['documentation', '192.0.2.0/24'],
  ['reserved', '192.88.99.0/24'], // deprecated 6to4 relay anycast
  ['private', '192.168.0.0/16'],
  ['benchmarking', '198.18.0.0/15'],
  ['documentation', '198.51.100.0/24'],
  ['documentation', '203.0.113.0/24'],
  ['multicast', '224.0.0.0/4'],
  ['broadcast', '255.255.255.255/32'],
  ['reserved', '240.0.0.0/4'],
])

/** IPv6 blocks refused outright. Anything outside 2000::/3 is refused as well. */
const IPV6_REFUSED = table((cidr) => ipaddr.IPv6.parseCIDR(cidr), [
  ['unspecified', '::/128'],
  ['loopback', '::1/128'],
  ['ipv4Compatible', '::/96'], // deprecated ::a.b.c.d
  ['nat64Local', '64:ff9b:1::/48'], // RFC 8215 local-use NAT64: network specific
  ['reserved', '::/8'], // includes the RFC 6145 ::ffff:0:a.b.c.d translated form
  ['discard', '100::/64'],
  ['teredo', '2001::/32'], // the embedded client address is obfuscated: refuse it all
  ['benchmarking', '2001:2::/48'],
  ['reserved', '2001::/23'], // IETF protocol assignments (ORCHID, AMT, AS112…)
  ['documentation', '2001:db8::/32'],
  ['documentation', '3fff::/20'],
  ['reserved', '5f00::/16'], // SRv6 SIDs
  ['uniqueLocal', 'fc00::/7'],
  ['linkLocal', 'fe80::/10'],
  ['siteLocal', 'fec0::/10'],
  ['multicast', 'ff00::/8'],
])

const [IPV6_GLOBAL_UNICAST, IPV6_GLOBAL_UNICAST_BITS] = ipaddr.IPv6.parseCIDR('2000::/3')
const [IPV6_MAPPED, IPV6_MAPPED_BITS] = ipaddr.IPv6.parseCIDR('::ffff:0:0/96')
const [IPV6_NAT64, IPV6_NAT64_BITS] = ipaddr.IPv6.parseCIDR('64:ff9b::/96')
const [IPV6_6TO4, IPV6_6TO4_BITS] = ipaddr.IPv6.parseCIDR('2002::/16')

function ipv4FromParts(high: number, low: number): IPv4 {
  return new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff])
}

/** The IPv4 address the network would reach through this IPv6 address, if any. */
function embeddedIPv4(address: IPv6): IPv4 | undefined {
  const parts = address.parts
  if (address.match(IPV6_MAPPED, IPV6_MAPPED_BITS)) return ipv4FromParts(parts[6]!, parts[7]!)
  if (address.match(IPV6_NAT64, IPV6_NAT64_BITS)) return ipv4FromParts(parts[6]!, parts[7]!)
  if (address.match(IPV6_6TO4, IPV6_6TO4_BITS)) return ipv4FromParts(parts[1]!, parts[2]!)
  return undefined
}

function rangeIn<T extends IP>(address: T, rows: RangeTable<T>): AddressRange | undefined {
  for (const [range, network, bits] of rows) {
    if (address.match(network, bits)) return range
  }
  return undefined
}

function ipv4Range(address: IPv4): AddressRange {
  return rangeIn(address, IPV4_REFUSED) ?? 'public'
}

function parseIp(address: string): IP | undefined {
  let bare = address
  if (bare.startsWith('[') && bare.endsWith(']')) {
    bare = bare.slice(1, -1)
    if (!net.isIPv6(bare)) return undefined
  }
  // net.isIP accepts only canonical notations; ipaddr.js alone would also take
  // "0x7f.1" or "2130706433", which no resolver returns.
  const family = net.isIP(bare)
  if (family === 4) return ipaddr.IPv4.parse(bare)
  if (family !== 6) return undefined
  // ipaddr.js reads "::a.b.c.d" as "::ffff:a.b.c.d"; the WHATWG URL parser gets every
  // dotted form right and hands back pure hex ("::7f00:1"). A zone id ("%eth0") only
  // qualifies link-local addresses, which are refused anyway: it is dropped here.
  try {
    const hex = new URL(`http://[${bare.split('%')[0]}]/`).hostname.slice(1, -1)
    return ipaddr.IPv6.parse(hex)
  } catch {
    return undefined
  }
}

/** True when `address` is an IPv4 or IPv6 literal (IPv6 optionally in brackets). */
export function isIpAddress(address: string): boolean {
  return parseIp(address) !== undefined
}

/**
 * Classifies an IP address literal. IPv6 may be given in brackets (`[::1]`).
 * @throws TypeError when `address` is not an IP literal.
 */
export function classifyAddress(address: string): AddressClassification {
  const ip = parseIp(address)
  if (ip === undefined) {
    throw new TypeError(`classifyAddress: expected an IPv4 or IPv6 address, got ${JSON.stringify(address)}`)
  }
  return classify(ip)
}

function classify(ip: IP): AddressClassification {
  if (ip.kind() === 'ipv4') {
    const range = ipv4Range(ip as IPv4)
    return { address: ip.toString(), family: 4, range, refused: range !== 'public' }
  }
  const v6 = ip as IPv6
  const address = v6.toRFC5952String()
  const embedded = embeddedIPv4(v6)
  if (embedded !== undefined) {
    const range = ipv4Range(embedded)
    return { address, family: 6, range, refused: range !== 'public', embeddedIPv4: embedded.toString() }
  }
  const range = rangeIn(v6, IPV6_REFUSED) ?? (v6.match(IPV6_GLOBAL_UNICAST, IPV6_GLOBAL_UNICAST_BITS) ? 'public' : 'reserved')
  return { address, family: 6, range, refused: range !== 'public' }
}

/** True when the default policy (no allowlist) refuses `address`. */
export function isRefusedAddress(address: string): boolean {
  return classifyAddress(address).refused
}

// ---------------------------------------------------------------------------------
// Policy with allowlist

export interface AddressPolicyOptions {
  /**
   * Entries that override the deny list:
   * - a hostname (`images.intranet`): every address it resolves to is accepted;
   * - `*.suffix` (`*.cdn.intranet`): any subdomain of suffix (not suffix itself);
   * - an IP address (`10.1.2.3`, `fd00::5`) or a CIDR (`10.20.0.0/16`, `fd00::/8`):
   *   that address or block is accepted whatever name led to it.
   * Default: `[]`.
   */
  allow?: readonly string[]
}

export type AddressVerdict =
  | { readonly allowed: true; readonly range: AddressRange; readonly via: 'public' | 'allowlisted-host' | 'allowlisted-cidr' }
  | { readonly allowed: false; readonly range: AddressRange }

export interface AddressPolicy {
  /** The normalised allowlist this policy was built from. */
  readonly allow: readonly string[]
  /** True when `hostname` matches an allowlisted hostname or `*.suffix`. */
  isHostAllowlisted(hostname: string): boolean
  /**
   * May the fetcher connect to `address`? `hostname` is the name that resolved to it,
   * if any: an allowlisted hostname accepts every address it resolves to.
   * @throws TypeError when `address` is not an IP literal.
   */
  checkAddress(address: string, hostname?: string): AddressVerdict
}

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/

function normaliseHostname(hostname: string): string {
  let host = hostname.toLowerCase()
  if (host.endsWith('.')) host = host.slice(0, -1)
  return host
}

function isValidHostname(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false
  const labels = host.split('.')
  if (!labels.every((label) => LABEL.test(label))) return false
  // "10.0.0.256" is a broken address, not a hostname (the WHATWG URL parser agrees).
  return !/^(\d+|0x[0-9a-f]*)$/.test(labels[labels.length - 1]!)
}

function invalidEntry(entry: unknown, index: number, expected: string): TypeError {
  return new TypeError(`Invalid address policy allow[${index}] ${JSON.stringify(entry)}: ${expected}`)
}

const EXPECTED_ENTRY = 'expected a hostname, "*.suffix", an IP address or a CIDR such as 10.0.0.0/8'

type Cidr = readonly [IP, number]

function parseCidrEntry(entry: string, index: number): Cidr {
  const slash = entry.indexOf('/')
  const addressPart = entry.slice(0, slash)
  const bitsPart = entry.slice(slash + 1)
  const ip = net.isIP(addressPart) === 0 ? undefined : parseIp(addressPart)
  if (ip === undefined) throw invalidEntry(entry, index, `"${addressPart}" is not an IP address (${EXPECTED_ENTRY})`)
  const family = ip.kind() === 'ipv4' ? 4 : 6
  const maxBits = family === 4 ? 32 : 128
  if (!/^\d{1,3}$/.test(bitsPart) || Number(bitsPart) > maxBits) {
    throw invalidEntry(entry, index, `the prefix length must be an integer from 0 to ${maxBits} for IPv${family}`)
  }
  const bits = Number(bitsPart)
  const canonical = `${ip.toNormalizedString()}/${bits}`
  const network = family === 4 ? ipaddr.IPv4.networkAddressFromCIDR(canonical) : ipaddr.IPv6.networkAddressFromCIDR(canonical)
  if (network.toNormalizedString() !== ip.toNormalizedString()) {
    throw invalidEntry(entry, index, `host bits are set; did you mean ${formatCidr([network, bits])}?`)
  }
  return [network, bits]
}

function formatCidr([network, bits]: Cidr): string {
  const shown = network.kind() === 'ipv4' ? network.toString() : (network as IPv6).toRFC5952String()
  return `${shown}/${bits}`
}

/**
 * Builds the policy once, from configuration. Every entry is validated here, and a bad
 * one throws a TypeError naming it: `Invalid address policy allow[2] "10.0.0.0/33": …`.
 */
export function createAddressPolicy(options: AddressPolicyOptions = {}): AddressPolicy {
  const entries: unknown = options.allow ?? []
  if (!Array.isArray(entries)) {
    throw new TypeError(`Invalid address policy allow: expected an array of strings, got ${typeof entries}`)
  }

  const exactHosts = new Set<string>()
  const suffixes: string[] = []
  const cidrs: Cidr[] = []
  const normalised: string[] = []

  entries.forEach((raw: unknown, index) => {
    if (typeof raw !== 'string') throw invalidEntry(raw, index, `${EXPECTED_ENTRY}, got ${typeof raw}`)
    const entry = raw.trim()
    if (entry.length === 0) throw invalidEntry(raw, index, EXPECTED_ENTRY)

    if (entry.includes('/')) {
      const cidr = parseCidrEntry(entry, index)
      cidrs.push(cidr)
      normalised.push(formatCidr(cidr))
      return
    }
    const ip = parseIp(entry)
    if (ip !== undefined) {
      const cidr: Cidr = [ip, ip.kind() === 'ipv4' ? 32 : 128]
      cidrs.push(cidr)
      normalised.push(formatCidr(cidr))
      return
    }
    if (entry.startsWith('*.')) {
      const suffix = normaliseHostname(entry.slice(2))
      if (!isValidHostname(suffix)) throw invalidEntry(raw, index, `"${entry.slice(2)}" is not a valid hostname suffix (${EXPECTED_ENTRY})`)
      suffixes.push(suffix)
      normalised.push(`*.${suffix}`)
      return
    }
    const host = normaliseHostname(entry)
    if (!isValidHostname(host)) throw invalidEntry(raw, index, EXPECTED_ENTRY)
    exactHosts.add(host)
    normalised.push(host)
  })

  const isHostAllowlisted = (hostname: string): boolean => {
    const host = normaliseHostname(hostname)
    if (exactHosts.has(host)) return true
    return suffixes.some((suffix) => host.endsWith(`.${suffix}`))
  }

  const cidrAllows = (ip: IP): boolean => {
    // An IPv4-mapped address reaches the IPv4 host: let an IPv4 entry cover it too.
    const candidates: IP[] = [ip]
    if (ip.kind() === 'ipv6' && (ip as IPv6).isIPv4MappedAddress()) candidates.push((ip as IPv6).toIPv4Address())
    return candidates.some((candidate) =>
      cidrs.some(([network, bits]) => network.kind() === candidate.kind() && candidate.match(network, bits)))
  }

  return Object.freeze({
    allow: Object.freeze(normalised),
    isHostAllowlisted,
    checkAddress(address: string, hostname?: string): AddressVerdict {
      const ip = parseIp(address)
      if (ip === undefined) {
        throw new TypeError(`checkAddress: expected an IPv4 or IPv6 address, got ${JSON.stringify(address)}`)
      }
      const { range } = classify(ip)
      if (hostname !== undefined && isHostAllowlisted(hostname)) return { allowed: true, range, via: 'allowlisted-host' }
      if (cidrAllows(ip)) return { allowed: true, range, via: 'allowlisted-cidr' }
      if (range !== 'public') return { allowed: false, range }
      return { allowed: true, range, via: 'public' }
    },
  })
}
