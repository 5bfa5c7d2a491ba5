"""Accuracy of a served model on a labelled set: readers (COCO, YOLO, VOC, class folders, CSV), the
run through the server's own inference path, COCOeval metrics, per-class F1-optimal thresholds."""
