/**
 * Writes the sample /score answer into README.md from a real answer: the README's own
 * example image scored by the service with the synthetic models `npm ci` installs.
 * test/service/readme.test.ts fails when the committed sample drifts from what the README's
 * curl gets.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { projectRoot, sharedImages } from '../test/helpers/paths.js'
import { formatScoreSample, withSample } from '../test/helpers/readme.js'
import { startTestService } from '../test/helpers/service.js'

const svc = await startTestService()
try {
  const res = await fetch(`${svc.url}/score`, { method: 'POST', body: readFileSync(join(sharedImages, 'idealo/42039.jpg')), headers: { 'content-type': 'image/jpeg' } })
  if (!res.ok) throw new Error(`/score answered ${res.status}: ${await res.text()}`)
  const readme = join(projectRoot, 'README.md')
  writeFileSync(readme, withSample(readFileSync(readme, 'utf8'), formatScoreSample((await res.json()) as Parameters<typeof formatScoreSample>[0])))
  process.stdout.write('wrote the /score sample into README.md\n')
} finally {
  await svc.server.shutdown()
}
