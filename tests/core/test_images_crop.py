"""One crop everywhere: reference sources, `rdm eval --images` and teacher renders of another size
all reach the encoders through the ADM centre crop, checked against a direct PIL computation."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from rdm_core.images import crop_images, load_image, save_png


def _adm_by_hand(img: Image.Image, size: int) -> torch.Tensor:
    """BOX halvings while the short side is >= 2 x size, BICUBIC to the short side, centre cut."""
    while min(img.size) >= 2 * size:
        img = img.resize((img.size[0] // 2, img.size[1] // 2), resample=Image.BOX)
    w, h = img.size
    s = size / min(w, h)
    img = img.resize((round(w * s), round(h * s)), resample=Image.BICUBIC)
    left, top = (img.size[0] - size) // 2, (img.size[1] - size) // 2
    arr = np.asarray(img.crop((left, top, left + size, top + size)).convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255


def _write(path, h, w, seed):
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return Image.fromarray(arr)


def test_reference_sources_and_eval_folders_read_the_same_pixels(tmp_path):
    from rdm_eval.render import folder_batches, image_files
    from rdm_references.sources.folder import FolderSource

    originals = [_write(tmp_path / f"{i}.png", h, w, i) for i, (h, w) in enumerate([(40, 90), (77, 33), (16, 16)])]
    expected = torch.stack([_adm_by_hand(img, 16) for img in originals])
    files = image_files(tmp_path)
    from_eval = torch.cat(list(folder_batches(files, 2, 16)))
    from_source = FolderSource(str(tmp_path), resolution=16).read([0, 1, 2]).images
    assert torch.equal(from_eval, expected)
    assert torch.equal(from_source, expected)


def test_renders_of_another_size_get_the_same_crop_as_the_saved_render(tmp_path):
    render = torch.rand(2, 3, 48, 80, generator=torch.Generator().manual_seed(0))
    cropped = crop_images(render, 16)
    for i in range(2):
        save_png(render[i], tmp_path / f"{i}.png")
        assert torch.equal(cropped[i], load_image(tmp_path / f"{i}.png", 16))
    same = torch.rand(2, 3, 16, 16)
    assert crop_images(same, 16) is same  # exact-size renders stay bit-identical
