// The labelling page: one unlabelled photo at a time, rated by click or key (1-9, 0 = 10),
// then the next one. No build step, no dependencies; talks to the /labels API.
// The model's score is deliberately never requested, so it cannot anchor the rater.
// ./kit.js (API calls, the API-key box, page state) is shared with the /gallery page.
import { $, api, apiKey, bindKeyBox, el, setState } from './kit.js'

const NAME = /^[\p{L}\p{N}._@+ -]{1,64}$/u
const MAX_SKIP = 50

const state = {
  rater: localStorage.getItem('nima.rater') ?? '',
  image: null,
  skip: [],
  undo: [],
  busy: false,
  objectUrl: null,
}

function showImage(image, blob) {
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl)
  state.objectUrl = URL.createObjectURL(blob)
  const img = $('photo')
  return new Promise((resolve) => {
    img.onload = img.onerror = () => resolve()
    img.dataset.imageId = image.id
    img.src = state.objectUrl
  }).then(() => {
    state.image = image
    $('stage').hidden = false
    $('scale').hidden = false
  })
}

async function display(image, remaining) {
  const blob = await (await api(`/labels/images/${image.id}/file`)).blob()
  await showImage(image, blob)
  $('remaining').textContent = `${remaining} to rate`
  setState('ready', '')
}

async function loadNext() {
  if (!NAME.test(state.rater)) {
    $('stage').hidden = true
    $('scale').hidden = true
    setState('idle', 'Enter your name (letters, digits, spaces, . _ @ + -) to start.')
    return
  }
  setState('loading')
  const params = new URLSearchParams({ rater: state.rater })
  if (state.skip.length > 0) params.set('skip', state.skip.join(','))
  const { image, remaining } = await (await api(`/labels/next?${params}`)).json()
  if (!image) {
    state.image = null
    $('stage').hidden = true
    $('scale').hidden = true
    $('remaining').textContent = `${remaining} to rate`
    if (remaining > 0) {
      setState('done', 'Only skipped images are left. Reload the page to see them again.')
      return
    }
    // Nothing left for this rater: either every photo is rated, or there are none yet.
    const { images } = await (await api('/labels/summary')).json()
    if (images > 0) {
      setState('done', 'All done: you have rated every image. Thank you!')
      return
    }
    $('remaining').textContent = ''
    const status = $('status')
    status.replaceChildren(
      'No photos to rate yet. Upload them to ',
      el('a', { href: '/docs#/labelling', textContent: 'POST /labels/images' }),
      ' (or, with the service stopped, which owns the database while it runs, ',
      el('code', { textContent: 'npx nima-serve labels add-images --db <LABELS_DB> <folder>' }),
      '); then reload this page.',
    )
    setState('empty')
    return
  }
  await display(image, remaining)
}

function flash(rating) {
  const button = document.querySelector(`#scale button[data-rating="${rating}"]`)
  if (!button) return
  button.classList.add('flash')
  setTimeout(() => button.classList.remove('flash'), 250)
}

async function guarded(fn) {
  if (state.busy) return
  state.busy = true
  try {
    await fn()
  } catch (err) {
    setState('error', err instanceof Error ? err.message : String(err))
  } finally {
    state.busy = false
  }
}

function rate(rating) {
  return guarded(async () => {
    if (!state.image || document.body.dataset.state !== 'ready') return
    flash(rating)
    setState('saving')
    const res = await api('/labels/ratings', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ imageId: state.image.id, rater: state.rater, rating }),
    })
    const { rating: saved } = await res.json()
    state.undo.push({ ratingId: saved.id, imageId: saved.imageId })
    $('undo').disabled = false
    await loadNext()
  })
}

function skip() {
  return guarded(async () => {
    if (!state.image) return
    state.skip = [...state.skip, state.image.id].slice(-MAX_SKIP)
    await loadNext()
  })
}

function undo() {
  return guarded(async () => {
    const last = state.undo.pop()
    $('undo').disabled = state.undo.length === 0
    if (!last) return
    await api(`/labels/ratings/${last.ratingId}`, { method: 'DELETE' })
    const image = await (await api(`/labels/images/${last.imageId}`)).json()
    const params = new URLSearchParams({ rater: state.rater })
    const { remaining } = await (await api(`/labels/next?${params}`)).json()
    await display(image, remaining)
  })
}

