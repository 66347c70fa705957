#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_msg_decode into corpus/msg/.

One file per case: valid label messages of each accepted shape and one
message per decoder error.  A small msgpack writer is included so that the
script needs nothing outside the standard library and can produce invalid
bytes on purpose (duplicate keys, cut messages, reserved bytes).
Run it from any directory; it rewrites the seed-*.msgpack files only, so
crash reproducers saved beside them stay.
"""
import math
import os
import struct


class F32(float):
    """A float packed as float32."""


class Pairs(list):
    """A map given as a list of (key, value), so keys may repeat."""


class Ext:
    def __init__(self, code, data):
        self.code, self.data = code, data


class Raw(bytes):
    """Bytes inserted as they are."""


def pack_len(n, small_tag, small_max, tags):
    if n <= small_max and small_tag is not None:
        return bytes([small_tag | n])
    for tag, fmt in tags:
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([tag]) + struct.pack(fmt, n)
    raise ValueError("too long")


def pack_int(v):
    if 0 <= v <= 0x7F:
        return bytes([v])
    if -32 <= v < 0:
        return struct.pack(">b", v)
    if v >= 0:
        for tag, fmt in ((0xCC, ">B"), (0xCD, ">H"), (0xCE, ">I"),
                         (0xCF, ">Q")):
            if v < 1 << (8 * struct.calcsize(fmt)):
                return bytes([tag]) + struct.pack(fmt, v)
    for tag, fmt in ((0xD0, ">b"), (0xD1, ">h"), (0xD2, ">i"), (0xD3, ">q")):
        bits = 8 * struct.calcsize(fmt) - 1
        if -(1 << bits) <= v:
            return bytes([tag]) + struct.pack(fmt, v)
    raise ValueError("int out of range")


def pack(v):
    if isinstance(v, Raw):
        return bytes(v)
    if v is None:
        return b"\xc0"
    if v is True or v is False:
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        return pack_int(v)
    if isinstance(v, F32):
        return b"\xca" + struct.pack(">f", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        return pack_len(len(b), 0xA0, 31,
                        ((0xD9, ">B"), (0xDA, ">H"), (0xDB, ">I"))) + b
    if isinstance(v, bytes):
        return pack_len(len(v), None, 0,
                        ((0xC4, ">B"), (0xC5, ">H"), (0xC6, ">I"))) + v
    if isinstance(v, Ext):
        return (pack_len(len(v.data), None, 0,
                         ((0xC7, ">B"), (0xC8, ">H"), (0xC9, ">I")))
                + struct.pack(">b", v.code) + v.data)
    if isinstance(v, (Pairs, dict)):
        items = v if isinstance(v, Pairs) else list(v.items())
        out = pack_len(len(items), 0x80, 15, ((0xDE, ">H"), (0xDF, ">I")))
        return out + b"".join(pack(k) + pack(x) for k, x in items)
    if isinstance(v, list):
        out = pack_len(len(v), 0x90, 15, ((0xDC, ">H"), (0xDD, ">I")))
        return out + b"".join(pack(x) for x in v)
    raise TypeError(type(v))


PROBS = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.55]


def label(**extra):
    m = {"id": 7, "label": 3, "pred_probs": PROBS}
    m.update(extra)
    return m


def deep(levels):
    v = None
    for _ in range(levels):
        v = [v]
    return v


VALID = pack(label())

CASES = {
    "valid-int-id": VALID,
    "valid-all-fields": pack({
        "id": "img-000123", "label": "truck",
        "pred_probs": [F32(p) for p in PROBS],
        "annotator": "rater-17", "model": "resnet-110",
        "ts": 1700000000.25}),
    "valid-integer-probs": pack(label(pred_probs=[0, 1, -1, 2 ** 64 - 1,
                                                  -2 ** 63, 300, 0, 0, 0,
                                                  0])),
    "valid-extra-keys": pack(label(
        source={"id": [None, Pairs([(1, True)])], "blob": b"\x00\x01"},
        tags=["a", [], {}], when=Ext(-1, b"\x00\x00\x00\x01"),
        deep=deep(30))),
    "valid-nan": pack(label(pred_probs=[math.nan, math.inf, -math.inf]
                            + PROBS[3:])),
    "valid-negative-id-int-ts": pack(label(id=-5, ts=1700000000)),
    "width-9": pack(label(pred_probs=PROBS[:9])),
    "type-probs-3": pack(label(pred_probs=PROBS[:3] + ["0.4"] + PROBS[4:])),
    "type-label-float": pack(label(label=3.0)),
    "type-id-nil": pack(label(id=None)),
    "type-ts-string": pack(label(ts="now")),
    "type-top-array": pack([7, 3, PROBS]),
    "type-key-int": pack(Pairs(list(label().items()) + [(5, 6)])),
    "duplicate-label": pack(Pairs(list(label().items()) + [("label", 4)])),
    "missing-label": pack({"id": 7, "pred_probs": PROBS}),
    "label-unknown-name": pack(label(label="Cat")),
    "label-above-int64": pack(label(label=2 ** 64 - 1)),
    "parse-truncated": VALID[: len(VALID) // 2],
    "parse-trailing": VALID + b"\xc0",
    "parse-reserved": pack(label(x=Raw(b"\xc1"))),
    "parse-huge-array": pack({"x": Raw(b"\xdd\xff\xff\xff\xff")}),
    "parse-deep": pack(label(deep=deep(33))),
    "parse-json": b'{"id": 1, "label": 2, "pred_probs": [0.5, 0.5]}',
    "parse-empty": b"",
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "corpus", "msg")
    os.makedirs(out, exist_ok=True)
    for name, data in CASES.items():
        with open(os.path.join(out, "seed-%s.msgpack" % name), "wb") as f:
            f.write(data)
    print("%d seeds written to %s" % (len(CASES), out))


if __name__ == "__main__":
    main()
