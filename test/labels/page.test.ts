/**
 * The labelling page end to end in headless Chromium (Debian package `chromium`, driven by
 * playwright-core) against the service on 127.0.0.1: rate by key press and by click, skip,
 * undo, and check that the ratings land in the database and in the summary view.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { chromium, type Browser } from 'playwright-core'
import { LabelStore } from '../../src/labels/store.js'
import { sharedImages } from '../helpers/paths.js'
import { startLabellingService } from './app.js'

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'
if (!existsSync(CHROMIUM)) throw new Error(`headless Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`)

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
