"""Where the time goes for one image through the engine, beside OpenCV DNN run directly.

For the default model on a 640x480 and a 1920x1080 JPEG, prints the median time per image of
decode, preprocess, inference and postprocess through visionserve, next to the same image run
directly (cv2.imdecode + cv2.dnn.blobFromImage + net.forward). Runs alternate between the two so
that a noisy machine affects both alike.

    python benchmarks/engine.py [--repeat 40] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from benchmarks.common import SIZES, jpeg, median_ms
from visionserve.core.images import decode_image
from visionserve.models.default import default_spec
from visionserve.models.loading import load_model
from visionserve.pipeline import NetworkModel


def direct_net() -> cv2.dnn.Net:
    spec = default_spec()
    files = spec.network[0]
    assert files.config is not None
    return cv2.dnn.readNetFromTensorflow(str(spec.path(files.model)), str(spec.path(files.config)))


def time_direct(net: cv2.dnn.Net, data: bytes) -> tuple[float, float]:
    """(total, forward) seconds for the model run by hand on ``data``."""
    start = time.perf_counter()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    net.setInput(cv2.dnn.blobFromImage(image, size=(300, 300), swapRB=True))
    before = time.perf_counter()
    out = net.forward()
    after = time.perf_counter()
    _ = out[0, 0][out[0, 0, :, 2] > 0.4]
    return time.perf_counter() - start, after - before


def time_engine(model: NetworkModel, data: bytes) -> dict[str, float]:
    """Seconds per stage for one image through visionserve (decode at the size the model needs)."""
    start = time.perf_counter()
    header_fit = model.preprocessor.spec
    decoded = decode_image(data, min_size=(header_fit.width, header_fit.height))
    decode = time.perf_counter() - start
    result = model.infer([decoded.image])
    result.predictions[0].scaled(*decoded.scale)
    total = time.perf_counter() - start
    t = result.timings
    return {
        "decode": decode,
        "preprocess": t.preprocess_ms / 1000,
        "inference": t.inference_ms / 1000,
        "postprocess": t.postprocess_ms / 1000,
        "total": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--threads", type=int, default=0, help="cv2.setNumThreads (0: OpenCV's default)")
    args = parser.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
    model = load_model(default_spec())
    assert isinstance(model, NetworkModel)
    net = direct_net()
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads, {args.repeat} runs per image, median ms")
    header = "image       decode  preproc  infer  postproc  total | direct: total  forward | overhead vs forward"
    print(header)
    for name, (w, h) in SIZES.items():
        data = jpeg(w, h)
        for _ in range(3):
            time_engine(model, data)
            time_direct(net, data)
        engine: dict[str, list[float]] = {}
        direct_total, direct_forward = [], []
        for _ in range(args.repeat):
            for stage, seconds in time_engine(model, data).items():
                engine.setdefault(stage, []).append(seconds)
            total, forward = time_direct(net, data)
            direct_total.append(total)
            direct_forward.append(forward)
        m = {stage: median_ms(samples) for stage, samples in engine.items()}
        forward_ms = median_ms(direct_forward)
        overhead = (m["total"] - forward_ms) / forward_ms * 100
        print(
            f"{name:10} {m['decode']:7.2f} {m['preprocess']:8.2f} {m['inference']:6.2f} {m['postprocess']:9.2f}"
            f" {m['total']:6.2f} | {median_ms(direct_total):13.2f} {forward_ms:8.2f} | {overhead:+.1f}%"
        )


if __name__ == "__main__":
    main()
