/**
 * The gallery shows each score's percentile when the service is calibrated (headless
 * Chromium, like page.test.ts): dropped photos, then the text next to each bar.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { basename } from 'node:path'
import t from 'tap'
import { chromium } from 'playwright-core'
import { makeCalibration } from '../helpers/calibration.js'
import { samplePhotos } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Dom = any

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'
if (!existsSync(CHROMIUM)) throw new Error(`headless Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`)

const photos = samplePhotos().filter((p) => p.includes('/idealo/')).slice(0, 6)
const made = await makeCalibration(photos)
t.teardown(() => rmSync(made.dir, { recursive: true, force: true }))
const svc = await startTestService({ SCORE_CALIBRATION: made.calibration })
t.teardown(() => svc.server.shutdown())
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] })
t.teardown(() => browser.close())

t.test('each bar says its percentile', async (t) => {
  const files = photos.slice(0, 3).map((p) => ({ name: basename(p), b64: readFileSync(p).toString('base64') }))
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  await page.goto(`${svc.url}/gallery`)
  await page.waitForSelector('body[data-state="idle"]')
  const transfer = await page.evaluateHandle((list: { name: string; b64: string }[]) => {
    const dt = new (globalThis as Dom).DataTransfer()
    for (const f of list) dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name))
    return dt
  }, files)
  await page.dispatchEvent('#drop', 'drop', { dataTransfer: transfer })
  await page.waitForSelector('body[data-state="ready"]')
  const cards = await page.$$eval('#grid .card', (cards) =>
    cards.map((c) => [...(c as Dom).querySelectorAll('.percentile')].map((p) => (p as Dom).textContent as string)),
  )
  t.equal(cards.length, 3)
  for (const marks of cards) t.match(marks, [/^ · p\d{1,3}$/, /^ · p\d{1,3}$/, /^ · p\d{1,3}$/], `combined, aesthetic and technical show a percentile: ${marks.join(',')}`)
})
