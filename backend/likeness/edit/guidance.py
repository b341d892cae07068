"""Score distillation (SDS, DreamFusion; FaceDNeRF's guidance) through a diffusers ``StableDiffusionPipeline``.

A rendered view is encoded by the pipeline's VAE; noise of a random strength is added; the UNet predicts the
noise given the prompt (classifier-free guidance against the negative prompt); the difference between the
predicted and the added noise, weighted by ``1 − ᾱ_t``, is the gradient pushed back through the VAE encoder
into the rendered pixels and so into the head. The real pipeline parts are used: ``tokenizer``,
``text_encoder``, ``vae``, ``unet`` and the ``scheduler``'s noise schedule (``alphas_cumprod``, any scheduler
class that has one); epsilon- and v-prediction UNets both work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: suffixes that tell the model from where a view looks (DreamFusion's view-dependent prompting)
VIEW_WORDS = ((35.0, "front view"), (120.0, "side view"), (181.0, "back view"))


class Guidance:
    """SDS through one loaded pipeline for one prompt (and negative prompt)."""

    def __init__(self, pipe, prompt: str, negative_prompt: str = "", guidance_scale: float = 7.5,
                 device: str = "cpu") -> None:
        self.pipe, self.device, self.scale = pipe, device, float(guidance_scale)
        self.dtype = pipe.unet.dtype
        self.alphas = pipe.scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
        self.steps = len(self.alphas)
        self.prediction = getattr(pipe.scheduler.config, "prediction_type", "epsilon")
        self.vae_factor = float(getattr(pipe.vae.config, "scaling_factor", 0.18215))
        self.embeddings: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for _, words in VIEW_WORDS:
                cond, uncond = pipe.encode_prompt(f"{prompt}, {words}", device, 1, True,
                                                  negative_prompt=negative_prompt or None)
                self.embeddings[words] = torch.cat([uncond, cond]).to(self.dtype)

    def view_words(self, yaw_deg: float) -> str:
        return next(words for limit, words in VIEW_WORDS if abs(yaw_deg) < limit)

    def loss(self, images: torch.Tensor, yaws: list[float], t_range: tuple[float, float],
             generator: torch.Generator) -> torch.Tensor:
        """The SDS loss of rendered views ``images`` (B,3,H,W) sRGB in [0,1] seen at ``yaws`` (degrees); its
        gradient is the SDS gradient. ``t_range`` is the fraction of the noise schedule to draw from."""
        batch = images.shape[0]
        x = (images * 2 - 1).to(self.dtype)
        posterior = self.pipe.vae.encode(x).latent_dist
        latents = (posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator,
                                                                device=self.device, dtype=posterior.mean.dtype))
        latents = latents * self.vae_factor
        lo, hi = (max(1, int(t_range[0] * self.steps)), max(2, int(t_range[1] * self.steps)))
        t = torch.randint(lo, min(hi, self.steps - 1) + 1, (batch,), generator=generator, device=self.device)
        noise = torch.randn(latents.shape, generator=generator, device=self.device, dtype=latents.dtype)
        a = self.alphas[t].view(-1, 1, 1, 1).to(latents.dtype)
        noisy = a.sqrt() * latents.detach() + (1 - a).sqrt() * noise
        context = torch.cat([self.embeddings[self.view_words(y)] for y in yaws])  # (2B, L, D): uncond, cond pairs
        context = torch.cat([context[0::2], context[1::2]])
        with torch.no_grad():
            out = self.pipe.unet(torch.cat([noisy, noisy]), torch.cat([t, t]), encoder_hidden_states=context).sample
        uncond, cond = out.chunk(2)
        pred = uncond + self.scale * (cond - uncond)
        if self.prediction == "v_prediction":  # v = √ᾱ ε − √(1−ᾱ) x₀  →  ε = √ᾱ v + √(1−ᾱ) x_t
            pred = a.sqrt() * pred + (1 - a).sqrt() * noisy
        grad = torch.nan_to_num((1 - a) * (pred - noise)).float()
        target = (latents.float() - grad).detach()
        return 0.5 * F.mse_loss(latents.float(), target, reduction="sum") / batch
