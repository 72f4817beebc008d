/** The seed a stress starts from: FAULTLINE_STRESS_SEED when set, else `fallback`. */
export function baseSeed(fallback: number): number {
  const env = process.env.FAULTLINE_STRESS_SEED
  if (env === undefined || env === '') return fallback
  const seed = Number(env)
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`FAULTLINE_STRESS_SEED must be a whole number from 0 to 2^32-1 (got ${env})`)
  return seed
}
