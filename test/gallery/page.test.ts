/**
 * The gallery page end to end in headless Chromium (Debian package `chromium`, driven by
 * playwright-core) against the real service with API keys on: drop sample photos, check the
 * order equals /rank's for the same images, near-duplicates folded, the score-map overlay
 * toggled by keyboard, the PNG explanation, URLs pasted, and a phone-sized viewport.
 * Screenshots are left in test-output/gallery/ (git-ignored) for review.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import sharp from 'sharp'
import t, { type Test } from 'tap'
import { chromium, type Browser, type Page } from 'playwright-core'
import { projectRoot, sharedImages } from '../helpers/paths.js'
import { startTestService, startUpstream } from '../helpers/service.js'

/** What page.evaluate callbacks touch: the browser's DOM, untyped here (the project compiles without lib dom). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Dom = any

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'
if (!existsSync(CHROMIUM)) throw new Error(`headless Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`)
const shots = join(projectRoot, 'test-output', 'gallery')
mkdirSync(shots, { recursive: true })

const KEY = 'gallery-test-key'
const svc = await startTestService({ API_KEYS: KEY })
t.teardown(() => svc.server.shutdown())

// Five sample photos and a smaller re-encoded copy of the first: a near-duplicate to fold.
const names = ['idealo/aesthetic1.jpg', 'idealo/aesthetic3.jpg', 'idealo/techncial3.jpg', 'natural/coffee.png', 'idealo/42039.jpg']
const files = names.map((n) => ({ name: basename(n), bytes: readFileSync(join(sharedImages, n)) }))
files.push({ name: 'aesthetic1-small.jpg', bytes: await sharp(files[0]!.bytes).resize({ width: 640 }).jpeg({ quality: 70 }).toBuffer() })

const upstream = await startUpstream((req, res) => {
  const file = files.find((f) => `/${f.name}` === req.url)
  if (!file) return void res.writeHead(404).end()
  res.writeHead(200, { 'content-type': file.name.endsWith('.png') ? 'image/png' : 'image/jpeg' }).end(file.bytes)
})
t.teardown(upstream.close)

async function rankOrder(init: RequestInit): Promise<{ order: string[]; folded: Record<string, number> }> {
  const res = await fetch(`${svc.url}/rank`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${KEY}` } })
  const body = (await res.json()) as { ranked: { id: string; nearDuplicates: unknown[]; duplicates: unknown[] }[] }
  return { order: body.ranked.map((r) => r.id), folded: Object.fromEntries(body.ranked.map((r) => [r.id, r.nearDuplicates.length + r.duplicates.length])) }
}

let browser: Browser | undefined
t.teardown(async () => browser?.close())
browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
})

async function openGallery(viewport: { width: number; height: number }): Promise<{ page: Page; problems: string[] }> {
  const page = await browser!.newPage({ viewport })
  // Intercept file choosers from the start: enabled only when the key is pressed, the
  // interception can lose the race with the click on a busy machine.
  page.on('filechooser', () => {})
  const problems: string[] = []
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  page.on('console', (m) => {
    if (m.type() === 'error' && !/401/.test(m.text())) problems.push(`console: ${m.text()}`)
  })
  await page.goto(`${svc.url}/gallery`)
  await page.waitForSelector('body[data-state="idle"]')
  return { page, problems }
}

async function enterKey(page: Page) {
  await page.click('#key-box summary')
  await page.fill('#api-key', KEY)
}

async function shownOrder(page: Page): Promise<string[]> {
  return page.$$eval('#grid .card', (cards) => cards.map((c) => (c as Dom).dataset['name'] ?? ''))
}

/**
 * The visual check: every fold list opened, then on every card the score-map overlay must
 * cover exactly the photo (a stretched card once left the 7×7 map 13 px below it), and
 * no card title may be wider than its card.
 */
