#!/usr/bin/python3
"""Relay a TCP port of this host's loopback into a network namespace's loopback.

usage: netns-relay.py LISTEN_PORT NETNS TARGET_PORT

The demo runs the cloud inside the lab's "internet" namespace; this lets a browser on the
host reach its portal at http://127.0.0.1:LISTEN_PORT. The listening socket is opened
first (in the host's namespace), then the process enters NETNS, so every connection it
opens afterwards goes to NETNS's 127.0.0.1:TARGET_PORT. Nothing else is reachable.
"""
import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000

listen_port, netns, target_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", listen_port))
ls.listen(64)
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
if libc.setns(fd, CLONE_NEWNET) != 0:
    sys.exit(f"setns {netns}: {os.strerror(ctypes.get_errno())}")
os.close(fd)


def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


while True:
    client, _ = ls.accept()
    try:
        upstream = socket.create_connection(("127.0.0.1", target_port), timeout=5)
        upstream.settimeout(None)
    except OSError:
        client.close()
        continue
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
