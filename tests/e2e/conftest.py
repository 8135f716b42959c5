"""Fixtures of the end-to-end tests: one stack per module, the phantom CT."""
from __future__ import annotations

import pytest

from e2e_stack import Stack, require_components


@pytest.fixture(scope="module")
def stack(tmp_path_factory, make_database):
    require_components()
    stack = Stack(tmp_path_factory.mktemp("e2e"), make_database("dss_e2e"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def phantom_ct(tmp_path_factory):
    """The small default phantom (96 x 96 x 64 voxels of 4 mm) and its truth."""
    require_components()
    from dss_client.phantom import make_phantom, write_phantom

    phantom = make_phantom()
    path = tmp_path_factory.mktemp("phantom") / "phantom_ct.nii.gz"
    write_phantom(path, phantom)
    return path, phantom
