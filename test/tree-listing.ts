// A source tree and its listing, for tests that compare trees on disk metadata- and byte-exact
// (posix-archive, copy-roundtrip).
/**
 * A tree's metadata and content, one line per path (sorted; `.snap` left out): type, mode,
 * owner, size, mtime (seconds; not for symlinks), device numbers, symlink target, the first
 * path of its inode (hard links), extended attributes, and the content's SHA-256.
 */
export const LISTING = String.raw`
import hashlib, os, stat, sys
root = sys.argv[1]
first = {}
out = []
for d, dirs, files in os.walk(root):
    dirs[:] = sorted(x for x in dirs if not (d == root and x == '.snap'))
    for name in sorted(dirs + files):
        p = os.path.join(d, name)
        rel = os.path.relpath(p, root)
        st = os.lstat(p)
        kind = stat.S_IFMT(st.st_mode)
        row = [rel, oct(st.st_mode), str(st.st_uid), str(st.st_gid)]
        if stat.S_ISREG(kind):
            row.append('size=%d' % st.st_size)
            row.append('sha256=' + hashlib.sha256(open(p, 'rb').read()).hexdigest())
        if not stat.S_ISLNK(kind):
            row.append('mtime=%d' % int(st.st_mtime))
        if stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
            row.append('rdev=%d,%d' % (os.major(st.st_rdev), os.minor(st.st_rdev)))
        if stat.S_ISLNK(kind):
            row.append('-> ' + os.readlink(p))
        if not stat.S_ISDIR(kind) and st.st_nlink > 1:
            row.append('inode-of=' + first.setdefault(st.st_ino, rel))
            row.append('nlink=%d' % st.st_nlink)
        if not stat.S_ISLNK(kind) and not stat.S_ISFIFO(kind) and not stat.S_ISCHR(kind) and not stat.S_ISBLK(kind):
            for x in sorted(os.listxattr(p, follow_symlinks=False)):
                row.append('xattr %s=%s' % (x, os.getxattr(p, x, follow_symlinks=False).hex()))
        out.append(' '.join(row))
print('\n'.join(out))
`

/**
 * A bash script making `src/` in the working directory: every kind of node (files, an empty
 * one, hard links, a symlink, a fifo, a character and a block device, directories with
 * set-gid and sticky bits), owners, modes and times. `extra` runs after the nodes are made and
 * before owners, modes and times are set (more nodes, xattrs), so that those stay as set.
 */
export function sourceTree(extra = ''): string {
  return String.raw`
set -e
mkdir -p src/a/b src/empty-dir
printf 'hello, world\n' > src/f
head -c 300000 /dev/urandom > src/a/big
: > src/a/empty
ln src/f src/a/g
ln src/f src/a/b/h
ln -s a/g src/s
mkfifo -m 640 src/a/pipe
mknod -m 600 src/a/null-dev c 1 3
mknod -m 660 src/a/block-dev b 7 200
${extra}
chown 1234:5678 src/f
chown 1001:1002 src/a src/a/big src/a/pipe src/a/null-dev
chown -h 4242:4343 src/s
chmod 750 src/a; chmod 2775 src/a/b; chmod 1777 src/empty-dir; chmod 4755 src/a/big; chmod 600 src/f
touch -h -d '2019-03-04 05:06:07' src/s
touch -d '2020-01-02 03:04:05' src/f src/a/big src/a/empty src/a/pipe src/a/null-dev src/a/block-dev
touch -d '2021-06-07 08:09:10' src/a/b src/empty-dir src/a
`
}
