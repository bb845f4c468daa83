/** Lines the load worker prints on stdout as its measured window opens and closes (bench/lib/load.ts samples CPU there). */
export const LOAD_EVENTS = { measuring: '#measuring', measured: '#measured' } as const
