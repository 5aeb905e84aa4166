"""The development secret key generated into instance/: private from the first byte."""

from __future__ import annotations

import os
import pathlib
import stat
import threading

import pytest

from idp.settings import ConfigurationError, _instance_secret


@pytest.fixture
def permissive_umask():
    """A umask that hides nothing, so a file is only private if it was created private."""
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.fixture
def no_chmod_afterwards(monkeypatch):
    """A key file made private by a chmod after writing was readable by everyone meanwhile."""

    def refuse(*args, **kwargs):
        raise AssertionError("the secret key file must be created private, not chmod-ed afterwards")

    monkeypatch.setattr(pathlib.Path, "chmod", refuse)
    monkeypatch.setattr(os, "chmod", refuse)


def test_the_secret_key_file_is_created_private_even_under_a_permissive_umask(
        tmp_path, permissive_umask, no_chmod_afterwards):
    path = tmp_path / "secret_key"
    value = _instance_secret(path, "development")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == value
    assert len(value) >= 32


def test_an_existing_secret_key_is_read_not_replaced(tmp_path):
    path = tmp_path / "secret_key"
    first = _instance_secret(path, "development")
    assert _instance_secret(path, "development") == first


def test_processes_starting_together_share_one_key(tmp_path):
    path = tmp_path / "secret_key"
    barrier = threading.Barrier(8)
    keys: list[str] = []

    def start():
        barrier.wait(timeout=10)
        keys.append(_instance_secret(path, "development"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(keys) == 8 and len(set(keys)) == 1
    assert path.read_text() == keys[0]


def test_an_empty_secret_key_file_is_a_clear_error(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text("")
    with pytest.raises(ConfigurationError, match="empty"):
        _instance_secret(path, "development")


def test_production_never_generates_a_key(tmp_path):
    with pytest.raises(ConfigurationError):
        _instance_secret(tmp_path / "secret_key", "production")
    assert not (tmp_path / "secret_key").exists()
