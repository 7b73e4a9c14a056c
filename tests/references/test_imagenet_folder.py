"""ImageNet folders: class ids from WordNet-id folders (train and val layouts) and the shipped class list."""

from __future__ import annotations

import pytest
from PIL import Image

from rdm_core.errors import RecipeError
from rdm_references.imagenet import class_names, class_prompts, imagenet_classes, synset_index


def _tree(root, files):
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (len(rel) * 7 % 255, 10, 200)).save(path, format="PNG")
    return root


def test_class_list_is_torchvisions_names_in_sorted_wordnet_order():
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    rows = imagenet_classes()
    wnids = [w for w, _ in rows]
    assert len(rows) == 1000 and wnids == sorted(set(wnids))
    assert all(len(w) == 9 and w.startswith("n") and w[1:].isdigit() for w in wnids)
    assert class_names() == list(_IMAGENET_CATEGORIES)
    assert rows[0] == ("n01440764", "tench") and rows[999] == ("n15075141", "toilet tissue")
    assert class_prompts("{}!")[1] == "goldfish!" and synset_index()["n01443537"] == 1


def test_train_layout_gives_imagenet_indices(tmp_path):
    from rdm_references.sources.folder import FolderSource

    root = _tree(tmp_path / "train", ["n15075141/b.JPEG", "n01440764/x/a.jpeg", "n01440764/c.png"])
    src = FolderSource(str(root), resolution=16, labels="synsets")
    assert [src.key(i) for i in range(3)] == ["n01440764/c.png", "n01440764/x/a.jpeg", "n15075141/b.JPEG"]
    assert src.labels(range(3)) == [0, 0, 999]
    assert src.class_names()[999] == "toilet tissue"
    assert src.read([2]).images.shape == (1, 3, 16, 16)
    assert src.describe()["labels"] == "synsets" and src.describe()["classes_present"] == 2


def test_partial_val_tree_keeps_the_true_indices(tmp_path):
    """A val tree with only some classes: synsets keep ImageNet's indices, folder order would not."""
    from rdm_references.sources.folder import FolderSource

    root = _tree(tmp_path / "val", ["n01443537/ILSVRC2012_val_00000001.JPEG", "n01484850/ILSVRC2012_val_00000002.JPEG"])
    assert FolderSource(str(root), resolution=8, labels="synsets").labels([0, 1]) == [1, 2]
    folders = FolderSource(str(root), resolution=8, labels="folders")
    assert folders.labels([0, 1]) == [0, 1] and folders.class_names() == ["n01443537", "n01484850"]


def test_layouts_labels_cannot_serve_are_refused(tmp_path):
    from rdm_core.plugins import registry

    flat = _tree(tmp_path / "flat", ["ILSVRC2012_val_00000001.JPEG", "n01443537/a.png"])
    with pytest.raises(RecipeError, match="one folder per class"):
        registry("data_sources").create("folder", root=str(flat), labels="synsets")
    odd = _tree(tmp_path / "odd", ["cats/a.png"])
    with pytest.raises(RecipeError, match="not an ImageNet-1k WordNet id"):
        registry("data_sources").create("folder", root=str(odd), labels="synsets")
    with pytest.raises(RecipeError, match="unknown"):
        registry("data_sources").create("folder", root=str(odd), labels="wnids")
    plain = registry("data_sources").create("folder", root=str(odd))
    with pytest.raises(RecipeError, match="without labels"):
        plain.labels([0])
