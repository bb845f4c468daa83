/**
 * SIGHUP reloads the models of the real process (`node dist/main.cjs`, as the images run
 * it), and the memory of the replaced models comes back: after three reloads, each with a
 * new version and traffic on it, the RSS of the service and its decode processes is back
 * within RSS_TOLERANCE_MB of what it was before the first.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { arch, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { testModelsDir } from '../helpers/models.js'
import { startDistService } from '../helpers/dist-service.js'
import { processTree, treeRssMb } from '../helpers/process-tree.js'
import { samplePhotos } from '../helpers/paths.js'
import { repo } from './helpers.js'

const RSS_TOLERANCE_MB = 120
const RELOADS = 3

const why = existsSync(repo('dist/main.cjs')) ? undefined : 'dist/main.cjs is missing (npm run build)'

t.test('SIGHUP swaps in new versions and the replaced models give their memory back', { skip: why ?? false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nima-sighup-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const models = join(dir, 'models')
  cpSync(await testModelsDir(), models, { recursive: true, dereference: true })
  const [baseVersion] = readdirSync(join(models, 'aesthetic')) as [string]
  const install = (version: string) => {
    const to = join(models, 'aesthetic', version)
    cpSync(join(models, 'aesthetic', baseVersion), to, { recursive: true })
    const manifest = JSON.parse(readFileSync(join(to, 'manifest.json'), 'utf8'))
    manifest.version = version
    manifest.provenance.createdAt = new Date(Date.now() + 1000).toISOString()
    writeFileSync(join(to, 'manifest.json'), JSON.stringify(manifest, null, 2))
  }

  // The allocator npm start and the images use: jemalloc when installed, else glibc with 2 arenas.
  const jemalloc = `/usr/lib/${arch() === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/libjemalloc.so.2`
  const allocator: Record<string, string> = existsSync(jemalloc) ? { LD_PRELOAD: jemalloc, MALLOC_CONF: 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0' } : { MALLOC_ARENA_MAX: '2' }
  // The score cache off: the same eight photos go through every model each round, so the
  // memory measured is that of models and decodes at work, as before the cache existed.
  const svc = await startDistService(t, { MODELS_DIR: models, CPU_LIMIT: '2', SCORE_CACHE: 'off', ...allocator })
  const { child, url } = svc

  const photos = samplePhotos().slice(0, 8).map((p) => readFileSync(p))
  const traffic = async () => {
    const versions = await Promise.all(
      photos.map(async (body) => {
        const r = await fetch(`${url}/score`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } })
        return r.status === 200 ? ((await r.json()) as { models: { aesthetic: { version: string } } }).models.aesthetic.version : `status ${r.status}`
      }),
    )
    return [...new Set(versions)]
  }
  const treeRss = () => treeRssMb(child.pid!)
  const settle = async () => {
    await sleep(1500)
    return treeRss()
  }

  await traffic()
  await traffic()
  const before = await settle()
  const processesBefore = processTree(child.pid!).length
  for (let i = 1; i <= RELOADS; i++) {
    const version = `${baseVersion}-r${i}`
    install(version)
    child.kill('SIGHUP')
    let serving = ''
    for (let k = 0; k < 100 && serving !== version; k++) {
      await sleep(100)
      const m = (await (await fetch(`${url}/models`)).json()) as { models: { id: string; version: string }[] }
      serving = m.models.find((x) => x.id === 'aesthetic')?.version ?? ''
    }
    t.equal(serving, version, `SIGHUP ${i}: /models reports ${version}`)
    t.same(await traffic(), [version], `SIGHUP ${i}: every response comes from ${version}`)
  }
  const after = await settle()
  t.equal(processTree(child.pid!).length, processesBefore, 'as many processes as before: the old decode processes are gone')
  t.ok(after - before < RSS_TOLERANCE_MB, `RSS ${before.toFixed(0)} MiB before, ${after.toFixed(0)} MiB after ${RELOADS} reloads (tolerance +${RSS_TOLERANCE_MB} MiB)`, { log: svc.log })
  t.equal(await fetch(`${url}/readyz`).then((r) => r.status), 200, 'still ready')
  t.comment(`RSS before ${before.toFixed(0)} MiB, after ${RELOADS} reloads ${after.toFixed(0)} MiB (${existsSync(jemalloc) ? 'jemalloc' : 'glibc, 2 arenas'})`)
})

if (why) t.comment(`skipped: ${why}`)
