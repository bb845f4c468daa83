// The gallery: drop photos or paste URLs, see them ranked by /rank (best first, near-duplicates
// folded into the best of them), and overlay each photo's score map from /explain.
// Plain ES module, no build step; served by the service at /gallery (src/http/static-page.ts),
// with ./kit.js (API calls, the API-key box, page state) shared with the /label page.
import { $, api, ApiError, bindKeyBox, el, setState } from './kit.js'

const EXPLAIN_CONCURRENCY = 3

/** The inputs of the current ranking, in the order sent: {name, file?, url?, src}. */
let items = []
/** Item index → Promise of its /explain JSON (fetched the first time maps are shown). */
let explanations = new Map()

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
    setState('ready', `${summary(result)}${synthetic ? ' SYNTHETIC models: the order means nothing.' : ''}`)
    if ($('maps').checked) await showMaps()
  } catch (err) {
    setState('error', err instanceof ApiError ? err.message : `Failed: ${err.message}`)
  }
}

/** "8 photos: 6 ranked, 2 folded into them (look-alikes), 1 failed." — every photo sent is accounted for. */
function summary(result) {
  const folded = result.ranked.reduce((n, e) => n + e.duplicates.length + e.nearDuplicates.length, 0)
  const parts = [`${result.ranked.length} ranked`]
  if (folded > 0) parts.push(`${folded} folded into ${folded === 1 ? 'a better copy' : 'better copies'} (same picture)`)
  if (result.failed.length > 0) parts.push(`${result.failed.length} failed`)
  const sent = result.ranked.length + folded + result.failed.length
  return `${sent} photo${sent === 1 ? '' : 's'}: ${parts.join(', ')}.`
}

/**
 * Decimals that tell neighbouring ranks apart: two, or more when two different scores
 * would print alike (synthetic models give scores that differ in the third decimal).
 */
function decimalsFor(scores) {
  for (let d = 2; d < 6; d++) {
    if (scores.every((s, i) => i === 0 || s === scores[i - 1] || s.toFixed(d) !== scores[i - 1].toFixed(d))) return d
  }
  return 6
}

/** A card's title: the file name (a URL's last path segment), whole in the tooltip. */
function shortName(it) {
  if (!it.url) return it.name
  try {
    const u = new URL(it.url)
    const last = decodeURIComponent(u.pathname.split('/').filter(Boolean).pop() ?? '')
    return last || u.host
  } catch {
    return it.name
  }
}

/**
 * A 1..10 score as a bar, with the distribution's mean ± std bracketed; `note` after the
 * figure, and the percentile against the calibration catalogue when SCORE_CALIBRATION gives one.
 */
function bar(label, mean, std, digits = 2, note = '', percentile = undefined) {
  const pct = (v) => `${Math.max(0, Math.min(100, ((v - 1) / 9) * 100))}%`
  const figure = std === undefined ? mean.toFixed(digits) : `${mean.toFixed(2)} ± ${std.toFixed(2)}`
  const track = el('span', { className: 'bar', role: 'img', ariaLabel: `${label} ${figure} on a 1 to 10 scale` })
  track.append(el('span', { className: 'fill', style: `width: ${pct(mean)}` }))
  if (std !== undefined) track.append(el('span', { className: 'spread', title: 'mean ± one standard deviation of the distribution', style: `left: ${pct(mean - std)}; right: calc(100% - ${pct(mean + std)})` }))
  const value = el('span', { className: 'value', textContent: figure })
  if (note) value.append(el('span', { className: 'delta', textContent: ` ${note}` }))
  if (percentile !== undefined) value.append(el('span', { className: 'percentile', title: `percentile ${percentile}: better than ${percentile}% of the calibration catalogue`, textContent: ` · p${Math.round(percentile)}` }))
  return [el('span', { textContent: label }), track, value]
}

/** The scale under the bars: 1, 5.5 and 10 at the ends and the middle of the track. */
function scale() {
  return [el('span'), el('span', { className: 'scale', ariaHidden: 'true' }, ['1', '5.5', '10'].map((t) => el('span', { textContent: t }))), el('span')]
}

function render(result, indexOf) {
  const grid = $('grid')
  grid.replaceChildren()
  const digits = decimalsFor(result.ranked.map((e) => e.combined.score))
  const best = result.ranked[0]?.combined.score ?? 0
  for (const entry of result.ranked) {
    const index = indexOf(entry)
    const it = items[index]
    const score = entry.combined.score.toFixed(digits)
    const img = el('img', { src: it.src, alt: `${it.name}: rank ${entry.rank}, combined score ${score}`, loading: 'lazy', decoding: 'async' })
    const map = el('div', { className: 'map', hidden: true })
    map.setAttribute('aria-hidden', 'true')
    const delta = entry.rank === 1 ? '' : `(${(entry.combined.score - best).toFixed(digits).replace('-', '−')})`
    const bars = el('div', { className: 'bars' }, [
      ...bar('combined', entry.combined.score, undefined, digits, delta, entry.combined.percentile),
      ...Object.entries(entry.scores).flatMap(([id, s]) => bar(id, s.mean, s.std, 2, '', s.percentile)),
      ...scale(),
    ])
    const explain = el('button', { type: 'button', className: 'explain', textContent: 'Open score maps' })
    explain.addEventListener('click', () => openExplain(index, entry.rank))
    const title = el('h3', {}, [el('span', { className: 'rank', textContent: `#${entry.rank}` }), el('span', { className: 'name', textContent: shortName(it), title: it.name })])
    if (entry.selected) title.append(el('span', { className: 'badge', textContent: 'picked', title: 'one of the diverse top k (select)' }))
    const card = el('li', { className: 'card' }, [title, el('div', { className: 'frame' }, [img, map])])
    card.dataset.index = String(index)
    card.dataset.rank = String(entry.rank)
    card.dataset.imageId = entry.image.id
    card.dataset.name = it.name
    const folded = [...entry.duplicates.map((d) => ({ ...d, why: 'identical bytes' })), ...entry.nearDuplicates.map((d) => ({ ...d, why: `look-alike, ${d.distance} bits apart` }))]
    if (folded.length > 0) {
      const list = el(
        'ul',
        {},
        folded.map((d) => {
          const other = items[indexOf(d)]
          return el('li', {}, [
            el('figure', {}, [
              el('img', { src: other.src, alt: `${other.name} (${d.why}), folded into #${entry.rank}`, loading: 'lazy' }),
              el('figcaption', { title: other.name }, [el('span', { className: 'name', textContent: shortName(other) }), el('span', { textContent: d.why })]),
            ]),
          ])
        }),
      )
      const label = `${folded.length} more of the same picture (folded)`
      card.append(el('details', { className: 'dups' }, [el('summary', { textContent: label }), list]))
    }
    card.append(bars, explain)
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

async function openExplain(index, rank) {
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
    $('explain-title').textContent = `Score maps of #${rank}: ${shortName(it)}`
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
  bindKeyBox()
  $('maps').addEventListener('change', () => showMaps())
  $('map-model').addEventListener('change', () => $('maps').checked && showMaps())
  setState('idle')
}

init()
