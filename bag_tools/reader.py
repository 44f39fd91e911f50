"""One reader for every bag container: ROS 1 .bag, rosbag2 folders, bare .db3 and .mcap.

Wraps ``rosbags.highlevel.AnyReader`` so that every failure to open or decode a bag becomes a
``BagToolsError`` whose one-line message names the file and the problem.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from rosbags.highlevel import AnyReader
from rosbags.highlevel.anyreader import AnyReaderError
from rosbags.typesys import Stores, get_typestore

from bag_tools.errors import BagOpenError, MissingTypeError
from bag_tools.fastcdr import decode_joint_state
from bag_tools.msgdefs import register_missing

__all__ = [
    'BAG_SUFFIXES',
    'BagReader',
    'RawMessage',
    'TopicInfo',
    'bag_content_hash',
    'is_bag_path',
    'open_bag',
]

log = logging.getLogger(__name__)

BAG_SUFFIXES = ('.bag', '.db3', '.mcap')

#: Type definitions used when a rosbag2 file carries none (old sqlite3 bags, empty bags).
DEFAULT_STORE = Stores.ROS2_HUMBLE

HEADER_TYPES = ('std_msgs/msg/Header',)


class TopicInfo(NamedTuple):
    """What a bag holds on one topic (connections of the same topic merged)."""

    topic: str
    msgtype: str  # the first connection's type
    msgcount: int
    has_header: bool
    defined: bool
    msgtypes: tuple[str, ...] = ()  # every type on the topic (two or more: a mixed topic)


def _typestore() -> Any:
    return register_missing(get_typestore(DEFAULT_STORE))


class RawMessage(NamedTuple):
    """One serialized message as stored in the bag."""

    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes
    connection: Any


def is_bag_path(path: Path) -> bool:
    """Whether ``path`` looks like a bag: a bag file or a rosbag2 folder."""
    if path.is_file():
        return path.suffix in BAG_SUFFIXES
    return path.is_dir() and (path / 'metadata.yaml').is_file()


def _check_path(path: Path) -> None:
    if not path.exists():
        msg = f'{path}: no such file or directory'
        raise BagOpenError(msg)
    if path.is_dir():
        if (path / 'metadata.yaml').is_file():
            return
        parts = sorted(p.name for p in path.iterdir() if p.suffix in ('.db3', '.mcap'))
        if parts:
            msg = (
                f'{path}: rosbag2 folder without metadata.yaml ({len(parts)} storage files); '
                'run `ros2 bag reindex` on it, or pass the storage files one by one'
            )
        else:
            msg = f'{path}: not a bag (a folder without metadata.yaml or .db3/.mcap files)'
        raise BagOpenError(msg)
    if path.suffix not in BAG_SUFFIXES:
        msg = f'{path}: not a bag (expected .bag, .db3, .mcap or a rosbag2 folder)'
        raise BagOpenError(msg)
    if path.stat().st_size == 0:
        msg = f'{path}: empty file, not a bag'
        raise BagOpenError(msg)


#: Files inside a rosbag2 folder that are part of its content besides the storage files: camera
#: videos recorded beside the messages and their frame-stamp sidecars.
_CONTENT_SUFFIXES = (*BAG_SUFFIXES, '.mp4', '.mkv', '.webm', '.mov', '.avi', '.stamps')


def bag_content_hash(path: Path, *, chunk: int = 1 << 20) -> str:
    """SHA-256 over the bag's bytes (every storage file of a folder, and camera videos inside
    it, in name order)."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        if (path.is_dir() and file.name != 'metadata.yaml'
                and file.suffix.lower() not in _CONTENT_SUFFIXES):
            continue
        digest.update(file.name.encode())
        with file.open('rb') as stream:
            while block := stream.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def _one_line(err: BaseException) -> str:
    text = ' '.join(str(err).split())
    return text or type(err).__name__


