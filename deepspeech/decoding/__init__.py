"""CTC decoding: greedy and beam search with a KenLM language model, LM building and tuning."""
