"""The ``hand-mesh`` command line: ``estimate`` (images and videos -> hand meshes),
``evaluate`` (``hand_mesh_ros.evaluation``), ``train`` and ``evaluate-model`` (DHPE training
and its evaluation, ``hand_mesh_ros.training.commands``).

    hand-mesh estimate INPUT... --out DIR [--fx F --fy F --cx F --cy F] [--device auto|cpu|cuda]
                       [--depth FILE|DIR [--depth-scale 0.001]]
                       [--hand-model open|MANO_RIGHT.pkl|DIR]
                       [--iterations N] [--max-hands N] [--mirrored] [--track | --no-track]
                       [--params-file config/estimator.yaml] [--quiet]

INPUT: image files, folders (their images and videos, not recursive) or video files. For each
image or video frame, DIR receives ``<stem>.json`` (schema in ``outputs.py``),
``<stem>_overlay.png`` and ``<stem>_hand<i>.ply``; a video frame's stem is
``<video stem>_<frame:06d>`` (frames counted from 0). Inputs whose stems collide get
``_2``, ``_3``, ... appended. Without intrinsics the camera is assumed (60 degree horizontal
field of view, ``"assumed": true`` in the JSON). ``--params-file`` reads the estimator's and
tracker's settings from a ROS 2 parameter file (the node's own entries are ignored); the
options given on the command line override it. Tracked videos follow the tracker's continuity
rules with the video's frame times as stamps.

Aligned depth (``--depth``, read by ``depthio.py``: a 16-bit PNG in units of
``--depth-scale`` metres, default millimetres, or a float32 ``.npy`` in metres, the colour
image's size): one file for a single image, or a folder holding each frame's depth named by
its input stem -- ``frame_0001.jpg`` <-> ``frame_0001.png`` or ``frame_0001.npy``, a video
frame's ``<video stem>_<frame:06d>.png|.npy`` (before any ``_2`` collision suffix). A missing,
unreadable or mismatched (other size) depth is one ``error:`` line naming the depth file and
the reason, and that frame is processed RGB-only (``"depth_given": false``, each hand
``"depth_used": false``); a frame with depth records its file as ``"depth_file"``.

Exit status: 0 when every input was processed, 1 when any failed or fell back to RGB-only
(one ``error: <file>: <reason>`` line each on stderr; the others are still processed), 2 for
usage errors (also: one depth file for several images or a video).
Also runnable as ``python -m hand_mesh_ros.cli``. This module parses the options; the run
itself (frames, their depth, the estimator or trackers, the files) is ``batch.py``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from hand_mesh_ros.batch import EXIT_USAGE, DepthSource, run_estimate, unique_stem
from hand_mesh_ros.depthio import DEFAULT_DEPTH_SCALE, DepthError, check_depth_scale
from hand_mesh_ros.devices import DEVICES
from hand_mesh_ros.pipeline.types import CameraIntrinsics

__all__ = ["build_parser", "camera_from_args", "config_from_args", "main", "unique_stem"]
# unique_stem: re-exported (the output naming rule, batch.py's)

INTRINSICS = ("fx", "fy", "cx", "cy")


def add_estimate_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``estimate`` subcommand's options."""
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image files, folders of images/videos, or video files",
    )
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="output folder (created if missing)"
    )
    group = parser.add_argument_group(
        "camera intrinsics (pixels; all four or none: none assumes a 60 degree horizontal FOV)"
    )
    for name in INTRINSICS:
        group.add_argument(f"--{name}", type=float, default=None)
    parser.add_argument(
        "--depth",
        type=Path,
        default=None,
        metavar="FILE|DIR",
        help="aligned depth, the colour image's size: a 16-bit PNG (see --depth-scale) or a "
        "float32 .npy in metres; for several images or a video, a folder of depth files "
        "named by the inputs' stems (frame_0001.jpg -> frame_0001.png|.npy; video frames: "
        "<video stem>_<frame:06d>.png|.npy)",
    )
    parser.add_argument(
        "--depth-scale",
        type=float,
        default=None,
        metavar="M",
        help=f"metres per unit of a 16-bit depth (default {DEFAULT_DEPTH_SCALE}: millimetres)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default=None,
        help="torch device (default auto: cuda when available)",
    )
    parser.add_argument(
        "--hand-model",
        default=None,
        metavar="MODEL",
        help="'open' (default) or your MANO: MANO_RIGHT.pkl (MANO_LEFT.pkl beside it) or the "
        "folder holding both",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        metavar="N",
        help="refinement iterations per cold-started hand (default 50); "
        "tracked hands use at most 10",
    )
    parser.add_argument(
        "--max-hands",
        type=int,
        default=None,
        metavar="N",
        help="most hands per image (1-8, default 2)",
    )
    parser.add_argument(
        "--mirrored",
        action="store_true",
        default=None,
        help="the input is mirrored (a selfie view): decides left/right",
    )
    parser.add_argument(
        "--params-file",
        type=Path,
        default=None,
        metavar="YAML",
        help="ROS 2 parameter file with the estimator's and tracker's settings "
        "(e.g. config/estimator.yaml); options given here override it",
    )
    parser.add_argument(
        "--track",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="track hands across frames with warm starts (default: within "
        "videos only; --track also treats the images as one sequence)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The top-level parser; ``evaluate``'s options are only loaded when it is the command."""
    parser = argparse.ArgumentParser(
        prog="hand-mesh", description="Dense 3D hand meshes from RGB images (DHPE)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    estimate = commands.add_parser(
        "estimate",
        help="estimate hand meshes in images and videos",
        description="Estimate 3D hand meshes; writes JSON, PLY meshes and overlays.",
    )
    add_estimate_arguments(estimate)
    estimate.set_defaults(run=run_estimate, command_parser=estimate)
    evaluate = commands.add_parser("evaluate", help="evaluate on an annotated data set")
    if argv[:1] == ["evaluate"]:
        from hand_mesh_ros import evaluation

        evaluation.add_arguments(evaluate)
        evaluate.set_defaults(run=evaluation.run)
    add_training_commands(commands, argv)
    return parser


def add_training_commands(commands, argv: list[str]) -> None:
    """``train`` and ``evaluate-model`` (``training/commands.py``) and ``train-regressor``
    (``training/regressor_commands.py``), options loaded only when one of them is the command
    (they import torch's training stack)."""
    train = commands.add_parser(
        "train",
        help="train DHPE from a config file",
        description="Train DHPE (stratified schedule, Eq. 7 loss, self-data augmentation).",
    )
    train_regressor = commands.add_parser(
        "train-regressor",
        help="train the keypoint regressor the live pipeline uses",
        description="Train the keypoint -> mesh regressor (nets/keypoint_regressor.py) that "
        "the pipeline uses, on synthetic keypoints.",
    )
    evaluate_model = commands.add_parser(
        "evaluate-model",
        help="evaluate a trained DHPE checkpoint (3D PCK/AUC, errors, masks)",
        description="Evaluate a hand-mesh train checkpoint on synthetic or dataset hands.",
    )
    if argv[:1] == ["train"]:
        from hand_mesh_ros.training import commands as training_commands

        training_commands.add_train_arguments(train)
        train.set_defaults(run=training_commands.run_train)
    if argv[:1] == ["evaluate-model"]:
        from hand_mesh_ros.training import commands as training_commands

        training_commands.add_evaluate_model_arguments(evaluate_model)
        evaluate_model.set_defaults(run=training_commands.run_evaluate_model)
    if argv[:1] == ["train-regressor"]:
        from hand_mesh_ros.training import regressor_commands

        regressor_commands.add_train_regressor_arguments(train_regressor)
        train_regressor.set_defaults(run=regressor_commands.run_train_regressor)


def camera_from_args(args: argparse.Namespace) -> CameraIntrinsics | None:
    """Intrinsics from --fx --fy --cx --cy (all or none); ValueError otherwise."""
    given = [name for name in INTRINSICS if getattr(args, name) is not None]
    if not given:
        return None
    if len(given) != len(INTRINSICS):
        missing = ", ".join(f"--{n}" for n in INTRINSICS if n not in given)
        raise ValueError(f"give all four of --fx --fy --cx --cy or none (missing {missing})")
    return CameraIntrinsics(args.fx, args.fy, args.cx, args.cy, assumed=False)


def depth_from_args(args: argparse.Namespace) -> DepthSource | None:
    """The ``--depth`` source, or None; ValueError for a bad scale or a scale without it."""
    if args.depth is None:
        if args.depth_scale is not None:
            raise ValueError("--depth-scale needs --depth")
        return None
    scale = DEFAULT_DEPTH_SCALE if args.depth_scale is None else args.depth_scale
    try:
        return DepthSource(args.depth, check_depth_scale(scale))
    except DepthError as exc:
        raise ValueError(f"--depth-scale: {exc}") from exc


def config_from_args(args: argparse.Namespace):
    """(EstimatorConfig, TrackerConfig) from the parameter file (or the defaults) and the
    options; ValueError for a bad file or out-of-range values."""
    from hand_mesh_ros.pipeline.config import EstimatorConfig, TrackerConfig
    from hand_mesh_ros.ros.config import NodeConfig
    from hand_mesh_ros.ros.params_file import load_params_file

    config, tracking = EstimatorConfig(), TrackerConfig()
    if args.params_file is not None:
        config, tracking, _ = load_params_file(
            args.params_file, EstimatorConfig, TrackerConfig, NodeConfig
        )
    given = {
        "device": args.device,
        "hand_model": args.hand_model,
        "max_hands": args.max_hands,
        "mirrored_input": args.mirrored,
    }
    config = replace(config, **{k: v for k, v in given.items() if v is not None})
    if args.iterations is not None:
        config = replace(
            config,
            refine_iterations=args.iterations,
            warm_iterations=min(args.iterations, config.warm_iterations),
        )
    return config, tracking


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hand-mesh``; returns the exit status (0, 1, or 2 for usage errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
        if args.command == "estimate":
            try:
                args.camera = camera_from_args(args)
                args.depth_source = depth_from_args(args)
                args.config, args.tracking = config_from_args(args)
            except ValueError as exc:
                args.command_parser.error(str(exc))
    except SystemExit as exc:  # argparse's usage errors and --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
