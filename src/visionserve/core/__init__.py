"""Pure numpy/OpenCV building blocks: detections, geometry, NMS, image decoding, preprocessing."""