async function checkOverlays(t: Test, page: Page, label: string) {
  await page.$$eval('#grid details.dups', (ds) => ds.forEach((d) => ((d as Dom).open = true)))
  const boxes = await page.$$eval('#grid .card', (cards) =>
    cards.map((c) => {
      const r = (e: Dom) => {
        const b = e.getBoundingClientRect()
        return [b.left, b.top, b.width, b.height]
      }
      const name = c.querySelector('.name') as Dom
      return { name: (c as Dom).dataset['name'], img: r(c.querySelector('.frame img')), map: r(c.querySelector('.map')), titleFits: name.scrollHeight <= name.clientHeight + 1 && r(name)[2] <= r(c)[2] }
    }),
  )
  t.ok(boxes.length > 0, `${label}: cards to check`)
  for (const b of boxes) {
    t.ok(b.img.every((v: number, i: number) => Math.abs(v - b.map[i]!) < 0.5), `${label}: ${b.name}: overlay ${b.map.map((v: number) => v.toFixed(1))} = photo ${b.img.map((v: number) => v.toFixed(1))}`)
    t.ok(b.titleFits, `${label}: ${b.name}: the title stays on one line inside its card`)
  }
}

t.test('dropped photos: ranked as /rank ranks them, near-duplicate folded, maps toggled, PNG opened', async (t) => {
  const expected = await rankOrder({ method: 'POST', body: (() => {
    const form = new FormData()
    for (const f of files) form.append('image', new Blob([f.bytes]), f.name)
    return form
  })() })
  t.ok(Object.values(expected.folded).some((n) => n > 0), `/rank folds the re-encoded copy (${JSON.stringify(expected.folded)})`)

  const { page, problems } = await openGallery({ width: 1280, height: 900 })
  // Without the key first: the page says what to do instead of failing silently.
  const drop = async () => {
    const transfer = await page.evaluateHandle((list: { name: string; b64: string }[]) => {
      const dt = new (globalThis as Dom).DataTransfer()
      for (const f of list) dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name))
      return dt
    }, files.map((f) => ({ name: f.name, b64: f.bytes.toString('base64') })))
    await page.dispatchEvent('#drop', 'drop', { dataTransfer: transfer })
  }
  await drop()
  await page.waitForSelector('body[data-state="error"]')
  t.match(await page.textContent('#status'), /needs an API key/)
  t.ok(await page.$eval('#key-box', (d) => (d as Dom).open), 'the key field is opened for the user')
  await page.fill('#api-key', KEY)
  await drop()
  await page.waitForSelector('body[data-state="ready"]')

  t.same(await shownOrder(page), expected.order, 'the grid is in /rank order')
  t.equal(await page.isVisible('#synthetic'), true, 'the SYNTHETIC warning is shown')
  const alts = await page.$$eval('#grid img', (imgs) => imgs.map((i) => (i as Dom).alt))
  t.ok(alts.length >= expected.order.length && alts.every((a) => a.length > 10), 'every image has alt text')
  const dups = await page.$$eval('#grid details.dups', (ds) => ds.map((d) => ({ open: (d as Dom).open, text: d.querySelector('summary')?.textContent })))
  t.same(dups, [{ open: false, text: '1 more of the same picture (folded)' }], 'the near-duplicate is folded, collapsed')
  t.match(await page.textContent('#status'), /^6 photos: 5 ranked, 1 folded into a better copy \(same picture\)\./, 'the status accounts for every photo dropped')
  const figures = await page.$$eval('#grid .card .bars .value', (vs) => vs.filter((_, i) => i % 3 === 0).map((v) => v.textContent ?? ''))
  t.equal(new Set(figures.map((f) => f.split(' ')[0])).size, figures.length, `every card's combined score reads differently: ${figures.join(' | ')}`)
  await page.waitForFunction(() => [...(globalThis as Dom).document.querySelectorAll('#grid .frame img')].every((i) => (i as Dom).naturalWidth > 0))
  await page.screenshot({ path: join(shots, 'ranked.png'), fullPage: true })

  // The overlay, from the keyboard.
  await page.focus('#maps')
  await page.keyboard.press('Space')
  await page.waitForSelector('body[data-maps="shown"]')
  const mapped = await page.$$eval('#grid .card', (cards) => cards.map((c) => [(c as Dom).dataset['map'], c.querySelectorAll('.map span').length, !(c.querySelector('.map') as Dom).hidden]))
  t.same(mapped, expected.order.map(() => ['aesthetic', 49, true]), 'every photo shows its 7×7 aesthetic score map')
  const coloured = await page.$$eval('#grid .card:first-child .map span', (cells) => cells.filter((c) => (globalThis as Dom).getComputedStyle(c).backgroundColor !== 'rgba(0, 0, 0, 0)').length)
  t.ok(coloured > 0, `cells are coloured (${coloured} of 49), inline colours allowed by the CSP`)
  await checkOverlays(t, page, '1280 px')
  await page.screenshot({ path: join(shots, 'score-maps-folds-open.png'), fullPage: true })
  await page.selectOption('#map-model', 'technical')
  await page.waitForFunction(() => [...(globalThis as Dom).document.querySelectorAll('#grid .card')].every((c) => (c as Dom).dataset['map'] === 'technical'))
  t.pass('the technical maps replace them')
  await page.keyboard.press('Tab')
  await page.focus('#maps')
  await page.keyboard.press('Space')
  t.same(await page.$$eval('#grid .map', (ms) => ms.filter((m) => !(m as Dom).hidden).length), 0, 'toggled off')

  await page.click('#grid .card:first-child button.explain')
  await page.waitForFunction(() => ((globalThis as Dom).document.getElementById('explain-dialog') as Dom).open && ((globalThis as Dom).document.getElementById('explain-img') as Dom).naturalWidth > 0)
  t.match(await page.getAttribute('#explain-img', 'alt'), /^Score maps of /)
  t.match(await page.textContent('#explain-title'), new RegExp(`^Score maps of #1: ${expected.order[0]!.replace('.', '\\.')}$`), 'the dialog names the photo it shows')
  await page.screenshot({ path: join(shots, 'explain-dialog.png') })
  await page.keyboard.press('Escape')
  t.equal(await page.$eval('#explain-dialog', (d) => (d as Dom).open), false, 'Escape closes it')
  t.same(problems, [], 'no page errors, no CSP refusals')
})

