"""The contract's vocabulary: every callable name a claim may need.

A subject (``transformer_theory.theory.subject.Subject``) maps these names to
callables on numpy arrays. One line per name states the signature; the
reference function of the same name is the full specification, and
``transformer-theory list`` prints this table.

References
----------
DESIGN.md, "Contract (numpy at the boundary)".
"""

from __future__ import annotations

__all__ = ["CALLABLES", "ALIASES"]

#: Every callable name a claim may need, with its contract (one line each;
#: the reference function's docstring is the full specification).
CALLABLES: dict[str, str] = {
    "softmax": "softmax(x, axis=-1) -> probabilities along axis",
    "attention": "attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None, softcap=None, segment_ids=None, window=None) -> (..., Lq, Ev); softcap c: c*tanh(s/c) after scaling, before bias and masks; segment_ids (..., L): packed documents; window (left, right): i - left <= j - offset <= i + right, offset = Lk - Lq under causal='bottom-right', else 0 (optional keywords)",
    "attention_weights": "attention_weights(q, k, *, mask=None, causal=False, scale=None, bias=None, softcap=None, segment_ids=None, window=None) -> (..., Lq, Lk)",
    "multi_head_attention": "multi_head_attention(x_q, x_kv, params: MultiHeadParams, *, mask=None, causal=False, rope_base=None, window=None) -> (..., Lq, E); rope_base: RoPE on each head's q and k at positions 0..L-1; window as attention's (optional keywords)",
    "grouped_query_attention": "grouped_query_attention(x_q, x_kv, params: GroupedQueryParams, *, mask=None, causal=False, rope_base=None, window=None)",
    "cross_attention": "cross_attention(x, memory, params, *, memory_mask=None) -> (..., Lq, E)",
    "decode_step": "decode_step(x_t, params, cache, *, positions=None, rope_base=None) -> (y_t, cache): one step of incremental decoding with a KV cache; positions (...,): each sequence's token position from its first real token (left padding: slots before cache.length - positions are never attended) (optional keywords)",
    "init_kv_cache": "init_kv_cache(params, batch_shape, max_len, dtype, *, window=None) -> KVCache; window w: a sliding-window cache keeping the last w + 1 keys (optional keyword)",
    "sinusoidal_encoding": "sinusoidal_encoding(n_positions, d_model) -> (N, d), Vaswani et al. §3.5",
    "one_hot_encoding": "one_hot_encoding(n_positions, d_model) -> (N, d) rows e_i (d >= N)",
    "rope": "rope(x, positions=None, *, base=10000.0, rotary_dim=None, position_scale=1.0) -> x rotated pairwise by position (RoFormer); rotary_dim, position_scale optional keywords",
    "alibi_bias": "alibi_bias(n_heads, lq, lk) -> (H, Lq, Lk) additive logit bias (Press et al.)",
    "layer_norm": "layer_norm(x, gamma=None, beta=None, *, eps=1e-5) over the last axis",
    "rms_norm": "rms_norm(x, gamma=None, *, eps=1e-6) -> x / sqrt(mean(x^2) + eps) * gamma over the last axis",
    "batch_norm": "batch_norm(x, gamma=None, beta=None, *, eps=1e-5), statistics over all axes but the last",
    "feed_forward": "feed_forward(x, params: FFNParams, *, activation='relu') -> act(x W1 + b1) W2 + b2",
    "gated_feed_forward": "gated_feed_forward(x, params: GatedFFNParams, *, activation='silu'|'gelu'|'gelu_tanh') -> (act(x W_gate + b_gate) * (x W_up + b_up)) W_down + b_down",
    "init_gated_ffn": "init_gated_ffn(d_model, d_ff, rng, *, bias=False, dtype=float64) -> GatedFFNParams",
    "sigmoid": "sigmoid(x)",
    "tanh": "tanh(x)",
    "encoder": "encoder(x, params: EncoderParams, *, mask=None, causal=False) -> (..., L, E)",
    "classify": "classify(x, params: ClassifierParams, *, mask=None) -> (..., C) logits",
    "seq2seq_logits": "seq2seq_logits(src_tokens, tgt_tokens, params) -> (B, Lt, V), teacher forcing",
    "seq2seq_logits_incremental": "seq2seq_logits_incremental(src_tokens, tgt_tokens, params): step by step with a KV cache",
    "count_parameters": "count_parameters(config) -> int, closed form",
    "count_array_parameters": "count_array_parameters(params) -> int, counted from the arrays",
    "attention_flops": "attention_flops(config, seq_len) -> dict of multiplication counts per layer",
    "kv_cache_bytes": "kv_cache_bytes(n_layers, n_kv_heads, d_head, seq_len, batch, dtype) -> int",
    "init_encoder": "init_encoder(config, rng) -> EncoderParams",
    # Performer (Choromanski et al. 2021): m random vectors w (m, d)
    "random_features": "random_features(x, w, kind='positive'|'trig'|'hyperbolic', *, stabilizer=None) -> (..., L, m or 2m)",
    "gaussian_matrix": "gaussian_matrix(m, d, rng) -> (m, d) iid N(0, 1)",
    "orthogonal_gaussian": "orthogonal_gaussian(m, d, rng, *, scaling='chi'|'fixed') -> (m, d) block-orthogonal rows",
    "favor_attention": "favor_attention(q, k, v, w, *, causal=False, kind='positive', mask=None) -> (..., L, dv)",
    "favor_attention_recurrent": "favor_attention_recurrent(q, k, v, w, *, kind='positive'): causal, one step at a time",
    # Gradients (backward passes; impl/gradients.py is the reference)
    "softmax_jacobian": "softmax_jacobian(x) -> (..., n, n), d softmax(x)_i / d x_j over the last axis",
    "softmax_backward": "softmax_backward(x, d_out, axis=-1) -> dL/dx given dL/d softmax(x)",
    "attention_backward": "attention_backward(q, k, v, d_out, *, mask=None, causal=False, scale=None) -> (dq, dk, dv)",
    "layer_norm_backward": "layer_norm_backward(x, d_out, gamma=None, beta=None, *, eps=1e-5) -> (dx, dgamma, dbeta)",
    "feed_forward_backward": "feed_forward_backward(x, params: FFNParams, d_out, *, activation='relu') -> (dx, FFNParams of gradients)",
    # Whole sequence maps (transformer-theory check TARGET --as encoder | --as causal)
    "encoder_map": "f(x) -> y on (B, L, E) without positional encoding: permutation equivariant, batch independent",
    "causal_map": "f(x) -> y on (B, L, E), causal: output i depends on inputs <= i only (prefix consistent)",
    # Constructions: the suite's own algorithms and explicit weights, checked against direct
    # simulators. A subject may bring its own; claims use the reference's when it has none.
    "online_merge": "online_merge(a: OnlineState, b: OnlineState) -> OnlineState, the (m, l, o) merge of two key blocks",
    "flash_attention": "flash_attention(q, k, v, *, block_q=16, block_k=16, mask=None, causal=False, scale=None, tracker=None) -> (..., Lq, Ev), tiled",
    "flash_io_count": "flash_io_count(n, d, m_words, *, q=None, k=None, v=None, block_sizes=None) -> IOReport (and (N, d) output): Algorithm 1 on a two-level memory",
    "sliding_window_attention": "sliding_window_attention(q, k, v, window=(left, right), *, scale=None, counter=None) -> (..., L, Ev), only i - left <= j <= i + right scored",
    "block_sparse_attention": "block_sparse_attention(q, k, v, block, layout, *, scale=None, counter=None) -> (..., L, Ev), only allowed tiles scored",
    "causal_linear_attention_recurrent": "causal_linear_attention_recurrent(q, k, v, *, feature_map=elu_plus_one) -> (..., L, Ev), run as an RNN",
    "transformer_encoder_graph": "transformer_encoder_graph(n, depth) -> DependencyGraph of a depth-layer encoder",
    "state_jacobian_norms": "state_jacobian_norms(w, steps, *, ord=2) -> (steps,) norms of dh_t/dh_0 of h_t = W h_{t-1} + U x_t",
    "elman_rnn": "elman_rnn(x, w, u, *, v=None, r=None, h0=None) -> (states (T+1, n), outputs (T, p)): h_t = tanh(W h_{t-1} + U x_t)",
    "elman_bptt": "elman_bptt(x, w, u, g, *, h0=None) -> (dW, (T, n, n) per-copy dW_t), back-propagation through time of an Elman RNN",
    "residual_stack_iid": "residual_stack_iid(x0, horizon, depth, width, rng, *, scaling='1/L', feed_forward=None) -> (..., d), fresh random weights per block",
    "conv1d_as_attention": "conv1d_as_attention(x, kernel, *, alpha=None, padding='none', attention=None) -> (..., L, C_out), K heads (Cordonnier et al.)",
    "conv2d_as_attention": "conv2d_as_attention(x, kernel, *, alpha=None, padding='none', attention=None) -> (..., H, W, C_out), K^2 heads",
    "hard_attention": "hard_attention(q, k, v, *, mask=None, causal=False, scale=None) -> (..., Lq, Ev): each query averages the values of its maximal-score keys (beta -> infinity)",
    "build_turing_transformer": "build_turing_transformer(machine, n_cells) -> TuringTransformer, one layer per machine step",
    "build_dyck_recognizer": "build_dyck_recognizer(k, D, attention='hard', n_max=None, *, ops=None, matching_layers=None, beta=None) -> DyckRecognizer (Yao et al.'s hard-attention recogniser)",
    "build_dyck_generator": "build_dyck_generator(k, D, attention='hard', n_max=None, *, ops=None) -> DyckGenerator (Yao et al.'s soft-attention generator)",
    "build_parity_transformer": "build_parity_transformer(language='parity'|'first', *, layer_norm=False, beta=1.0, eps=0.0) -> ParityTransformer (Chiang & Cholak's two-layer recognisers)",
}

#: Short names accepted for ``--as`` (and in mappings), each standing for a contract name.
ALIASES: dict[str, str] = {
    "encoder": "encoder_map",         # a whole sequence map f(x) -> y, non-causal
    "causal": "causal_map",           # a whole sequence map, causal
    "feature_map": "random_features",
    "orthogonal": "orthogonal_gaussian",
    "favor": "favor_attention",
    "mha": "multi_head_attention",
    "gqa": "grouped_query_attention",
    "gqa_self": "grouped_query_attention",   # f(x, params): self-attention only (option form)
    "layernorm": "layer_norm",
    "rmsnorm": "rms_norm",
    "swiglu": "gated_feed_forward",
}
