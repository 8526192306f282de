#!/usr/bin/env python3
"""Writes the seeds of the sv2_frame and sv2_session fuzz targets: real Mining Protocol
frames (encoded here by the spec's rules: little-endian integers, STR0_255 and B0_32 with
a one-byte length, U256 as 32 bytes, a 6-byte frame header) and operation sequences that
set up, open channels of both kinds and submit shares. Run from fuzz/: python3 seeds/sv2_seeds.py"""
import os
import struct

ADDR = b"mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"


def s(text):
    return bytes([len(text)]) + text


def frame(msg_type, payload, channel=False):
    ext = 0x8000 if channel else 0
    return struct.pack("<HB", ext, msg_type) + struct.pack("<I", len(payload))[:3] + payload


def setup(flags=4):
    p = struct.pack("<BHHI", 0, 2, 2, flags) + s(b"pool.fuzz") + struct.pack("<H", 3336)
    p += s(b"bitaxe") + s(b"BM1370") + s(b"v2.4") + s(b"rig")
    return frame(0x00, p)


def open_standard(rid, user):
    return frame(0x10, struct.pack("<I", rid) + s(user) + struct.pack("<f", 1e12) + b"\xff" * 32)


def open_extended(rid, user, size):
    p = struct.pack("<I", rid) + s(user) + struct.pack("<f", 1e9) + b"\xff" * 32
    return frame(0x13, p + struct.pack("<H", size))


def update_channel(channel):
    return frame(0x16, struct.pack("<If", channel, 2e9) + b"\xff" * 32, channel=True)


def close_channel(channel):
    return frame(0x18, struct.pack("<I", channel) + s(b"bye"), channel=True)


def submit_standard(channel, seq, job, nonce):
    p = struct.pack("<IIIIII", channel, seq, job, nonce, 1_700_000_100, 0x20000000)
    return frame(0x1A, p, channel=True)


def submit_extended(channel, seq, job, nonce, extranonce):
    p = struct.pack("<IIIIII", channel, seq, job, nonce, 1_700_000_100, 0x20000000)
    return frame(0x1B, p + bytes([len(extranonce)]) + extranonce, channel=True)


def write(target, name, data):
    os.makedirs(f"seeds/{target}", exist_ok=True)
    with open(f"seeds/{target}/{name}", "wb") as f:
        f.write(data)


frames = {
    "setup": setup(),
    "setup-standard-jobs": setup(flags=5),
    "open-standard": open_standard(1, ADDR + b".asic"),
    "open-extended": open_extended(2, ADDR + b".rig1", 4),
    "update-channel": update_channel(2),
    "close-channel": close_channel(2),
    "submit-standard": submit_standard(2, 1, 1, 0x1234),
    "submit-extended": submit_extended(2, 2, 1, 0x5678, bytes(range(7))),
}
for name, data in frames.items():
    write("sv2_frame", name, data)

# sv2_session: a mode byte, then operations (see fuzz_targets/sv2_session.rs).
def op_setup(flags=4):
    return bytes([4, 0, 2, flags])


def op_open(kind, user):
    out = bytes([5 if kind == "extended" else 6, user]) + struct.pack("<f", 0.0) + b"\xff" + b"\x07"
    return out + (b"\x00" if kind == "extended" else b"")


def op_submit(standard, channel, job, nonce, seq):
    out = bytes([7, int(standard), channel, job]) + struct.pack("<I", nonce) + b"\x00" + b"\x00\x00"
    out += bytes([seq])
    if not standard:
        out += bytes([7]) + bytes(range(7))
    return out


def op_frame(data):
    return bytes([3, len(data)]) + data


def shares(standard, channel, job, count, start=0):
    return b"".join(op_submit(standard, channel, job, start + n, n) for n in range(count))


for mode in (0, 1, 2, 3):
    seq = bytes([mode]) + op_setup() + op_open("extended", 1) + shares(False, 0, 1, 8)
    seq += bytes([1]) + shares(False, 0, 1, 2) + shares(False, 0, 2, 8, 100)
    seq += op_open("standard", 2) + shares(True, 1, 1, 8) + bytes([0, 5, 0])
    seq += op_frame(update_channel(2)) + op_frame(close_channel(3)) + bytes([2])
    seq += shares(False, 0, 3, 4) + bytes([0, 200, 1])
    write("sv2_session", f"mine-mode{mode}", seq)
write("sv2_session", "standard-only", bytes([1]) + op_setup(5) + op_open("standard", 0) + shares(True, 0, 1, 16))
write("sv2_session", "junk-before-setup", bytes([1]) + op_open("extended", 1) + op_frame(b"\x00\x00\xff\x00\x00\x00"))
