#!/usr/bin/env python3
"""A second implementation of the symmetric half of docs/protocol.md, in Python's
standard library only: it recomputes the key schedule, the escape MACs, the
encrypted-directives AAD split, the handshake key confirmations, the finished
tag and the status-report MAC from the published vectors, and checks every byte.

Run: python3 docs/test-vectors/check.py  (exit status 0 when every check holds)
"""
import hashlib
import hmac
import json
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER_LEN, TAG_LEN = 8, 32


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def escape_keys(base: bytes, consumer: bytes, key_id: int, mode: int) -> dict:
    prk = hkdf_extract(b"pqescape/v1 base", base)
    binding = consumer + struct.pack(">IB", key_id, mode)
    names = ["escape mac", "escape enc", "ack mac", "status mac", "context salt", "channel mac"]
    return {n: hkdf_expand(prk, b"pqescape/v1 " + n.encode() + binding, 32) for n in names}


def check_key_schedule(v: dict) -> None:
    i = v["escape_keys"]["input"]
    keys = escape_keys(bytes.fromhex(i["base_key"]), bytes.fromhex(i["consumer_id"]),
                       i["key_id"], i["mode"])
    for name, key in keys.items():
        assert key.hex() == v["escape_keys"][name.replace(" ", "_")], name
    h = v["handshake"]["input"]
    hs = hkdf_extract(bytes.fromhex(h["context_salt"]),
                      bytes.fromhex(h["ss_mlkem"]) + bytes.fromhex(h["ss_x25519"]))
    th = bytes.fromhex(h["th_full"])
    expect = {
        "server_finished_key": hkdf_expand(hs, b"pqescape/v1 server finished", 32),
        "client_finished_key": hkdf_expand(hs, b"pqescape/v1 client finished", 32),
        "context_secret": hkdf_expand(hs, b"pqescape/v1 context" + th, 32),
        "next_psk": hkdf_expand(hs, b"pqescape/v1 psk ratchet" + th, 32),
    }
    for name, value in expect.items():
        assert value.hex() == v["handshake"][name], name
    e = v["exporter"]
    label, ctx = e["label"].encode(), bytes.fromhex(e["context"])
    info = b"pqescape/v1 exporter " + bytes([len(label)]) + label + struct.pack(">H", len(ctx)) + ctx
    assert hkdf_expand(bytes.fromhex(e["secret"]), info, e["length"]).hex() == e["output"]


def parse_escape(msg: bytes) -> dict:
    assert msg[:4] == b"PQES" and msg[4] == 1 and msg[5] == 0x01
    assert struct.unpack(">H", msg[6:8])[0] == len(msg) - HEADER_LEN
    flags, suite, key_id = msg[8], msg[9], struct.unpack(">I", msg[10:14])[0]
    consumer, campaign = msg[14:30], msg[30:46]
    seq, issued, not_after = struct.unpack(">QQQ", msg[46:70])
    at = 70 + 16 + (32 if flags & 0x08 else 0)
    dlen = struct.unpack(">H", msg[at:at + 2])[0]
    assert at + 2 + dlen + TAG_LEN == len(msg)
    return dict(flags=flags, suite=suite, key_id=key_id, consumer=consumer, campaign=campaign,
                sequence=seq, issued_at=issued, not_after=not_after, aad_len=at + 2)


def check_escapes(cases: list) -> None:
    for c in cases:
        msg, o = bytes.fromhex(c["message"]), c["order"]
        e = parse_escape(msg)
        assert e["sequence"] == o["sequence"] and e["key_id"] == o["key_id"], c["name"]
        assert e["consumer"].hex() == o["consumer_id"] and e["suite"] == o["suite"]
        mode = 1 if o["mode"] == "tls-exporter" else 0
        keys = escape_keys(bytes.fromhex(c["base_key"]), e["consumer"], e["key_id"], mode)
        assert mac(keys["escape mac"], msg[:-TAG_LEN]) == msg[-TAG_LEN:], c["name"]
        nonce = msg[70:86]
        assert nonce.hex() == c["rng_draws"][0][:32], "the nonce is the first 16 drawn bytes"
        if not o["encrypt"]:
            assert msg[e["aad_len"]:-TAG_LEN].hex() == o["directives"], c["name"]


