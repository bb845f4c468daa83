import type { FastifyReply, FastifyRequest } from 'fastify'

/**
 * Calls `done` once, when the request has ended however it ended: its response closed
 * (answered, or the connection lost), or its socket closed first. The response's own
 * 'close' alone is not enough: a pipelined request whose client leaves before the request
 * ahead of it is answered never had its response attached to the socket, and that
 * response never emits 'close'. What a request holds from its headers on (an upload
 * reservation, a scorer lease) is given back here; the client-gone signal
 * (request-lifecycle.ts) watches the same two events. Returns what stops watching.
 */
export function whenRequestEnds(request: FastifyRequest, reply: FastifyReply, done: () => void): () => void {
  const res = reply.raw
  const socket = request.raw.socket as typeof request.raw.socket | null
  let ended = false
  const unwatch = () => {
    res.off('close', end)
    // A keep-alive socket outlives the response: leave no listener on it.
    socket?.off('close', end)
  }
  const end = () => {
    if (ended) return
    ended = true
    unwatch()
    done()
  }
  if (res.destroyed || socket?.destroyed) {
    end()
    return unwatch
  }
  res.once('close', end)
  socket?.once('close', end)
  return unwatch
}
