// Sizes for people (1.5GiB), on their own: the CLI shows them without loading the store's modules.

/** Bytes in binary units, two significant decimals at most: `1.5GiB`, `512KiB`, `17B`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = bytes
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${i === 0 ? v : Number(v.toFixed(2))}${units[i]}`
}