class BagReader:
    """An open bag. Use as a context manager; every error is a ``BagToolsError``.

    ``salvage``: a truncated MCAP or unindexed ROS 1 bag is read up to the damage
    (``bag_tools.salvage``, rewritten into a temp folder inside ``scratch``, removed on close)
    with one warning saying what was lost; without it, such a bag is refused with a line saying
    how much ``--salvage`` would recover.
    """

    def __init__(self, path: Path, *, salvage: bool = False, scratch: Path | None = None
                 ) -> None:
        self.path = path
        self.salvage = salvage
        self.scratch = scratch  # where a salvage writes its temp folder (None: system temp)
        self.salvaged: str = ''  # what a salvage lost ('' when the bag was whole)
        self._salvage_dir: Path | None = None
        self._reader = AnyReader([path], default_typestore=_typestore())
        self._cuts: dict[int, int] = {}  # id(connection) -> trailing bytes its messages carry

    def __enter__(self) -> BagReader:
        try:
            try:
                self._reader.open()
                if self.path.is_dir() and self._metadata_disagrees_with_storage():
                    self._reopen_storage_files()
            except Exception as err:
                if not self._try_salvage(err):
                    raise
        except BagOpenError:
            raise
        except (AnyReaderError, OSError, ValueError, KeyError, IndexError) as err:
            msg = f'{self.path}: cannot open bag: {_one_line(err)}'
            raise BagOpenError(msg) from err
        except Exception as err:  # rosbags raises several unrelated error types on corrupt input
            msg = f'{self.path}: corrupt or truncated bag: {_one_line(err)}'
            raise BagOpenError(msg) from err
        return self

    def _damaged_file(self) -> Path | None:
        if self.path.is_file() and self.path.suffix in ('.mcap', '.bag'):
            return self.path
        if self.path.is_dir():
            files = sorted(self.path.glob('*.mcap'))
            return files[0] if len(files) == 1 else None
        return None

    def _try_salvage(self, err: Exception) -> bool:
        """A damaged MCAP or unindexed ROS 1 bag: salvage it when asked, else refuse it saying
        what is readable."""
        import shutil

        from bag_tools import salvage

        damaged = self._damaged_file()
        if damaged is None:
            return False
        ros1 = damaged.suffix == '.bag'
        if not self.salvage:
            found = (salvage.scan_ros1 if ros1 else salvage.scan_mcap)(damaged)
            if not found.messages:
                return False
            msg = (f'{self.path}: truncated or corrupt bag ({_one_line(err)}); {found.lost}; '
                   'ingest the readable part with --salvage')
            raise BagOpenError(msg) from err
        rewrite = salvage.salvage_ros1 if ros1 else salvage.salvage_mcap
        rewritten, found = rewrite(damaged, scratch=self.scratch)
        self._salvage_dir = rewritten.parent
        self.salvaged = found.lost
        log.warning('%s: truncated bag salvaged: %s', self.path, found.lost)
        try:
            self._reader = AnyReader([rewritten], default_typestore=_typestore())
            self._reader.open()
        except BaseException:
            shutil.rmtree(rewritten.parent, ignore_errors=True)
            self._salvage_dir = None
            raise
        return True

    def _metadata_disagrees_with_storage(self) -> bool:
        """rosbags matches metadata.yaml topics to storage topics by QoS too; old rosbag2
        writers stored different QoS in each, and then no message is ever yielded."""
        expected = sum(c.msgcount for c in self._reader.connections)
        if expected == 0:
            return False
        return next(iter(self._reader.messages()), None) is None

    def _reopen_storage_files(self) -> None:
        import yaml

        info = yaml.safe_load((self.path / 'metadata.yaml').read_text())
        meta = info.get('rosbag2_bagfile_information', {})
        if meta.get('compression_format'):
            return
        files = [self.path / f for f in meta.get('relative_file_paths', [])]
        if not files or not all(f.is_file() for f in files):
            return
        log.warning(
            '%s: metadata.yaml does not match its storage files (QoS); reading %d storage '
            'file(s) directly', self.path, len(files),
        )
        self._reader.close()
        self._reader = AnyReader(files, default_typestore=_typestore())
        self._reader.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._reader.close()
        if self._salvage_dir is not None:
            import shutil

            shutil.rmtree(self._salvage_dir, ignore_errors=True)

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self._reader.end_time)

    @property
    def message_count(self) -> int:
        return sum(c.msgcount for c in self._reader.connections)

    @property
    def duration_ns(self) -> int:
        return int(self._reader.duration) if self.message_count else 0

    def custom_data(self) -> dict[str, str]:
        """The rosbag2 ``metadata.yaml`` ``custom_data`` mapping ({} for ROS 1 and bare files)."""
        out: dict[str, str] = {}
        for reader in getattr(self._reader, 'readers', []):
            custom = getattr(getattr(reader, 'metadata', None), 'custom', None)
            if isinstance(custom, dict):
                out.update({str(k): str(v) for k, v in custom.items()})
        if not out and (self.path / 'metadata.yaml').is_file():
            # rosbags 0.11's rosbag2 Reader does not keep custom_data; read it from the file.
            import yaml

            try:
                meta = yaml.safe_load((self.path / 'metadata.yaml').read_text())
                custom = meta['rosbag2_bagfile_information'].get('custom_data') or {}
            except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
                custom = {}
            if isinstance(custom, dict):
                out.update({str(k): str(v) for k, v in custom.items()})
        return out

    def is_defined(self, msgtype: str) -> bool:
        return msgtype in self._reader.typestore.fielddefs

    def has_header(self, msgtype: str) -> bool:
        """Whether the type's first field is a ``std_msgs/Header`` named ``header``."""
        if not self.is_defined(msgtype):
            return False
        _, fields = self._reader.typestore.fielddefs[msgtype]
        if not fields:
            return False
        name, (_, sub) = fields[0]
        return name == 'header' and sub in HEADER_TYPES

    def topics(self) -> dict[str, TopicInfo]:
        """Topics in first-seen order; connections of one topic are merged."""
        out: dict[str, TopicInfo] = {}
        for conn in self._reader.connections:
            prev = out.get(conn.topic)
            if prev is None:
                out[conn.topic] = TopicInfo(
                    conn.topic, conn.msgtype, conn.msgcount, self.has_header(conn.msgtype),
                    self.is_defined(conn.msgtype), (conn.msgtype,),
                )
                continue
            types = prev.msgtypes
            if conn.msgtype not in types:
                types = (*types, conn.msgtype)
            out[conn.topic] = prev._replace(
                msgcount=prev.msgcount + conn.msgcount, msgtypes=types,
                defined=prev.defined and self.is_defined(conn.msgtype))
        return out

    def require_defined(self, topics: Sequence[str] | None = None) -> None:
        """Raise ``MissingTypeError`` if any (selected) topic's type has no definition."""
        for info in self.topics().values():
            if topics is not None and info.topic not in topics:
                continue
            if not info.defined:
                msg = (
                    f'{self.path}: topic {info.topic}: type {info.msgtype} has no definition in '
                    'the bag and is not a standard ROS 2 type'
                )
                raise MissingTypeError(msg)

    def raw_messages(self, topics: Sequence[str] | None = None) -> Iterator[RawMessage]:
        """Serialized messages in log-time order, optionally only of ``topics``."""
        conns = [
            c for c in self._reader.connections if topics is None or c.topic in topics
        ]
        if not conns:
            return
        try:
            for conn, stamp, data in self._reader.messages(connections=conns):
                yield RawMessage(conn.topic, conn.msgtype, int(stamp), data, conn)
        except Exception as err:  # truncated chunks surface here, deep inside rosbags
            msg = f'{self.path}: corrupt or truncated bag while reading: {_one_line(err)}'
            raise BagOpenError(msg) from err

    def deserialize_lean(self, raw: RawMessage) -> Any:
        """Like ``deserialize``, but a rosbag2 ``sensor_msgs/JointState`` comes back with only
        its header, names and positions (``bag_tools.fastcdr``; several times faster)."""
        if raw.msgtype == 'sensor_msgs/msg/JointState' and self._reader.is2:
            msg = decode_joint_state(raw.data)
            if msg is not None:
                return msg
        return self.deserialize(raw)

    def deserialize(self, raw: RawMessage) -> Any:
        """Decode one message; harmless trailing bytes after a CDR message are tolerated."""
        if not self.is_defined(raw.msgtype):
            msg = (
                f'{self.path}: topic {raw.topic}: type {raw.msgtype} has no definition in the '
                'bag and is not a standard ROS 2 type'
            )
            raise MissingTypeError(msg)
        key = id(raw.connection)
        cut = self._cuts.get(key, 0)
        if cut:  # this connection's messages carry padding: cut it without a failed try first
            try:
                return self._reader.typestore.deserialize_cdr(raw.data[:-cut], raw.msgtype)
            except Exception:
                pass
        try:
            decoded = self._reader.deserialize(raw.data, raw.msgtype)
            if cut:
                self._cuts[key] = 0
            return decoded
        except Exception as err:
            tolerated = self._deserialize_tolerant(raw)
            if tolerated is not None:
                return tolerated
            msg = (
                f'{self.path}: topic {raw.topic}: cannot decode {raw.msgtype} message at '
                f't={raw.log_time_ns} ns: {_one_line(err)}'
            )
            raise BagOpenError(msg) from err

    def _deserialize_tolerant(self, raw: RawMessage) -> Any | None:
        """Real recorders sometimes append padding bytes after a CDR message; rosbags refuses
        any byte count mismatch. Retry without up to 7 trailing bytes (CDR aligns to 8)."""
        store = self._reader.typestore
        for cut in range(1, 8):
            if len(raw.data) - cut < 4:
                break
            try:
                msg = store.deserialize_cdr(raw.data[:-cut], raw.msgtype)
            except Exception:
                continue
            self._cuts[id(raw.connection)] = cut  # remembered: the next message tries it first
            return msg
        return None


def open_bag(path: str | Path, *, salvage: bool = False, scratch: Path | None = None
             ) -> BagReader:
    """Check ``path`` and return an unopened ``BagReader`` (open it with ``with``)."""
    path = Path(path)
    _check_path(path)
    return BagReader(path, salvage=salvage, scratch=scratch)
