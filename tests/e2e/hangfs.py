"""A FUSE filesystem whose statfs hangs on demand (tests/e2e/test_faults_fs.py).

    /usr/bin/python3 hangfs.py MOUNTPOINT CONTROL_FILE

While CONTROL_FILE exists, statfs sleeps (up to 60 s) until it is removed,
like a dead NFS server; otherwise it answers at once with fixed numbers:
4 KiB blocks, 1000 blocks, 250 free and available (usage 75 %).
Runs in the foreground, multithreaded, until unmounted.
"""

import errno
import os
import stat
import sys
import time

from fusepy import FUSE, FuseOSError, Operations


class HangFS(Operations):
    def __init__(self, control):
        self.control = control

    def getattr(self, path, fh=None):
        if path != "/":
            raise FuseOSError(errno.ENOENT)
        now = time.time()
        return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_atime": now, "st_mtime": now, "st_ctime": now}

    def readdir(self, path, fh):
        return [".", ".."]

    def statfs(self, path):
        deadline = time.monotonic() + 60
        while os.path.exists(self.control) and time.monotonic() < deadline:
            time.sleep(0.05)
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1000, "f_bfree": 250, "f_bavail": 250,
                "f_files": 100, "f_ffree": 50, "f_namemax": 255}


if __name__ == "__main__":
    FUSE(HangFS(sys.argv[2]), sys.argv[1], foreground=True, nothreads=False, fsname="hangfs")
