// The gallery: drop photos or paste URLs, see them ranked by /rank (best first, near-duplicates
// folded into the best of them), and overlay each photo's score map from /explain.
// Plain ES module, no build step; served by the service at /gallery (src/http/static-page.ts).

const $ = (id) => document.getElementById(id)
const KEY = 'nima.apiKey' // shared with the /label page: one key per tab
const EXPLAIN_CONCURRENCY = 3

/** The inputs of the current ranking, in the order sent: {name, file?, url?, src}. */
let items = []
/** Item index → Promise of its /explain JSON (fetched the first time maps are shown). */
let explanations = new Map()

function setState(value, message) {
  document.body.dataset.state = value
  if (message !== undefined) $('status').textContent = message
}

class ApiError extends Error {}

async function api(path, init = {}) {
  const headers = new Headers(init.headers)
  const key = sessionStorage.getItem(KEY)
  if (key) headers.set('authorization', `Bearer ${key}`)
  const res = await fetch(path, { ...init, headers })
  if (res.status === 401) {
    $('key-box').open = true
    $('api-key').focus()
    throw new ApiError('This service needs an API key: enter it under "API key", then try again.')
  }
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`
    try {
      const body = await res.json()
      if (body?.error) message = `${body.error.code}: ${body.error.message}`
    } catch {}
    throw new ApiError(message)
  }
  return res
}

function reset(next) {
  for (const it of items) if (it.file) URL.revokeObjectURL(it.src)
  items = next
  explanations = new Map()
}

async function rankFiles(fileList) {
  const files = [...fileList]
  if (files.length === 0) return
  reset(files.map((file) => ({ name: file.name, file, src: URL.createObjectURL(file) })))
  const form = new FormData()
  for (const it of items) form.append('image', it.file, it.name)
  await rank({ method: 'POST', body: form }, (entry) => entry.part)
}

async function rankUrls(text) {
  const urls = text.split(/\s+/).filter((u) => u !== '')
  if (urls.length === 0) return
  reset(urls.map((url) => ({ name: url, url, src: url })))
  const body = JSON.stringify({ images: items.map((it, i) => ({ url: it.url, id: String(i) })) })
  await rank({ method: 'POST', body, headers: { 'content-type': 'application/json' } }, (entry) => Number(entry.id))
}

async function rank(init, indexOf) {
  setState('busy', `Ranking ${items.length} photo${items.length === 1 ? '' : 's'}…`)
  try {
    const result = await (await api('/rank', init)).json()
    render(result, indexOf)
    const synthetic = Object.values(result.models).some((m) => m.synthetic)
    $('synthetic').hidden = !synthetic
    setState('ready', `${result.ranked.length} ranked${result.failed.length ? `, ${result.failed.length} failed` : ''}.${synthetic ? ' SYNTHETIC models: the order means nothing.' : ''}`)
    if ($('maps').checked) await showMaps()
  } catch (err) {
    setState('error', err instanceof ApiError ? err.message : `Failed: ${err.message}`)
  }
}

function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props)
  for (const c of children) node.append(c)
  return node
}

/** A 1..10 score as a bar, with the distribution's mean ± std marked (and its percentile, with SCORE_CALIBRATION). */
function bar(label, mean, std, percentile) {
  const pct = (v) => `${Math.max(0, Math.min(100, ((v - 1) / 9) * 100))}%`
  const track = el('span', { className: 'bar', role: 'img', ariaLabel: `${label} ${mean.toFixed(2)}${std === undefined ? '' : ` ± ${std.toFixed(2)}`} of 10` })
  track.append(el('span', { className: 'fill', style: `width: ${pct(mean)}` }))
  if (std !== undefined) track.append(el('span', { className: 'spread', title: 'mean ± std of the distribution', style: `left: ${pct(mean - std)}; right: calc(100% - ${pct(mean + std)})` }))
  const p = percentile === undefined ? {} : { title: `percentile ${percentile}: better than ${percentile}% of the calibration catalogue` }
  const text = (std === undefined ? mean.toFixed(2) : `${mean.toFixed(2)} ± ${std.toFixed(2)}`) + (percentile === undefined ? '' : ` · p${Math.round(percentile)}`)
  return [el('span', { textContent: label }), track, el('span', { textContent: text, ...p })]
}

function render(result, indexOf) {
  const grid = $('grid')
  grid.replaceChildren()
  for (const entry of result.ranked) {
    const index = indexOf(entry)
    const it = items[index]
    const alt = `${it.name}: rank ${entry.rank}, combined score ${entry.combined.score.toFixed(2)}`
    const img = el('img', { src: it.src, alt, loading: 'lazy', decoding: 'async' })
    const map = el('div', { className: 'map', hidden: true })
    map.setAttribute('aria-hidden', 'true')
    const bars = el('div', { className: 'bars' }, [
      ...bar('combined', entry.combined.score, undefined, entry.combined.percentile),
      ...Object.entries(entry.scores).flatMap(([id, s]) => bar(id, s.mean, s.std, s.percentile)),
    ])
    const explain = el('button', { type: 'button', className: 'explain', textContent: 'Open score maps' })
    explain.addEventListener('click', () => openExplain(index))
    const card = el('li', { className: 'card' }, [
      el('h3', {}, [el('span', { textContent: `#${entry.rank}` }), el('span', { className: 'name', textContent: it.name })]),
      el('div', { className: 'frame' }, [img, map]),
      bars,
      explain,
    ])
    card.dataset.index = String(index)
    card.dataset.rank = String(entry.rank)
    card.dataset.imageId = entry.image.id
    const folded = [...entry.duplicates.map((d) => ({ ...d, why: 'identical' })), ...entry.nearDuplicates.map((d) => ({ ...d, why: `near-duplicate, distance ${d.distance}` }))]
    if (folded.length > 0) {
      const list = el(
        'ul',
        {},
        folded.map((d) => {
          const other = items[indexOf(d)]
          return el('li', {}, [el('img', { src: other.src, alt: `${other.name} (${d.why}), folded into #${entry.rank}`, loading: 'lazy' })])
        }),
      )
      card.append(el('details', { className: 'dups' }, [el('summary', { textContent: `${folded.length} more of the same picture (folded)` }), list]))
    }
    grid.append(card)
  }
  const failed = $('failed')
  failed.replaceChildren(...result.failed.map((f) => el('li', { textContent: `${items[indexOf(f)]?.name ?? '?'}: ${f.error.code}: ${f.error.message}` })))
  $('failed-box').hidden = result.failed.length === 0
}

