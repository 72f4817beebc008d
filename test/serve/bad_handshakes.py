#!/usr/bin/env python3
"""Malformed handshakes against a serve-protocol handler (serve-floor or
`faultline serve`), one JSON line per case: {"case": NAME, "reply": LINE or null}.

    bad_handshakes.py SOCKET

Every case must be refused with one {"ok":false,...} line (or, for a peer that
hangs up mid-handshake, a closed connection). The userfaultfd sent is real but
registers nothing, so no case can be served by accident.
"""
import ctypes
import json
import os
import socket
import sys

libc = ctypes.CDLL(None, use_errno=True)
SYS_userfaultfd = {"x86_64": 323, "aarch64": 282}[os.uname().machine]
UFFDIO_API = 0xC018AA3F


def new_uffd(handshaken=True):
    fd = libc.syscall(SYS_userfaultfd, os.O_CLOEXEC | os.O_NONBLOCK)
    if fd < 0:
        sys.exit(f"userfaultfd: errno {ctypes.get_errno()}")
    if handshaken:
        api = (ctypes.c_uint64 * 3)(0xAA, 0, 0)
        if libc.ioctl(fd, ctypes.c_ulong(UFFDIO_API), api) != 0:
            sys.exit(f"UFFDIO_API: errno {ctypes.get_errno()}")
    return fd


M = '{"base_host_virt_addr":4096,"size":4096,"offset":0,"page_size":4096}'
uffd = new_uffd()
pipe_r, pipe_w = os.pipe()
CASES = [
    ("no-descriptor", f"[{M}]", []),
    ("two-descriptors", f"[{M}]", [uffd, pipe_w]),
    ("not-a-userfaultfd", f"[{M}]", [pipe_r]),
    ("no-uffdio-api", f"[{M}]", [new_uffd(handshaken=False)]),
    ("not-json", "hello", [uffd]),
    ("negative-number", M.replace("4096,", "-1,", 1).join("[]"), [uffd]),
    ("fraction", M.replace("4096,", "1.5,", 1).join("[]"), [uffd]),
    ("number-overflow", M.replace("4096,", "99999999999999999999999,", 1).join("[]"), [uffd]),
    ("empty-array", "[]", [uffd]),
    ("object-without-mappings", '{"write_back":true}', [uffd]),
    ("write-back-not-boolean", f'{{"mappings":[{M}],"write_back":1}}', [uffd]),
    ("missing-field", '[{"base_host_virt_addr":4096,"size":4096}]', [uffd]),
    ("unaligned-base", M.replace("4096,", "4097,", 1).join("[]"), [uffd]),
    ("page-size-not-power-of-two", M.replace('"page_size":4096', '"page_size":3000').join("[]"), [uffd]),
    ("trailing-bytes", f"[{M}] x", [uffd]),
    ("deep-nesting", '[{"x":' + "[" * 3000 + "]" * 3000 + "," + M[1:] + "]", [uffd]),
    ("hangup-mid-json", '[{"base_host_virt_addr":4096', [uffd]),
]


def main(path):
    for name, data, fds in CASES:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        socket.send_fds(s, [data.encode()], fds) if fds else s.sendall(data.encode())
        if name == "hangup-mid-json":
            s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        buf = b""
        try:
            while not buf.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except socket.timeout:
            buf = b"(timeout)"
        s.close()
        print(json.dumps({"case": name, "reply": buf.decode().rstrip("\n") or None}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
