/** Prints docs/configuration.md's table from the config schema (the single source). */
import { configTable } from '../test/helpers/config-table.js'

process.stdout.write(configTable() + '\n')
