"""Drawing detections on images, cutting crops, and the JSON form of detections."""
