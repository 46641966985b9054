#!/usr/bin/env python3
"""Seed the corpora of the `decode` and `rule_parser` fuzz targets from the shared corpus.

    fuzz/seed.py [--corpus /work/shared/corpus] [--out fuzz/corpus]

decode: one seed per small suricata-verify capture (pcap link types the harness knows),
in the harness's layout: [link type][options][len u16 LE][clock step][frame]...
Options set midstream pick-up when the test asks for it (engine flag `stream.midstream`).

rule_parser: single rules picked for keyword variety from ET Open and suricata-verify
`test.rules`, plus a few whole small `test.rules` files.

Seeds are named by content hash, as libFuzzer names its own, so reruns add nothing twice.
"""

import argparse
import glob
import hashlib
import json
import os
import re
import struct

LINKTYPES = {0, 1, 9, 101, 113}
OPT_MIDSTREAM = 0x01
MAX_FRAMES = 32
MAX_SEED = 16 * 1024
MAX_PCAP = 64 * 1024
RULE_SEEDS = 30


def pcap_frames(path):
    """(link type, [(ts_us, frame)]) of a classic pcap file, or None."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return None
    magic = data[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
              b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if endian is None:
        return None
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    frames, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        frames.append((sec * 1_000_000 + (frac // 1000 if nano else frac), data[off:off + incl]))
        off += incl
    return linktype, frames


def clock_step(delta_us):
    """The harness's clock byte closest to (not above) a time step."""
    ms = max(delta_us, 0) // 1000
    if ms < 128:
        return ms
    return 128 + min(delta_us // 10_000_000, 127) if delta_us >= 10_000_000 else 127


def midstream(test_dir):
    try:
        with open(os.path.join(test_dir, "expected.json")) as f:
            flags = json.load(f).get("engine_flags") or {}
    except (OSError, ValueError):
        return False
    return bool(flags.get("stream.midstream"))


def decode_seeds(corpus):
    for path in sorted(glob.glob(os.path.join(corpus, "suricata-verify", "*", "*.pcap"))):
        if os.path.getsize(path) > MAX_PCAP:
            continue
        parsed = pcap_frames(path)
        if not parsed or parsed[0] not in LINKTYPES or not parsed[1]:
            continue
        linktype, frames = parsed
        opts = OPT_MIDSTREAM if midstream(os.path.dirname(path)) else 0
        seed = bytearray([linktype, opts])
        prev = frames[0][0]
        for ts, frame in frames[:MAX_FRAMES]:
            rec = struct.pack("<HB", len(frame), clock_step(ts - prev)) + frame
            if len(seed) + len(rec) > MAX_SEED:
                break
            seed += rec
            prev = ts
        if len(seed) > 2:
            yield bytes(seed)


# Keywords wanted among the rule seeds, each taken at least once where the corpus has it.
KEYWORDS = [
    "pcre:", "byte_test:", "byte_jump:", "byte_extract:", "isdataat:", "flowbits:set",
    "flowbits:isset", "within:", "distance:", "depth:", "offset:", "nocase", "fast_pattern",
    "http.uri", "http_uri", "http.header", "http.host", "http.user_agent", "http.method",
    "file_data", "tls.sni", "dns.query", "dns_query", "threshold:", "detection_filter:",
    "dsize:", "flags:", "itype:", "decode-event:", "app-layer-protocol:", "bsize:",
    "urilen:", "ja3.hash", "uricontent:", "$HOME_NET", "<>", "!", "[",
]


def rule_lines(corpus):
    files = sorted(glob.glob(os.path.join(corpus, "et-open", "rules", "*.rules")))
    files += sorted(glob.glob(os.path.join(corpus, "suricata-verify", "*", "test.rules")))
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if re.match(r"^(alert|drop|reject|pass)\s", line) and len(line) < 1500:
                    yield line


def rule_seeds(corpus):
    lines = list(rule_lines(corpus))
    picked = []
    for kw in KEYWORDS:
        for line in lines:
            if kw in line and line not in picked:
                picked.append(line)
                break
        if len(picked) >= RULE_SEEDS - 4:
            break
    for line in picked:
        yield (line + "\n").encode()
    # a few whole small rule files: several rules, shared flowbits, comments
    small = [p for p in sorted(glob.glob(os.path.join(corpus, "suricata-verify", "*", "test.rules")))
             if 200 < os.path.getsize(p) < 4096]
    for path in small[:4]:
        with open(path, "rb") as f:
            yield f.read()


def write(out_dir, seeds):
    os.makedirs(out_dir, exist_ok=True)
    n = 0
    for seed in seeds:
        name = hashlib.sha1(seed).hexdigest()
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(seed)
        n += 1
    return n


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="/work/shared/corpus")
    ap.add_argument("--out", default=os.path.join(here, "corpus"))
    a = ap.parse_args()
    n = write(os.path.join(a.out, "decode"), decode_seeds(a.corpus))
    print(f"decode: {n} seeds")
    n = write(os.path.join(a.out, "rule_parser"), rule_seeds(a.corpus))
    print(f"rule_parser: {n} seeds")


if __name__ == "__main__":
    main()
