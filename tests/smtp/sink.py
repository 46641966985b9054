#!/usr/bin/python3
"""A real SMTP server for the end-to-end tests (Debian's python3-aiosmtpd).

usage: sink.py HOST PORT MAILDIR

Every accepted message is written to MAILDIR/<n>.eml (one file per recipient, so a test
can count deliveries per address). Prints "ready" on stdout once listening.
"""
import asyncio, os, sys, itertools
from aiosmtpd.controller import Controller

host, port, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(outdir, exist_ok=True)
counter = itertools.count(len(os.listdir(outdir)) + 1)


class Sink:
    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            n = next(counter)
            tmp = os.path.join(outdir, f".{n}.tmp")
            with open(tmp, "wb") as f:
                f.write(f"X-Envelope-To: {rcpt}\r\n".encode())
                f.write(envelope.original_content or envelope.content)
            os.rename(tmp, os.path.join(outdir, f"{n}.eml"))
        return "250 OK"


c = Controller(Sink(), hostname=host, port=port)
c.start()
print("ready", flush=True)
try:
    asyncio.get_event_loop().run_forever()
except KeyboardInterrupt:
    pass
finally:
    c.stop()
