/**
 * Node's http server options that bound how long a client may take to send a request.
 *
 * Node measures `requestTimeout` from the request's first byte to the end of its body,
 * for every body kind alike (raw, JSON, multipart read inside the handler), and only
 * while the request is still being received: scoring after the body is in is not
 * affected. It checks the open requests every `connectionsCheckingInterval` (30 s by
 * default, far coarser than a short timeout), so a stalled upload is answered between
 * `bodyTimeoutMs` and `bodyTimeoutMs` + that interval.
 */
export function receiveTimeouts(bodyTimeoutMs: number): {
  requestTimeout: number
  headersTimeout: number
  connectionsCheckingInterval: number
} {
  return {
    requestTimeout: bodyTimeoutMs,
    // Node refuses a headers timeout longer than the request timeout; 60 s is its default.
    headersTimeout: Math.min(60_000, bodyTimeoutMs),
    connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(bodyTimeoutMs / 4))),
  }
}
