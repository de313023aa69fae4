"""retain_freed_memory: glibc mallopt once per process, never over a user's own setting."""

from __future__ import annotations

import platform

import pytest

from trajopt_loader.pipeline import host_memory


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(host_memory, "_done", None)
    for var in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    "var, value",
    [
        ("MALLOC_TRIM_THRESHOLD_", "1000000"),
        ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536"),
    ],
)
def test_user_setting_wins(fresh, var, value):
    fresh.setenv(var, value)
    assert host_memory.retain_freed_memory() is False
    assert host_memory.retain_freed_memory() is False  # decided once


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)
def test_sets_thresholds_once_on_glibc(fresh):
    calls = []
    real_cdll = host_memory.ctypes.CDLL

    def spy(name):
        libc = real_cdll(name)
        calls.append(name)
        return libc

    fresh.setattr(host_memory.ctypes, "CDLL", spy)
    assert host_memory.retain_freed_memory() is True
    assert host_memory.retain_freed_memory() is True
    assert len(calls) == 1
    # mallopt accepts exactly these values (it returns 1 on success).
    libc = real_cdll("libc.so.6")
    assert libc.mallopt(host_memory.M_MMAP_THRESHOLD, host_memory.MMAP_THRESHOLD) == 1
    assert libc.mallopt(host_memory.M_TRIM_THRESHOLD, host_memory.TRIM_THRESHOLD) == 1
