"""Training the retriever's own models on the train split: a fine-tuned bi-encoder (``embedder``) and
a cross-encoder reranker (``reranker``). ``data`` builds the examples (train queries only), the
model modules hold the short training loops."""
