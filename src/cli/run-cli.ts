import { serveUsage, USAGE, wantsHelp } from './help.js'
import { reportFailure, type CliIo } from './io.js'
import type { ModelsCommandDeps } from './models-command.js'
import { version } from './version.js'

export { USAGE } from './help.js'

const HELP = new Set(['help', '--help', '-h'])

/**
 * Each command's module, imported when that command runs: together they pull in sharp,
 * ONNX Runtime, SQLite and fastify, which `--help` and `--version` do not need (loading
 * them all made the first `npx nima-serve --help` take seconds).
 */
const COMMANDS: Record<string, (args: readonly string[], io: CliIo, deps: ModelsCommandDeps) => Promise<number>> = {
  models: async (args, io, deps) => (await import('./models-command.js')).runModelsCommand(args, io, deps),
  batch: async (args, io) => (await import('./batch-command.js')).runBatchCommand(args, io),
  'rank-hotels': async (args, io) => (await import('./batch-command.js')).runRankHotelsCommand(args, io),
  calibrate: async (args, io) => (await import('./calibrate-command.js')).runCalibrateCommand(args, io),
  finetune: async (args, io) => (await import('./finetune-command.js')).runFinetuneCommand(args, io),
  labels: async (args, io) => (await import('./finetune-command.js')).runLabelsCommand(args, io),
}

export { version } from './version.js'

/**
 * Dispatches argv and turns failures into an exit code. Expected failures (ModelError:
 * offline, bad file, bad option) print one message and no stack; anything else is a bug
 * and keeps its stack.
 */
export async function runCli(argv: readonly string[], io: CliIo, deps: ModelsCommandDeps = {}): Promise<number> {
  const [command, ...rest] = argv
  try {
    if (command === 'serve') {
      if (rest.length > 0) {
        if (wantsHelp(rest) || HELP.has(rest[0]!)) {
          io.out(serveUsage())
          return 0
        }
        io.err(`nima-serve serve: takes no arguments (got ${rest.join(' ')}); it is configured by environment variables (nima-serve serve --help)`)
        return 2
      }
      await import('../main.js')
      return 0
    }
    if (command === '--version' || command === '-v' || command === 'version') {
      io.out(version())
      return 0
    }
    const run = command === undefined ? undefined : COMMANDS[command]
    if (run) return await run(rest, io, deps)
    if (command === undefined || HELP.has(command)) {
      io.out(USAGE)
      return command === undefined ? 2 : 0
    }
    io.err(`nima-serve: unknown command ${JSON.stringify(command)}\n${USAGE}`)
    return 2
  } catch (err) {
    return reportFailure(io, undefined, err)
  }
}
