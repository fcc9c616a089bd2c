"""Pure-numpy geometry for faces: non-maximum suppression, similarity transforms, the ArcFace template.

Boxes are (x1, y1, x2, y2) float pixels and landmarks are (5, 2) arrays in the core order (see core/types.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

# Where the five landmarks land in a 112x112 crop for ArcFace-family embedders (InsightFace's reference points).
# Rows: subject's right eye (image left), left eye, nose tip, right mouth corner, left mouth corner.
ARCFACE_TEMPLATE_112: FloatArray = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
ARCFACE_TEMPLATE_SIZE_PX = 112


def arcface_template(width: int, height: int) -> FloatArray:
    """The ArcFace template scaled to a crop of width x height pixels (112x112 returns it unchanged)."""
    scale = np.array(
        [width / ARCFACE_TEMPLATE_SIZE_PX, height / ARCFACE_TEMPLATE_SIZE_PX],
        dtype=np.float32,
    )
    return (ARCFACE_TEMPLATE_112 * scale).astype(np.float32)


def box_iou(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """IoU of one (4,) box with each row of an (n, 4) array."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    inter = ix * iy
    area = max(0.0, float(box[2] - box[0])) * max(0.0, float(box[3] - box[1]))
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0.0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0.0, None)
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float, max_keep: int | None = None) -> IntArray:
    """Greedy non-maximum suppression: indices of kept boxes, best score first.

    A box is dropped when its IoU with an already kept, higher-scoring box exceeds iou_threshold.
    """
    if boxes.shape[0] == 0:
        return np.zeros((0,), dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    suppressed = np.zeros(boxes.shape[0], dtype=bool)
    for position, index in enumerate(order):
        if suppressed[index]:
            continue
        keep.append(int(index))
        if max_keep is not None and len(keep) >= max_keep:
            break
        rest = order[position + 1 :]
        rest = rest[~suppressed[rest]]
        if rest.size:
            overlaps = box_iou(boxes[index], boxes[rest])
            suppressed[rest[overlaps > iou_threshold]] = True
    return np.asarray(keep, dtype=np.int64)


def estimate_similarity_transform(source: FloatArray, target: FloatArray) -> npt.NDArray[np.float64]:
    """The 2x3 similarity transform (rotation, uniform scale, translation) mapping source points onto target points.

    Least squares in closed form (Umeyama 1991), the same estimate InsightFace and scikit-image use for alignment.
    Raises ValueError when the source points are degenerate (all in one place).
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"need two matching (n>=2, 2) point sets, got {src.shape} and {dst.shape}")
    src_mean = src.mean(axis=0)
    dst_mean = dst.mean(axis=0)
    src_centred = src - src_mean
    dst_centred = dst - dst_mean
    src_variance = float((src_centred**2).sum() / src.shape[0])
    if src_variance < 1e-12:
        raise ValueError("source points are all in one place; no transform fits them")
    covariance = dst_centred.T @ src_centred / src.shape[0]
    u, singular, vt = np.linalg.svd(covariance)
    # A reflection would mirror the face; flip the weakest axis instead (Umeyama's correction).
    signs = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        signs[-1] = -1.0
    rotation = u @ np.diag(signs) @ vt
    scale = float((singular * signs).sum() / src_variance)
    translation = dst_mean - scale * rotation @ src_mean
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = translation
    return matrix


def apply_transform(matrix: npt.NDArray[np.float64], points: FloatArray) -> FloatArray:
    """Apply a 2x3 affine matrix to (n, 2) points."""
    pts = np.asarray(points, dtype=np.float64)
    return (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
