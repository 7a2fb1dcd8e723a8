import logging

import pytest

from tfs2s.core.errors import DataError
from tfs2s.data.parallel import keep_nonempty, read_lines, read_parallel, read_tsv_pairs



def test_parallel_length_mismatch_names_both_files_and_counts(tmp_path, write_lines):
    write_lines(tmp_path / "a.de", ["x", "y", "z"])
    write_lines(tmp_path / "a.en", ["x", "y"])
    with pytest.raises(DataError) as err:
        read_parallel(str(tmp_path / "a.de"), str(tmp_path / "a.en"))
    msg = str(err.value)
    assert "a.de has 3 lines" in msg and "a.en has 2 lines" in msg
    with pytest.raises(DataError, match="not found: .*missing.en"):
        read_parallel(str(tmp_path / "a.de"), str(tmp_path / "missing.en"))


def test_empty_lines_are_skipped_and_counted(tmp_path, caplog, write_lines):
    write_lines(tmp_path / "a.de.gz", ["eins", "", "drei", "  "], gz=True)
    write_lines(tmp_path / "a.en.gz", ["one", "two", "", "four"], gz=True)
    with caplog.at_level(logging.WARNING):
        pairs = read_parallel(str(tmp_path / "a.de.gz"), str(tmp_path / "a.en.gz"))
    assert pairs == [("eins", "one")]
    assert "skipped 3 pair(s)" in caplog.text


def test_windows_line_endings_and_limit(tmp_path):
    (tmp_path / "w.txt").write_bytes(b"a\r\nb\r\n")
    assert read_lines(str(tmp_path / "w.txt")) == ["a", "b"]
    assert keep_nonempty([("1", "x"), ("", "y"), ("3", "z"), ("4", "w")], "here", limit=2) == [("1", "x"), ("3", "z")]


def test_tsv_reader_reports_file_and_line(tmp_path, write_lines):
    write_lines(tmp_path / "p.txt", ["Go.\tVe.", "Hi.\tHola.", "broken line"])
    with pytest.raises(DataError, match=r"p.txt:3: expected at least 2"):
        read_tsv_pairs(str(tmp_path / "p.txt"), 0, 1)
    write_lines(tmp_path / "q.txt", ["Go.\tVe.", "", "Hi.\tHola."])
    assert read_tsv_pairs(str(tmp_path / "q.txt"), 1, 0) == [("Ve.", "Go."), ("Hola.", "Hi.")]
