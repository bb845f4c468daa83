/** Prints the folder of synthetic aesthetic + technical models (built once under .cache/). */
import { testModelsDir } from '../../test/helpers/models.js'

process.stdout.write(`${await testModelsDir()}\n`)
