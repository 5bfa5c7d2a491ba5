"""The hand-written Flask server people usually start with: a global model, save the upload, read it, run.

A ``cv2.dnn.Net`` shared by threads fails under concurrency (it keeps the input blob as state), so the
global net needs a lock. Run: ``python -m benchmarks.baselines.flask_app --port 5000``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading

import cv2
from flask import Flask, jsonify, request

from benchmarks.baselines.model import detect, load_net

app = Flask(__name__)
net = load_net()
net_lock = threading.Lock()


@app.route("/detect", methods=["POST"])
def detect_route():  # type: ignore[no-untyped-def]
    upload = request.files["image"]
    fd, path = tempfile.mkstemp(suffix=".jpg")
    os.close(fd)
    try:
        upload.save(path)
        image = cv2.imread(path)
    finally:
        os.unlink(path)
    if image is None:
        return jsonify({"error": "bad image"}), 400
    with net_lock:
        found = detect(net, image)
    return jsonify({"detections": found})


@app.route("/health")
def health():  # type: ignore[no-untyped-def]
    return "ok"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=5000)
    app.run(host="127.0.0.1", port=parser.parse_args().port, threaded=True)
