// What every page of the service shares (served beside each page as ./kit.js by
// src/http/static-page.ts): element lookup, the page state tests and people can read
// (body[data-state]), and the API call with the one API-key behaviour: the key lives in
// this tab's sessionStorage, is sent as a bearer token, and a 401 opens the page's
// "API key" box (<details id="key-box"> holding <input id="api-key">) and says so.

export const $ = (id) => document.getElementById(id)

const KEY = 'nima.apiKey'

/** body[data-state] lets tests (and people) see what the page is doing; #status says it in words. */
export function setState(value, message) {
  document.body.dataset.state = value
  if (message !== undefined) $('status').textContent = message
}

/** A refusal from the API, with its status and stable `code` when the body had one. */
export class ApiError extends Error {
  constructor(message, status, code) {
    super(message)
    this.status = status
    this.code = code
  }
}

export const NEEDS_KEY = 'This service needs an API key: enter it under "API key", then try again.'

export function apiKey() {
  return sessionStorage.getItem(KEY) ?? ''
}

/** fetch() with the key; any answer but 2xx becomes an ApiError naming the error code. */
export async function api(path, init = {}) {
  const headers = new Headers(init.headers)
  const key = apiKey()
  if (key) headers.set('authorization', `Bearer ${key}`)
  const res = await fetch(path, { ...init, headers })
  if (res.status === 401) {
    const box = $('key-box')
    if (box) box.open = true
    $('api-key')?.focus()
    throw new ApiError(key ? `The API key was refused. ${NEEDS_KEY}` : NEEDS_KEY, 401, 'NIMA_UNAUTHORIZED')
  }
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`
    let code
    try {
      const body = await res.json()
      if (body?.error) {
        code = body.error.code
        message = `${body.error.code}: ${body.error.message}`
      }
    } catch {}
    throw new ApiError(message, res.status, code)
  }
  return res
}

/** Wires the page's key field to this tab's storage. */
export function bindKeyBox() {
  const input = $('api-key')
  if (!input) return
  input.value = apiKey()
  input.addEventListener('input', () => (input.value.trim() ? sessionStorage.setItem(KEY, input.value.trim()) : sessionStorage.removeItem(KEY)))
}

/** document.createElement with properties and children. */
export function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props)
  for (const c of children) node.append(c)
  return node
}
