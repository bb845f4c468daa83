/**
 * TraceChunks' bookkeeping with the real SDK in this process, its spans kept in memory: a
 * chunk's root span ends when its last item does, whatever order they finish in, and the
 * last chunk ends on close().
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node'
import { trace, context } from '@opentelemetry/api'
import t from 'tap'
import { TraceChunks } from '../../src/batch/trace-chunks.js'

t.test('chunks of 2: five items make three traces, each ending after its items', async (t) => {
  const exporter = new InMemorySpanExporter()
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  provider.register()
  t.teardown(async () => {
    await provider.shutdown()
    trace.disable()
    context.disable()
  })
  const chunks = new TraceChunks(2)
  // Items finish in reverse order of their start.
  const delays = [50, 40, 30, 20, 10]
  const results = await Promise.all(delays.map((ms, i) => chunks.run(i + 1, async () => (await sleep(ms), i + 1), (r) => ({ 'test.result': r }))))
  chunks.close()
  t.same(results, [1, 2, 3, 4, 5])

  const spans = exporter.getFinishedSpans()
  const roots = spans.filter((s) => s.name === 'batch chunk')
  t.same(roots.map((s) => [s.attributes['nima.batch.first_line'], s.attributes['nima.batch.items']]).sort(), [[1, 2], [3, 2], [5, 1]])
  t.equal(new Set(roots.map((s) => s.spanContext().traceId)).size, 3, 'one trace per chunk')
  for (const root of roots) {
    const items = spans.filter((s) => s.name === 'batch item' && s.spanContext().traceId === root.spanContext().traceId)
    t.equal(items.length, root.attributes['nima.batch.items'])
    for (const item of items) {
      t.equal(item.parentSpanContext?.spanId, root.spanContext().spanId)
      t.equal(item.attributes['test.result'], item.attributes['nima.batch.line'])
      // Each span anchors its clock on Date.now() when it starts (ms granularity): allow 2 ms.
      t.ok(hr(item.endTime) <= hr(root.endTime) + 2e6, 'the chunk ends after its items')
    }
  }
})

t.test('without an SDK: items run untouched', async (t) => {
  const chunks = new TraceChunks(2)
  t.equal(await chunks.run(1, async () => 'x', () => ({})), 'x')
  chunks.close()
})

function hr([s, ns]: [number, number]): number {
  return s * 1e9 + ns
}
