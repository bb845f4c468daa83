import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import t from 'tap'
import { imageHashes } from '../../src/imaging/phash.js'
import { decodeImage } from '../../src/imaging/decode.js'
import { DecodePool } from '../../src/imaging/decode-pool.js'
import { sampleNearest } from '../../src/imaging/tensor.js'
import { manyScanJpeg } from '../helpers/many-scan-jpeg.js'
import { samplePhotos } from '../helpers/paths.js'

// 2,647 scans over 4 MP: about 1.6 s of libjpeg on this machine, far past the 300 ms budget.
const overrunning = manyScanJpeg({ width: 2000, height: 2000 })
const photos = samplePhotos().filter((p) => p.endsWith('.jpg')).slice(0, 3)
const alive = (pid: number | undefined) => {
  try {
    return pid !== undefined && process.kill(pid, 0)
  } catch {
    return false
  }
}

const pool = new DecodePool({ size: 2, timeoutMs: 300, maxInputPixels: 64_000_000 })
t.teardown(() => pool.close())

t.test('the samples that come back equal sampling the image decoded in this process', { skip: photos.length === 0 ? '../shared/images not present' : false }, async (t) => {
  for (const path of photos) {
    const bytes = readFileSync(path)
    const here = await decodeImage(bytes, { maxInputPixels: 64_000_000 })
    const there = await pool.decode(bytes, { sizes: [[224, 224], [100, 60]] })
    t.same(there.image, { id: here.id, format: here.format, width: here.width, height: here.height, bytes: here.bytes, preprocess: 'exact', ...imageHashes(here) }, `${basename(path)}: the same summary and perceptual hash`)
    t.same(Buffer.from(there.samples[0]!.data), Buffer.from(sampleNearest(here, 224, 224).data), `${basename(path)} 224x224 identical`)
    t.same(Buffer.from(there.samples[1]!.data), Buffer.from(sampleNearest(here, 100, 60).data), `${basename(path)} 100x60 identical`)
  }
})

t.test('a decode over its budget is killed, answered 422 at the budget, and its process replaced', async (t) => {
  await pool.decode(readFileSync(photos[0]!), { sizes: [[8, 8]] }) // both processes started and warm
  const before = pool.pids
  const started = performance.now()
  const err = (await pool.decode(overrunning, { sizes: [[224, 224]] }).catch((e: unknown) => e)) as { code?: string; message?: string }
  const ms = performance.now() - started
  t.equal(err.code, 'NIMA_DECODE_TIMEOUT')
  t.match(err.message, /longer than 300 ms \(DECODE_TIMEOUT_MS\)/)
  t.ok(ms < 1000, `answered after ${ms.toFixed(0)} ms (budget 300)`)
  t.equal(pool.stats.timeouts, 1)
  const killed = before.find((pid) => !pool.pids.includes(pid))
  t.ok(killed !== undefined, 'one process was replaced')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.notOk(alive(killed), 'the overrunning process is gone')
  const again = await pool.decode(readFileSync(photos[0]!), { sizes: [[8, 8]] })
  t.equal(again.samples[0]!.data.length, 8 * 8 * 3, 'the pool decodes again afterwards')
})

t.test('a process that dies mid-decode fails that image with 422 and is replaced', async (t) => {
  const slow = new DecodePool({ size: 1, timeoutMs: 10_000, maxInputPixels: 64_000_000 })
  t.teardown(() => slow.close())
  await slow.decode(readFileSync(photos[0]!), { sizes: [[8, 8]] }) // started
  const pending = slow.decode(overrunning, { sizes: [[224, 224]] })
  await new Promise((resolve) => setTimeout(resolve, 200)) // decoding
  const victim = slow.pids[0]!
  process.kill(victim, 'SIGKILL')
  const err = (await pending.catch((e: unknown) => e)) as { code?: string; message?: string }
  t.equal(err.code, 'NIMA_UNDECODABLE_IMAGE')
  t.equal(err.message, 'The decoder failed on this image')
  t.equal(slow.stats.crashes, 1)
  const ok = await slow.decode(readFileSync(photos[0]!), { sizes: [[8, 8]] })
  t.equal(ok.image.format, 'jpeg', 'a fresh process took its place')
  t.not(slow.pids[0], victim)
})

t.test('more decodes at once than processes is a caller bug; close fails the ones in flight and stops every process', async (t) => {
  const small = new DecodePool({ size: 1, timeoutMs: 10_000, maxInputPixels: 64_000_000 })
  const inFlight = small.decode(overrunning, { sizes: [[8, 8]] }).catch((e: unknown) => e)
  await t.rejects(small.decode(overrunning, { sizes: [[8, 8]] }), { message: /more decodes at once than its 1 processes/ })
  const pids = small.pids
  await small.close()
  t.match(await inFlight, { code: 'NIMA_NOT_READY' })
  t.notOk(alive(pids[0]), 'process stopped')
  await t.rejects(small.decode(overrunning, { sizes: [[8, 8]] }), { code: 'NIMA_NOT_READY' })
})

t.test('a process above recycleRssBytes after a decode is replaced by the spare, and is gone before the call returns', async (t) => {
  const p = new DecodePool({ size: 1, timeoutMs: 10_000, maxInputPixels: 64_000_000, recycleRssBytes: 1 })
  t.teardown(() => p.close())
  const photo = readFileSync(photos[0]!)
  const first = p.pids[0]
  const r = await p.decode(photo, { sizes: [[8, 8]] })
  t.equal(r.samples[0]!.data.length, 8 * 8 * 3)
  t.equal(p.stats.recycled, 1)
  t.not(p.pids[0], first, 'a different process holds the slot')
  t.notOk(alive(first), 'the recycled process has exited')
  t.equal((await p.decode(photo, { sizes: [[8, 8]] })).image.format, 'jpeg', 'and the replacement decodes')
})
