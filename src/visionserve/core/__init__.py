"""Pure numpy/OpenCV building blocks: detections, geometry, NMS, image decoding.

The core imports nothing else of visionserve but ``errors`` and ``types``.
"""
