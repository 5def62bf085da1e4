"""Atomic writes give the permissions of a plain write (umask applied), not `mkstemp`'s private 0600/0700."""

import pytest
from conftest import permissions

from timesformer_hf.files import apply_umask, make_staging_dir, write_atomically


def test_write_atomically_follows_the_umask(tmp_path, umask):
    target = tmp_path / "features.json"
    write_atomically(target, lambda path: path.write_text("{}"))
    assert target.read_text() == "{}"
    assert permissions(target) == 0o666 & ~umask  # 0o644 under umask 022
    assert [path.name for path in tmp_path.iterdir()] == ["features.json"]


def test_write_atomically_leaves_nothing_when_the_write_fails(tmp_path):
    def fail(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(tmp_path / "features.json", fail)
    assert list(tmp_path.iterdir()) == []


def test_staging_dir_follows_the_umask(tmp_path, umask):
    staging = make_staging_dir(tmp_path / "repo")
    assert staging.parent == tmp_path and staging.name.startswith(".repo.")
    assert permissions(staging) == 0o777 & ~umask  # 0o755 under umask 022


def test_apply_umask_opens_private_files_of_a_folder(tmp_path, umask):
    nested = tmp_path / "repo" / "code"
    nested.mkdir(parents=True, mode=0o700)
    (nested / "weights.safetensors").write_bytes(b"")
    (nested / "weights.safetensors").chmod(0o600)  # as safetensors 0.8 writes it
    apply_umask(tmp_path / "repo")
    assert permissions(tmp_path / "repo") == permissions(nested) == 0o777 & ~umask
    assert permissions(nested / "weights.safetensors") == 0o666 & ~umask
