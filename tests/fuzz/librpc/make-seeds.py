#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Regenerates the seed corpora of the librpc fuzzers (corpus-frame/, corpus-conn/) from
# hand-written frames. Run from this folder: ./make-seeds.py
import os, struct

def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def field_varint(num, v):
    return varint(num << 3) + varint(v) if v else b""

def field_str(num, s):
    s = s.encode() if isinstance(s, str) else s
    return varint((num << 3) | 2) + varint(len(s)) + s if s else b""

def zigzag(v):
    return (v << 1) ^ (v >> 31)

def hello(role, vmin=1, vmax=1):
    return (field_varint(1, vmin) + field_varint(2, vmax) + field_varint(4, role) +
            field_varint(5, 4096) + field_varint(6, 8) + field_varint(7, 4096) +
            field_varint(8, 16384))

def call(service, arg="", target="", source="", user="", call_id=0, flags=0):
    return (field_str(1, service) + field_str(2, arg) + field_str(3, target) +
            field_str(4, source) + field_str(5, user) + field_varint(6, call_id) +
            field_varint(7, flags))

def reason_msg(code, reason, signed=False):
    return field_varint(1, zigzag(code) if signed else code) + field_str(2, reason)

def frame(t, stream, payload=b"", flags=0):
    return struct.pack("<BBHII", t, flags, 0, stream, len(payload)) + payload

HELLO, GOAWAY, PING, PONG, WINDOW, CALL, ACCEPT, REFUSE, EXIT, RESET, STDIN, STDOUT, STDERR = range(1, 14)
EOF_, ACK = 1, 2

def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# Frame decoder seeds: selector byte then the bytes for that decoder.
f = "corpus-frame"
write(f, "hdr-data", bytes([0x00]) + frame(STDOUT, 1, b"", EOF_))
write(f, "hdr-window", bytes([0x10]) + frame(WINDOW, 0, b"")[:12])
write(f, "hdr-hello", bytes([0x00]) + frame(HELLO, 0, b"x")[:12])
write(f, "hello", bytes([1]) + hello(1))
write(f, "hello-v9", bytes([1]) + hello(2, 9, 9))
write(f, "call-min", bytes([2]) + call("a"))
write(f, "call-full", bytes([2]) + call("qubes.Filecopy", "+arg", "@dispvm:work", "work", "user", 42, 7))
write(f, "goaway", bytes([3]) + reason_msg(3, "unsupported protocol version"))
write(f, "exit", bytes([4]) + reason_msg(-1, "bye", True))
write(f, "reset", bytes([5]) + reason_msg(1, "cancel"))

# Connection seeds: mode byte, then the peer's byte stream.
c = "corpus-conn"
# Acceptor (mode bit0 = 0) with HELLO prepended (bit1): a full call from the raw initiator.
full = (frame(CALL, 1, call("svc")) + frame(STDIN, 1, b"hello") + frame(STDIN, 1, b"", EOF_) +
        frame(PING, 0, b"12345678") + frame(WINDOW, 0, struct.pack("<I", 4096)) +
        frame(WINDOW, 1, struct.pack("<I", 100)) + frame(RESET, 1, reason_msg(1, "x")))
write(c, "call-accept", bytes([0x02]) + full)
write(c, "call-refuse", bytes([0x0a]) + full)
write(c, "call-exit-halfconsume", bytes([0x16]) + full)
write(c, "call-reset-dribble", bytes([0x9a]) + full)
# Raw HELLO from the peer itself (no prepend), then violations.
write(c, "hello-then-stdout", bytes([0x00]) + frame(HELLO, 0, hello(1)) + frame(CALL, 1, call("s")) + frame(STDOUT, 1, b"x"))
write(c, "version-9", bytes([0x00]) + frame(HELLO, 0, hello(1, 9, 9)))
write(c, "goaway", bytes([0x02]) + frame(GOAWAY, 0, reason_msg(6, "bye")))
# Initiator with our own call (bit 6): the peer answers as handler.
ans = (frame(ACCEPT, 1) + frame(STDOUT, 1, b"out") + frame(STDERR, 1, b"err", EOF_) +
       frame(STDOUT, 1, b"", EOF_) + frame(EXIT, 1, reason_msg(3, "done", True)))
write(c, "our-call-answered", bytes([0x43]) + ans)
write(c, "our-call-refused", bytes([0x43]) + frame(REFUSE, 1, reason_msg(126, "denied", True)))
write(c, "our-call-reset", bytes([0x43]) + frame(RESET, 1, reason_msg(2, "proto")) + frame(RESET, 1, b"", ACK))
write(c, "many-streams", bytes([0x02]) + b"".join(frame(CALL, i, call("s")) for i in range(1, 40, 2)))
write(c, "window-overrun", bytes([0x06]) + frame(CALL, 1, call("s")) + frame(STDIN, 1, b"z" * 4096) + frame(STDIN, 1, b"z" * 10))