function fmt(x, digits = 2) {
  return x === null || x === undefined ? '—' : Number(x).toFixed(digits)
}

function fillList(dl, entries) {
  dl.replaceChildren(
    ...entries.flatMap(([k, v]) => {
      const dt = document.createElement('dt')
      dt.textContent = k
      const dd = document.createElement('dd')
      dd.textContent = v
      dd.dataset.key = k
      return [dt, dd]
    }),
  )
}

async function loadSummary() {
  setState('loading')
  const s = await (await api('/labels/summary')).json()
  fillList($('counts'), [
    ['Images', s.images],
    ['Labelled images', s.labelledImages],
    ['Ratings', s.ratings],
    ['Mean score', fmt(s.meanScore)],
    ['Vote-histogram labels', s.histogramLabels],
    ['Rating spread σ for training', `${fmt(s.ratingStd.sigma)} (${s.ratingStd.source})`],
  ])
  const max = Math.max(1, ...s.ratingHistogram)
  $('histogram').replaceChildren(
    ...s.ratingHistogram.map((count, i) => {
      const bar = document.createElement('div')
      bar.className = 'bar'
      bar.dataset.score = String(i + 1)
      bar.dataset.count = String(count)
      bar.title = `${count} × ${i + 1}`
      const fill = document.createElement('span')
      fill.className = 'fill'
      fill.style.height = `${(100 * count) / max}%`
      const label = document.createElement('span')
      label.className = 'label'
      label.textContent = `${i + 1} (${count})`
      bar.append(fill, label)
      return bar
    }),
  )
  const a = s.agreement
  fillList($('agreement'), [
    ['Images with several raters', a.images],
    ['Pairs compared', a.pairs],
    ['Mean absolute difference', fmt(a.meanAbsDiff)],
    ['Within ±1', a.within1 === null ? '—' : `${fmt(100 * a.within1, 0)} %`],
    ['Exact agreement', a.exact === null ? '—' : `${fmt(100 * a.exact, 0)} %`],
  ])
  $('raters').tBodies[0].replaceChildren(
    ...s.raters.map((r) => {
      const tr = document.createElement('tr')
      for (const v of [r.rater, r.ratings]) {
        const td = document.createElement('td')
        td.textContent = String(v)
        tr.append(td)
      }
      return tr
    }),
  )
  setState('summary', '')
}

async function download(event) {
  // With an API key, a plain link cannot send it: fetch and save the blob instead.
  if (!apiKey()) return
  event.preventDefault()
  const href = event.currentTarget.getAttribute('href')
  const blob = await (await api(href)).blob()
  const a = document.createElement('a')
  a.href = URL.createObjectURL(blob)
  a.download = href.includes('csv') ? 'labels.csv' : 'labels.jsonl'
  a.click()
  setTimeout(() => URL.revokeObjectURL(a.href), 1000)
}

function route() {
  const summary = location.hash === '#summary'
  $('view-rate').hidden = summary
  $('view-summary').hidden = !summary
  return guarded(summary ? loadSummary : loadNext)
}

function init() {
  bindKeyBox()
  // A key entered after a 401 is tried at once.
  $('api-key').addEventListener('change', () => route())
  const input = $('rater')
  input.value = state.rater
  input.addEventListener('change', () => {
    state.rater = input.value.trim()
    localStorage.setItem('nima.rater', state.rater)
    state.skip = []
    state.undo = []
    $('undo').disabled = true
    if (location.hash !== '#summary') guarded(loadNext)
  })
  for (const button of document.querySelectorAll('#scale button[data-rating]')) {
    button.addEventListener('click', () => rate(Number(button.dataset.rating)))
  }
  $('skip').addEventListener('click', skip)
  $('undo').addEventListener('click', undo)
  $('export-csv').addEventListener('click', download)
  $('export-jsonl').addEventListener('click', download)
  document.addEventListener('keydown', (event) => {
    if (event.target instanceof HTMLInputElement || event.ctrlKey || event.metaKey || event.altKey) return
    if (location.hash === '#summary') return
    if (/^[0-9]$/.test(event.key)) {
      event.preventDefault()
      rate(event.key === '0' ? 10 : Number(event.key))
    } else if (event.key === 's') skip()
    else if (event.key === 'u') undo()
  })
  window.addEventListener('hashchange', route)
  route()
}

init()
