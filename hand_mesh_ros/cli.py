"""The ``hand-mesh`` command line: ``estimate`` (images and videos -> hand meshes),
``evaluate`` (``hand_mesh_ros.evaluation``), ``train`` and ``evaluate-model`` (DHPE training
and its evaluation, ``hand_mesh_ros.training.commands``).

    hand-mesh estimate INPUT... --out DIR [--fx F --fy F --cx F --cy F] [--device auto|cpu|cuda]
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

Exit status: 0 when every input was processed, 1 when any failed (one ``error: <file>:
<reason>`` line each on stderr; the others are still processed), 2 for usage errors.
Also runnable as ``python -m hand_mesh_ros.cli``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hand_mesh_ros.devices import DEVICES
from hand_mesh_ros.imageio import ImageError, check_size, is_video, list_inputs, read_image
from hand_mesh_ros.pipeline.types import CameraIntrinsics

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
INTRINSICS = ("fx", "fy", "cx", "cy")
FRAME_DIGITS = 6  # video frame stems: <video stem>_<frame:06d>


@dataclass(frozen=True)
class Frame:
    """One image to process: output stem, name for the JSON, RGB uint8 (H,W,3), frame index
    and time in seconds (None for a still image, or a video without a frame rate)."""

    stem: str
    name: str
    image: np.ndarray
    index: int | None = None
    time_s: float | None = None


class Reporter:
    """Progress lines (``[i/N] name``) and per-file errors on stderr."""

    def __init__(self, total: int, *, quiet: bool) -> None:
        self.total, self.quiet = total, quiet

    def progress(self, i: int, text: str) -> None:
        if not self.quiet:
            print(f"[{i}/{self.total}] {text}", file=sys.stderr, flush=True)

    def error(self, what: str, reason: str) -> None:
        print(f"error: {what}: {reason}", file=sys.stderr, flush=True)

    def info(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)


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
                args.config, args.tracking = config_from_args(args)
            except ValueError as exc:
                args.command_parser.error(str(exc))
    except SystemExit as exc:  # argparse's usage errors and --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return int(args.run(args))


def unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3``, ... when taken; records the result in ``used``."""
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate)
    return candidate


def image_frames(path: Path, stem: str) -> Iterator[Frame]:
    """The one frame of an image file (ImageError when unreadable or of a refused size)."""
    yield Frame(stem, str(path), read_image(path))