def check_handshakes(cases: list) -> None:
    for c in cases:
        esc, ack = bytes.fromhex(c["escape"]["message"]), bytes.fromhex(c["ack"]["message"])
        resp, fin = bytes.fromhex(c["response"]["message"]), bytes.fromhex(c["finished"]["message"])
        e = parse_escape(esc)
        keys = escape_keys(bytes.fromhex(c["psk"]), e["consumer"], e["key_id"], 0)
        assert mac(keys["ack mac"], ack[:-TAG_LEN]) == ack[-TAG_LEN:], c["name"]
        assert ack[8:48] == esc[14:46] + esc[46:54], "ack echoes consumer, campaign, sequence"
        assert ack[53:85] == sha256(esc), "ack carries the escape digest"
        assert resp[5] == 0x03 and fin[5] == 0x04 and fin[8:48] == ack[8:48]

        # Key schedule of the handshake, from the shared secrets (ML-KEM first).
        i = c["intermediate"]
        th_resp, th_full = sha256(esc, ack, resp[:-TAG_LEN]), sha256(esc, ack, resp)
        assert th_resp.hex() == i["th_response"] and th_full.hex() == i["th_full"]
        hs = hkdf_extract(keys["context salt"],
                          bytes.fromhex(i["ss_mlkem"]) + bytes.fromhex(i["ss_x25519"]))
        k_sf = hkdf_expand(hs, b"pqescape/v1 server finished", 32)
        k_cf = hkdf_expand(hs, b"pqescape/v1 client finished", 32)
        assert mac(k_sf, th_resp) == resp[-TAG_LEN:], "server confirmation"
        assert mac(k_cf, th_full, fin[:-TAG_LEN]) == fin[-TAG_LEN:], "client confirmation"
        next_psk = hkdf_expand(hs, b"pqescape/v1 psk ratchet" + th_full, 32)
        assert next_psk.hex() == c["result"]["next_psk"], "ratcheted PSK"
        assert c["result"]["next_key_id"] == e["key_id"] + 1
        ctx = hkdf_expand(hs, b"pqescape/v1 context" + th_full, 32)
        label = b"channel binding"
        info = b"pqescape/v1 exporter " + bytes([len(label)]) + label + b"\x00\x00"
        assert hkdf_expand(ctx, info, 32).hex() == c["result"]["channel_binding"]


def check_status(v: dict) -> None:
    msg = bytes.fromhex(v["message"])
    keys = escape_keys(bytes.fromhex(v["psk"]), msg[8:24], v["key_id"], 0)
    assert mac(keys["status mac"], msg[:-TAG_LEN]) == msg[-TAG_LEN:]
    assert msg[52] == v["status"] and msg[-TAG_LEN - len(v["detail"]):-TAG_LEN] == v["detail"].encode()


def check_channel_hello(v: dict) -> None:
    msg = bytes.fromhex(v["message"])
    assert msg[:4] == b"PQES" and msg[5] == 0x07
    consumer, key_id = msg[8:24], struct.unpack(">I", msg[24:28])[0]
    assert consumer.hex() == v["consumer_id"] and key_id == v["key_id"]
    assert msg[28:44].hex() == v["challenge"], "the challenge is echoed"
    keys = escape_keys(bytes.fromhex(v["psk"]), consumer, key_id, 0)
    covered = msg[:-TAG_LEN] + bytes.fromhex(v["tls_binding"])
    assert mac(keys["channel mac"], covered) == msg[-TAG_LEN:], "channel MAC over the TLS binding"


def check_manifest(v: dict) -> None:
    msg = bytes.fromhex(v["message"])
    assert sha256(msg).hex() == v["digest"]
    assert msg[8:24].hex() == v["order"]["campaign_id"]
    assert msg[42:74] == sha256(bytes.fromhex(v["verifying_key"])), "signer fingerprint"


def main() -> int:
    load = lambda name: json.loads((HERE / name).read_text())
    check_key_schedule(load("key-schedule.json"))
    check_escapes(load("escape.json"))
    check_handshakes(load("handshake.json"))
    check_status(load("status.json"))
    check_manifest(load("manifest.json"))
    check_channel_hello(load("channel-hello.json"))
    print("test vectors: all checks hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
