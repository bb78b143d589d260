"""evseg.evaluate: compare predicted with ground-truth label images (pixel, CTC, matching)."""

from evseg.evaluate.folders import (
    EVALUATION_COLUMNS,
    evaluate_folders,
    format_table,
    pair_label_files,
    read_label_file,
    write_evaluation_csv,
)
from evseg.evaluate.metrics import (
    EVALUATION_IOU,
    MatchResult,
    average_precision,
    det_score,
    label_overlap,
    match_instances,
    match_thresholds,
    pixel_dice,
    pixel_jaccard,
    seg_score,
    size_shape_similarity,
)
from evseg.evaluate.scores import ImageScores, evaluate_pair, image_scores, pool_scores

__all__ = [
    "EVALUATION_COLUMNS",
    "EVALUATION_IOU",
    "ImageScores",
    "MatchResult",
    "average_precision",
    "det_score",
    "evaluate_folders",
    "evaluate_pair",
    "format_table",
    "image_scores",
    "label_overlap",
    "match_instances",
    "match_thresholds",
    "pair_label_files",
    "pixel_dice",
    "pixel_jaccard",
    "pool_scores",
    "read_label_file",
    "seg_score",
    "size_shape_similarity",
    "write_evaluation_csv",
]
