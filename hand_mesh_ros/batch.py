"""The ``hand-mesh estimate`` run (``cli.py`` parses the options): input files -> frames
(images, video frames) with their aligned depth -> the estimator, or a tracker per video ->
the output files of ``outputs.py``; one ``error: <file>: <reason>`` line per problem.

Depth files follow ``DepthSource``: one file for a single image, or a folder by stem
(``depthio.depth_path_for``); the rules the user reads are in ``cli.py``'s docstring.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hand_mesh_ros.depthio import DEFAULT_DEPTH_SCALE, DepthError, depth_path_for, read_depth
from hand_mesh_ros.imageio import ImageError, check_size, is_video, list_inputs, read_image
from hand_mesh_ros.pipeline.types import CameraIntrinsics

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
FRAME_DIGITS = 6  # video frame stems: <video stem>_<frame:06d>


@dataclass(frozen=True)
class Frame:
    """One image to process: output stem, name for the JSON, RGB uint8 (H,W,3), the input's
    own stem (a video frame's ``<video stem>_<frame:06d>``: its depth file's name), frame
    index and time in seconds (None for a still image, or a video without a frame rate)."""

    stem: str
    name: str
    image: np.ndarray
    source_stem: str
    index: int | None = None
    time_s: float | None = None


@dataclass(frozen=True)
class DepthSource:
    """Where the frames' aligned depth comes from (``--depth``): one file for a single image,
    or a folder of depth files named by the frames' source stems."""

    path: Path
    scale: float = DEFAULT_DEPTH_SCALE

    @property
    def is_folder(self) -> bool:
        return self.path.is_dir()

    def file_for(self, frame: Frame) -> Path:
        """The frame's depth file (DepthError when the folder holds none, or two)."""
        return depth_path_for(self.path, frame.source_stem) if self.is_folder else self.path

    def read(self, frame: Frame) -> tuple[Path, np.ndarray]:
        """(file, (H, W) float32 metres) of the frame's depth; DepthError naming the file."""
        path = self.file_for(frame)
        return path, read_depth(path, scale=self.scale, shape=frame.image.shape[:2])


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
    yield Frame(stem, str(path), read_image(path), path.stem)


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
            number = f"_{index:0{FRAME_DIGITS}d}"
            yield Frame(stem + number, str(path), rgb, path.stem + number, index, time_s)
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

    def estimate(self, frame: Frame, tracker, depth: np.ndarray | None = None):
        """The frame's FrameResult; depth: (H, W) float32 metres aligned to it, or None."""
        if tracker is not None:
            return tracker.update(frame.image, camera=self.camera, stamp=frame.time_s, depth=depth)
        return self._estimator().estimate(frame.image, camera=self.camera, depth=depth)

    def close(self) -> None:
        if self.estimator is not None:
            self.estimator.close()


def frame_depth(
    frame: Frame, what: str, depth_source: DepthSource | None, report: Reporter
) -> tuple[np.ndarray | None, dict]:
    """The frame's aligned depth ((H, W) float32 metres, or None) and the JSON keys naming
    its file. A depth that cannot be used is reported (one error line) and gives None."""
    if depth_source is None:
        return None, {}
    try:
        path, depth = depth_source.read(frame)
    except DepthError as exc:
        report.error(exc.what, f"{exc.reason}; {what} processed without depth")
        return None, {}
    return depth, {"depth_file": str(path)}


def process_input(
    path: Path,
    stem: str,
    engine: Engine,
    out: Path,
    report: Reporter,
    depth_source: DepthSource | None = None,
) -> bool:
    """Estimate and write every frame of one input; False when any part failed (a frame's
    unusable depth too: it is processed RGB-only). Raises EstimatorLoadError when the
    estimator cannot be built."""
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
            depth, extra = frame_depth(frame, what, depth_source, report)
            ok = ok and (depth_source is None or depth is not None)
            if frame.index is not None:
                extra["frame"] = frame.index
            try:
                result = engine.estimate(frame, tracker, depth)
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


def depth_usage_problem(depth_source: DepthSource | None, files: list[Path]) -> str | None:
    """Why ``--depth`` does not fit the inputs (a usage error), or None: a path that is not
    a folder is one image's depth, so it needs exactly one input and that an image."""
    if depth_source is None or depth_source.is_folder or not files:
        return None  # no inputs: their errors are reported already
    if len(files) == 1 and not is_video(files[0]):
        return None  # one image: a missing or bad file is that image's error line
    if not depth_source.path.exists():
        return f"{depth_source.path}: no such folder (the depth images of {len(files)} inputs)"
    inputs = "a video" if len(files) == 1 else f"{len(files)} inputs"
    return (
        f"{depth_source.path} is one depth image, for {inputs}; give a folder of depth "
        "images named by the inputs' stems"
    )


def run_estimate(args: argparse.Namespace) -> int:
    """The ``estimate`` command (arguments already validated by ``main``)."""
    logging.basicConfig(
        level=logging.ERROR if args.quiet else logging.WARNING,
        format="%(levelname)s: %(name)s: %(message)s",
    )
    report = Reporter(0, quiet=args.quiet)
    files, failed = expand_inputs(args.inputs, report)
    report.total = len(files)
    depth_source = getattr(args, "depth_source", None)
    problem = depth_usage_problem(depth_source, files)
    if problem is not None:
        report.error("--depth", problem)
        return EXIT_USAGE
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
            if not process_input(path, stem, engine, args.out, report, depth_source):
                failed += 1
    except EstimatorLoadError as exc:
        report.error("estimator", f"could not be loaded ({exc})")
        return EXIT_FAILED
    finally:
        engine.close()
    report.info(f"done: {len(files)} input(s), {failed} failed; results in {args.out}")
    return EXIT_FAILED if failed else EXIT_OK
