"""Read what is readable from a truncated bag (a recorder that crashed).

MCAP: records are scanned from the start; every complete record before the damage counts —
schemas, channels and messages, inside chunks (decompressed) or not — and the first incomplete
or corrupt record ends the scan. What was read is rewritten into a temporary MCAP rosbag2 that
the normal reader opens. ROS 1: a bag without its index (the recorder died before writing it,
or the file was cut) is scanned the same way, chunk by chunk (connections and message data),
and rewritten into a temporary indexed ``.bag``. ``Salvage.lost`` says what was lost (bytes,
and the time the readable part spans). Bags are salvaged only when asked
(``ptr ingest --salvage``); otherwise the error says how much a salvage would recover.

The temporary folder (``ptr-salvage-*``) is made inside ``scratch`` (``ptr ingest``: a marked
temp in the dataset's folder, which the next writer removes if this one is killed; default: the
system's temp folder) and removed again when the rewrite fails; on success the caller removes
it. A rewrite that cannot be written (disk full, read-only) is one line naming that folder.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bag_tools.errors import BagOpenError

__all__ = ['MCAP_MAGIC', 'ROS1_MAGIC', 'Salvage', 'salvage_mcap', 'salvage_ros1', 'scan_mcap',
           'scan_ros1']

log = logging.getLogger(__name__)

MCAP_MAGIC = b'\x89MCAP0\r\n'
ROS1_MAGIC = b'#ROSBAG V2.0\n'
_Q = struct.Struct('<Q')
_I = struct.Struct('<I')
_H = struct.Struct('<H')
_K = TypeVar('_K')  # what keys a record: an MCAP opcode, a ROS 1 record header
#: (buffer, start) -> (key, body, end) of each complete record
_Records = Callable[[bytes, int], Iterator[tuple[_K, bytes, int]]]
_Take = Callable[['Salvage', _K, bytes], None]  # one record's content into the salvage


@dataclass
class Salvage:
    """What a scan of a damaged MCAP file recovered."""

    path: Path
    size: int
    good_bytes: int  # the readable prefix
    #: schema id -> (type name, encoding, definition)
    schemas: dict[int, tuple[str, str, bytes]] = field(default_factory=dict)
    #: channel id -> (schema id, topic, message encoding)
    channels: dict[int, tuple[int, str, str]] = field(default_factory=dict)
    messages: list[tuple[int, int, bytes]] = field(default_factory=list)  # channel, log ns, data
    #: ROS 1 connection id -> its connection header fields (topic, type, md5sum, ...)
    connections: dict[int, dict[str, str]] = field(default_factory=dict)
    chunks: int = 0
    reason: str = ''

    @property
    def lost(self) -> str:
        end = max((t for _, t, _ in self.messages), default=0)
        start = min((t for _, t, _ in self.messages), default=0)
        span = f', {(end - start) / 1e9:.3f} s from the start' if self.messages else ''
        read = f'read {len(self.messages)} messages in {self.chunks} chunk(s){span}'
        if self.good_bytes == self.size:
            return f'{read}; every record is whole, only {self.reason} is missing'
        return (f'{read}; lost everything after byte {self.good_bytes} of {self.size} '
                f'({self.size - self.good_bytes} bytes: {self.reason})')


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = _I.unpack_from(buf, pos)
    end = pos + 4 + n
    if end > len(buf):
        raise struct.error('string past the record')
    return buf[pos + 4:end].decode(), end


def _records(buf: bytes, pos: int) -> Iterator[tuple[int, bytes, int]]:
    """(opcode, body, end) of each complete record from ``pos``."""
    while pos + 9 <= len(buf):
        op = buf[pos]
        (length,) = _Q.unpack_from(buf, pos + 1)
        end = pos + 9 + length
        if end > len(buf):
            return
        yield op, buf[pos + 9:end], end
        pos = end


def _decompress(data: bytes, compression: str) -> bytes:
    """A chunk's records: MCAP compresses with '' (none), zstd or lz4, ROS 1 with none, bz2 or
    lz4."""
    if compression in ('', 'none'):
        return data
    if compression == 'zstd':
        try:
            from compression import zstd  # type: ignore[import-not-found]
        except ImportError:
            from backports import zstd  # type: ignore[import-not-found,no-redef]
        out: bytes = zstd.decompress(data)
        return out
    if compression == 'bz2':
        import bz2

        return bz2.decompress(data)
    if compression == 'lz4':
        from lz4.frame import decompress  # type: ignore[import-untyped]

        lz4: bytes = decompress(data)
        return lz4
    msg = f'unknown chunk compression {compression!r}'
    raise ValueError(msg)


def _chunk(s: Salvage, inner: bytes, records: _Records[_K], take: _Take[_K]) -> None:
    """Every record of a decompressed chunk into ``s``; a chunk its records do not fill is
    damaged (``ValueError``)."""
    got = list(records(inner, 0))
    if not got or got[-1][2] != len(inner):
        raise ValueError('chunk records do not fill the chunk')
    for key, body, _ in got:
        take(s, key, body)
    s.chunks += 1


def _scan(path: Path, magic: bytes, kind: str, records: _Records[_K],
          step: Callable[[Salvage, _K, bytes], bool]) -> Salvage:
    """Every complete record of ``path`` after its ``magic``, each given to ``step`` (True: stop
    after it), up to the first incomplete or corrupt one; ``good_bytes`` ends at the last whole
    record."""
    buf = path.read_bytes()
    s = Salvage(path, len(buf), 0)
    if not buf.startswith(magic):
        s.reason = f'no {kind} magic at the start'
        return s
    s.good_bytes = len(magic)
    s.reason = 'the file ends inside a record'
    for key, body, end in records(buf, len(magic)):
        try:
            stop = step(s, key, body)
        except (struct.error, ValueError, KeyError, OSError, UnicodeDecodeError) as err:
            s.reason = f'corrupt record at byte {s.good_bytes}: {err}'
            break
        s.good_bytes = end
        if stop:
            break
    return s


def _take(s: Salvage, op: int, body: bytes) -> None:
    if op == 0x03:  # Schema
        (sid,) = _H.unpack_from(body, 0)
        name, pos = _string(body, 2)
        enc, pos = _string(body, pos)
        (n,) = _I.unpack_from(body, pos)
        s.schemas[sid] = (name, enc, body[pos + 4:pos + 4 + n])
    elif op == 0x04:  # Channel
        cid, sid = struct.unpack_from('<HH', body, 0)
        topic, pos = _string(body, 4)
        enc, pos = _string(body, pos)
        s.channels[cid] = (sid, topic, enc)
    elif op == 0x05:  # Message
        (cid,) = _H.unpack_from(body, 0)
        (log_ns,) = _Q.unpack_from(body, 6)
        s.messages.append((cid, log_ns, body[22:]))


def _mcap_record(s: Salvage, op: int, body: bytes) -> bool:
    if op == 0x06:  # Chunk: start, end, uncompressed size, crc, compression, records
        compression, pos = _string(body, 28)
        (n,) = _Q.unpack_from(body, pos)
        _chunk(s, _decompress(body[pos + 8:pos + 8 + n], compression), _records, _take)
    else:
        _take(s, op, body)
    if op == 0x0F:  # DataEnd: everything after it is summary
        s.reason = 'only the summary section'
        return True
    return False


def scan_mcap(path: Path) -> Salvage:
    """Every complete record of a (damaged) MCAP file, up to the first incomplete one."""
    return _scan(path, MCAP_MAGIC, 'MCAP', _records, _mcap_record)


def _rihs01(name: str, definition: str) -> str:
    """The type hash of an embedded ros2msg definition (readers check it)."""
    import re

    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    from bag_tools.msgdefs import register_missing
    from bag_tools.profile import normalize_msgtype

    store = get_typestore(Stores.EMPTY)
    parts = re.split(r'^={80}\n', definition, flags=re.MULTILINE)
    types = dict(get_types_from_msg(parts[0], name))
    for part in parts[1:]:
        header, _, body = part.partition('\n')
        if header.startswith('MSG: '):
            types.update(get_types_from_msg(body, normalize_msgtype(header[5:].strip())))
    try:
        store.register(types)
        return str(store.hash_rihs01(name))
    except Exception:  # an incomplete definition: the standard one's hash
        return str(register_missing(get_typestore(Stores.ROS2_HUMBLE)).hash_rihs01(name))


@contextlib.contextmanager
def _workdir(path: Path, scratch: Path | None) -> Iterator[Path]:
    """A new ``ptr-salvage-*`` folder in ``scratch``, removed when the body raises."""
    try:
        work = Path(tempfile.mkdtemp(prefix='ptr-salvage-', dir=scratch))
    except OSError as err:
        msg = f'{path}: cannot salvage: cannot write to {scratch or tempfile.gettempdir()}: ' \
              f'{err.strerror or err}'
        raise BagOpenError(msg) from err
    try:
        yield work
    except BaseException as err:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(err, OSError):
            msg = f'{path}: cannot salvage: writing {work}: {err.strerror or err}'
            raise BagOpenError(msg) from err
        raise


def _salvage(path: Path, s: Salvage, damaged: str, name: str,
             write: Callable[[Salvage, Path], None], scratch: Path | None,
             ) -> tuple[Path, Salvage]:
    """Rewrite what the scan ``s`` of ``path`` read into ``<a new ptr-salvage-* folder>/name``
    inside ``scratch``; nothing read is one line (``damaged`` says what the file is)."""
    if not s.messages:
        msg = f'{path}: {damaged} with nothing readable ({s.lost})'
        raise BagOpenError(msg)
    with _workdir(path, scratch) as work:
        write(s, work / name)
    return work / name, s


def _write_messages(writer: Any, conns: dict[int, Any], s: Salvage) -> None:
    """The messages of the connections written, in log-time order."""
    for cid, log_ns, data in sorted(s.messages, key=lambda m: m[1]):
        if cid in conns:
            writer.write(conns[cid], log_ns, data)


def salvage_mcap(path: Path, *, scratch: Path | None = None) -> tuple[Path, Salvage]:
    """Rewrite the readable part of ``path`` into a temporary rosbag2 folder inside
    ``scratch`` (the caller removes its parent directory); returns (folder, what was
    recovered)."""
    return _salvage(path, scan_mcap(path), 'truncated or corrupt MCAP', 'salvaged',
                    _write_mcap, scratch)


def _write_mcap(s: Salvage, out: Path) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    conns = {}
    with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for cid, (sid, topic, _) in sorted(s.channels.items()):
            if sid not in s.schemas:
                continue
            name, _, data = s.schemas[sid]
            text = data.decode()
            conns[cid] = writer.add_connection(topic, name, msgdef=text,
                                               rihs01=_rihs01(name, text))
        _write_messages(writer, conns, s)


# -- ROS 1 ------------------------------------------------------------------------------------

def _ros1_header(buf: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    while pos + 4 <= len(buf):
        (n,) = _I.unpack_from(buf, pos)
        key, sep, value = buf[pos + 4:pos + 4 + n].partition(b'=')
        if not sep or pos + 4 + n > len(buf):
            raise ValueError('bad header field')
        out[key.decode()] = value
        pos += 4 + n
    return out


def _ros1_records(buf: bytes, pos: int) -> Iterator[tuple[dict[str, bytes], bytes, int]]:
    while pos + 8 <= len(buf):
        (hlen,) = _I.unpack_from(buf, pos)
        if pos + 8 + hlen > len(buf):
            return
        header = _ros1_header(buf[pos + 4:pos + 4 + hlen])
        (dlen,) = _I.unpack_from(buf, pos + 4 + hlen)
        end = pos + 8 + hlen + dlen
        if end > len(buf):
            return
        yield header, buf[pos + 8 + hlen:end], end
        pos = end


def _ros1_take(s: Salvage, header: dict[str, bytes], data: bytes) -> None:
    op = header.get('op', b'\0')[0]
    if op == 0x07:  # connection
        (conn,) = _I.unpack_from(header['conn'], 0)
        fields = {k: v.decode() for k, v in _ros1_header(data).items()}
        # the topic is the record header's; rosbag writes it into the connection header only
        # sometimes (seen: a PR2 bag of 2012 has it on one connection of fifteen)
        fields['topic'] = header['topic'].decode()
        if 'type' not in fields or 'md5sum' not in fields:
            raise ValueError(f'connection {conn} without type or md5sum')
        s.connections[conn] = fields
    elif op == 0x02:  # message data
        (conn,) = _I.unpack_from(header['conn'], 0)
        sec, nsec = struct.unpack_from('<II', header['time'], 0)
        s.messages.append((conn, sec * 1_000_000_000 + nsec, data))


def _ros1_record(s: Salvage, header: dict[str, bytes], data: bytes) -> bool:
    if header.get('op', b'\0')[0] == 0x05:  # chunk
        _chunk(s, _decompress(data, header['compression'].decode()), _ros1_records, _ros1_take)
    else:
        _ros1_take(s, header, data)
    return False


def scan_ros1(path: Path) -> Salvage:
    """Every complete chunk (and loose record) of a ROS 1 bag, up to the first damage."""
    s = _scan(path, ROS1_MAGIC, 'ROS 1 bag', _ros1_records, _ros1_record)
    if s.good_bytes == s.size:
        s.reason = 'the index'
    return s


def salvage_ros1(path: Path, *, scratch: Path | None = None) -> tuple[Path, Salvage]:
    """Rewrite the readable part of a ROS 1 bag into a temporary indexed ``.bag`` inside
    ``scratch`` (the caller removes its parent directory); returns (file, what was
    recovered)."""
    return _salvage(path, scan_ros1(path), 'truncated or unindexed ROS 1 bag', 'salvaged.bag',
                    _write_ros1, scratch)


def _write_ros1(s: Salvage, out: Path) -> None:
    from rosbags.rosbag1 import Writer

    from bag_tools.profile import normalize_msgtype

    conns = {}
    with Writer(out) as writer:
        for cid, fields in sorted(s.connections.items()):
            latching = fields.get('latching')
            conns[cid] = writer.add_connection(
                fields['topic'], normalize_msgtype(fields['type']),
                msgdef=fields.get('message_definition', ''), md5sum=fields['md5sum'],
                callerid=fields.get('callerid'),
                latching=int(latching) if latching and latching.isdigit() else None)
        _write_messages(writer, conns, s)
