"""VQGAN+CLIP generation whose pictures go back into the collection.

`run.generate(library, GenerateRequest(...))` is the entry point (the CLI's `generate` and
the server's `/api/generate` call it). The parts: `vqgan` (taming-checkpoint compatible
VQGAN), `prompts`, `guide` (cutouts + CLIP loss), `drawers` (VQGAN latent or pixels),
`optimise` (the loop), `collection` (PNGs with provenance). Importing this package is cheap;
torch loads with the modules that need it.
"""
