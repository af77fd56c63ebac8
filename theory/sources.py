"""The works claims cite, written once. Use ``SOURCE.at("§3.5")`` for a place in them."""

from __future__ import annotations

from .claim import Source, seed_note

VASWANI_2017 = Source("Vaswani et al. 2017", "Attention Is All You Need, NeurIPS")
BA_2016 = Source("Ba, Kiros & Hinton 2016", "Layer Normalization, arXiv:1607.06450")
IOFFE_2015 = Source("Ioffe & Szegedy 2015", "Batch Normalization, ICML")
SU_2021 = Source("Su et al. 2021", "RoFormer: Enhanced Transformer with Rotary Position Embedding, arXiv:2104.09864")
PRESS_2022 = Source("Press, Smith & Lewis 2022", "Train Short, Test Long: Attention with Linear Biases, ICLR")
SHAZEER_2019 = Source("Shazeer 2019", "Fast Transformer Decoding: One Write-Head is All You Need, arXiv:1911.02150")
AINSLIE_2023 = Source("Ainslie et al. 2023", "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints, EMNLP")
POPE_2023 = Source("Pope et al. 2023", "Efficiently Scaling Transformer Inference, MLSys")
CHOROMANSKI_2021 = Source("Choromanski et al. 2021", "Rethinking Attention with Performers, ICLR")
YAO_2021 = Source("Yao et al. 2021", "Self-Attention Networks Can Process Bounded Hierarchical Languages, ACL")
HAHN_2020 = Source("Hahn 2020", "Theoretical Limitations of Self-Attention in Neural Sequence Models, TACL")
WEI_2022 = Source("Wei, Chen & Ma 2022", "Statistically Meaningful Approximation: a Case Study on Approximating Turing Machines with Transformers, NeurIPS")
PEREZ_2021 = Source("Pérez, Barceló & Marinkovic 2021", "Attention is Turing Complete, JMLR")
CORDONNIER_2020 = Source("Cordonnier, Loukas & Jaggi 2020", "On the Relationship between Self-Attention and Convolutional Layers, ICLR")
KATHAROPOULOS_2020 = Source("Katharopoulos et al. 2020", "Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention, ICML")
MILAKOV_2018 = Source("Milakov & Gimelshein 2018", "Online normalizer calculation for softmax, arXiv:1805.02867")
DAO_2022 = Source("Dao et al. 2022", "FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness, NeurIPS")
KAPLAN_2020 = Source("Kaplan et al. 2020", "Scaling Laws for Neural Language Models, arXiv:2001.08361")
HENDRYCKS_2016 = Source("Hendrycks & Gimpel 2016", "Gaussian Error Linear Units (GELUs), arXiv:1606.08415")
ZAHEER_2020 = Source("Zaheer et al. 2020", "Big Bird: Transformers for Longer Sequences, NeurIPS")
PYTORCH_SDPA = Source("PyTorch documentation", "torch.nn.functional.scaled_dot_product_attention")
DEVLIN_2019 = Source("Devlin et al. 2019", "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding, NAACL")
ZHANG_2019 = Source("Zhang & Sennrich 2019", "Root Mean Square Layer Normalization, NeurIPS")
SHAZEER_2020 = Source("Shazeer 2020", "GLU Variants Improve Transformer, arXiv:2002.05202")
GEMMA_2024 = Source("Gemma Team 2024", "Gemma 2: Improving Open Language Models at a Practical Size, arXiv:2408.00118")
KALAMKAR_2019 = Source("Kalamkar et al. 2019", "A Study of BFLOAT16 for Deep Learning Training, arXiv:1905.12322")
GOODFELLOW_2016 = Source("Goodfellow, Bengio & Courville 2016", "Deep Learning, MIT Press")

SEED_000 = seed_note("000")
SEED_001 = seed_note("001")
SEED_002 = seed_note("002")
SEED_003 = seed_note("003")
SEED_004 = seed_note("004")
