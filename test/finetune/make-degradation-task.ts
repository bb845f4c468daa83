/**
 * Builds the degradation task (see degradations.ts) into a label database:
 *   npx tsx test/finetune/make-degradation-task.ts /tmp/degradations.sqlite
 */
import { LabelStore } from '../../src/labels/store.js'
import { buildVariants, cleanSourcePhotos, storeVariants } from './degradations.js'

const path = process.argv[2]
if (!path) {
  process.stderr.write('usage: tsx test/finetune/make-degradation-task.ts DB\n')
  process.exitCode = 2
} else {
  const sources = cleanSourcePhotos()
  const variants = await buildVariants(sources)
  const store = await LabelStore.open(path)
  try {
    storeVariants(store, variants)
    process.stdout.write(`${variants.length} rated variants of ${sources.length} photos in ${path}\n`)
  } finally {
    store.close()
  }
}
