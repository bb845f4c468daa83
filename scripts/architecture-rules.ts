/** Prints docs/architecture.md's rules section from .dependency-cruiser.cjs (the single source). */
import { architectureRulesMarkdown } from '../test/helpers/architecture-rules.js'

process.stdout.write(architectureRulesMarkdown() + '\n')
