// The one logger of every layer: one line per event on stderr, with a level filter.
export type Level = 'debug' | 'info' | 'warn' | 'error'
export const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error']

export type Log = (level: Level, msg: string) => void

export function parseLevel(text: string): Level {
  if ((LEVELS as readonly string[]).includes(text)) return text as Level
  throw new Error(`invalid log level "${text}": use one of ${LEVELS.join(', ')}`)
}

export function createLogger(min: Level, stream: NodeJS.WritableStream = process.stderr): Log {
  const floor = LEVELS.indexOf(min)
  return (level, msg) => {
    if (LEVELS.indexOf(level) < floor) return
    stream.write(`${new Date().toISOString()} ${level.padEnd(5)} ${msg}\n`)
  }
}
