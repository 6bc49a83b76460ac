"""Dataset download: fetch from a local HTTP server, verify checksums, extract safely, CLI sub-app."""

from __future__ import annotations

import hashlib
import io
import socket
import stat
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zoo import hookimpl, testing
from zoo.data import download as dl
from zoo.data.archive import Archive
from zoo.data.download import archives, download, extract_archive, get_archive, parse_checksum
from zoo.data.readers import read_ml1m
from zoo.errors import DownloadError, UnknownNameError
from zoo.specs import DatasetSpec
from zoo_cli.commands.data import app

RATINGS = b"1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n"
USERS = b"1::F::1::10::48067\n2::M::56::16::70072\n"
MOVIES = b"10::Toy Story (1995)::Animation\n20::Heat (1995)::Action|Crime\n"


def make_zip(path: Path, members: dict[str, bytes], *, links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def ml1m_members(prefix: str = "ml-1m/") -> dict[str, bytes]:
    return {f"{prefix}ratings.dat": RATINGS, f"{prefix}users.dat": USERS, f"{prefix}movies.dat": MOVIES}


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(folder served, base URL) of a local HTTP server on 127.0.0.1."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------------------------
# download()
# --------------------------------------------------------------------------------------------
def test_download_verifies_and_extracts(served: tuple[Path, str], tmp_path: Path) -> None:
    root, base = served
    archive = make_zip(root / "ml-1m.zip", ml1m_members())
    dest = tmp_path / "cache"
    calls: list[tuple[int, int | None]] = []
    folder = download(
        "movielens-1m",
        dest,
        url=f"{base}/ml-1m.zip",
        checksum=sha256(archive),
        progress=lambda d, t: calls.append((d, t)),
    )
    assert folder == dest / "ml-1m"
    assert (folder / "ratings.dat").read_bytes() == RATINGS
    assert sorted(p.name for p in dest.iterdir()) == ["ml-1m"]  # no temp file or folder left
    assert calls[-1] == (archive.stat().st_size, archive.stat().st_size)
    assert read_ml1m(folder).stats()["interactions"] == 3


def test_download_uses_base_url_env_and_md5(
    served: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, base = served
    archive = make_zip(root / "ml-1m.zip", ml1m_members())
    monkeypatch.setenv("ZOO_DOWNLOAD_BASE_URL", base + "/")
    assert get_archive("movielens-1m").download_url == f"{base}/ml-1m.zip"
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    folder = download("ml-1m", tmp_path / "cache", checksum=md5)  # folder name works as an alias
    assert (folder / "movies.dat").is_file()


def test_download_defaults_to_cache_dir(
    served: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, base = served
    archive = make_zip(root / "ml-1m.zip", ml1m_members())
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "zoo-cache"))
    folder = download("movielens-1m", url=f"{base}/ml-1m.zip", checksum=sha256(archive))
    assert folder == tmp_path / "zoo-cache" / "ml-1m"


def test_checksum_mismatch_leaves_nothing(served: tuple[Path, str], tmp_path: Path) -> None:
    root, base = served
    make_zip(root / "ml-1m.zip", ml1m_members())
    dest = tmp_path / "cache"
    with pytest.raises(DownloadError) as exc:
        download("movielens-1m", dest, url=f"{base}/ml-1m.zip", checksum="sha256:" + "0" * 64)
    message = one_line(exc)
    assert "checksum mismatch" in message and f"{base}/ml-1m.zip" in message
    assert exc.value.exit_code == 6
    assert list(dest.iterdir()) == []


def test_table_checksum_applies_to_a_mirror(served: tuple[Path, str], tmp_path: Path) -> None:
    """A URL override without a checksum is still verified against the official sha256."""
    root, base = served
    make_zip(root / "ml-1m.zip", ml1m_members())
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download("movielens-1m", tmp_path / "cache", url=f"{base}/ml-1m.zip")


def test_already_present_short_circuits(tmp_path: Path) -> None:
    existing = tmp_path / "cache" / "ml-1m"
    existing.mkdir(parents=True)
    (existing / "marker").write_text("kept")
    # An unreachable URL proves nothing is fetched.
    assert download("movielens-1m", tmp_path / "cache", url="http://127.0.0.1:9/none.zip") == existing
    assert (existing / "marker").read_text() == "kept"


def test_force_replaces_the_folder(served: tuple[Path, str], tmp_path: Path) -> None:
    root, base = served
    archive = make_zip(root / "ml-1m.zip", ml1m_members())
    existing = tmp_path / "cache" / "ml-1m"
    existing.mkdir(parents=True)
    (existing / "stale.txt").write_text("old")
    folder = download(
        "movielens-1m", tmp_path / "cache", force=True, url=f"{base}/ml-1m.zip", checksum=sha256(archive)
    )
    assert not (folder / "stale.txt").exists() and (folder / "ratings.dat").is_file()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["ml-1m"]


def test_failed_forced_download_keeps_the_old_folder(served: tuple[Path, str], tmp_path: Path) -> None:
    root, base = served
    make_zip(root / "ml-1m.zip", ml1m_members())
    existing = tmp_path / "cache" / "ml-1m"
    existing.mkdir(parents=True)
    (existing / "ratings.dat").write_bytes(RATINGS)
    with pytest.raises(DownloadError):
        download(
            "movielens-1m",
            tmp_path / "cache",
            force=True,
            url=f"{base}/ml-1m.zip",
            checksum="md5:" + "0" * 32,
        )
    assert (existing / "ratings.dat").read_bytes() == RATINGS


def test_http_404_and_refused_connection(served: tuple[Path, str], tmp_path: Path) -> None:
    _, base = served
    with pytest.raises(DownloadError) as exc:
        download("movielens-1m", tmp_path / "cache", url=f"{base}/missing.zip")
    message = one_line(exc)
    assert "404" in message and f"{base}/missing.zip" in message and "--data" in message
    with socket.socket() as sock:  # a port that is certainly closed once this socket is gone
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError) as exc:
        download("movielens-1m", tmp_path / "cache", url=f"http://127.0.0.1:{port}/ml-1m.zip")
    assert f"127.0.0.1:{port}" in one_line(exc)
    assert list((tmp_path / "cache").iterdir()) == []


