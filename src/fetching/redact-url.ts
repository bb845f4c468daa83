/**
 * URLs taken from clients may carry secrets in their query string (signed CDN links,
 * API keys) or in their userinfo. The service must never log those: every URL that
 * reaches a log line or an error message goes through `redactUrl` first.
 */

/** Longest redacted URL we return; longer paths are cut and end in '…'. */
export const REDACTED_URL_MAX_LENGTH = 1024

/** Placeholder returned for input that is not a parsable absolute URL. */
export const UNPARSABLE_URL = '<unparsable URL>'

/**
 * `scheme://host[:port]/path`, with no credentials, query string or fragment.
 *
 * - Input that does not parse as an absolute URL gives `'<unparsable URL>'`: echoing
 *   it could leak whatever it contains.
 * - URLs without an authority and a path (`data:`, `javascript:`, `mailto:`) give
 *   their scheme only (`'data:'`), since their "path" is the payload.
 * - The result is cut to {@link REDACTED_URL_MAX_LENGTH} characters.
 */
export function redactUrl(url: string | URL): string {
  let parsed: URL
  try {
    parsed = typeof url === 'string' ? new URL(url) : new URL(url.href)
  } catch {
    return UNPARSABLE_URL
  }

  // An opaque path ("data:image/png;base64,…") is content, not a location.
  if (parsed.host === '' && !parsed.pathname.startsWith('/')) {
    return parsed.protocol
  }

  // `host` omits the default port; `pathname` is already percent-encoded, so no
  // control characters can reach a log line.
  const redacted = `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  return redacted.length > REDACTED_URL_MAX_LENGTH
    ? `${redacted.slice(0, REDACTED_URL_MAX_LENGTH - 1)}…`
    : redacted
}
