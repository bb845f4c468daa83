/**
 * Where the real idealo weights come from, pinned to one commit and to the git blob ids
 * of the files in it. The table is data, passed into pull, so tests (and mirrors) can
 * point it elsewhere.
 */
import { ModelError } from '../models/model-error.js'

export type Task = 'aesthetic' | 'technical'

export const TASKS: readonly Task[] = ['aesthetic', 'technical']

export interface KerasSource {
  task: Task
  /** Model id used in requests; equals the task for the idealo models. */
  id: string
  version: string
  fileName: string
  url: string
  /** sha1("blob <size>\0" + content), as git and GitHub report it. */
  gitBlobSha1: string
  /**
   * Marks weights that are not idealo's (test fixtures served like the real files), so
   * their manifest says synthetic and nobody mistakes their scores for real ones.
   */
  synthetic?: boolean
  notes?: string
}

export const IDEALO_COMMIT = 'dceaf7c2d218bc6e80b21d6e147e3b56a21b7f31'
const BASE_URL = `https://raw.githubusercontent.com/idealo/image-quality-assessment/${IDEALO_COMMIT}/models/MobileNet`

export const IDEALO_SOURCES: readonly KerasSource[] = Object.freeze([
  {
    task: 'aesthetic',
    id: 'aesthetic',
    version: 'idealo-0.07',
    fileName: 'weights_mobilenet_aesthetic_0.07.hdf5',
    url: `${BASE_URL}/weights_mobilenet_aesthetic_0.07.hdf5`,
    gitBlobSha1: '003fb321ce92445e41d708144a3656589f9214e7',
  },
  {
    task: 'technical',
    id: 'technical',
    version: 'idealo-0.11',
    fileName: 'weights_mobilenet_technical_0.11.hdf5',
    url: `${BASE_URL}/weights_mobilenet_technical_0.11.hdf5`,
    gitBlobSha1: '5e4a4ca2ce639309bfa4038d0bc10ba92b93bd26',
  },
])

/** The same files from a mirror: `<baseUrl>/<fileName>`, still checked against the pinned ids. */
export function withBaseUrl(sources: readonly KerasSource[], baseUrl: string): KerasSource[] {
  let parsed: URL
  try {
    parsed = new URL(baseUrl)
  } catch {
    throw new ModelError('MODEL_USAGE', `--base-url: expected an http(s) URL, got ${JSON.stringify(baseUrl)}`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ModelError('MODEL_USAGE', `--base-url: expected an http(s) URL, got ${JSON.stringify(baseUrl)}`)
  }
  const base = parsed.href.endsWith('/') ? parsed.href : `${parsed.href}/`
  return sources.map((s) => ({ ...s, url: new URL(s.fileName, base).href }))
}
