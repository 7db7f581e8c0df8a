"""The offline demo: a procedural shapes world and the `clipsearch demo` run over it."""
