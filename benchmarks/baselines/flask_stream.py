"""The seed pattern for live video: a Flask generator per viewer that opens its own ``cv2.VideoCapture``,
runs the model on every frame it reads, draws the boxes and encodes a JPEG.

A video file stands in for a camera: frame ``i`` exists from ``start + i / fps`` on (the generator waits
for it when it is early), and a camera buffers the frames it has not read yet, so when the model is slower
than the source the generator falls ever further behind. Latency runs from that capture moment to the
JPEG out. ``/stats?since=T`` answers the forward passes so far and the ``(time out, latency)`` pairs of
the JPEGs out after the Unix time ``T``.

Run: ``python -m benchmarks.baselines.flask_stream --port 5001 --video-dir DIR``
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
from flask import Flask, Response, jsonify, request

from benchmarks.baselines.model import detect, load_net

app = Flask(__name__)
net = load_net()
net_lock = threading.Lock()
stats_lock = threading.Lock()
samples: list[tuple[float, float]] = []
inferences = [0]
video_dir = Path(".")


def frames(path: Path) -> Iterator[bytes]:
    capture = cv2.VideoCapture(str(path))
    period = 1.0 / (capture.get(cv2.CAP_PROP_FPS) or 25.0)
    start, index = time.time(), 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:  # the file's end: start again, as a camera would go on
                capture.release()
                capture = cv2.VideoCapture(str(path))
                continue
            captured = start + index * period
            index += 1
            time.sleep(max(0.0, captured - time.time()))
            with net_lock:
                found = detect(net, image)
            for d in found:
                cv2.rectangle(image, (int(d["x1"]), int(d["y1"])), (int(d["x2"]), int(d["y2"])), (0, 255, 0), 2)
                cv2.putText(image, f"{d['score']:.2f}", (int(d["x1"]), int(d["y1"]) + 12), 0, 0.5, (0, 255, 0))
            jpeg = cv2.imencode(".jpg", image)[1].tobytes()
            done = time.time()
            with stats_lock:
                inferences[0] += 1
                samples.append((done, done - captured))
            yield b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n"
    finally:
        capture.release()


@app.route("/video_feed/<name>")
def video_feed(name: str) -> Response:
    return Response(frames(video_dir / Path(name).name), mimetype="multipart/x-mixed-replace; boundary=frame")


@app.route("/stats")
def stats() -> Response:
    since = float(request.args.get("since", "0"))
    with stats_lock:
        recent = [s for s in samples if s[0] >= since]
        return jsonify({"inferences": inferences[0], "samples": recent})


@app.route("/health")
def health() -> str:
    return "ok"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--video-dir", type=Path, required=True)
    args = parser.parse_args()
    video_dir = args.video_dir
    app.run(host="127.0.0.1", port=args.port, threaded=True)
