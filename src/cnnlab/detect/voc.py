"""Users' annotated photos as a Pascal VOC folder → the detection data contract (``data=voc``).

Layouts (``DIR`` = ``data.root``)::

    DIR/JPEGImages/*.jpg + DIR/Annotations/*.xml      (VOC's own names)
    DIR/images/*      + DIR/annotations/*.xml          (the same, lower case)
    DIR/{train,val,test}/<either layout>               (splits as given; else split by seed)
    DIR/classes.txt                                     (optional: one class per line, that order)

An XML names its image by ``<filename>`` (in the layout's image folder). Classes are the sorted
``<name>``s unless ``classes.txt`` lists them. Box coordinates are taken as they are (float
pixels, ``xmin, ymin, xmax, ymax``, as torchvision and Albumentations read VOC), and
``<difficult>`` is kept: evaluation ignores those objects, as VOC's does.

Every XML and image header is checked before anything is written; a bad one is an error naming
the file and the object.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..data.images import DataError, load_image
from .data import SPLITS, Sample, write_dataset

LAYOUTS = (("JPEGImages", "Annotations"), ("images", "annotations"))


def find_layout(folder: Path) -> tuple[Path, Path]:
    """The ``(images, annotations)`` folders of one VOC folder.

    Raises:
        DataError: neither layout is there.
    """
    for img, ann in LAYOUTS:
        if (folder / img).is_dir() and (folder / ann).is_dir():
            return folder / img, folder / ann
    raise DataError(f"{folder}: not a VOC folder (expected JPEGImages/ + Annotations/ or images/ + annotations/)")


def _text(node: ET.Element, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DataError(f"{where}: missing <{tag}>")
    return child.text.strip()


def _number(node: ET.Element, tag: str, where: str) -> float:
    value = _text(node, tag, where)
    try:
        return float(value)
    except ValueError as err:
        raise DataError(f"{where}: <{tag}> is not a number ({value!r})") from err


def parse_xml(xml: Path, images: Path, classes: Sequence[str] | None) -> dict[str, Any]:
    """One annotation file, checked against its image: ``{"image", "width", "height", "objects"}``.

    Raises:
        DataError: naming the file (and the object): unparsable XML, missing image, a size that
            differs from the image's, a box outside the image, of zero area, or with
            ``xmin >= xmax`` / ``ymin >= ymax``, an unknown class when a class list is given.
    """
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as err:
        raise DataError(f"{xml}: cannot parse XML ({err})") from err
    filename = _text(root, "filename", str(xml))
    image = images / filename
    if not image.is_file():
        raise DataError(f"{xml}: its image {filename!r} is missing from {images}")
    try:
        with Image.open(image) as im:
            real = im.size
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{image}: cannot read image ({err})") from err
    size = root.find("size")
    if size is None:
        raise DataError(f"{xml}: missing <size>")
    w, h = int(_number(size, "width", str(xml))), int(_number(size, "height", str(xml)))
    if (w, h) != real:
        raise DataError(f"{xml}: says the image is {w}x{h}, but {image.name} is {real[0]}x{real[1]}")
    objects = []
    for i, node in enumerate(root.findall("object")):
        where = f"{xml}: object {i}"
        name = _text(node, "name", where)
        where = f"{xml}: object {i} ({name!r})"
        if classes is not None and name not in classes:
            raise DataError(f"{where}: unknown class (classes.txt lists {list(classes)})")
        bb = node.find("bndbox")
        if bb is None:
            raise DataError(f"{where}: missing <bndbox>")
        x1, y1, x2, y2 = (_number(bb, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
        if x1 > x2 or y1 > y2:
            raise DataError(f"{where}: xmin >= xmax or ymin >= ymax ({x1:g}, {y1:g}, {x2:g}, {y2:g})")
        if x1 == x2 or y1 == y2:
            raise DataError(f"{where}: box of zero area ({x1:g}, {y1:g}, {x2:g}, {y2:g})")
        if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
            raise DataError(f"{where}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside the {w}x{h} image")
        diff = node.find("difficult")
        objects.append({"class": name, "box": [x1, y1, x2, y2], "landmarks": None,
                        "difficult": diff is not None and (diff.text or "0").strip() in ("1", "true")})
    return {"image": image, "width": w, "height": h, "objects": objects, "xml": xml}


def _read_folder(folder: Path, classes: Sequence[str] | None) -> list[dict[str, Any]]:
    images, annotations = find_layout(folder)
    xmls = sorted(p for p in annotations.glob("*.xml") if not p.name.startswith("."))
    if not xmls:
        raise DataError(f"{annotations}: no .xml annotation files")
    return [parse_xml(x, images, classes) for x in xmls]


def read_classes(path: Path) -> list[str]:
    """``classes.txt``: one class name per line (blank lines and ``#`` comments skipped)."""
    names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if not names or len(set(names)) != len(names):
        raise DataError(f"{path}: needs one unique class name per line")
    return names


def seeded_split(n: int, val: float, test: float, seed: int) -> list[str]:
    """``"train"``/``"val"``/``"test"`` for ``n`` images, by a seeded permutation (exact counts)."""
    n_test, n_val = round(test * n), round(val * n)
    if n_test + n_val >= n:
        raise DataError(f"data.split: val {val} + test {test} of {n} images leave none for training")
    roles = np.array(["train"] * n, dtype=object)
    order = np.random.default_rng(seed).permutation(n)
    roles[order[:n_test]] = "test"
    roles[order[n_test:n_test + n_val]] = "val"
    return roles.tolist()


def import_voc(root: str | Path, out: str | Path, *, name: str, seed: int = 0, val: float = 0.15,
               test: float = 0.15, classes_file: str | None = None) -> dict:
    """Import a VOC folder (see the module docstring) into ``out``; returns dataset.json's content.

    Raises:
        DataError: a missing folder or a bad annotation, naming file and object (nothing is written).
    """
    root = Path(root) if root else None
    if root is None or not root.is_dir():
        raise DataError(f"data.root: VOC folder not found: {root} (set data.root=/path/to/voc)")
    cfile = Path(classes_file) if classes_file else root / "classes.txt"
    classes = read_classes(cfile) if cfile.is_file() else None
    if classes_file and classes is None:
        raise DataError(f"data.classes_file: {cfile} not found")
    if all((root / s).is_dir() for s in SPLITS):
        parsed = {s: _read_folder(root / s, classes) for s in SPLITS}
        how = "given"
    else:
        items = _read_folder(root, classes)
        roles = seeded_split(len(items), val, test, seed)
        parsed = {s: [it for it, r in zip(items, roles) if r == s] for s in SPLITS}
        how = f"seed {seed}"
    names = classes or sorted({o["class"] for items in parsed.values() for it in items for o in it["objects"]})
    if not names:
        raise DataError(f"{root}: no objects in any annotation")
    splits = {s: [_sample(it, names) for it in items] for s, items in parsed.items()}
    return write_dataset(out, splits, names, name=name, source="voc", seed=seed,
                         extra={"root": str(root), "split": how, "channels": 3})


def _sample(item: dict[str, Any], classes: Sequence[str]) -> Sample:
    objs = [{**o, "class_id": classes.index(o["class"])} for o in item["objects"]]
    path = item["image"]
    return Sample(Path(path).stem, lambda: np.asarray(load_image(path, "RGB")), objs, None,
                  extra={"source_file": str(item["xml"])}, width=item["width"], height=item["height"])


def write_voc_xml(path: str | Path, filename: str, width: int, height: int, objects: Sequence[dict]) -> Path:
    """Write one VOC annotation (``objects``: ``class``, ``box`` ``[x1, y1, x2, y2]``, ``difficult``)."""
    ann = ET.Element("annotation")
    ET.SubElement(ann, "filename").text = filename
    size = ET.SubElement(ann, "size")
    for tag, v in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(v)
    for o in objects:
        node = ET.SubElement(ann, "object")
        ET.SubElement(node, "name").text = o["class"]
        ET.SubElement(node, "difficult").text = "1" if o.get("difficult") else "0"
        bb = ET.SubElement(node, "bndbox")
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), o["box"]):
            ET.SubElement(bb, tag).text = f"{float(v):g}"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(ann).write(path, encoding="utf-8", xml_declaration=True)
    return Path(path)
