// Every page of the web view, in the order their tabs show. A page whose ops have not landed
// yet is simply not listed here (it never falls back to argv).
import type { WebPage } from '../page.js'
import { conflicts } from './conflicts.js'
import { files } from './files.js'
import { history } from './history.js'
import { log } from './log.js'
import { overview } from './overview.js'
import { pins } from './pins.js'
import { snapshots } from './snapshots.js'
import { storage } from './storage.js'

export const PAGES: WebPage[] = [overview, files, history, conflicts, snapshots, log, storage, pins]
