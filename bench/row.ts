/** One figure of a benchmark: bazil's value, and where there is one the baseline measured in the same run and their ratio. */
export interface Row {
  name: string
  value: number
  unit: string
  baseline?: string
  baselineValue?: number
  ratio?: number
  target?: number
  ok?: boolean
  note?: string
}
