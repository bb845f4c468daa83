/**
 * /docs as a newcomer sees it, in headless Chromium (Debian package `chromium`, driven by
 * playwright-core): the page reads and names /openapi.json, "Try it out" goes to the host
 * the page came from, routes sit in named groups, and a lock shows only where a key is
 * needed (nowhere without API_KEYS; never on the probes or /metrics). Screenshots are left in
 * test-output/docs/ (git-ignored) for review.
 */
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { chromium, type Browser, type Page } from 'playwright-core'
import { projectRoot } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'
if (!existsSync(CHROMIUM)) throw new Error(`headless Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`)
const shots = join(projectRoot, 'test-output', 'docs')
mkdirSync(shots, { recursive: true })

let browser: Browser | undefined
t.teardown(async () => browser?.close())
browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
})

async function openDocs(url: string): Promise<{ page: Page; problems: string[]; fetched: string[] }> {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } })
  const problems: string[] = []
  const fetched: string[] = []
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`)
  })
  page.on('request', (r) => fetched.push(new URL(r.url()).pathname))
  await page.goto(`${url}/docs`)
  await page.waitForSelector('.opblock-tag-section')
  return { page, problems, fetched }
}

/** Per route shown: whether its row carries a lock (swagger-ui's authorization button). */
async function locks(page: Page): Promise<Record<string, boolean>> {
  return Object.fromEntries(
    await page.$$eval('.opblock', (ops) =>
      ops.map((op) => [`${op.querySelector('.opblock-summary-method')?.textContent} ${op.querySelector('.opblock-summary-path')?.getAttribute('data-path')}`, op.querySelector('.authorization__btn') !== null]),
    ),
  )
}

t.test('without API_KEYS: no lock anywhere, named groups, servers from the host, /openapi.json in the top bar', async (t) => {
  const svc = await startTestService()
  t.teardown(() => svc.server.shutdown())
  const { page, problems, fetched } = await openDocs(svc.url)
  t.ok(fetched.includes('/openapi.json'), 'the page loads /openapi.json')
  t.notOk(fetched.includes('/docs/json'), 'not the plugin’s /docs/json')
  t.match(await page.textContent('.topbar'), /\/openapi\.json/, 'the top bar names /openapi.json, as the README does')
  t.same(await page.$$eval('.servers select option', (os) => os.map((o) => o.textContent?.trim().split(' ')[0])), [svc.url], '"Try it out" goes to the host the page came from')
  const groups = await page.$$eval('.opblock-tag', (ts) => ts.map((g) => g.getAttribute('data-tag')))
  t.same(groups, ['scoring', 'models', 'oip', 'operations'], 'named groups, no "default" (labelling needs LABELS_DB)')
  const shown = await locks(page)
  t.ok(Object.keys(shown).length >= 7, `routes shown: ${Object.keys(shown).join(', ')}`)
  t.same(Object.entries(shown).filter(([, locked]) => locked).map(([route]) => route), [], 'no lock')
  t.equal(await page.$('.auth-wrapper .authorize'), null, 'no Authorize button')
  await page.screenshot({ path: join(shots, 'docs-no-keys.png'), fullPage: true })
  t.same(problems, [])
})

t.test('with API_KEYS: locks on the API, none on the probes and /metrics', async (t) => {
  const svc = await startTestService({ API_KEYS: 'docs-key' })
  t.teardown(() => svc.server.shutdown())
  const { page, problems } = await openDocs(svc.url)
  const shown = await locks(page)
  for (const route of ['GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /v2/health/live', 'GET /v2/health/ready']) t.equal(shown[route], false, `${route}: open`)
  for (const route of ['POST /score', 'POST /rank', 'POST /explain', 'GET /models']) t.equal(shown[route], true, `${route}: locked`)
  t.ok(await page.$('.auth-wrapper .authorize'), 'an Authorize button')
  await page.screenshot({ path: join(shots, 'docs-keys.png'), fullPage: true })
  t.same(problems, [])
})
