"""The shared image operations of the models, on tiny tensors."""
from __future__ import annotations

import torch

from dss_inference.models import ops


def test_block_factors_never_exceed_the_axis_length():
    """A spacing of microns asks for blocks of hundreds of voxels: padding a 16-voxel axis up
    to such a block would allocate gigabytes for a real CT."""
    factors = ops.block_factors((0.01, 0.01, 0.01), 3.0, (16, 24, 24))
    assert factors == (16, 24, 24)
    coarse = ops.downsample(torch.ones(16, 24, 24), factors)
    assert coarse.shape == (1, 1, 1)
    assert ops.block_factors((2.5, 0.7, 0.7), 3.0, (100, 512, 512)) == (1, 4, 4)