def test_archive_without_the_expected_folder(served: tuple[Path, str], tmp_path: Path) -> None:
    root, base = served
    archive = make_zip(root / "flat.zip", ml1m_members(prefix=""))
    with pytest.raises(DownloadError, match="no top-level folder 'ml-1m'"):
        download("movielens-1m", tmp_path / "cache", url=f"{base}/flat.zip", checksum=sha256(archive))
    assert list((tmp_path / "cache").iterdir()) == []


def test_unknown_name_is_a_usage_error() -> None:
    with pytest.raises(UnknownNameError) as exc:
        download("movielens-2m")
    assert exc.value.exit_code == 2 and "movielens-1m" in str(exc.value)


# --------------------------------------------------------------------------------------------
# Safe extraction
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("members", "links", "reason"),
    [
        ({"ml-1m/ratings.dat": RATINGS, "../evil.txt": b"x"}, None, "'..'"),
        ({"ml-1m/ratings.dat": RATINGS, "ml-1m/../../evil.txt": b"x"}, None, "'..'"),
        ({"ml-1m/ratings.dat": RATINGS, "/tmp/evil-abs.txt": b"x"}, None, "absolute"),
        ({"ml-1m/ratings.dat": RATINGS, "C:/evil.txt": b"x"}, None, "absolute"),
        ({"ml-1m/ratings.dat": RATINGS}, {"ml-1m/link": "/etc/passwd"}, "symbolic link"),
    ],
)
def test_unsafe_zip_is_rejected_before_writing(
    tmp_path: Path, members: dict[str, bytes], links, reason: str
) -> None:
    archive = make_zip(tmp_path / "bad.zip", members, links=links)
    target = tmp_path / "out" / "staging"
    with pytest.raises(DownloadError) as exc:
        extract_archive(archive, target)
    assert reason in one_line(exc)
    assert list(target.iterdir()) == []  # not even the safe member was written
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_unsafe_archive_through_download_leaves_nothing(served: tuple[Path, str], tmp_path: Path) -> None:
    root, base = served
    archive = make_zip(root / "ml-1m.zip", {**ml1m_members(), "ml-1m/../../escape.txt": b"x"})
    dest = tmp_path / "cache"
    with pytest.raises(DownloadError, match="unsafe archive member"):
        download("movielens-1m", dest, url=f"{base}/ml-1m.zip", checksum=sha256(archive))
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def _tar(path: Path, add) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        data = tarfile.TarInfo("ml-1m/ratings.dat")
        data.size = len(RATINGS)
        tf.addfile(data, io.BytesIO(RATINGS))
        add(tf)
    return path


