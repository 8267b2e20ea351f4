// Local edits of a node created since the last flush fold into its creation (one record put
// instead of one per edit): what replicas see must be exactly what the edits in sequence give.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Tree, type ReadTree } from '../src/tree/index.js'

const h = (n: number): string => n.toString(16).padStart(64, '0')
const A = 'aa'.repeat(16)
const B = 'bb'.repeat(16)

function dump(t: ReadTree): string {
  return [...t.walk()].map((s) => `${s.path} ${s.kind} ${s.mode.toString(8)} ${s.mtime} ${s.id} ${s.content ? `${s.content.hash}:${s.content.size}` : s.target ?? ''}`).join('\n')
}

/** The same script on two trees with identical clocks and ids: one flushed after every op, one once at the end. */
function scripted(actor: string) {
  let time = 1000
  let id = 0x1000
  return Tree.create(actor, { clock: () => time++, random: (bytes) => (id++).toString(16).padStart(bytes * 2, '0') })
}

test('edits folded into an unflushed creation replicate to the same state as the same edits flushed one by one', () => {
  const script = (t: Tree, step: () => void): void => {
    t.mkdir('/d', { mode: 0o750 }); step()
    t.writeFile('/d/f', { hash: h(1), size: 0 }, { mode: 0o644 }); step()
    t.writeFile('/d/f', { hash: h(2), size: 20 }, { mtime: 5000 }); step()
    t.setattr('/d/f', { mode: 0o600 }); step()
    t.setattr('/d/f', { mtime: 6000 }); step()
    t.rename('/d/f', '/d/g'); step()
    t.writeFile('/d/gone', { hash: h(3), size: 3 }); step()
    t.unlink('/d/gone'); step()
    t.setattr('/d', { mtime: 7000 }); step()
    t.symlink('/d/l', 'g'); step()
    t.rename('/d/l', '/l'); step()
    t.writeFile('/d/g', { hash: h(4), size: 40 }); step()
  }
  const stepwise = scripted(A)
  const stepChanges: ReturnType<Tree['takeChanges']> = []
  script(stepwise, () => stepChanges.push(...stepwise.takeChanges()))
  const folded = scripted(A)
  script(folded, () => {})
  const foldedChanges = folded.takeChanges()
  assert.equal(dump(folded), dump(stepwise), 'the local views agree')
  const fromSteps = Tree.create(B)
  fromSteps.applyChanges(stepChanges)
  const fromFolded = Tree.create(B)
  fromFolded.applyChanges(foldedChanges)
  assert.equal(dump(fromFolded), dump(fromSteps), 'replicas agree')
  assert.equal(dump(fromFolded), dump(folded))
  assert.deepEqual(fromFolded.problems(), [])
  for (const t of [stepwise, folded, fromSteps, fromFolded]) t.free()
})
