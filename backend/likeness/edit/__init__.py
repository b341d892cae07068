"""Text-driven edits of a head (``likeness edit``), text → new head (``likeness create``) and text relighting.

Split so the core backend never needs torch, diffusers or transformers:

- no torch: :mod:`.lights` (words → an SH light), :mod:`.watermark` (the invisible mark in edited textures),
  :mod:`.sd` (finding, checking and installing a Stable Diffusion folder), :mod:`.job` (requests, bundles);
- torch (imported when an edit runs): :mod:`.render` (a differentiable renderer of our head),
  :mod:`.guidance` (score distillation through a diffusers ``StableDiffusionPipeline``), :mod:`.optimise`.
"""
