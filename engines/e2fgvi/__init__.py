"""E2FGVI-HQ (MCG-NKU/E2FGVI) video inpainting as a torch-only port loading the official checkpoints."""
