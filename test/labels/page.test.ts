/**
 * The labelling page end to end in headless Chromium (Debian package `chromium`, driven by
 * playwright-core) against the service on 127.0.0.1: rate by key press and by click, skip,
 * undo, and check that the ratings land in the database and in the summary view.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { chromium, type Browser } from 'playwright-core'
import { LabelStore } from '../../src/labels/store.js'
import { projectRoot, sharedImages } from '../helpers/paths.js'
import { startLabellingService } from './app.js'

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'
if (!existsSync(CHROMIUM)) throw new Error(`headless Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`)

const shots = join(projectRoot, 'test-output', 'labels')
mkdirSync(shots, { recursive: true })

const dbPath = join(t.testdir(), 'labels.sqlite')
const svc = await startLabellingService(dbPath)
t.teardown(svc.close)

// Four photos through the API, as a user would load them.
const photos = ['idealo/42039.jpg', 'idealo/42040.jpg', 'natural/coffee.png', 'natural/rocket.jpg']
const ids: string[] = []
for (const p of photos) {
  const bytes = readFileSync(join(sharedImages, p))
  const res = await fetch(`${svc.url}/labels/images?group=demo`, { method: 'POST', body: bytes, headers: { 'content-type': 'application/octet-stream' } })
  ids.push(((await res.json()) as { image: { id: string } }).image.id)
}

let browser: Browser | undefined
t.teardown(async () => browser?.close())

t.test('rate by keys and clicks, skip, undo; ratings reach the database and the summary', async (t) => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
  const page = await browser.newPage()
  const requested: string[] = []
  page.on('request', (r) => requested.push(new URL(r.url()).pathname))
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))

  const ready = async () => {
    await page.waitForSelector('body[data-state="ready"]')
    return page.getAttribute('#photo', 'data-image-id')
  }

  await page.goto(`${svc.url}/label`)
  await page.waitForSelector('body[data-state="idle"]')
  const shown = async () => ({ stage: await page.isVisible('#stage'), scale: await page.isVisible('#scale') })
  t.same(await shown(), { stage: false, scale: false }, 'before a name is entered: no photo frame and no rating buttons')
  await page.fill('#rater', 'ana')
  await page.press('#rater', 'Enter')
  const first = await ready()
  t.equal(first, ids[0], 'the oldest unrated image comes first')
  t.ok(await page.$eval('#photo', (img) => (img as unknown as { naturalWidth: number }).naturalWidth > 0), 'the photo is shown')
  t.match(await page.textContent('#remaining'), /4 to rate/)
  const centre = (sel: string) => page.$eval(sel, (e) => (globalThis as unknown as { getComputedStyle: (e: unknown) => { textAlign: string } }).getComputedStyle(e).textAlign)
  t.same([await centre('#status'), await centre('.hint')], ['center', 'center'], 'the status line is centred like the keys line under it')
  await page.screenshot({ path: join(shots, 'rate.png'), fullPage: true })
  await page.click('body') // focus off the name field, so keys rate

  await page.keyboard.press('7')
  t.equal(await ready(), ids[1], 'key 7 rated it and the next image appeared')
  await page.keyboard.press('0')
  t.equal(await ready(), ids[2], 'key 0 means 10')
  await page.click('#scale button[data-rating="3"]')
  t.equal(await ready(), ids[3], 'a click rates too')
  await page.keyboard.press('s')
  await page.waitForSelector('body[data-state="done"]')
  t.match(await page.textContent('#status'), /Only skipped images are left/)
  t.same(await shown(), { stage: false, scale: false }, 'when nothing is left to rate: the last photo and the scale are gone')

  await page.keyboard.press('u')
  t.equal(await ready(), ids[2], 'undo brings back the last rated image')
  await page.click('#scale button[data-rating="5"]')
  await page.waitForSelector('body[data-state="done"]')

  const store = await LabelStore.open(dbPath, { readOnly: true })
  const stored = store.listRatings({ limit: 100, rater: 'ana' }).items
  store.close()
  t.same(
    stored.map((r) => [r.imageId, r.rating]).sort(),
    [
      [ids[0], 7],
      [ids[1], 10],
      [ids[2], 5],
    ].sort(),
    'the database holds the three ratings (the undone 3 replaced by 5)',
  )
  t.notOk(requested.some((p) => /^\/(score|rank|models)/.test(p)), 'the page never asks the model for a score')

  // a second rater on one image gives the summary an agreement to report
  await fetch(`${svc.url}/labels/ratings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ imageId: ids[0], rater: 'bob', rating: 8 }) })
  await page.click('#nav-summary')
  await page.waitForSelector('body[data-state="summary"]')
  const dd = (key: string) => page.textContent(`dd[data-key="${key}"]`)
  t.equal(await dd('Images'), '4')
  t.equal(await dd('Ratings'), '4')
  t.equal(await dd('Labelled images'), '3')
  t.equal(await dd('Pairs compared'), '1')
  t.equal(await dd('Mean absolute difference'), '1.00')
  t.equal(await dd('Within ±1'), '100 %')
  t.equal(await page.getAttribute('.histogram .bar[data-score="10"]', 'data-count'), '1')
  t.equal(await page.getAttribute('.histogram .bar[data-score="7"]', 'data-count'), '1')
  t.equal(await page.getAttribute('.histogram .bar[data-score="3"]', 'data-count'), '0', 'the undone rating is gone')
  t.match(await page.textContent('#raters tbody'), /ana\s*3/)
  t.same(errors, [], 'no script errors')
})

t.test('an empty database: the page says there are no photos yet and how to add them; a 401 opens the key box', async (t) => {
  const empty = await startLabellingService(join(t.testdir(), 'empty.sqlite'), { API_KEYS: 'label-key' })
  t.teardown(empty.close)
  const page = await browser!.newPage({ viewport: { width: 1280, height: 720 } })
  const problems: string[] = []
  page.on('pageerror', (e) => problems.push(e.message))
  page.on('console', (m) => {
    if (m.type() === 'error' && !/401/.test(m.text())) problems.push(m.text())
  })
  await page.goto(`${empty.url}/label`)
  await page.waitForSelector('body[data-state="idle"]')
  await page.fill('#rater', 'ana')
  await page.press('#rater', 'Enter')
  await page.waitForSelector('body[data-state="error"]')
  t.match(await page.textContent('#status'), /needs an API key: enter it under "API key"/, 'the same 401 behaviour as the gallery')
  t.ok(await page.$eval('#key-box', (d) => (d as unknown as { open: boolean }).open), 'the key box is opened')
  await page.fill('#api-key', 'label-key')
  await page.dispatchEvent('#api-key', 'change')
  await page.waitForSelector('body[data-state="empty"]')
  const status = await page.textContent('#status')
  t.match(status, /^No photos to rate yet\. Upload them to POST \/labels\/images \(or, with the service stopped, which owns the database while it runs, npx nima-serve labels add-images --db <LABELS_DB> <folder>\); then reload this page\./)
  t.notMatch(status, /All done/, 'not "all done" when nothing was ever there')
  t.same(await shownParts(page), { stage: false, scale: false })
  await page.screenshot({ path: join(shots, 'empty.png'), fullPage: true })
  t.same(problems, [], 'no script errors, no failed loads but the expected 401')
})

async function shownParts(page: import('playwright-core').Page) {
  return { stage: await page.isVisible('#stage'), scale: await page.isVisible('#scale') }
}
