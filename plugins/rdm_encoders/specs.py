"""Declared specs of the 14-encoder panel (cheap: no torch, timm or transformers import).

Values follow the paper's battery (docs/method.md, docs/encoders.md). Mean/std/interpolation equal each library's own
pretrained config (a test compares them with timm's ``pretrained_cfg`` and the transformers /
diffusers defaults), so the spec can be read without building anything.
"""

from __future__ import annotations

from rdm_core.interfaces import EncoderSpec, Preprocessing, WeightSource

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)

INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
DREAMSIM_ZIP_URL = (
    "https://github.com/ssundaram21/dreamsim/releases/download/v0.2.0-checkpoints/dreamsim_ensemble_checkpoint.zip"
)
DREAMSIM_CONVERTED = "rdm_dreamsim_ensemble.safetensors"


def _timm(
    name: str, model_id: str, *, pooling: str, dim: int, split: str, res: int, mean, std, license: str, notes: str = ""
) -> EncoderSpec:
    """A timm encoder: weights live in the ``timm/<model_id>`` hub repository."""
    return EncoderSpec(
        name=name,
        library="timm",
        model_id=model_id,
        pooling=pooling,
        dim=dim,
        split=split,  # type: ignore[arg-type]
        preprocessing=Preprocessing(resolution=res, interpolation="bicubic", mean=mean, std=std),
        precision="bf16",
        weights=WeightSource(hub_id=f"timm/{model_id}", files=("model.safetensors",)),
        license=license,
        notes=notes,
    )


INCEPTION = EncoderSpec(
    name="inception",
    library="rdm",
    model_id="fid_inception_v3",
    pooling="pool3",
    dim=2048,
    split="train",
    preprocessing=Preprocessing(resolution=299, interpolation="tf1_bilinear", value_range=(-1.0, 1.0), antialias=False),
    precision="fp32",
    weights=WeightSource(
        url=INCEPTION_URL,
        files=("weights-inception-2015-12-05-6726825d.pth",),
        note="FID InceptionV3 (TF 2015-12-05 graph); cached under $TORCH_HOME/hub/checkpoints",
    ),
    license="apache-2.0",
    notes="torchvision Inception3 + FID blocks (avg pools exclude padding, last E block max-pools); "
    "TF1-style bilinear resize to 299 then 2x-1; fp32 with autocast off.",
)

CONVNEXT = _timm(
    "convnext",
    "convnextv2_base.fcmae_ft_in22k_in1k",
    pooling="avg",
    dim=1024,
    split="train",
    res=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    license="cc-by-nc-4.0",
    notes="spatial mean of forward_features (no head LayerNorm); no dynamic size (TypeError).",
)
MAE = _timm(
    "mae",
    "vit_large_patch16_224.mae",
    pooling="avg",
    dim=1024,
    split="train",
    res=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    license="cc-by-nc-4.0",
    notes="mean of patch tokens after the final norm (CLS excluded).",
)
CLIP = _timm(
    "clip",
    "vit_large_patch14_clip_224.openai",
    pooling="cls",
    dim=1024,
    split="train",
    res=256,
    mean=CLIP_MEAN,
    std=CLIP_STD,
    license="apache-2.0",
    notes="256 px zero-padded to 266 (19x19 grid); plain GELU as in the authors' code.",
)
DINOV3_L = _timm(
    "dinov3_l",
    "vit_large_patch16_dinov3.lvd1689m",
    pooling="cls",
    dim=1024,
    split="train",
    res=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    license="dinov3-license",
    notes="CLS token (timm's default pool is avg); 4 registers; RoPE.",
)
PE_CORE_L = _timm(
    "pe_core_l",
    "vit_pe_core_large_patch14_336.fb",
    pooling="attn",
    dim=1024,
    split="train",
    res=224,
    mean=HALF,
    std=HALF,
    license="apache-2.0",
    notes="attn_pool over all tokens including CLS; 224 px with dynamic size.",
)
SIGLIP2 = _timm(
    "siglip2",
    "vit_so400m_patch16_siglip_256.v2_webli",
    pooling="attn",
    dim=1152,
    split="train",
    res=224,
    mean=HALF,
    std=HALF,
    license="apache-2.0",
    notes="MAP head; 224 px (14x14 grid).",
)
AIMV2_HUGE = _timm(
    "aimv2_huge",
    "aimv2_huge_patch14_224.apple_pt",
    pooling="avg",
    dim=1536,
    split="train",
    res=224,
    mean=CLIP_MEAN,
    std=CLIP_STD,
    license="apple-ascl",
    notes="mean over all tokens (no prefix token).",
)

WEBSSL_DINO_1B = EncoderSpec(
    name="webssl_dino_1b",
    library="transformers",
    model_id="Dinov2Model:facebook/webssl-dino1b-full2b-224",
    pooling="cls",
    dim=1536,
    split="train",
    preprocessing=Preprocessing(resolution=224, interpolation="bicubic", mean=IMAGENET_MEAN, std=IMAGENET_STD),
    weights=WeightSource(hub_id="facebook/webssl-dino1b-full2b-224", files=("config.json", "model.safetensors")),
    license="cc-by-nc-4.0",
    notes="pooler_output (LayerNorm'd CLS); loaded with the native Dinov2Model, never trust_remote_code.",
)

