"""Building blocks of the neural families: models, corpora, tokenizers, torch helpers."""
