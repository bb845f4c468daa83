/**
 * The architecture's rules, checked by `npm test` (`npm run layers` alone); the source of
 * truth that docs/architecture.md prints (`npx tsx scripts/architecture-rules.ts`; a test
 * keeps the two in step).
 *
 * The code is a stack of rooms: a folder of src/, or one file at its root. ROOMS lists them
 * top to bottom, grouped into layers, and a module may import only from its own room and
 * from the rooms listed after it. So no import climbs back up, and no two rooms import each
 * other. Imports made only for a type count: a reader follows them all the same.
 */

/** Top to bottom. A room is a folder of src/ (trailing slash) or a file at its root. */
const LAYERS = [
  { layer: 'entries', rooms: ['src/cli/', 'src/main.ts', 'src/main.cts'] },
  {
    layer: 'process',
    rooms: ['src/service-main.ts', 'src/startup.ts', 'src/server.ts', 'src/app.ts', 'src/gc-settings.ts', 'src/tracing/'],
  },
  { layer: 'HTTP', rooms: ['src/routes/', 'src/http/', 'src/metrics/', 'src/service-state.ts'] },
  { layer: 'tools beside scoring', rooms: ['src/batch/', 'src/finetune/', 'src/labels/', 'src/model-tools/'] },
  { layer: 'scoring', rooms: ['src/scoring/'] },
  { layer: 'the model at run time', rooms: ['src/models/'] },
  { layer: 'parts', rooms: ['src/calibration/', 'src/cache/', 'src/fetching/', 'src/inference/', 'src/imaging/', 'src/threads/'] },
  { layer: 'base', rooms: ['src/config/', 'src/util/', 'src/errors.ts'] },
]

/** The only modules that may import ONNX Runtime: the backend and its session thread. */
const ORT_MODULES = ['src/inference/onnx-backend.ts', 'src/inference/session-thread.ts']

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
const pattern = (room) => (room.endsWith('/') ? `^${escape(room)}` : `^${escape(room)}$`)
const ROOMS = LAYERS.flatMap((l) => l.rooms)

const downOnly = ROOMS.slice(1).map((room, i) => {
  const above = ROOMS.slice(0, i + 1)
  return {
    name: `down-only:${room}`,
    comment: `${room} imports only rooms listed after it in .dependency-cruiser.cjs (docs/architecture.md); it may not import ${above.join(', ')}`,
    severity: 'error',
    from: { path: pattern(room) },
    to: { path: above.map(pattern) },
  }
})

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'no module imports itself back through others',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...downOnly,
    {
      name: 'room-listed',
      comment: 'every file of src/ is in a room of LAYERS in .dependency-cruiser.cjs; add a new folder there (docs/architecture.md says how)',
      severity: 'error',
      from: { path: '^src/', pathNot: ROOMS.map(pattern) },
      to: {},
    },
    {
      name: 'room-listed-target',
      comment: 'every file of src/ is in a room of LAYERS in .dependency-cruiser.cjs; add a new folder there (docs/architecture.md says how)',
      severity: 'error',
      from: {},
      to: { path: '^src/', pathNot: ROOMS.map(pattern) },
    },
    {
      name: 'onnxruntime-only-in-the-backend',
      comment: `ONNX Runtime is imported only by ${ORT_MODULES.join(' and ')}; everything else goes through the backend`,
      severity: 'error',
      from: { pathNot: ORT_MODULES.map(pattern) },
      to: { path: '^node_modules/onnxruntime-' },
    },
  ],
  options: {
    // The pages' browser scripts are served files, not modules of the service.
    exclude: { path: '^src/[^/]+/page/' },
    doNotFollow: { path: '^node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
}
// For scripts/architecture-rules.ts, which prints them in docs/architecture.md. Not
// enumerable: dependency-cruiser refuses keys it does not know.
Object.defineProperty(module.exports, 'LAYERS', { value: LAYERS })
Object.defineProperty(module.exports, 'ORT_MODULES', { value: ORT_MODULES })
