import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { loadConfig, type Config } from '../../src/config/load.js'
import type { RawConfig } from '../../src/config/schema.js'
import { startServer, type Server } from '../../src/server.js'
import { testModelsDir } from './models.js'

export interface RunningService {
  server: Server
  config: Config
  url: string
}

/** The real service on 127.0.0.1, port 0, with synthetic test models; URLs to 127.0.0.1 allowed. */
export async function startTestService(overrides: Partial<RawConfig> = {}): Promise<RunningService> {
  const config = loadConfig({}, {
    HOST: '127.0.0.1',
    PORT: 0,
    LOG_LEVEL: 'silent',
    MODELS_DIR: await testModelsDir(),
    URL_ALLOWLIST: '127.0.0.1',
    ...overrides,
  })
  const server = await startServer(config)
  await server.ready
  const { port } = server.app.server.address() as AddressInfo
  return { server, config, url: `http://127.0.0.1:${port}` }
}

/** A plain HTTP server on 127.0.0.1:0 for URL inputs; returns its base URL. */
export async function startUpstream(
  hostOrHandler: string | ((req: IncomingMessage, res: ServerResponse) => void),
  maybeHandler?: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: HttpServer; url: string; close: () => Promise<void> }> {
  const host = typeof hostOrHandler === 'string' ? hostOrHandler : '127.0.0.1'
  const handler = typeof hostOrHandler === 'string' ? maybeHandler! : hostOrHandler
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  const { port } = server.address() as AddressInfo
  return {
    server,
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
