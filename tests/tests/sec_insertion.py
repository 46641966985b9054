#!/usr/bin/env python3
"""TCP insertion attacks for tests/tests/sec_insertion.rs (lab nodes, root, no scapy).

A real kernel TCP connection is opened (handshake by the kernel); its sequence numbers are
read by sniffing the handshake on eth0 with an AF_PACKET socket; then data is written as
hand-made frames through the same AF_PACKET socket:

  record IP PORT FILE            (server) accept connections, append what each one sent
                                 (repr of the bytes, one line per connection) to FILE
  client IP PORT MODE REAL DECOY (client) send REAL (and DECOY) as the request
  serve IP PORT BODY DECOY       (server) answer `GET /MODE` with BODY (and DECOY)

MODE: plain  REAL alone, then the same bytes again (an ordinary retransmission);
      csum   DECOY with a bad TCP checksum, then REAL at the same sequence numbers;
      overlap DECOY[1:-8] out of order at seq+1, then REAL[1:] at seq+1 (a receiver that
             keeps the longer copy, as Linux does, takes it), then REAL[:1] at seq.
Every wait is bounded.
"""
import json
import os
import select
import socket
import struct
import sys
import threading
import time

ETH_P_IP = 0x0800


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def frame(smac, dmac, src, dst, sport, dport, seq, ack, payload, bad=False, flags=0x18):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, 64240, 0, 0) + payload
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    c = csum(ph + tcp)
    if bad:
        c ^= 0x5A5A
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), os.getpid() & 0xFFFF, 0x4000,
                     64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dmac + smac + struct.pack("!H", ETH_P_IP) + ip + tcp


def parse(f):
    """(smac, dmac, src, dst, sport, dport, seq, ack, flags) of an IPv4 TCP frame."""
    if len(f) < 54 or f[12:14] != b"\x08\x00" or f[23] != 6:
        return None
    ihl = (f[14] & 0x0F) * 4
    t = 14 + ihl
    sport, dport, seq, ack = struct.unpack("!HHII", f[t:t + 12])
    return (f[6:12], f[0:6], socket.inet_ntoa(f[26:30]), socket.inet_ntoa(f[30:34]),
            sport, dport, seq, ack, f[t + 13])


def sniffer():
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    s.bind(("eth0", 0))
    return s


def handshake(sn, client_port, server_port, limit=4.0):
    """Read the SYN and SYN-ACK of the connection from the sniffer."""
    syn = synack = None
    end = time.time() + limit
    while time.time() < end and not (syn and synack):
        r, _, _ = select.select([sn], [], [], 0.2)
        if not r:
            continue
        p = parse(sn.recv(65535))
        if not p:
            continue
        flags = p[8]
        if flags & 0x12 == 0x02 and p[4] == client_port and p[5] == server_port:
            syn = p
        elif flags & 0x12 == 0x12 and p[4] == server_port and p[5] == client_port:
            synack = p
    if not (syn and synack):
        raise SystemExit("handshake not seen")
    return syn, synack


def inject(sn, me, peer, sport, dport, seq, ack, mode, real, decoy):
    """Send `real` at `seq` the way `mode` says. me/peer: (mac, ip)."""
    def send(off, data, bad=False):
        sn.send(frame(me[0], peer[0], me[1], peer[1], sport, dport, seq + off, ack, data, bad))
        time.sleep(0.15)

    if mode == "plain":
        send(0, real)
        send(0, real)
    elif mode == "csum":
        assert len(decoy) == len(real)
        send(0, decoy, bad=True)
        send(0, real)
        send(0, real)
    elif mode == "overlap":
        send(1, decoy[1:-8])
        send(1, real[1:])
        send(0, real[:1])
    else:
        raise SystemExit("unknown mode " + mode)


def client(ip, port, mode, real, decoy):
    sn = sniffer()
    c = socket.create_connection((ip, port), timeout=4)
    lport = c.getsockname()[1]
    syn, synack = handshake(sn, lport, port)
    me, peer = (syn[0], syn[2]), (synack[0], synack[2])
    inject(sn, me, peer, lport, port, syn[6] + 1, synack[6] + 1, mode, real, decoy)
    time.sleep(1.0)
    c.close()
    print(json.dumps({"sport": lport, "mode": mode}))


def record(ip, port, path):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, port))
    ls.listen(16)
    lock = threading.Lock()

    def one(c):
        got = b""
        c.settimeout(0.5)
        end = time.time() + 4
        while time.time() < end and b"\r\n\r\n" not in got:
            try:
                d = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            got += d
        try:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        except OSError:
            pass
        c.close()
        with lock, open(path, "a") as f:
            f.write(repr(got) + "\n")

    while True:
        c, _ = ls.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def serve(ip, port, body, decoy_body):
    sn = sniffer()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, port))
    ls.listen(16)
    while True:
        c, (_, cport) = ls.accept()
        try:
            syn, synack = handshake(sn, cport, port)
            c.settimeout(3)
            req = b""
            while b"\r\n\r\n" not in req:
                d = c.recv(4096)
                if not d:
                    break
                req += d
            mode = req.split(b" ")[1].strip(b"/").decode() if b" " in req else "plain"
            head = ("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)).encode()
            b = body
            if mode == "hello":
                b = decoy_body
                mode = "plain"
            me, peer = (synack[0], synack[2]), (syn[0], syn[2])
            inject(sn, me, peer, port, cport, synack[6] + 1, syn[6] + 1 + len(req), mode,
                   head + b, head + decoy_body)
            time.sleep(1.5)
        except (OSError, SystemExit) as e:
            sys.stderr.write("serve: %s\n" % e)
        c.close()


def main():
    a = sys.argv[1:]
    if a[0] == "record":
        record(a[1], int(a[2]), a[3])
    elif a[0] == "client":
        client(a[1], int(a[2]), a[3], a[4].encode().decode("unicode_escape").encode("latin-1"),
               a[5].encode().decode("unicode_escape").encode("latin-1"))
    elif a[0] == "serve":
        serve(a[1], int(a[2]), open(a[3], "rb").read(), open(a[4], "rb").read())


if __name__ == "__main__":
    main()