def _symlink(tf: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("ml-1m/link")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tf.addfile(info)


def _hardlink(tf: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("ml-1m/hard")
    info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
    tf.addfile(info)


@pytest.mark.parametrize(("add", "reason"), [(_symlink, "symbolic link"), (_hardlink, "hard link")])
def test_tar_links_are_rejected(tmp_path: Path, add, reason: str) -> None:
    target = tmp_path / "staging"
    with pytest.raises(DownloadError) as exc:
        extract_archive(_tar(tmp_path / "bad.tar.gz", add), target)
    assert reason in one_line(exc)
    assert list(target.iterdir()) == []


def test_safe_tar_and_zip_extract(tmp_path: Path) -> None:
    extract_archive(_tar(tmp_path / "ok.tar.gz", lambda tf: None), tmp_path / "t")
    assert (tmp_path / "t" / "ml-1m" / "ratings.dat").read_bytes() == RATINGS
    extract_archive(make_zip(tmp_path / "ok.zip", {"./ml-1m/": b"", **ml1m_members()}), tmp_path / "z")
    assert (tmp_path / "z" / "ml-1m" / "users.dat").read_bytes() == USERS


def test_not_an_archive(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"<html>not found</html>")
    with pytest.raises(DownloadError, match="not a zip or tar archive"):
        extract_archive(junk, tmp_path / "out")


# --------------------------------------------------------------------------------------------
# Table and checksums
# --------------------------------------------------------------------------------------------
def test_parse_checksum_forms() -> None:
    assert parse_checksum("sha256:" + "AB" * 32) == ("sha256", "ab" * 32)
    assert parse_checksum("c4d9eecfca2ab87c1945afe126590906") == ("md5", "c4d9eecfca2ab87c1945afe126590906")
    for bad in ("sha256:xyz", "nope:00", "123"):
        with pytest.raises(DownloadError):
            parse_checksum(bad)


def test_archive_table_is_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dl.BASE_URL_ENV, raising=False)
    table = archives()
    assert len(table) == 5
    for name, archive in table.items():
        algorithm, digest = parse_checksum(archive.checksum)
        assert algorithm == "sha256" and len(digest) == 64
        assert archive.name == name and archive.download_url == archive.url
        assert archive.filename == archive.folder + ".zip"


def test_download_takes_an_archive_object(served: tuple[Path, str], tmp_path: Path) -> None:
    """The machinery is generic: any Archive, e.g. a third-party dataset's tar.gz."""
    root, base = served
    with tarfile.open(root / "logs-v1.tar.gz", "w:gz") as tf:
        data = b"user_id,item_id,timestamp\n1,2,3\n"
        info = tarfile.TarInfo("logs/clicks.csv")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    archive = Archive(url=f"{base}/logs-v1.tar.gz", folder="logs", checksum=sha256(root / "logs-v1.tar.gz"))
    folder = download(archive, tmp_path / "cache")
    assert (folder / "clicks.csv").read_bytes() == data


# --------------------------------------------------------------------------------------------
# CLI sub-app (zoo data ...)
# --------------------------------------------------------------------------------------------
def test_cli_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dl.BASE_URL_ENV, raising=False)
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0
    for archive in archives().values():
        assert archive.name in result.output and archive.url in result.output
    assert "5.6 MiB" in result.output  # ml-1m's size
    names = [line.split()[0] for line in result.output.splitlines()[1:]]
    assert names == [
        "movielens-100k", "movielens-1m", "movielens-latest-small", "movielens-20m", "movielens-25m"
    ]  # fmt: skip


def test_cli_download_and_already_present(
    served: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset plugin's archive (here a fixture plugin's) is what ``zoo data download NAME`` fetches."""
    root, base = served
    archive = make_zip(root / "ml-1m.zip", ml1m_members())

    class FixturePlugin:
        @hookimpl
        def zoo_register_datasets(self) -> list[DatasetSpec]:
            fixture = Archive(
                url="https://example.org/ml-1m.zip", folder="ml-1m", checksum=sha256(archive),
                size=archive.stat().st_size,
            )  # fmt: skip
            return [DatasetSpec(name="fixture-ml1m", factory="a:b", needs_path=True, archive=fixture)]

    monkeypatch.setenv("ZOO_DOWNLOAD_BASE_URL", base)
    with testing.register_plugin(FixturePlugin(), "fixture-data"):
        runner = CliRunner()
        listed = runner.invoke(app, ["list"])
        assert "fixture-ml1m" in listed.output and f"{base}/ml-1m.zip" in listed.output
        result = runner.invoke(app, ["download", "fixture-ml1m", "--dir", str(tmp_path / "d")])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "d" / "ml-1m")
        again = runner.invoke(app, ["download", "fixture-ml1m", "--dir", str(tmp_path / "d")])
        assert again.exit_code == 0 and "already" in again.output


def test_cli_unknown_name_is_one_line_exit_2() -> None:
    result = CliRunner().invoke(app, ["download", "movielens-2m"])
    assert result.exit_code == UnknownNameError.exit_code == 2
    assert "unknown downloadable dataset 'movielens-2m'" in result.stderr and "Traceback" not in result.stderr
