"""The segmentation classes the model predicts: CamVid's 11 (SegNet ids), with display colours.

Id 11 is "unknown": pixels the model is unsure of (sllen.deploy.UNKNOWN_BELOW), drawn black.
"""

from __future__ import annotations

from typing import NamedTuple


class SegClass(NamedTuple):
    id: int
    name: str
    color: tuple[int, int, int]


CLASSES: tuple[SegClass, ...] = (
    SegClass(0, "Sky", (128, 128, 128)),
    SegClass(1, "Building", (128, 0, 0)),
    SegClass(2, "Pole", (192, 192, 128)),
    SegClass(3, "Road", (128, 64, 128)),
    SegClass(4, "Pavement", (60, 40, 222)),
    SegClass(5, "Tree", (128, 128, 0)),
    SegClass(6, "SignSymbol", (192, 128, 128)),
    SegClass(7, "Fence", (64, 64, 128)),
    SegClass(8, "Car", (64, 0, 128)),
    SegClass(9, "Pedestrian", (64, 64, 0)),
    SegClass(10, "Bicyclist", (0, 128, 192)),
    SegClass(11, "unknown", (0, 0, 0)),
)
