"""Zero-shot classification and tags, and the built-in vocabularies (vocab/)."""
