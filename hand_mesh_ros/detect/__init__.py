"""2D hand front end: find hands in an RGB image and their 21 keypoints.

    MediapipeHandDetector(MediapipeConfig(...)).detect(image_rgb) -> list[Detection2D]
    StreamHandDetector(MediapipeConfig(...)).detect(image_rgb, tracked=k)  # a video stream

Importing this package does not import mediapipe; the detector imports it when built.
"""

from hand_mesh_ros.detect.mediapipe_hands import MediapipeConfig, MediapipeHandDetector
from hand_mesh_ros.detect.mediapipe_stream import StreamHandDetector
from hand_mesh_ros.detect.types import Detection2D

__all__ = ["Detection2D", "MediapipeConfig", "MediapipeHandDetector", "StreamHandDetector"]
