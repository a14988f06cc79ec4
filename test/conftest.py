"""Fixtures shared by all tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(scope="session")
def colcon_install(tmp_path_factory):
    """install/hand_mesh_ros of a colcon build of this repository, built once per session
    (test/colcon_install.py); skips where colcon or the git checkout is missing."""
    import colcon_install

    reason = colcon_install.unavailable()
    if reason:
        pytest.skip(reason)
    return colcon_install.build(tmp_path_factory.mktemp("ws"))
