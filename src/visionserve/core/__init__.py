"""Pure numpy/OpenCV building blocks: detections, geometry, NMS, image decoding. Imports nothing else of visionserve but errors and types."""
