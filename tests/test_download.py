"""Downloads on a fresh machine: a local HTTP server serves copies of the real upstream files.

``TFS2S_DOWNLOAD_URL`` points every corpus URL at the server (``<server>/<host>/<path>``), ``TFS2S_DATA_DIR`` at
an empty folder, so nothing here touches the network and ``../shared/data`` is hidden.
"""

import gzip
import hashlib
import http.server
import os
import shutil
import socket
import threading
import urllib.parse

import pytest

from tfs2s.core.errors import DataError
from tfs2s.data import corpora, download
from tfs2s.data.corpora import load_pairs

MULTI30K = corpora.CORPORA["multi30k"].downloads
VAL = [d for d in MULTI30K if "/val." in d.path]


def _url_path(item) -> str:
    parts = urllib.parse.urlsplit(item.url)
    return f"/{parts.netloc}{parts.path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files under ``server.root`` by URL path; paths in ``server.truncate`` stop after half the body."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        path = os.path.join(self.server.root, self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        body = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.server.truncate:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch, data_dir):
    """A server with Multi30k's six .gz (byte-identical to upstream) and Topical-Chat's two validation .json."""
    root = tmp_path / "mirror"
    for item in MULTI30K:
        target = root / _url_path(item).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(os.path.join(data_dir, item.path), target)
    for item in corpora.CORPORA["topical_chat"].downloads:
        target = root / _url_path(item).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(os.path.join(data_dir, item.path), "rb") as f:
            target.write_bytes(f.read())  # upstream serves the plain JSON
    ett = corpora.FILE_DOWNLOADS["ett/ETTh1.csv"]
    (root / _url_path(ett).lstrip("/")).parent.mkdir(parents=True)
    shutil.copyfile(os.path.join(data_dir, ett.path), root / _url_path(ett).lstrip("/"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.root, server.requests, server.truncate = str(root), [], set()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TFS2S_DOWNLOAD_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setenv("TFS2S_DATA_DIR", str(tmp_path / "cache"))
    yield server
    server.shutdown()
    server.server_close()


def _files_under(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def test_multi30k_checksums_are_those_of_the_shared_copies(data_dir):
    assert len(MULTI30K) == 6
    for item in MULTI30K:
        assert item.url.startswith("https://raw.githubusercontent.com/multi30k/dataset/a3d2e0d")
        with open(os.path.join(data_dir, item.path), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == item.sha256, item.path


def test_mirror_url_replaces_scheme_and_host(monkeypatch):
    url = "https://raw.githubusercontent.com/a/b/c.gz"
    monkeypatch.delenv("TFS2S_DOWNLOAD_URL", raising=False)
    assert download.mirror_url(url) == url
    monkeypatch.setenv("TFS2S_DOWNLOAD_URL", "http://127.0.0.1:9/m/")
    assert download.mirror_url(url) == "http://127.0.0.1:9/m/raw.githubusercontent.com/a/b/c.gz"


def test_fetch_verifies_and_caches(mirror, tmp_path, data_dir):
    cache = tmp_path / "cache"
    paths = download.fetch(VAL, str(cache), progress=False)
    assert len(mirror.requests) == 2 and paths == [str(cache / d.path) for d in VAL]
    for item in VAL:
        with open(cache / item.path, "rb") as got, open(os.path.join(data_dir, item.path), "rb") as want:
            assert got.read() == want.read()
    assert _files_under(cache) == sorted(d.path for d in VAL)  # no temp file left beside them
    download.fetch(VAL, str(cache), progress=False)
    assert len(mirror.requests) == 2  # the second call reads the cache


def test_checksum_mismatch_leaves_no_file(mirror, tmp_path):
    served = os.path.join(mirror.root, _url_path(VAL[0]).lstrip("/"))
    data = bytearray(open(served, "rb").read())
    data[100] ^= 0xFF
    open(served, "wb").write(bytes(data))
    with pytest.raises(DataError) as err:
        download.fetch(VAL, str(tmp_path / "cache"), progress=False)
    msg = str(err.value)
    assert "checksum mismatch" in msg and VAL[0].sha256 in msg and hashlib.sha256(data).hexdigest() in msg
    assert _url_path(VAL[0]) in msg
    assert _files_under(tmp_path / "cache") == []


def test_interrupted_transfer_leaves_no_file(mirror, tmp_path):
    mirror.truncate.add(_url_path(VAL[0]))
    with pytest.raises(DataError, match="interrupted") as err:
        download.fetch(VAL, str(tmp_path / "cache"), progress=False)
    assert _url_path(VAL[0]) in str(err.value)
    assert _files_under(tmp_path / "cache") == []


def test_keyboard_interrupt_leaves_no_file(mirror, tmp_path, monkeypatch):
    import tqdm

    def interrupt(self, n=1):
        raise KeyboardInterrupt

    monkeypatch.setattr(tqdm.tqdm, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        download.fetch(VAL, str(tmp_path / "cache"), progress=False)
    assert _files_under(tmp_path / "cache") == []


def test_http_error_names_the_url(mirror, tmp_path):
    os.remove(os.path.join(mirror.root, _url_path(VAL[1]).lstrip("/")))
    with pytest.raises(DataError, match=r"HTTP 404") as err:
        download.fetch(VAL, str(tmp_path / "cache"), progress=False)
    assert _url_path(VAL[1]) in str(err.value)
    assert _files_under(tmp_path / "cache") == [VAL[0].path]  # the good file is kept; the next call resumes


def test_offline_names_every_url_and_the_folder(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TFS2S_DOWNLOAD_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("TFS2S_DATA_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="cannot download") as err:
        load_pairs("multi30k", "validation", None, "de", "en")
    msg = str(err.value)
    for item in VAL:
        assert f"http://127.0.0.1:{port}{_url_path(item)}" in msg and str(tmp_path / "cache" / item.path) in msg
    assert _files_under(tmp_path / "cache") == []


def test_load_pairs_downloads_into_a_fresh_cache(mirror, tmp_path, data_dir, capsys):
    pairs = load_pairs("multi30k", "validation", None, "de", "en")
    assert len(pairs) == 1014 and pairs == load_pairs("multi30k", "validation", data_dir, "de", "en")
    assert len(mirror.requests) == 2 and "val.de.gz" in capsys.readouterr().err  # the progress bar
    assert load_pairs("multi30k", "validation", None, "en", "de", limit=3) == [(b, a) for a, b in pairs[:3]]
    assert len(mirror.requests) == 2


def test_topical_chat_json_is_downloaded_and_gzipped(mirror, tmp_path, data_dir):
    pairs = load_pairs("topical_chat", "validation", None, "context", "response", context_turns=1)
    assert pairs == load_pairs("topical_chat", "validation", data_dir, "context", "response", context_turns=1)
    assert len(mirror.requests) == 1 and _files_under(tmp_path / "cache") == ["dialogs/topical-chat/valid_rare.json.gz"]
    with gzip.open(tmp_path / "cache" / "dialogs/topical-chat/valid_rare.json.gz", "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == corpora.CORPORA["topical_chat"].downloads[1].sha256


def test_single_data_file_is_downloaded(mirror, tmp_path, data_dir):
    path = corpora.data_file("ett/ETTh1.csv", progress=False)
    assert path == str(tmp_path / "cache" / "ett" / "ETTh1.csv") and len(mirror.requests) == 1
    assert open(path, "rb").read() == open(os.path.join(data_dir, "ett", "ETTh1.csv"), "rb").read()
    assert corpora.data_file("ett/ETTh1.csv") == path and len(mirror.requests) == 1
    assert corpora.data_file("ett/ETTh1.csv", str(tmp_path / "mine")) == str(tmp_path / "mine" / "ett" / "ETTh1.csv")
    assert len(mirror.requests) == 1  # a given folder is only read


def test_a_given_data_dir_is_never_written(mirror, tmp_path):
    given = tmp_path / "mine"
    with pytest.raises(DataError) as err:
        load_pairs("multi30k", "validation", str(given), "de", "en")
    msg = str(err.value)
    assert "multi30k/val.de.gz" in msg and str(given / "multi30k") in msg and "TFS2S_DATA_DIR" in msg
    assert mirror.requests == [] and not given.exists()


def test_corpus_without_verified_download_names_urls_and_folder(mirror, tmp_path):
    with pytest.raises(DataError) as err:
        load_pairs("spa_eng", "train", None, "en", "es")
    msg = str(err.value)
    assert "spa-eng/spa.txt.gz" in msg and "spa-eng.zip" in msg and str(tmp_path / "cache" / "spa-eng") in msg
    assert mirror.requests == []


def test_data_root_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("TFS2S_DATA_DIR", str(tmp_path / "env"))
    assert corpora.data_root(None) == (str(tmp_path / "env"), True)
    assert corpora.data_root("given") == ("given", False)
    monkeypatch.delenv("TFS2S_DATA_DIR")
    monkeypatch.setattr(corpora, "_shared_data_dir", lambda: None)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert corpora.data_root(None) == (str(tmp_path / ".cache" / "tfs2s"), True) == (corpora.default_data_dir(), True)
    monkeypatch.setattr(corpora, "_shared_data_dir", lambda: "/shared")
    assert corpora.data_root(None) == ("/shared", False)


def test_tfds_builder_prepares_from_the_server(mirror, tmp_path, write_lines):
    """The builder gets its files through tfs2s's download (not TFDS's manager): validation comes from the server.

    Tiny train / test files already in the cache are kept (no request), so preparing takes seconds, not 29,000
    examples' worth.
    """
    import tensorflow_datasets as tfds

    cache = tmp_path / "cache" / "multi30k"
    cache.mkdir(parents=True)
    for stem, n in (("train", 5), ("test_2016_flickr", 3)):
        write_lines(cache / f"{stem}.de.gz", [f"satz {i}" for i in range(n)], gz=True)
        write_lines(cache / f"{stem}.en.gz", [f"sentence {i}" for i in range(n)], gz=True)
    builder = corpora.tfds_builders()["multi30k"](data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    assert sorted(mirror.requests) == sorted(_url_path(d) for d in VAL)
    assert {s: builder.info.splits[s].num_examples for s in ("train", "validation", "test")} == {
        "train": 5, "validation": 1014, "test": 3}
    first = next(builder.as_dataset(split="validation").as_numpy_iterator())
    assert set(first) == {"de", "en"} and first["en"]


def test_train_on_a_fresh_machine(mirror, tmp_path, monkeypatch, capsys):
    """``tfs2s train`` with no data folder anywhere: downloads Multi30k from the server and trains a few steps."""
    from tfs2s.cli import main

    monkeypatch.chdir(tmp_path)  # no ../shared beside the working directory; TFS2S_DATA_DIR hides the checkout's
    with pytest.raises(SystemExit) as done:
        main(["train", "--run-dir", str(tmp_path / "run")]
             + [f"--set={s}" for s in ("training.steps_per_epoch=2", "training.epochs=1", "model.hidden=16",
                                        "model.embedding_dim=8", "model.attention_units=8", "data.limit=200",
                                        "data.min_frequency=1", "training.bleu_sentences=10")])
    err = capsys.readouterr().err
    assert done.value.code == 0, err[-2000:]
    assert len(mirror.requests) == 4  # train and validation, de and en
    assert sorted(_files_under(tmp_path / "cache")) == sorted(
        d.path for d in MULTI30K if "/train." in d.path or "/val." in d.path)
    assert (tmp_path / "run" / "history.jsonl").exists()
