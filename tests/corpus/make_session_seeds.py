#!/usr/bin/env python3
# make_session_seeds.py -- writes tests/corpus/session: real conversations
# for fuzz_session.c, each a sequence of frames (2-byte big-endian length,
# then a message, doc/wire.md section 7).  Run from the repository root;
# the seeds are committed, this script says how they were made.
import os
import struct

def enc(v):
    """MessagePack of ints, str, bytes, nil, bool, list (array), ('ext', t, body)."""
    if v is None:
        return b'\xc0'
    if v is True:
        return b'\xc3'
    if v is False:
        return b'\xc2'
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack('b', v)
        return b'\xd3' + struct.pack('>q', v)
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else b'\xd9' + bytes([len(b)])) + b
    if isinstance(v, bytes):
        return b'\xc4' + bytes([len(v)]) + v
    if isinstance(v, tuple) and v and v[0] == 'ext':
        _, t, body = v
        return b'\xc7' + bytes([len(body), t]) + body
    if isinstance(v, list):
        return bytes([0x90 | len(v)]) + b''.join(enc(x) for x in v)
    raise TypeError(v)

def ref(kind_ext, ident, home=True, shape=0):
    word = ident | (1 << 63 if home else 0)
    return ('ext', kind_ext, struct.pack('>QI', word, shape))

HELLO = [0, 1, 65536, 32]
OBJ, CALLABLE = 3, 4
LOOKUP, GETATTR, SETATTR, CALL, CALLM, LEN, GETITEM, SETITEM, CONTAINS, CHUNK = range(1, 11)
KEEP, ONEWAY, PIPE = 0x100, 0x200, 0x400

def req(reqid, op, target, a, b=None, depth=1):
    return [1, reqid, 0, depth, op, target, a, b]

# the server's table hands out ids 1, 2, ... in the order it sends them
seeds = {
    'lookup_call': [HELLO, req(1, LOOKUP, None, 'add'),
                    req(2, CALL, ref(CALLABLE, 1), [2, 3])],
    'counter': [HELLO, req(1, LOOKUP, None, 'counter'),
                req(2, CALLM, ref(OBJ, 1), 'inc', [5]),
                req(3, GETATTR, ref(OBJ, 1), 'n'),
                req(4, SETATTR, ref(OBJ, 1), 'n', 40),
                [4, [1, 1]]],
    'containers': [HELLO, req(1, LOOKUP, None, 'numbers'),
                   req(2, LEN, ref(OBJ, 1), None),
                   req(3, GETITEM, ref(OBJ, 1), 1),
                   req(4, SETITEM, ref(OBJ, 1), 0, 'x'),
                   req(5, CHUNK, ref(OBJ, 1), 0),
                   req(6, LOOKUP, None, 'config'),
                   req(7, CONTAINS, ref(OBJ, 2), 'k')],
    'errors': [HELLO, req(1, LOOKUP, None, 'fail'),
               req(2, CALL, ref(CALLABLE, 1), ['KeyError']),
               req(3, LOOKUP, None, 'nosuch'),
               req(4, CALL, ref(CALLABLE, 99), [])],
    'pipelined': [HELLO, req(1, LOOKUP, None, 'make'),
                  [1, 2, 0, 1, CALL | KEEP, ref(CALLABLE, 1), [7], None],
                  [1, 3, 0, 1, CALLM | PIPE, 2, 'inc', [1]],
                  [8, [2]]],
    'batch_oneway': [HELLO, req(1, LOOKUP, None, 'add'),
                     [9, req(2, CALL, ref(CALLABLE, 1), [1, 1]),
                      [1, 3, 0, 1, CALL | ONEWAY, ref(CALLABLE, 1), [2, 2], None]],
                     [10, [7], req(4, CALL, ref(CALLABLE, 1), [3, 3])]],
    'echo_values': [HELLO, req(1, LOOKUP, None, 'echo'),
                    req(2, CALL, ref(CALLABLE, 1), [[1, 'two', b'3', None, True]]),
                    req(3, CALL, ref(CALLABLE, 1), [('ext', 1, enc([1, 2]))])],
    'hello_bye': [HELLO, [7], [6]],
    'shape_and_ref': [HELLO,
                      [5, 16, ['T', 'Peer', 0, '', [['x', 'q', False]],
                               [['m', 'q(a:q)', '']]]],
                      req(1, LOOKUP, None, 'echo'),
                      req(2, CALL, ref(CALLABLE, 1), [ref(OBJ, 5, False, 16)]),
                      [4, [1, 1]]],
    'drops_and_releases': [HELLO, req(1, LOOKUP, None, 'make'),
                           [1, 2, 0, 1, CALL | KEEP, ref(CALLABLE, 1), [1], None],
                           [8, [2]], [4, [1, 1, 2, 1]]],
    'deep_callback_depth': [HELLO, req(1, LOOKUP, None, 'add', depth=40),
                            req(2, LOOKUP, None, 'add')],
}

out = 'tests/corpus/session'
os.makedirs(out, exist_ok=True)
for name, msgs in seeds.items():
    data = b''
    for m in msgs:
        b = enc(m)
        data += struct.pack('>H', len(b)) + b
    with open(os.path.join(out, name), 'wb') as f:
        f.write(data)
print(len(seeds), 'seeds in', out)
