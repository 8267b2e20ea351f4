// The groups `bazil --help` (and the man page) lists the commands in, in this order. Each
// command names its group in its `static usage` (category: CATEGORY.volumes).

export const CATEGORY = {
  volumes: 'Volumes',
  sync: 'Sync & peers',
  storage: 'Storage & cache',
  history: 'History',
  server: 'Server',
  identity: 'Identity',
  shell: 'Help & shell'
} as const

export type Category = (typeof CATEGORY)[keyof typeof CATEGORY]

export const CATEGORY_ORDER: readonly Category[] = Object.values(CATEGORY)
