"""Real datasets, each read from its own on-disk layout.

=============  =============================================================  =======
kind           layout under ``root``                                          classes
=============  =============================================================  =======
cityscapes     ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` and           19
               ``gtFine/<split>/<city>/*_gtFine_labelIds.png``; ids map to
               train ids with the label table of ``cityscapesscripts``
voc            ``JPEGImages/<id>.jpg``, palette PNGs                          21
               ``SegmentationClass/<id>.png``, and
               ``ImageSets/Segmentation/<split>.txt``
person_part    the PASCAL-Person-Part release as DeepLab's and Graphonomy's   7
               tools use it: ``JPEGImages/<id>.jpg``, ``SegmentationPart/
               <id>.png`` (values 0-6), and ``list/<split>_id.txt``
folder         ``images/<split>/<name>.{jpg,png}``, ``masks/<split>/<name>.png``  lines of
               (class indices) and ``classes.txt``, one class name per line   classes.txt
=============  =============================================================  =======

255 is ignored everywhere. Images are normalised with the mean and standard deviation
of the backbone that reads them (a timm model's ``pretrained_cfg``: Xception's tf weights
expect 0.5 and 0.5, most others ImageNet's), then centre-cropped or padded to the crop
size (images with the mean, i.e. 0 after normalisation; labels with 255).
A missing folder, an image without a label, or a label with an unknown id is an error
that names the file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dpcdsl.errors import DpcError

IGNORE = 255


class Normalisation(NamedTuple):
    """Per-channel (RGB) mean and standard deviation of images in [0, 1]."""

    mean: Sequence[float]
    std: Sequence[float]

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) in [0, 1] -> normalised, float32."""
        return ((image - np.asarray(self.mean, np.float32))
                / np.asarray(self.std, np.float32)).astype(np.float32)


#: the ImageNet statistics most pretrained weights expect
IMAGENET = Normalisation((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
NUM_CLASSES = {"cityscapes": 19, "voc": 21, "person_part": 7}
#: the class of each training id, as the datasets name them
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "cityscapes": ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                   "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
                   "truck", "bus", "train", "motorcycle", "bicycle"),
    "voc": ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
            "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
            "pottedplant", "sheep", "sofa", "train", "tvmonitor"),
    "person_part": ("background", "head", "torso", "upper arms", "lower arms", "upper legs",
                    "lower legs"),
}


def _fail(message: str, hint: str | None = None) -> DpcError:
    return DpcError.at(None, message, hint=hint, code="DPC704")


def _folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise _fail(f"{what}: the folder {path} does not exist")
    return path


def _ids_file(path: Path) -> list[str]:
    if not path.is_file():
        raise _fail(f"the split list {path} does not exist")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