DREAMSIM = EncoderSpec(
    name="dreamsim",
    library="timm",
    model_id="dreamsim_ensemble(dino_vitb16,clip_vitb16,open_clip_vitb16)",
    pooling="ensemble",
    dim=1792,
    split="train",
    preprocessing=Preprocessing(resolution=224, interpolation="bicubic"),
    weights=WeightSource(
        hub_id="timm/vit_base_patch16_224.dino",
        files=("model.safetensors",),
        url=DREAMSIM_ZIP_URL,
        note="`rdm encoders fetch dreamsim` downloads the DINO ViT-B/16 weights (hub) and the "
        "official ensemble zip (url); the first build converts them (LoRA merged) into "
        f"$TORCH_HOME/hub/checkpoints/{DREAMSIM_CONVERTED}. Manual route: `python -m "
        "rdm_encoders.dreamsim_convert CHECKPOINT_DIR_OR_ZIP [DINO_WEIGHTS]`.",
    ),
    license="mit",
    notes="DINO CLS of the last block before the final norm (768) + CLIP-QuickGELU embedding (512) + "
    "OpenCLIP embedding (512), LoRA merged; per-branch normalisation; concat, centre, L2-normalise.",
)

DINOV2 = _timm(
    "dinov2",
    "vit_large_patch14_dinov2.lvd142m",
    pooling="cls",
    dim=1024,
    split="held_out",
    res=256,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    license="apache-2.0",
    notes="256 px zero-padded to 266 (19x19 grid).",
)
SIGLIP_V1 = _timm(
    "siglip_v1",
    "vit_so400m_patch14_siglip_384.webli",
    pooling="attn",
    dim=1152,
    split="held_out",
    res=384,
    mean=HALF,
    std=HALF,
    license="apache-2.0",
    notes="MAP head; 384 px zero-padded to 392 (28x28 grid).",
)

CRADIOV3_L = EncoderSpec(
    name="cradiov3_l",
    library="transformers",
    model_id="RadioModel:nvidia/C-RADIOv3-L",
    pooling="summary",
    dim=3072,
    split="held_out",
    # RADIO normalises with CLIP mean/std inside the model, so none is applied outside.
    preprocessing=Preprocessing(resolution=256, interpolation="bicubic"),
    weights=WeightSource(hub_id="nvidia/C-RADIOv3-L", files=("config.json", "model.safetensors")),
    license="nvidia-open-model-license",
    notes="summary = 3 teacher CLS tokens flattened; native transformers RadioModel (no trust_remote_code); "
    "v3-L cls/register counts unverified against the real config.",
)

FLUX_VAE = EncoderSpec(
    name="flux_vae",
    library="diffusers",
    model_id="AutoencoderKL:black-forest-labs/FLUX.1-schnell/vae",
    pooling="patch_mean",
    dim=1024,
    split="held_out",
    preprocessing=Preprocessing(resolution=256, interpolation="bilinear", value_range=(-1.0, 1.0)),
    precision="bf16",
    weights=WeightSource(
        hub_id="black-forest-labs/FLUX.1-schnell",
        subfolder="vae",
        files=("config.json", "diffusion_pytorch_model.safetensors"),
    ),
    license="apache-2.0",
    notes="latent_dist.mean (16x32x32, no scale/shift) -> 4x4 patch mean -> 1024; FLUX.1 (not FLUX.2) VAE.",
)

# Panel order (Tables 1, 5 and 7): 10 training encoders, then the 4 held-out ones.
PANEL: tuple[EncoderSpec, ...] = (
    INCEPTION,
    CONVNEXT,
    MAE,
    CLIP,
    DINOV3_L,
    PE_CORE_L,
    SIGLIP2,
    AIMV2_HUGE,
    WEBSSL_DINO_1B,
    DREAMSIM,
    DINOV2,
    SIGLIP_V1,
    CRADIOV3_L,
    FLUX_VAE,
)
SPECS: dict[str, EncoderSpec] = {s.name: s for s in PANEL}
TRAIN = tuple(s.name for s in PANEL if s.split == "train")
HELD_OUT = tuple(s.name for s in PANEL if s.split == "held_out")

# name -> lazy factory ("module:attr"), imported only when the encoder is built.
FACTORIES: dict[str, str] = {
    "inception": "rdm_encoders.inception:build_inception",
    "convnext": "rdm_encoders.timm_encoders:build_convnext",
    "mae": "rdm_encoders.timm_encoders:build_mae",
    "clip": "rdm_encoders.timm_encoders:build_clip",
    "dinov3_l": "rdm_encoders.timm_encoders:build_dinov3_l",
    "pe_core_l": "rdm_encoders.timm_encoders:build_pe_core_l",
    "siglip2": "rdm_encoders.timm_encoders:build_siglip2",
    "aimv2_huge": "rdm_encoders.timm_encoders:build_aimv2_huge",
    "webssl_dino_1b": "rdm_encoders.hf_encoders:build_webssl_dino_1b",
    "dreamsim": "rdm_encoders.dreamsim:build_dreamsim",
    "dinov2": "rdm_encoders.timm_encoders:build_dinov2",
    "siglip_v1": "rdm_encoders.timm_encoders:build_siglip_v1",
    "cradiov3_l": "rdm_encoders.hf_encoders:build_cradiov3_l",
    "flux_vae": "rdm_encoders.hf_encoders:build_flux_vae",
}
