import t from 'tap'
import { imageKey, isImageInfo, isScore, isUrlRecord, modelCacheId, modelIdentity, scoreKey, urlKey } from '../../src/cache/score-key.js'

const sha = 'a'.repeat(64)
const model = { id: 'aesthetic', version: 'v2', sha256: '0123456789abcdef'.repeat(4) }

t.test('the key names the image bytes and the model fingerprint (id, version, file sha256)', async (t) => {
  t.equal(modelCacheId(model), 'aesthetic@v2#0123456789abcdef')
  t.equal(scoreKey(sha, 'exact', model), `s1/${sha}/aesthetic@v2#0123456789abcdef`, 'exact keeps the keys it had before PREPROCESS existed')
  t.equal(imageKey(sha, 'exact'), `i1/${sha}`)
  t.not(scoreKey(sha, 'exact', { ...model, version: 'v3' }), scoreKey(sha, 'exact', model), 'a new version misses')
  t.not(scoreKey(sha, 'exact', { ...model, sha256: 'f'.repeat(64) }), scoreKey(sha, 'exact', model), 'new weights under the same version miss')
  t.not(scoreKey('b'.repeat(64), 'exact', model), scoreKey(sha, 'exact', model), 'other bytes miss')
})

t.test('the preprocessing is part of the key: exact and fast results never mix', async (t) => {
  t.equal(scoreKey(sha, 'fast', model), `s1/${sha}/aesthetic@v2#0123456789abcdef/fast`)
  t.equal(imageKey(sha, 'fast'), `i1/${sha}/fast`)
  t.not(scoreKey(sha, 'fast', model), scoreKey(sha, 'exact', model))
  t.not(imageKey(sha, 'fast'), imageKey(sha, 'exact'), 'the perceptual hashes too: a fast decode hashes its own pixels')
  t.same(modelIdentity({ manifest: { ...model, task: 'aesthetic' } as never }), model, 'only the fingerprint is taken from a manifest')
})

t.test('the batch CLI and the service share the definition', async (t) => {
  const batch = await import('../../src/batch/score-cache.js')
  t.equal(batch.modelCacheId, modelCacheId)
})

t.test('URL keys are hashed: bounded, and no query-string secret in a key', async (t) => {
  const k = urlKey('https://img.example/p.jpg?token=secret')
  t.match(k, /^u1\/[0-9a-f]{64}$/)
  t.notMatch(k, /secret/)
  t.not(urlKey('https://img.example/p.jpg?token=other'), k)
})

t.test('values are checked when read', async (t) => {
  t.ok(isScore({ mean: 5, std: 1, distribution: [0.1, 0.9] }))
  t.notOk(isScore({ mean: '5', std: 1, distribution: [] }))
  t.notOk(isScore(null))
  const crops = ['0123456789abcdef', '0123456789abcdef', '0123456789abcdef', '0123456789abcdef']
  t.ok(isImageInfo({ width: 1, height: 2, format: 'jpeg', phash: '0123456789abcdef', phashCrops: crops }))
  t.notOk(isImageInfo({ width: 1, height: 2, format: 'jpeg', phashCrops: crops }), 'no phash (an entry from before phash existed)')
  t.notOk(isImageInfo({ width: 1, height: 2, format: 'jpeg', phash: '0123456789abcdef' }), 'no phashCrops (an entry from before they existed)')
  t.ok(isUrlRecord({ sha256: sha, bytes: 10, etag: '"x"' }))
  t.notOk(isUrlRecord({ sha256: 'nothex', bytes: 10 }))
  t.notOk(isUrlRecord({ sha256: sha, bytes: 10, freshUntil: 'soon' }))
})