def video_frames(path: Path, stem: str) -> Iterator[Frame]:
    """Every frame of a video, RGB, stems ``<stem>_<frame:06d>``; ImageError if unreadable."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ImageError(f"{path}: not a readable video (OpenCV could not open it)")
        index, fps = 0, capture.get(cv2.CAP_PROP_FPS)
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            check_size(bgr.shape[1], bgr.shape[0], what=f"{path} frame {index}")
            rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            time_s = index / fps if fps > 0 else None
            yield Frame(f"{stem}_{index:0{FRAME_DIGITS}d}", str(path), rgb, index, time_s)
            index += 1
        if index == 0:
            raise ImageError(f"{path}: no frames could be read from the video")
    finally:
        capture.release()


class EstimatorLoadError(RuntimeError):
    """The estimator could not be built (missing package or file, bad device)."""


class Engine:
    """The estimator, built on first use (bad inputs are reported even if it cannot load),
    and the trackers: one per video, one for the image sequence when images are tracked."""

    def __init__(
        self, config, tracking, camera: CameraIntrinsics | None, track: bool | None
    ) -> None:
        self.config, self.tracking, self.camera, self.track = config, tracking, camera, track
        self.estimator = None
        self.image_tracker = None

    def _estimator(self):
        if self.estimator is None:
            from hand_mesh_ros.pipeline.estimator import HandMeshEstimator

            try:
                self.estimator = HandMeshEstimator(self.config)
            except (ImportError, OSError, RuntimeError, ValueError) as exc:
                raise EstimatorLoadError(f"{type(exc).__name__}: {exc}") from exc
        return self.estimator

    def _new_tracker(self):
        from hand_mesh_ros.pipeline.tracker import HandTracker

        return HandTracker(self._estimator(), self.tracking)

    def tracker_for(self, path: Path):
        """The tracker for an input: a fresh one per video (unless --no-track), the shared
        image-sequence one with --track, else None (independent frames)."""
        if is_video(path):
            return self._new_tracker() if self.track is not False else None
        if self.track is True:
            if self.image_tracker is None:
                self.image_tracker = self._new_tracker()
            return self.image_tracker
        return None

    def estimate(self, frame: Frame, tracker):
        if tracker is not None:
            return tracker.update(frame.image, camera=self.camera, stamp=frame.time_s)
        image = frame.image
        return self._estimator().estimate(image, camera=self.camera)

    def close(self) -> None:
        if self.estimator is not None:
            self.estimator.close()


def process_input(path: Path, stem: str, engine: Engine, out: Path, report: Reporter) -> bool:
    """Estimate and write every frame of one input; False when any part failed.
    Raises EstimatorLoadError when the estimator cannot be built."""
    from hand_mesh_ros.outputs import write_frame

    frames = video_frames(path, stem) if is_video(path) else image_frames(path, stem)
    ok, hands, tracker = True, 0, None
    try:
        for count, frame in enumerate(frames):  # read first: a bad file needs no estimator
            if count == 0:
                tracker = engine.tracker_for(path)
            what = str(path) if frame.index is None else f"{path} frame {frame.index}"
            if frame.index is not None:
                report.info(f"  frame {frame.index}")
            extra = None if frame.index is None else {"frame": frame.index}
            try:
                result = engine.estimate(frame, tracker)
                write_frame(out, frame.stem, frame.image, result, frame.name, extra=extra)
            except EstimatorLoadError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the batch
                report.error(what, f"{type(exc).__name__}: {exc}")
                ok = False
                continue
            hands += len(result.hands)
    except ImageError as exc:
        report.error(str(path), _reason(exc, path))
        return False
    report.info(f"  {hands} hand(s)")
    return ok


def _reason(exc: Exception, path: Path) -> str:
    """The message without a leading '<path>: ' (the error line names the file already)."""
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def expand_inputs(raw: list[str], report: Reporter) -> tuple[list[Path], int]:
    """Expand folders; a missing path is reported. Returns (files, failures)."""
    files, failed = [], 0
    for item in raw:
        try:
            found = list_inputs([item])
        except ImageError as exc:
            report.error(item, _reason(exc, Path(item)))
            failed += 1
            continue
        if not found and Path(item).is_dir():
            report.error(item, "folder holds no image or video files")
            failed += 1
        files.extend(found)
    return files, failed


def run_estimate(args: argparse.Namespace) -> int:
    """The ``estimate`` command (arguments already validated by ``main``)."""
    logging.basicConfig(
        level=logging.ERROR if args.quiet else logging.WARNING,
        format="%(levelname)s: %(name)s: %(message)s",
    )
    report = Reporter(0, quiet=args.quiet)
    files, failed = expand_inputs(args.inputs, report)
    report.total = len(files)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        report.error(str(args.out), f"cannot create the output folder ({exc.strerror or exc})")
        return EXIT_FAILED
    engine = Engine(args.config, args.tracking, args.camera, args.track)
    used: set[str] = set()
    try:
        for i, path in enumerate(files, start=1):
            report.progress(i, str(path))
            stem = unique_stem(path.stem, used)
            if not process_input(path, stem, engine, args.out, report):
                failed += 1
    except EstimatorLoadError as exc:
        report.error("estimator", f"could not be loaded ({exc})")
        return EXIT_FAILED
    finally:
        engine.close()
    report.info(f"done: {len(files)} input(s), {failed} failed; results in {args.out}")
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
