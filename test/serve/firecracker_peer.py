"""A peer that speaks Firecracker's UFFD handshake, written from its documented
structure (Firecracker v1.x, src/vmm/src/persist.rs: GuestRegionUffdMapping),
not with faultline's client: it creates and registers its own userfaultfd
with UFFD_FEATURE_EVENT_REMOVE (Firecracker enables it for the balloon), sends
the mapping list as JSON with the descriptor as SCM_RIGHTS, and never reads a
reply, as Firecracker does not.

usage: firecracker_peer.py SOCKET SIZE OFFSET MODE [FIELDS]
  MODE sha256   print {"sha256": hex of the whole range}
       hold     the same, then stay attached until killed
       remove   read it all, madvise(MADV_DONTNEED) the second half (a balloon
                inflating), read it again: print {"sha256": ..., "removedZero": bool}
       outside  register SIZE + 1 MiB but declare SIZE, then touch past SIZE
                (a misbehaving peer: the handler must answer with SIGBUS)
       notuffd  send an open regular file instead of the userfaultfd, print the reply
       two      two mappings on one userfaultfd, as Firecracker sends for memory on both
                sides of the 32-bit gap: SIZE bytes at OFFSET, then SIZE bytes at
                OFFSET + 2 * SIZE, in two separate mmaps; print {"sha256": [first, second]}
       wbnowp   ask for write_back on a userfaultfd without write-protect, then touch
       wbremove register MISSING|WP, ask for write_back; one thread writes the first half
                and asks for a flush, ROUNDS times, while another gives the second half
                back with MADV_DONTNEED every half millisecond (REMOVE events racing the handler's
                write-protect ioctls, which then say EAGAIN); print {"rounds": ROUNDS}
  FIELDS  both (default: page_size and the deprecated page_size_kib, both in
          bytes, as Firecracker v1.x sends them) | kib (only page_size_kib)
"""
import ctypes
import hashlib
import json
import mmap
import os
import signal
import socket
import struct
import sys
import threading
import time

import fcntl

NR_USERFAULTFD = 323  # x86_64
UFFD_API = 0xAA
UFFD_FEATURE_EVENT_REMOVE = 1 << 3
UFFDIO_API = 0xC018AA3F
UFFDIO_REGISTER = 0xC020AA00
UFFDIO_REGISTER_MODE_MISSING = 1
UFFDIO_REGISTER_MODE_WP = 2
UFFD_FEATURE_PAGEFAULT_FLAG_WP = 1 << 0
MADV_DONTNEED = 4
ROUNDS = 40

libc = ctypes.CDLL(None, use_errno=True)


libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.madvise.restype = ctypes.c_int


def userfaultfd(features=UFFD_FEATURE_EVENT_REMOVE):
    fd = libc.syscall(NR_USERFAULTFD, os.O_CLOEXEC | os.O_NONBLOCK)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "userfaultfd")
    api = bytearray(struct.pack("QQQ", UFFD_API, features, 0))
    fcntl.ioctl(fd, UFFDIO_API, api)
    return fd


def register(fd, address, length, mode=UFFDIO_REGISTER_MODE_MISSING):
    reg = bytearray(struct.pack("QQQQ", address, length, mode, 0))
    fcntl.ioctl(fd, UFFDIO_REGISTER, reg)


def main():
    sock_path, size, offset, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    fields = sys.argv[5] if len(sys.argv) > 5 else "both"
    extra = 1 << 20 if mode == "outside" else 0
    mem = mmap.mmap(-1, size + extra, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    address = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    wp = mode == "wbremove"
    uffd = userfaultfd(UFFD_FEATURE_EVENT_REMOVE | (UFFD_FEATURE_PAGEFAULT_FLAG_WP if wp else 0))
    register(uffd, address, size + extra, UFFDIO_REGISTER_MODE_MISSING | (UFFDIO_REGISTER_MODE_WP if wp else 0))
    def describe(base, length, at):
        m = {"base_host_virt_addr": base, "size": length, "offset": at}
        if fields == "both":
            m["page_size"] = mmap.PAGESIZE
        m["page_size_kib"] = mmap.PAGESIZE  # bytes, despite the name
        return m

    mapping = describe(address, size, offset)
    mappings = [mapping]
    if mode == "two":
        mem2 = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        address2 = ctypes.addressof(ctypes.c_char.from_buffer(mem2))
        register(uffd, address2, size)
        mappings.append(describe(address2, size, offset + 2 * size))
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(sock_path)
    if mode == "notuffd":
        with open(__file__, "rb") as f:
            socket.send_fds(conn, [json.dumps([mapping]).encode()], [f.fileno()])
        print(conn.recv(4096).decode().strip(), flush=True)
        return
    message = {"mappings": mappings, "write_back": True} if mode in ("wbnowp", "wbremove") else mappings
    socket.send_fds(conn, [json.dumps(message).encode()], [uffd])
    os.close(uffd)
    print(json.dumps({"attached": True}), flush=True)
    if mode in ("sha256", "hold"):
        print(json.dumps({"sha256": hashlib.sha256(mem[:size]).hexdigest()}), flush=True)
        if mode == "hold":
            signal.pause()
    elif mode == "remove":
        first = hashlib.sha256(mem[:size]).hexdigest()
        half = size // 2
        mem.madvise(mmap.MADV_DONTNEED, half, size - half)
        zero = mem[half:size] == bytes(size - half)
        print(json.dumps({"sha256": first, "removedZero": zero, "sha256After": hashlib.sha256(mem[:size]).hexdigest()}))
    elif mode == "two":
        # The second mapping first: its pages come from further into the file.
        second = hashlib.sha256(mem2[:size]).hexdigest()
        print(json.dumps({"sha256": [hashlib.sha256(mem[:size]).hexdigest(), second]}))
    elif mode == "wbnowp":
        mem[0]  # refused: the handler answers with SIGBUS
        print(json.dumps({"wbnowp": "returned"}))
    elif mode == "wbremove":
        replies = conn.makefile("rb")
        hello = json.loads(replies.readline())
        if hello.get("ok") is not True:
            raise SystemExit(f"refused: {hello}")
        half = size // 2
        done = threading.Event()

        def give_back():
            # ctypes calls drop the GIL: this runs while the other thread writes.
            while not done.is_set():
                if libc.madvise(address + half, size - half, MADV_DONTNEED) != 0:
                    raise OSError(ctypes.get_errno(), "madvise")
                time.sleep(0.0005)

        remover = threading.Thread(target=give_back)
        remover.start()
        try:
            for r in range(ROUNDS):
                ctypes.memset(address, r + 1, half)  # a write-protect fault per page, after each flush
                conn.sendall(b'{"command":"flush"}\n')
                answer = json.loads(replies.readline())
                if answer.get("ok") is not True:
                    raise SystemExit(f"flush {r}: {answer}")
        finally:
            done.set()
            remover.join()
        conn.sendall(b'{"command":"detach"}\n')
        answer = json.loads(replies.readline())
        if answer.get("ok") is not True:
            raise SystemExit(f"detach: {answer}")
        print(json.dumps({"rounds": ROUNDS}), flush=True)
    elif mode == "outside":
        mem[size + 4096]  # never returns: the handler answers with SIGBUS
        print(json.dumps({"outside": "returned"}))
    conn.close()


main()
