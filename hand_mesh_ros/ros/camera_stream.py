"""A camera driver stand-in, as its own process: publishes a clip (or one image) on
``/camera/image_raw`` + ``/camera/camera_info`` at a fixed rate, with the QoS a driver uses;
with ``--depth-topic``, an RGB-D camera's aligned depth too.

    python -m hand_mesh_ros.ros.camera_stream [--rate 30] [--frames 300] [--size 640x480]
        [--reliability reliable|best_effort] [--transport raw|compressed] [--image FILE]
        [--image-topic /camera/image_raw] [--camera-info-topic /camera/camera_info]
        [--depth-topic /camera/aligned_depth_to_color/image_raw] [--depth-encoding 16UC1]
        [--depth-stamp-offset-s 0] [--wait-subscribers SECONDS] [--stamp-now]
        [--clip-hz HZ]

The frames are the embedded rendered clip (a moving hand, ``synthetic/clip.py``) played
forwards and backwards, or ``--image`` repeated; ``--clip-hz`` plays the clip at that pace
whatever the rate (frames repeat; default: one clip frame per published frame). Stamps
advance by 1/rate, or with ``--stamp-now`` are the wall-clock time of publishing, as a
driver's capture stamps (latency = arrival - stamp, ``benchmarks/bench_node.py``). The depth is the
clip's own (the same scene through ``synthetic/depth_camera.py``'s RealSense-like noise
model), aligned to the colour image, published just before each image with the same header
(16UC1 mm as RealSense publishes it, or 32FC1 m); ``--depth-stamp-offset-s`` shifts its
stamps (a depth stream out of sync with the colour one). ``--wait-subscribers`` holds the
first frame until every topic has a subscriber, a reliable one for a reliable camera (at most
that long; a driver does not wait, a test does: discovery on a busy machine can take seconds,
and frames sent while ``image_qos: auto`` still listens best effort are lost unseen). At the
end one JSON line on stdout: frames sent, the first and last stamp, the achieved rate. Used by
the cross-process tests and ``benchmarks/bench_camera_stream.py``; also handy to try the node
without a camera.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import cv2
import numpy as np
import rclpy
import torch
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from hand_mesh_ros.ros.client import camera_info_msg, make_header, rgb_image_msg
from hand_mesh_ros.ros.config import DEFAULT_CAMERA_INFO_TOPIC, DEFAULT_IMAGE_TOPIC
from hand_mesh_ros.ros.image_bridge import DEPTH_ENCODINGS, metres_to_depth_msg

FRAME_ID = "camera_optical_frame"
FIRST_STAMP_NS = 1_800_000_000_000_000_000
DISCOVERY_WAIT_S = 1.0  # before the first frame: let the subscribers match
CAMERA_DEPTH = 5  # keep-last depth of a typical camera driver's publisher
ACK_TIMEOUT_S = 10.0  # at the end, how long to wait for reliable subscribers to acknowledge


def frames_of(args) -> tuple[list[np.ndarray], list[np.ndarray] | None, np.ndarray]:
    """The RGB frames to loop over, their aligned depths ((H, W) metres; None without
    ``--depth-topic``) and K (3, 3)."""
    w, h = map(int, args.size.split("x"))
    if args.image:
        from hand_mesh_ros.imageio import read_image
        from hand_mesh_ros.pipeline.types import CameraIntrinsics

        if args.depth_topic:
            raise SystemExit("camera_stream: --depth-topic needs the clip (no depth of --image)")
        rgb = cv2.resize(read_image(args.image), (w, h), interpolation=cv2.INTER_AREA)
        return [rgb], None, CameraIntrinsics.assumed_for(w, h).matrix(dtype=torch.float64).numpy()
    from hand_mesh_ros import load_hand_model
    from hand_mesh_ros.handmodel.prior import PosePrior
    from hand_mesh_ros.synthetic.clip import render_clip
    from hand_mesh_ros.synthetic.depth_camera import DepthNoiseModel

    model = load_hand_model("right")
    noise = DepthNoiseModel() if args.depth_topic else None
    clip = render_clip(model, PosePrior.from_model(model), args.clip_frames, seed=0,
                       image_size=(h, w), depth_noise=noise)
    frames = list(clip.frames) + list(clip.frames[-2:0:-1])  # forwards, then backwards
    depths = [f.depth for f in frames] if noise is not None else None
    return [f.image for f in frames], depths, clip.K.double().numpy()


def _subscribed(node: Node, publishers, reliable) -> bool:
    """Every publisher has a subscriber -- a reliable one for those in ``reliable`` (the image
    streams of a reliable camera: a subscriber that matches the camera's reliability, as the
    node's ``image_qos: auto`` does once it has seen the camera, rather than the best-effort
    one it starts with; CameraInfo is read best effort)."""
    for publisher in publishers:
        infos = node.get_subscriptions_info_by_topic(publisher.topic_name)
        if not infos:
            return False
        if publisher in reliable and not any(
            i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos
        ):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="camera_stream", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable")
    parser.add_argument("--transport", choices=("raw", "compressed"), default="raw")
    parser.add_argument("--image", default=None, help="an image file instead of the clip")
    parser.add_argument("--clip-frames", type=int, default=24)
    parser.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC)
    parser.add_argument("--camera-info-topic", default=DEFAULT_CAMERA_INFO_TOPIC)
    parser.add_argument("--depth-topic", default="", help="aligned depth topic ('' = none)")
    parser.add_argument("--depth-encoding", choices=tuple(DEPTH_ENCODINGS), default="16UC1")
    parser.add_argument("--depth-stamp-offset-s", type=float, default=0.0)
    parser.add_argument("--wait-subscribers", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--stamp-now", action="store_true", help="wall-clock stamps")
    parser.add_argument("--clip-hz", type=float, default=0.0, help="clip pace (0 = --rate)")
    args, ros_args = parser.parse_known_args(argv)
    images, depths, K = frames_of(args)
    rclpy.init(args=["camera_stream", *ros_args])
    node = Node("camera_stream")
    reliable = args.reliability == "reliable"
    qos = QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=CAMERA_DEPTH,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.VOLATILE,
    )
    compressed = args.transport == "compressed"
    topic = f"{args.image_topic}/compressed" if compressed else args.image_topic
    image_pub = node.create_publisher(CompressedImage if compressed else Image, topic, qos)
    info_pub = node.create_publisher(CameraInfo, args.camera_info_topic, qos)
    depth_pub = node.create_publisher(Image, args.depth_topic, qos) if depths else None
    depth_offset_ns = round(args.depth_stamp_offset_s * 1e9)
    publishers = [p for p in (image_pub, info_pub, depth_pub) if p is not None]
    deadline = time.monotonic() + args.wait_subscribers
    streams = [p for p in (image_pub, depth_pub) if p is not None] if reliable else []
    while time.monotonic() < deadline and not _subscribed(node, publishers, streams):
        time.sleep(0.05)
    time.sleep(DISCOVERY_WAIT_S)
    period_ns = round(1e9 / args.rate)
    start = time.monotonic()
    h, w = images[0].shape[:2]
    first_stamp = time.time_ns() if args.stamp_now else FIRST_STAMP_NS
    last_stamp = first_stamp
    pace = (args.clip_hz or args.rate) / args.rate  # clip frames per published frame
    for i in range(args.frames):
        last_stamp = time.time_ns() if args.stamp_now else FIRST_STAMP_NS + i * period_ns
        header = make_header(last_stamp, FRAME_ID)
        rgb = images[int(i * pace) % len(images)]
        info_pub.publish(camera_info_msg(K, w, h, header))
        if depth_pub is not None:
            depth_header = make_header(last_stamp + depth_offset_ns, FRAME_ID)
            depth = depths[int(i * pace) % len(depths)]
            depth_pub.publish(metres_to_depth_msg(depth, depth_header, args.depth_encoding))
        if compressed:
            ok, jpeg = cv2.imencode(".jpg", rgb[:, :, ::-1])
            msg = CompressedImage(header=header, format="rgb8; jpeg compressed bgr8")
            msg.data = jpeg.tobytes()
            image_pub.publish(msg)
        else:
            image_pub.publish(rgb_image_msg(rgb, header))
        time.sleep(max(0.0, start + (i + 1) / args.rate - time.monotonic()))
    elapsed = time.monotonic() - start
    # reliable: frames still unacknowledged when the process exits would be lost (a slow
    # subscriber is still reading them), so wait for every subscriber's acknowledgement
    acked = all(
        publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
        for publisher in (image_pub, depth_pub)
        if publisher is not None
    )
    subscribed = image_pub.get_subscription_count()
    print(json.dumps({
        "sent": args.frames,
        "first_stamp_ns": first_stamp,
        "last_stamp_ns": last_stamp,
        "rate_hz": round(args.frames / elapsed, 2),
        "size": f"{w}x{h}",
        "reliability": args.reliability,
        "transport": args.transport,
        "depth_topic": args.depth_topic,
        "depth_encoding": args.depth_encoding if depths else None,
        "all_acknowledged": acked,
        "subscribers": subscribed,
    }), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
