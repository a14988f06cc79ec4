"""``python -m hand_mesh_ros.evaluation``: the same as ``hand-mesh evaluate``."""

import sys

from hand_mesh_ros.evaluation.cli import main

sys.exit(main())
