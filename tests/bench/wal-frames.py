#!/usr/bin/env python3
"""Which B-tree each page written to a SQLite WAL belongs to, per commit.

    tests/bench/wal-frames.py /path/to/sb.db

Reads `sb.db-wal` beside the database: every frame of the WAL's current generation (since
its last reset, i.e. the commits after the last checkpoint that restarted it), grouped by
commit, and names each frame's page by `dbstat` (the table or index owning it). To see what
a load writes, stop the server with SIGKILL while the load runs (a clean stop checkpoints
and removes the WAL), then run this on the files as they were left; it opens the database
read-only. Needs an SQLite with `dbstat` (Python's and Debian's have it).
"""
import collections
import sqlite3
import struct
import sys

db_path = sys.argv[1]
wal = open(db_path + "-wal", "rb").read()
page_size = struct.unpack(">I", wal[8:12])[0]
salt = wal[16:24]
commits, current, offset = [], [], 32
while offset + 24 + page_size <= len(wal):
    page, commit_size = struct.unpack(">II", wal[offset : offset + 8])
    if wal[offset + 8 : offset + 16] != salt:
        break  # a frame of an earlier generation: the current one ends here
    current.append(page)
    if commit_size:
        commits.append(current)
        current = []
    offset += 24 + page_size
if not commits:
    sys.exit("no committed frames in the WAL")
owner = dict(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True).execute("SELECT pageno, name FROM dbstat"))
frames = collections.Counter(owner.get(p, "?") for c in commits for p in c)
print(f"page size {page_size}, {len(commits)} commits, {sum(map(len, commits))} frames")
for name, n in frames.most_common():
    print(f"{name:40s} {n / len(commits):7.1f} frames per commit")
