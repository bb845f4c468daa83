import { isModelError } from '../models/model-error.js'
import { runModelsCommand, type CliIo, type ModelsCommandDeps } from './models-command.js'

export const USAGE = `usage: nima-serve <command>

commands:
  models <ensure|synth|pull|list>   manage the NIMA models (see: nima-serve models help)`

/**
 * Dispatches argv and turns failures into an exit code. Expected failures (ModelError:
 * offline, bad file, bad option) print one message and no stack; anything else is a bug
 * and keeps its stack.
 */
export async function runCli(argv: readonly string[], io: CliIo, deps: ModelsCommandDeps = {}): Promise<number> {
  const [command, ...rest] = argv
  try {
    if (command === 'models') return await runModelsCommand(rest, io, deps)
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      io.out(USAGE)
      return command === undefined ? 2 : 0
    }
    io.err(`nima-serve: unknown command ${JSON.stringify(command)}\n${USAGE}`)
    return 2
  } catch (err) {
    if (isModelError(err)) {
      io.err(`nima-serve: ${err.message}`)
      return err.code === 'MODEL_USAGE' ? 2 : 1
    }
    io.err(`nima-serve: unexpected failure\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    return 1
  }
}
