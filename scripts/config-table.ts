/** Prints the README's configuration table from the config schema (the single source). */
import { configTable } from '../test/helpers/config-table.js'

process.stdout.write(configTable() + '\n')
