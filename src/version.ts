// bazil's version, as `bazil --version` and `bazil status` say it.
export const VERSION = '0.1.0'
