"""record -> vector: model specs (what a user types after --model) and the encoder."""
