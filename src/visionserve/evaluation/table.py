"""The evaluation report as a readable table (what ``visionserve eval`` prints without ``--json``)."""

from __future__ import annotations

from typing import Any


def _num(value: float | None, width: int = 6) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.3f}"


def _head(report: dict[str, Any]) -> list[str]:
    lines = [
        f"{report['model']} ({report['task']}, version {report['version']}): "
        f"{report['evaluated_images']} of {report['images']} images"
        + (f", {report['objects']} objects" if "objects" in report else "")
    ]
    for failure in report["failed_images"]:
        lines.append(f"  failed: {failure}")
    if report.get("skipped_classes"):
        lines.append(f"  skipped classes (not among the model's labels): {', '.join(report['skipped_classes'])}")
    return lines


def _box_table(report: dict[str, Any]) -> list[str]:
    lines = []
    for kind, summary in report["metrics"].items():
        lines.append(
            f"{kind:<9} mAP@[.5:.95] {_num(summary['map'])}   mAP@.5 {_num(summary['map50'])}"
            f"   mAP@.75 {_num(summary['map75'])}"
        )
    at = report["at_conf"]
    lines.append(
        f"at the configured thresholds: precision {_num(at['precision'])}  recall {_num(at['recall'])}"
        f"  F1 {_num(at['f1'])}   (IoU {report['settings']['match_iou']})"
    )
    lines.append("")
    lines.append(
        f"{'class':<18}{'objects':>8}{'AP':>7}{'AP50':>7}{'AP75':>7}{'conf':>7}{'P':>7}{'R':>7}"
        f"{'best conf':>10}{'best F1':>8}{'P':>7}{'R':>7}"
    )
    for row in report["classes"]:
        lines.append(
            f"{row['label'][:17]:<18}{row['objects']:>8}{_num(row['ap'], 7)}{_num(row['ap50'], 7)}"
            f"{_num(row['ap75'], 7)}{_num(row['conf'], 7)}{_num(row['precision'], 7)}{_num(row['recall'], 7)}"
            f"{_num(row['best_conf'], 10)}{_num(row['best_f1'], 8)}{_num(row['best_precision'], 7)}"
            f"{_num(row['best_recall'], 7)}"
        )
    return lines


def _class_table(report: dict[str, Any]) -> list[str]:
    lines = [f"top-1 accuracy {_num(report['top1'])}   top-5 accuracy {_num(report['top5'])}", ""]
    lines.append(f"{'class':<30}{'images':>8}{'top-1':>8}{'top-5':>8}")
    for row in report["classes"]:
        lines.append(f"{row['label'][:29]:<30}{row['images']:>8}{_num(row['top1'], 8)}{_num(row['top5'], 8)}")
    return lines


def report_table(report: dict[str, Any]) -> str:
    """The report's figures, one line per metric and per class."""
    body = _class_table(report) if report["task"] == "classify" else _box_table(report)
    return "\n".join([*_head(report), "", *body])
