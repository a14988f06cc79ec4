"""MediaPipe for a stream: palm detection only when new hands are looked for.

MediaPipe Hands in video mode finds landmarks in the region its previous frame's landmarks
predict and skips the palm detector -- but only while it tracks ``max_num_hands`` hands;
with fewer it runs the palm detector on every frame to look for more (mediapipe 0.10.21,
measured here on 640x480 frames with one hand and 2 CPU cores: 22 ms per frame with up to
two hands, 9 ms with one). So the stream detector keeps one video-mode graph per number of
tracked hands and a still-image graph for searches:

- ``detect(image)`` (``tracked=0``): palm detection, every hand up to ``max_hands`` (new
  hands, a lost track, a new scene);
- ``detect(image, tracked=k)``: the k hands the caller tracks, from the video graph for k
  hands -- landmarks on the regions of its last frame, no palm detection while all k stay
  in view. When it finds fewer than k (a hand left, or the graph's last frame was of
  another scene: mediapipe would only search on its next frame), the same image is searched
  at once.

When to search is the caller's rule (``HandTracker``: every ``palm_search_frames`` frames
and whenever it tracks no hand). A detector is not thread-safe; use one per thread.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hand_mesh_ros.detect.mediapipe_hands import MediapipeConfig, MediapipeHandDetector
from hand_mesh_ros.detect.types import Detection2D


class StreamHandDetector:
    """Palm detection on request, landmark tracking otherwise (module docstring). Uses
    ``config`` but for ``static_image_mode`` (the searches are still-image, the tracking
    graphs video) and, per tracking graph, ``max_hands``."""

    def __init__(self, config: MediapipeConfig | None = None) -> None:
        self.config = config = config or MediapipeConfig()
        self._search = MediapipeHandDetector(replace(config, static_image_mode=True))
        self._follow: dict[int, MediapipeHandDetector] = {}  # tracked hands -> video graph

    def detect(self, image_rgb: np.ndarray, tracked: int = 0) -> list[Detection2D]:
        """Hands in one (H, W, 3) uint8 RGB image, highest score first: every hand
        (tracked=0) or the ``tracked`` hands followed from the previous frame."""
        if tracked <= 0:
            return self._search.detect(image_rgb)
        count = min(tracked, self.config.max_hands)
        if count not in self._follow:
            self._follow[count] = MediapipeHandDetector(
                replace(self.config, static_image_mode=False, max_hands=count)
            )
        found = self._follow[count].detect(image_rgb)
        return found if len(found) >= count else self._search.detect(image_rgb)

    def close(self) -> None:
        """Free every MediaPipe graph; safe to call more than once."""
        self._search.close()
        for graph in self._follow.values():
            graph.close()
        self._follow.clear()

    def __enter__(self) -> StreamHandDetector:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
