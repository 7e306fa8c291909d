"""The suspend image: the toolstack's header in front of the builder's memory section (pure).

Layout of a save file::

    IMAGE_MAGIC                       b"OXTSavedDomain\\n"
    header                            actors.encode({"v": 1, "uuid": <uuid>,
                                                     "config": config_to_dict(<config>)})
    memory section                    the builder's (xen.xenops.Builder.save), to the end

The header is one self-delimiting msgpack value, so the memory section starts right after it;
on the simulated host the section is empty, and the file is exactly what earlier versions
wrote. :func:`encode_header` makes the magic and header; :func:`decode_header` checks them
(magic, version, the VM's uuid, a sound config) in the first bytes of a file (at most
:data:`MAX_HEADER_BYTES`) and tells where the memory section starts. Anything wrong is an
:class:`ImageError` (a ``TaskError``) naming the file and what was wrong.
"""

from __future__ import annotations

import msgpack

from actors import decode, encode
from xen.xenvm._config import VmConfig, config_from_dict, config_to_dict
from xen.xenvm._config_values import ConfigError
from xen.xenvm._tasks import TaskError

__all__ = ["IMAGE_MAGIC", "IMAGE_VERSION", "MAX_HEADER_BYTES", "ImageError", "decode_header",
           "encode_header"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

IMAGE_MAGIC = b"OXTSavedDomain\n"
IMAGE_VERSION = 1
MAX_HEADER_BYTES = 1024 * 1024
"""Largest header read (a config is a few KiB)."""


class ImageError(TaskError):
    """Not a save file of this VM, or a damaged one."""


def encode_header(uuid: str, config: VmConfig) -> bytes:
    """The magic and header of a save file of VM ``uuid`` with ``config``."""
    return IMAGE_MAGIC + encode({"v": IMAGE_VERSION, "uuid": uuid,
                                 "config": config_to_dict(config)})


def decode_header(prefix: bytes, uuid: str, source: str) -> tuple[VmConfig, int]:
    """The config in the header at the start of ``prefix`` (the first bytes of file
    ``source``) and the offset of the memory section; :class:`ImageError` if the file is not
    a sound save file of VM ``uuid``."""
    if not prefix.startswith(IMAGE_MAGIC):
        raise ImageError(f"restore: {source} is not a saved domain image")
    body = prefix[len(IMAGE_MAGIC):]
    try:
        unpacker = msgpack.Unpacker(max_buffer_size=MAX_HEADER_BYTES)
        unpacker.feed(body)
        unpacker.skip()
        end = unpacker.tell()
        record = decode(body[:end])
    except msgpack.OutOfData:
        raise ImageError(f"restore: {source} is damaged: truncated header") from None
    except (msgpack.UnpackException, ValueError) as exc:
        raise ImageError(f"restore: {source} is damaged: {exc}") from None
    if not isinstance(record, dict) or record.get("v") != IMAGE_VERSION:
        raise ImageError(f"restore: {source} is damaged: unknown image version")
    if record.get("uuid") != uuid:
        raise ImageError(f"restore: {source} holds VM {record.get('uuid')}, not {uuid}")
    try:
        config = config_from_dict(record.get("config"))
    except ConfigError as exc:
        raise ImageError(f"restore: {source} is damaged: {exc}") from None
    return config, len(IMAGE_MAGIC) + end
