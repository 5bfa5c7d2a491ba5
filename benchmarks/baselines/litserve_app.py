"""The same model served with LitServe (batching on, one or more workers).

Run: ``python -m benchmarks.baselines.litserve_app --port 8001 --workers 2 --batch 4``.
"""

from __future__ import annotations

import argparse
from typing import Any

import cv2
import litserve as ls
import numpy as np

from benchmarks.baselines.model import detect_batch, load_net


class DetectorAPI(ls.LitAPI):  # type: ignore[misc]
    def setup(self, device: str) -> None:
        cv2.setNumThreads(self.threads)
        self.net = load_net()

    def decode_request(self, request):  # type: ignore[no-untyped-def]  # LitServe reads the annotation
        data = request["image"].file.read()
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    def batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return inputs

    def predict(self, images: list[np.ndarray]) -> list[list[dict[str, float]]]:
        return detect_batch(self.net, images)

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    def encode_response(self, output: list[dict[str, float]]) -> dict[str, Any]:
        return {"detections": output}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    api = DetectorAPI(max_batch_size=args.batch, batch_timeout=0.01)
    api.threads = max(1, 2 // args.workers)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=args.workers)
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False, log_level="warning")