t.test('pasted URLs on a phone-sized screen, photos chosen with the keyboard', async (t) => {
  const urls = [...files.slice(0, 4), files[5]!].map((f) => `${upstream.url}/${f.name}`)
  const expected = await rankOrder({ method: 'POST', body: JSON.stringify({ images: urls.map((url, i) => ({ url, id: String(i) })) }), headers: { 'content-type': 'application/json' } })
  const { page, problems } = await openGallery({ width: 390, height: 844 })
  await enterKey(page)
  await page.fill('#urls', urls.join('\n'))
  await page.click('#urls-form button')
  await page.waitForSelector('body[data-state="ready"]')
  t.same(await shownOrder(page), expected.order.map((i) => urls[Number(i)]), 'URL grid in /rank order')
  await page.waitForFunction(() => [...(globalThis as Dom).document.querySelectorAll('#grid .frame img')].every((i) => (i as Dom).naturalWidth > 0))
  t.ok(await page.evaluate(() => (globalThis as Dom).document.documentElement.scrollWidth <= (globalThis as Dom).innerWidth), 'nothing wider than the phone screen')
  await page.check('#maps')
  await page.waitForSelector('body[data-maps="shown"]')
  await checkOverlays(t, page, '390 px')
  t.ok(await page.evaluate(() => (globalThis as Dom).document.documentElement.scrollWidth <= (globalThis as Dom).innerWidth), 'folds open: still nothing wider than the screen')
  await page.screenshot({ path: join(shots, 'phone-urls.png'), fullPage: true })

  // Keyboard only: focus the drop zone, Enter opens the file chooser.
  await page.focus('#drop')
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.keyboard.press('Enter')])
  await chooser.setFiles(files.slice(1, 4).map((f) => ({ name: f.name, mimeType: 'application/octet-stream', buffer: f.bytes })))
  await page.waitForFunction(() => (globalThis as Dom).document.querySelectorAll('#grid .card').length === 3 && (globalThis as Dom).document.body.dataset['state'] === 'ready')
  await page.waitForSelector('body[data-maps="shown"]')
  await page.screenshot({ path: join(shots, 'phone-files.png'), fullPage: true })
  t.same(problems, [])
})
