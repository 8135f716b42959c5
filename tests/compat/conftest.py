"""Fixtures of the compatibility tests: one real web server per run, the official client's
keyring kept in memory (a headless test has no OS keychain)."""
from __future__ import annotations

import keyring
import numpy as np
import pytest
import SimpleITK as sitk

from compat_support import CompatStack, MemoryKeyring


@pytest.fixture(scope="session")
def compat_stack(tmp_path_factory, make_database):
    stack = CompatStack(tmp_path_factory.mktemp("compat"), make_database("dss_compat"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def memory_keyring():
    """The official client reads and writes its session id through `keyring`."""
    previous = keyring.get_keyring()
    store = MemoryKeyring()
    keyring.set_keyring(store)
    try:
        yield store
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(scope="session")
def small_ct(tmp_path_factory):
    """A small CT-like NIfTI image (not a chest: the echo services do not look at it)."""
    path = tmp_path_factory.mktemp("images") / "small_ct.nii.gz"
    array = np.full((8, 16, 16), -1000, dtype=np.int16)
    array[2:6, 4:12, 4:12] = 40
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 3.0))
    image.SetOrigin((-16.0, -16.0, -12.0))
    sitk.WriteImage(image, str(path))
    return path
