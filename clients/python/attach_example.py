#!/usr/bin/env python3
"""Attach a piece of this Python process's memory to a faultline handler.

Usage:
    attach_example.py SOCKET SIZE OFFSET [--write PAGES] [--lib PATH]

    SOCKET   the handler's Unix socket (`faultline serve --socket SOCKET ...`)
    SIZE     bytes to map, a multiple of the page size (e.g. 16777216)
    OFFSET   where in the backend object the mapping starts (bytes)
    --write  how many pages to overwrite with a pattern, then flush (default 4)
    --lib    libfaultline.so (default: $FAULTLINE_LIB, else ./libfaultline.so)

Maps SIZE bytes of anonymous memory, attaches it with write-back on, hashes
its contents (every page is fetched from the backend on first touch), writes
a pattern into PAGES pages spread over the range, flushes them to the
backend, detaches, and prints one JSON line:
    {"sha256": "<hex of the contents as read>", "pages_written": PAGES, ...}

Against a handler that writes back (`faultline serve`), a second run over
the same range hashes the pattern in: the sha256 changes. serve-floor, the
benchmark handler, acknowledges the flush but writes nothing.

Standard library only. Build the library with `node scripts/build-c.mjs`.
"""
import argparse
import ctypes
import hashlib
import json
import mmap
import os
import sys

FAULTLINE_WRITE_BACK = 1


def load(path):
    lib = ctypes.CDLL(path, use_errno=True)
    lib.faultline_attach_ex.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint64, ctypes.c_uint]
    lib.faultline_attach_ex.restype = ctypes.c_int
    lib.faultline_flush.argtypes = [ctypes.c_int]
    lib.faultline_detach.argtypes = [ctypes.c_int]
    lib.faultline_last_error.restype = ctypes.c_char_p
    return lib


def check(lib, rc):
    if rc < 0:
        raise OSError(ctypes.get_errno(), lib.faultline_last_error().decode())
    return rc


def main(argv):
    parser = argparse.ArgumentParser(description="Attach memory to a faultline handler.")
    parser.add_argument("socket")
    parser.add_argument("size", type=int)
    parser.add_argument("offset", type=int)
    parser.add_argument("--write", type=int, default=4, metavar="PAGES")
    parser.add_argument("--lib", default=os.environ.get("FAULTLINE_LIB", "./libfaultline.so"))
    args = parser.parse_args(argv)
    socket_path, size, offset, pages_to_write = args.socket, args.size, args.offset, args.write
    lib = load(args.lib)

    # Private anonymous memory, as the kernel's userfaultfd wants: Python's
    # default for mmap(-1, ...) is MAP_SHARED, which is shmem.
    mem = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    anchor = ctypes.c_char.from_buffer(mem)  # pins the buffer while we use its address
    addr = ctypes.addressof(anchor)

    handle = check(lib, lib.faultline_attach_ex(socket_path.encode(), addr, size, offset, FAULTLINE_WRITE_BACK))
    try:
        digest = hashlib.sha256()
        step = 1 << 20
        for pos in range(0, size, step):
            digest.update(mem[pos:pos + step])  # each first touch of a page is a fault the handler serves

        page = mmap.PAGESIZE
        pages = size // page
        written = []
        count = min(pages_to_write, pages)
        for k in range(count):
            index = k * (pages // count)
            mem[index * page:(index + 1) * page] = bytes([(index * 7 + 1) & 0xFF]) * page
            written.append(index)
        check(lib, lib.faultline_flush(handle))
    finally:
        # Detach even on errors: the handler stops serving and releases the range.
        rc = lib.faultline_detach(handle)
    check(lib, rc)

    print(json.dumps({"sha256": digest.hexdigest(), "bytes": size, "offset": offset,
                      "pages_written": len(written), "page_size": page, "written_page_indexes": written}))
    del anchor
    mem.close()


if __name__ == "__main__":
    main(sys.argv[1:])
