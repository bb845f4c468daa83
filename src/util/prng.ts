/**
 * A tiny seeded PRNG. Synthetic models must be byte-identical for a given seed on every
 * machine, which Math.random cannot give. V8's Math.log/cos come from fdlibm ports, so
 * the Box-Muller normals are reproducible across platforms too.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number
  uniform(low: number, high: number): number
  /** Standard normal. */
  normal(): number
}

/** mulberry32: 32-bit state, period 2^32, good enough for weight initialisation. */
export function mulberry32(seed: number): Rng {
  let state = seed >>> 0
  let spare: number | undefined
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    uniform: (low, high) => low + (high - low) * next(),
    normal: () => {
      if (spare !== undefined) {
        const value = spare
        spare = undefined
        return value
      }
      // 1 - next() is in (0, 1], so the log never sees 0.
      const radius = Math.sqrt(-2 * Math.log(1 - next()))
      const angle = 2 * Math.PI * next()
      spare = radius * Math.sin(angle)
      return radius * Math.cos(angle)
    },
  }
}
