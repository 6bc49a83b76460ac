"""A downloadable dataset archive, as a dataset plugin declares it: ``DatasetSpec(archive=Archive(...))``.

Declaring one is cheap (no network, no heavy import): listing plugins builds these objects.
:mod:`zoo.data.download` fetches, verifies and extracts them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from zoo.errors import DownloadError, PluginError

BASE_URL_ENV = "ZOO_DOWNLOAD_BASE_URL"
"""A mirror: when set, archives are fetched from ``$ZOO_DOWNLOAD_BASE_URL/<file name>``."""

_HEX_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``"sha256:<hex>"`` / ``"md5:<hex>"`` / bare hex -> (hashlib algorithm name, lowercase hex)."""
    algorithm, sep, digest = checksum.strip().partition(":")
    if not sep:
        algorithm, digest = _HEX_LENGTHS.get(len(algorithm), ""), algorithm
    algorithm, digest = algorithm.lower(), digest.lower()
    if (
        algorithm not in hashlib.algorithms_available
        or not digest
        or any(c not in "0123456789abcdef" for c in digest)
    ):
        raise DownloadError(f"checksum {checksum!r} is not 'sha256:<hex>', 'md5:<hex>' or a hex digest")
    return algorithm, digest


@dataclass(frozen=True)
class Archive:
    """One downloadable archive (zip or tar) holding a dataset's folder.

    Attributes:
        url: where the archive is published; its last path part is the archive's file name.
        folder: the top-level folder inside the archive, created under the destination (and the
            folder the dataset is looked up in: the spec's ``data_dir_name``).
        checksum: ``"sha256:<hex>"`` (or ``"md5:<hex>"``) of the archive.
        size: the archive's size in bytes, when known (progress bar, ``zoo data list``).
        name: the name ``zoo data download`` understands; filled in from the dataset spec.
    """

    url: str
    folder: str
    checksum: str
    size: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        what = f"archive {self.name or self.url!r}"
        if not isinstance(self.url, str) or "/" not in self.url or not self.filename:
            raise PluginError(f"{what}: url {self.url!r} must be a URL ending in the archive's file name.")
        folder = self.folder
        if not isinstance(folder, str) or folder in ("", ".", "..") or any(c in folder for c in "/\\"):
            raise PluginError(f"{what}: folder {self.folder!r} must be a plain folder name.")
        try:
            parse_checksum(self.checksum)
        except (DownloadError, AttributeError):
            raise PluginError(f"{what}: checksum {self.checksum!r} must look like 'sha256:<hex>'.") from None
        if self.size is not None and (not isinstance(self.size, int) or self.size < 0):
            raise PluginError(f"{what}: size {self.size!r} must be a byte count or None.")

    @property
    def filename(self) -> str:
        """The archive's file name (the last part of its URL)."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def download_url(self) -> str:
        """Where it is fetched from: ``$ZOO_DOWNLOAD_BASE_URL/<file name>`` when set, else ``url``."""
        mirror = os.environ.get(BASE_URL_ENV)
        return f"{mirror.rstrip('/')}/{self.filename}" if mirror else self.url