function explainOnce(index) {
  let p = explanations.get(index)
  if (!p) {
    const it = items[index]
    const init = it.file
      ? { method: 'POST', body: it.file, headers: { 'content-type': 'application/octet-stream' } }
      : { method: 'POST', body: JSON.stringify({ url: it.url }), headers: { 'content-type': 'application/json' } }
    p = api('/explain', init).then((r) => r.json())
    p.catch(() => explanations.delete(index))
    explanations.set(index, p)
  }
  return p
}

/** Colour of one cell on the diverging scale the PNG uses: clear at 0, red up, blue down. */
function cellColour(v, maxAbs) {
  const t = maxAbs > 0 ? Math.max(-1, Math.min(1, v / maxAbs)) : 0
  return `rgba(var(${t < 0 ? '--neg' : '--pos'}), ${(0.7 * Math.abs(t)).toFixed(3)})`
}

function drawMap(card, explanation) {
  const model = $('map-model').value
  const e = explanation.explanations[model] ?? Object.values(explanation.explanations)[0]
  const map = card.querySelector('.map')
  map.style.gridTemplateColumns = `repeat(${e.grid.width}, 1fr)`
  map.style.gridTemplateRows = `repeat(${e.grid.height}, 1fr)`
  map.replaceChildren(...e.scoreMap.flat().map((v) => el('span', { style: `background: ${cellColour(v, e.maxAbs)}` })))
  map.hidden = false
  card.dataset.map = e.model.id
}

async function showMaps() {
  const cards = [...document.querySelectorAll('#grid .card')]
  const show = $('maps').checked
  document.body.dataset.maps = show ? 'loading' : 'off'
  if (!show) {
    for (const card of cards) {
      card.querySelector('.map').hidden = true
      delete card.dataset.map
    }
    return
  }
  let next = 0
  let failures = 0
  const worker = async () => {
    while (next < cards.length) {
      const card = cards[next++]
      try {
        drawMap(card, await explainOnce(Number(card.dataset.index)))
      } catch (err) {
        failures++
        setState('error', err instanceof ApiError ? err.message : `Score map failed: ${err.message}`)
      }
    }
  }
  await Promise.all(Array.from({ length: EXPLAIN_CONCURRENCY }, worker))
  if ($('maps').checked) document.body.dataset.maps = failures ? 'error' : 'shown'
}

async function openExplain(index) {
  const it = items[index]
  const dialog = $('explain-dialog')
  const img = $('explain-img')
  try {
    const init = it.file
      ? { method: 'POST', body: it.file, headers: { 'content-type': 'application/octet-stream' } }
      : { method: 'POST', body: JSON.stringify({ url: it.url }), headers: { 'content-type': 'application/json' } }
    const blob = await (await api('/explain?format=png', init)).blob()
    if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src)
    img.src = URL.createObjectURL(blob)
    img.alt = `Score maps of ${it.name} for each model, over the photo, with a colour legend`
    dialog.showModal()
  } catch (err) {
    setState('error', err instanceof ApiError ? err.message : `Failed: ${err.message}`)
  }
}

function init() {
  const drop = $('drop')
  const files = $('files')
  drop.addEventListener('click', () => files.click())
  drop.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault()
      files.click()
    }
  })
  drop.addEventListener('dragover', (event) => {
    event.preventDefault()
    drop.classList.add('over')
  })
  drop.addEventListener('dragleave', () => drop.classList.remove('over'))
  drop.addEventListener('drop', (event) => {
    event.preventDefault()
    drop.classList.remove('over')
    rankFiles(event.dataTransfer?.files ?? [])
  })
  files.addEventListener('change', () => rankFiles(files.files ?? []))
  $('urls-form').addEventListener('submit', (event) => {
    event.preventDefault()
    rankUrls($('urls').value)
  })
  const key = $('api-key')
  key.value = sessionStorage.getItem(KEY) ?? ''
  key.addEventListener('input', () => (key.value ? sessionStorage.setItem(KEY, key.value.trim()) : sessionStorage.removeItem(KEY)))
  $('maps').addEventListener('change', () => showMaps())
  $('map-model').addEventListener('change', () => $('maps').checked && showMaps())
  setState('idle')
}

init()