class FileDataset:
    """(image, label) file pairs, read on demand, normalised with ``normalisation``."""

    ignore_index = IGNORE

    def __init__(self, pairs: list[tuple[Path, Path]], num_classes: int, crop: int,
                 label_map: Callable[[np.ndarray, Path], np.ndarray],
                 normalisation: Normalisation = IMAGENET,
                 class_names: tuple[str, ...] = ()) -> None:
        self.pairs, self.num_classes, self.crop = pairs, num_classes, crop
        self.class_names = class_names
        self.label_map = label_map
        self.normalisation = normalisation

    def __len__(self) -> int:
        return len(self.pairs)

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The image (H, W, 3) float32 in [0, 1] and labels (H, W) uint8, uncropped."""
        from PIL import Image

        image_path, label_path = self.pairs[i]
        try:
            with Image.open(image_path) as im:
                image = np.asarray(im.convert("RGB"), np.float32) / 255
            with Image.open(label_path) as lab:
                raw = np.asarray(lab)
        except OSError as e:
            raise _fail(f"cannot read {e.filename or image_path}: {e}") from None
        if raw.ndim != 2:
            raise _fail(f"{label_path}: a label image must have one channel, it has shape "
                        f"{raw.shape}")
        if raw.shape != image.shape[:2]:
            raise _fail(f"{label_path}: labels are {raw.shape[1]}x{raw.shape[0]}, the image "
                        f"{image_path.name} is {image.shape[1]}x{image.shape[0]}")
        return image, self.label_map(raw, label_path)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image, labels = self.raw(i)
        image = self.normalisation.apply(image)
        image, labels = centre_crop(image, labels, self.crop)
        return image.transpose(2, 0, 1).copy(), labels


def centre_crop(image: np.ndarray, labels: np.ndarray, crop: int) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """Pad (image with 0, labels with 255) to at least ``crop``, then take the centre."""
    h, w = labels.shape
    ph, pw = max(crop - h, 0), max(crop - w, 0)
    if ph or pw:
        pads = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
        image = np.pad(image, (*pads, (0, 0)))
        labels = np.pad(labels, pads, constant_values=IGNORE)
        h, w = labels.shape
    y, x = (h - crop) // 2, (w - crop) // 2
    return image[y:y + crop, x:x + crop], labels[y:y + crop, x:x + crop]


def _checked(values: np.ndarray, lut: np.ndarray, path: Path) -> np.ndarray:
    """Map label values through ``lut`` (-1: unknown), naming the file on an unknown one."""
    if values.max(initial=0) >= len(lut):
        bad = int(values[values >= len(lut)][0])
    else:
        mapped = lut[values]
        if (mapped >= 0).all():
            return mapped.astype(np.uint8)
        bad = int(values[mapped < 0][0])
    raise _fail(f"{path}: unknown label id {bad}")


def _identity_lut(num_classes: int) -> np.ndarray:
    lut = np.full(256, -1, np.int64)
    lut[:num_classes] = np.arange(num_classes)
    lut[IGNORE] = IGNORE
    return lut


def cityscapes(root: Path, split: str, crop: int) -> FileDataset:
    from cityscapesscripts.helpers.labels import labels as table

    lut = np.full(256, -1, np.int64)
    for label in table:
        if label.id >= 0:
            lut[label.id] = label.trainId if 0 <= label.trainId < 255 else IGNORE
    images = _folder(root / "leftImg8bit" / split, "cityscapes images")
    gt = _folder(root / "gtFine" / split, "cityscapes labels")
    pairs = []
    for image in sorted(images.glob("*/*_leftImg8bit.png")):
        stem = image.name[: -len("_leftImg8bit.png")]
        label = gt / image.parent.name / f"{stem}_gtFine_labelIds.png"
        if not label.is_file():
            raise _fail(f"{image}: no label {label}")
        pairs.append((image, label))
    return FileDataset(pairs, 19, crop, lambda v, p: _checked(v, lut, p),
                       class_names=CLASS_NAMES["cityscapes"])


def _by_ids(root: Path, ids: list[str], images: str, labels: str, ext: str,
            what: str) -> list[tuple[Path, Path]]:
    image_dir, label_dir = _folder(root / images, what), _folder(root / labels, what)
    pairs = []
    for i in ids:
        image, label = image_dir / f"{i}{ext}", label_dir / f"{i}.png"
        if not image.is_file():
            raise _fail(f"{what}: the split lists {i}, but {image} does not exist")
        if not label.is_file():
            raise _fail(f"{image}: no label {label}")
        pairs.append((image, label))
    return pairs


def voc(root: Path, split: str, crop: int) -> FileDataset:
    ids = _ids_file(root / "ImageSets" / "Segmentation" / f"{split}.txt")
    pairs = _by_ids(root, ids, "JPEGImages", "SegmentationClass", ".jpg", "PASCAL VOC")
    lut = _identity_lut(21)
    return FileDataset(pairs, 21, crop, lambda v, p: _checked(v, lut, p),
                       class_names=CLASS_NAMES["voc"])


def person_part(root: Path, split: str, crop: int) -> FileDataset:
    ids = _ids_file(root / "list" / f"{split}_id.txt")
    pairs = _by_ids(root, ids, "JPEGImages", "SegmentationPart", ".jpg", "PASCAL-Person-Part")
    lut = _identity_lut(7)
    return FileDataset(pairs, 7, crop, lambda v, p: _checked(v, lut, p),
                       class_names=CLASS_NAMES["person_part"])


def folder(root: Path, split: str, crop: int) -> FileDataset:
    classes_file = root / "classes.txt"
    if not classes_file.is_file():
        raise _fail(f"folder dataset: {classes_file} does not exist",
                    hint="write one class name per line")
    names = [c.strip() for c in classes_file.read_text().splitlines() if c.strip()]
    images = _folder(root / "images" / split, "folder dataset images")
    masks = _folder(root / "masks" / split, "folder dataset masks")
    pairs = []
    for image in sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg",
                                                                             ".png")):
        label = masks / f"{image.stem}.png"
        if not label.is_file():
            raise _fail(f"{image}: no label {label}")
        pairs.append((image, label))
    lut = _identity_lut(len(names))
    return FileDataset(pairs, len(names), crop, lambda v, p: _checked(v, lut, p),
                       class_names=tuple(names))


READERS: dict[str, Callable[[Path, str, int], FileDataset]] = {
    "cityscapes": cityscapes, "voc": voc, "person_part": person_part, "folder": folder}
