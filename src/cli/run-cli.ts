import { runBatchCommand, runRankHotelsCommand } from './batch-command.js'
import { runCalibrateCommand } from './calibrate-command.js'
import { runFinetuneCommand, runLabelsCommand } from './finetune-command.js'
import { reportFailure, type CliIo } from './io.js'
import { runModelsCommand, type ModelsCommandDeps } from './models-command.js'
import { version } from './version.js'

export const USAGE = `usage: nima-serve <command> [options]     (every command takes --help)

commands:
  serve                             start the HTTP service (configured by environment variables)
  models <ensure|synth|pull|import|fp16|list>
                                    manage the NIMA models (see: nima-serve models --help)
  batch --input F --output R.jsonl  score many images offline: resumable, sharded, cached
  rank-hotels --input R.jsonl ...   each hotel's images in rank order, best first
  calibrate --input R.jsonl ...     percentiles against your catalogue, a map to your raters' scale (SCORE_CALIBRATION)
  labels <export|import|...>        manage the labelling database
  finetune --base ID --labels F     train a new head on your labels (Earth Mover's loss)

options:
  --help, -h                        this text
  --version, -v                     the installed version`

const HELP = new Set(['help', '--help', '-h'])

export { version } from './version.js'

/**
 * `--help` anywhere after a command group's subcommand asks for that group's usage, so
 * `models pull --help` helps instead of failing on an unknown option.
 */
function groupArgs(rest: readonly string[]): readonly string[] {
  return rest.some((a) => a === '--help' || a === '-h') ? ['--help'] : rest
}

/**
 * Dispatches argv and turns failures into an exit code (reportFailure: expected failures
 * print one message and no stack; anything else is a bug and keeps its stack).
 */
export async function runCli(argv: readonly string[], io: CliIo, deps: ModelsCommandDeps = {}): Promise<number> {
  const [command, ...rest] = argv
  try {
    if (command === 'serve') {
      if (rest.length > 0) {
        io.out('usage: nima-serve serve\n\nStarts the HTTP service; it is configured by environment variables (docs/configuration.md).')
        return HELP.has(rest[0]!) ? 0 : 2
      }
      await import('../main.js')
      return 0
    }
    if (command === '--version' || command === '-v' || command === 'version') {
      io.out(version())
      return 0
    }
    if (command === 'models') return await runModelsCommand(groupArgs(rest), io, deps)
    if (command === 'batch') return await runBatchCommand(rest, io)
    if (command === 'rank-hotels') return await runRankHotelsCommand(rest, io)
    if (command === 'calibrate') return await runCalibrateCommand(rest, io)
    if (command === 'finetune') return await runFinetuneCommand(rest, io)
    if (command === 'labels') return await runLabelsCommand(groupArgs(rest), io)
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
