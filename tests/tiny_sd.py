"""A tiny Stable Diffusion folder with random weights, made from small configs by the real diffusers and
transformers classes and saved with ``save_pretrained`` (safetensors): what ``likeness edit`` loads, 1000× smaller.

Shared by tests/test_edit.py and tests/addon (a plain module, like shared_paths). The tokenizer's vocabulary
and merges files are written here: single letters and a few whole words, enough to tokenise any prompt.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

WORDS = ("a", "an", "the", "old", "older", "young", "man", "woman", "face", "head", "with", "grey", "beard",
         "smiling", "sunburnt", "freckles", "warm", "sunset", "from", "left", "right", "front", "side", "back",
         "view", "red", "lips", "blue", "eyes", "lit", "by", "year", "old", "blurry", "ugly")


def write_tokenizer(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for token in list(string.ascii_lowercase + string.digits + ",.-'") + [w + "</w>" for w in WORDS] + \
            [c + "</w>" for c in string.ascii_lowercase + string.digits + ",.-'"]:
        vocab.setdefault(token, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")


def make_tiny_sd(folder: Path, prediction_type: str = "epsilon") -> Path:
    """Write a tiny random Stable Diffusion pipeline folder at ``folder`` (latent 1/2 of the image size)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=2)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        latent_channels=4, norm_num_groups=4, sample_size=32)
    text = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=16,
                                        intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
                                        vocab_size=200, projection_dim=16, max_position_embeddings=77))
    write_tokenizer(folder / "_tokenizer_files")
    tokenizer = CLIPTokenizer(str(folder / "_tokenizer_files" / "vocab.json"),
                              str(folder / "_tokenizer_files" / "merges.txt"), model_max_length=77)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, prediction_type=prediction_type)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    (folder / "README.md").write_text("---\nlicense: mit\n---\nA tiny random test model.\n")
    return folder
