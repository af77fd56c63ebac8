"""The bibliography: every work a :class:`~transformer_theory.theory.claim.Source` names.

A ``Source`` cites a work by its short author-year form (``"Choromanski et al.
2021"``) and a place in it; this module holds, once per work, the full authors,
year, title and venue, keyed by that short form. Lecture notes
(:func:`~transformer_theory.theory.claim.seed_note`) resolve to their file in
``shared/seeds/``.

:func:`bibliography` returns the entries the claims cite, in the order the
registry first cites them (the report's bibliography section);
:func:`entry_for` finds the entry of one ``Source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .claim import Source

__all__ = ["Entry", "ENTRIES", "SEED_FILES", "SEED_DIRECTORY", "entry_for", "bibliography"]


@dataclass(frozen=True)
class Entry:
    """One work of the bibliography.

    Attributes
    ----------
    key : str
        The short author-year form a ``Source`` uses (``Source.authors``).
    authors : str
        The authors in full (a long list ends with "et al.").
    year : int or None
        Year of publication (None for living documentation).
    title : str
        The full title; a ``Source.title`` (title, then venue or place) starts
        with its first words.
    venue : str
        Where it appeared: proceedings, journal, arXiv identifier, publisher,
        repository or file.
    """

    key: str
    authors: str
    year: int | None
    title: str
    venue: str

    def __str__(self) -> str:
        year = f" ({self.year})" if self.year is not None else ""
        return f"{self.authors}{year}. {self.title}. {self.venue}."

    def to_json(self) -> dict:
        return {"key": self.key, "authors": self.authors, "year": self.year,
                "title": self.title, "venue": self.venue}


def _e(key: str, authors: str, year: int | None, title: str, venue: str) -> Entry:
    return Entry(key, authors, year, title, venue)


#: Every cited work, by the short form its ``Source`` uses.
ENTRIES: dict[str, Entry] = {e.key: e for e in (
    # attention, heads and decoding
    _e("Vaswani et al. 2017", "Ashish Vaswani, Noam Shazeer, Niki Parmar, Jakob Uszkoreit, "
       "Llion Jones, Aidan N. Gomez, Łukasz Kaiser, Illia Polosukhin", 2017,
       "Attention Is All You Need", "Advances in Neural Information Processing Systems 30 "
       "(NeurIPS 2017)"),
    _e("Shazeer 2019", "Noam Shazeer", 2019,
       "Fast Transformer Decoding: One Write-Head is All You Need", "arXiv:1911.02150"),
    _e("Ainslie et al. 2023", "Joshua Ainslie, James Lee-Thorp, Michiel de Jong, Yury "
       "Zemlyanskiy, Federico Lebrón, Sumit Sanghai", 2023,
       "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints",
       "Proceedings of EMNLP 2023"),
    _e("Pope et al. 2023", "Reiner Pope, Sholto Douglas, Aakanksha Chowdhery, Jacob Devlin, "
       "James Bradbury, Anselm Levskaya, Jonathan Heek, Kefan Xiao, Shivani Agrawal, Jeff Dean",
       2023, "Efficiently Scaling Transformer Inference",
       "Proceedings of Machine Learning and Systems 5 (MLSys 2023)"),
    _e("Devlin et al. 2019", "Jacob Devlin, Ming-Wei Chang, Kenton Lee, Kristina Toutanova",
       2019, "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
       "Proceedings of NAACL-HLT 2019"),
    _e("Gemma Team 2024", "Gemma Team, Google DeepMind", 2024,
       "Gemma 2: Improving Open Language Models at a Practical Size", "arXiv:2408.00118"),
    _e("PyTorch documentation", "The PyTorch contributors", None,
       "torch.nn.functional.scaled_dot_product_attention",
       "PyTorch documentation, pytorch.org/docs"),
    # masking, windows and packing
    _e("Beltagy, Peters & Cohan 2020", "Iz Beltagy, Matthew E. Peters, Arman Cohan", 2020,
       "Longformer: The Long-Document Transformer", "arXiv:2004.05150"),
    _e("Zaheer et al. 2020", "Manzil Zaheer, Guru Guruganesh, Avinava Dubey, Joshua Ainslie, "
       "Chris Alberti, Santiago Ontañón, Philip Pham, Anirudh Ravula, Qifan Wang, Li Yang, "
       "Amr Ahmed", 2020, "Big Bird: Transformers for Longer Sequences",
       "Advances in Neural Information Processing Systems 33 (NeurIPS 2020)"),
    _e("Child et al. 2019", "Rewon Child, Scott Gray, Alec Radford, Ilya Sutskever", 2019,
       "Generating Long Sequences with Sparse Transformers", "arXiv:1904.10509"),
    _e("Krell et al. 2021", "Mario Michael Krell, Matej Kosec, Sergio P. Perez, Andrew "
       "Fitzgibbon", 2021, "Efficient Sequence Packing without Cross-contamination: "
       "Accelerating Large Language Models without Impacting Performance", "arXiv:2107.02027"),
    _e("FlashAttention (Dao-AILab/flash-attention)", "Tri Dao and the flash-attention "
       "contributors", None, "flash_attn_func docstring",
       "software repository github.com/Dao-AILab/flash-attention"),
    _e("Mistral AI 2023", "Mistral AI", 2023,
       "mistral-src, the reference implementation of Mistral 7B",
       "software repository github.com/mistralai/mistral-src"),
    # exact attention, online softmax, precision
    _e("Milakov & Gimelshein 2018", "Maxim Milakov, Natalia Gimelshein", 2018,
       "Online normalizer calculation for softmax", "arXiv:1805.02867"),
    _e("Dao et al. 2022", "Tri Dao, Daniel Y. Fu, Stefano Ermon, Atri Rudra, Christopher Ré",
       2022, "FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness",
       "Advances in Neural Information Processing Systems 35 (NeurIPS 2022)"),
    _e("Kalamkar et al. 2019", "Dhiraj Kalamkar, Dheevatsa Mudigere, Naveen Mellempudi, "
       "Dipankar Das, et al.", 2019, "A Study of BFLOAT16 for Deep Learning Training",
       "arXiv:1905.12322"),
    # positions
    _e("Su et al. 2021", "Jianlin Su, Yu Lu, Shengfeng Pan, Ahmed Murtadha, Bo Wen, "
       "Yunfeng Liu", 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding",
       "arXiv:2104.09864"),
    _e("Press, Smith & Lewis 2022", "Ofir Press, Noah A. Smith, Mike Lewis", 2022,
       "Train Short, Test Long: Attention with Linear Biases Enables Input Length Extrapolation",
       "International Conference on Learning Representations (ICLR 2022)"),
    _e("Chen et al. 2023", "Shouyuan Chen, Sherman Wong, Liangjian Chen, Yuandong Tian", 2023,
       "Extending Context Window of Large Language Models via Positional Interpolation",
       "arXiv:2306.15595"),
    # layers and normalisation
    _e("Ba, Kiros & Hinton 2016", "Jimmy Lei Ba, Jamie Ryan Kiros, Geoffrey E. Hinton", 2016,
       "Layer Normalization", "arXiv:1607.06450"),
    _e("Ioffe & Szegedy 2015", "Sergey Ioffe, Christian Szegedy", 2015,
       "Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate "
       "Shift", "Proceedings of the 32nd International Conference on Machine Learning (ICML 2015)"),
    _e("Zhang & Sennrich 2019", "Biao Zhang, Rico Sennrich", 2019,
       "Root Mean Square Layer Normalization",
       "Advances in Neural Information Processing Systems 32 (NeurIPS 2019)"),
    _e("Hendrycks & Gimpel 2016", "Dan Hendrycks, Kevin Gimpel", 2016,
       "Gaussian Error Linear Units (GELUs)", "arXiv:1606.08415"),
    _e("Shazeer 2020", "Noam Shazeer", 2020, "GLU Variants Improve Transformer",
       "arXiv:2002.05202"),
    _e("Goodfellow, Bengio & Courville 2016", "Ian Goodfellow, Yoshua Bengio, Aaron Courville",
       2016, "Deep Learning", "MIT Press"),
    _e("Kaplan et al. 2020", "Jared Kaplan, Sam McCandlish, Tom Henighan, Tom B. Brown, "
       "Benjamin Chess, Rewon Child, Scott Gray, Alec Radford, Jeffrey Wu, Dario Amodei", 2020,
       "Scaling Laws for Neural Language Models", "arXiv:2001.08361"),
    # Performers and random features
    _e("Choromanski et al. 2021", "Krzysztof Choromanski, Valerii Likhosherstov, David Dohan, "
       "Xingyou Song, Andreea Gane, Tamás Sarlós, Peter Hawkins, Jared Davis, Afroz Mohiuddin, "
       "Łukasz Kaiser, David Belanger, Lucy Colwell, Adrian Weller", 2021,
       "Rethinking Attention with Performers", "International Conference on Learning "
       "Representations (ICLR 2021); arXiv:2009.14794"),
    _e("Katharopoulos et al. 2020", "Angelos Katharopoulos, Apoorv Vyas, Nikolaos Pappas, "
       "François Fleuret", 2020,
       "Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention",
       "Proceedings of the 37th International Conference on Machine Learning (ICML 2020)"),
    _e("Rahimi & Recht 2007", "Ali Rahimi, Benjamin Recht", 2007,
       "Random Features for Large-Scale Kernel Machines",
       "Advances in Neural Information Processing Systems 20 (NeurIPS 2007)"),
    _e("Yu et al. 2016", "Felix X. Yu, Ananda Theertha Suresh, Krzysztof Choromanski, "
       "Daniel Holtmann-Rice, Sanjiv Kumar", 2016, "Orthogonal Random Features",
       "Advances in Neural Information Processing Systems 29 (NeurIPS 2016)"),
    _e("Mezzadri 2007", "Francesco Mezzadri", 2007,
       "How to Generate Random Matrices from the Classical Compact Groups",
       "Notices of the American Mathematical Society 54(5)"),
    _e("google-research/performer", "Google Research", 2020,
       "fast_attention (the reference FAVOR+ code)",
       "software repository github.com/google-research/google-research, folder performer/"),
    # statistics
    _e("Massey 1951", "Frank J. Massey Jr.", 1951,
       "The Kolmogorov-Smirnov Test for Goodness of Fit",
       "Journal of the American Statistical Association 46(253)"),
    _e("Maurer & Pontil 2009", "Andreas Maurer, Massimiliano Pontil", 2009,
       "Empirical Bernstein Bounds and Sample Variance Penalization",
       "Conference on Learning Theory (COLT 2009); arXiv:0907.3740"),
    _e("Hoeffding 1963", "Wassily Hoeffding", 1963,
       "Probability Inequalities for Sums of Bounded Random Variables",
       "Journal of the American Statistical Association 58(301)"),
    # expressivity and formal languages
    _e("Yao et al. 2021", "Shunyu Yao, Binghui Peng, Christos Papadimitriou, Karthik "
       "Narasimhan", 2021, "Self-Attention Networks Can Process Bounded Hierarchical Languages",
       "Proceedings of ACL-IJCNLP 2021"),
    _e("Hahn 2020", "Michael Hahn", 2020,
       "Theoretical Limitations of Self-Attention in Neural Sequence Models",
       "Transactions of the Association for Computational Linguistics 8"),
    _e("Chiang & Cholak 2022", "David Chiang, Peter Cholak", 2022,
       "Overcoming a Theoretical Limitation of Self-Attention",
       "Proceedings of the 60th Annual Meeting of the Association for Computational "
       "Linguistics (ACL 2022)"),
    _e("Wei, Chen & Ma 2022", "Colin Wei, Yining Chen, Tengyu Ma", 2022,
       "Statistically Meaningful Approximation: a Case Study on Approximating Turing Machines "
       "with Transformers", "Advances in Neural Information Processing Systems 35 (NeurIPS 2022)"),
    _e("Pérez, Barceló & Marinkovic 2021", "Jorge Pérez, Pablo Barceló, Javier Marinkovic", 2021,
       "Attention is Turing Complete", "Journal of Machine Learning Research 22"),
    _e("Cordonnier, Loukas & Jaggi 2020", "Jean-Baptiste Cordonnier, Andreas Loukas, Martin "
       "Jaggi", 2020, "On the Relationship between Self-Attention and Convolutional Layers",
       "International Conference on Learning Representations (ICLR 2020)"),
    # recurrences and ODEs
    _e("Pascanu, Mikolov & Bengio 2013", "Razvan Pascanu, Tomas Mikolov, Yoshua Bengio", 2013,
       "On the difficulty of training recurrent neural networks",
       "Proceedings of the 30th International Conference on Machine Learning (ICML 2013)"),
    _e("Hewitt et al. 2020", "John Hewitt, Michael Hahn, Surya Ganguli, Percy Liang, "
       "Christopher D. Manning", 2020,
       "RNNs can generate bounded hierarchical languages with optimal memory",
       "Proceedings of the 2020 Conference on Empirical Methods in Natural Language "
       "Processing (EMNLP 2020)"),
    _e("Chen, Rubanova, Bettencourt & Duvenaud 2018", "Ricky T. Q. Chen, Yulia Rubanova, "
       "Jesse Bettencourt, David Duvenaud", 2018, "Neural Ordinary Differential Equations",
       "Advances in Neural Information Processing Systems 31 (NeurIPS 2018)"),
    _e("Hairer, Nørsett & Wanner 1993", "Ernst Hairer, Syvert P. Nørsett, Gerhard Wanner", 1993,
       "Solving Ordinary Differential Equations I: Nonstiff Problems", "Springer, 2nd edition"),
    _e("Cohen, Cont, Rossier & Xu 2021", "Alain-Sam Cohen, Rama Cont, Alain Rossier, Renyuan Xu",
       2021, "Scaling Properties of Deep Residual Networks",
       "Proceedings of the 38th International Conference on Machine Learning (ICML 2021)"),
    # depth, rank and smoothness of self-attention
    _e("Dong, Cordonnier & Loukas 2021", "Yihe Dong, Jean-Baptiste Cordonnier, Andreas Loukas",
       2021, "Attention is not all you need: pure attention loses rank doubly exponentially "
       "with depth", "Proceedings of the 38th International Conference on Machine Learning "
       "(ICML 2021), PMLR 139; arXiv:2103.03404"),
    _e("Bhojanapalli et al. 2020", "Srinadh Bhojanapalli, Chulhee Yun, Ankit Singh Rawat, "
       "Sashank J. Reddi, Sanjiv Kumar", 2020,
       "Low-Rank Bottleneck in Multi-head Attention Models",
       "Proceedings of the 37th International Conference on Machine Learning (ICML 2020); "
       "arXiv:2002.07028"),
    _e("Kim, Papamakarios & Mnih 2021", "Hyunjik Kim, George Papamakarios, Andriy Mnih", 2021,
       "The Lipschitz Constant of Self-Attention",
       "Proceedings of the 38th International Conference on Machine Learning (ICML 2021), "
       "PMLR 139; arXiv:2006.04710"),
    # the suite itself: a claim whose only source is its own derivation
    _e("transformer-theory", "the transformer-theory authors", None, "proofs/",
       "this repository: the sympy derivations of proofs/"),
)}

#: Where the lecture notes are, relative to the folder that holds the checkout.
SEED_DIRECTORY = "shared/seeds"

#: The file of each lecture note (``Source.seed``).
SEED_FILES: dict[str, str] = {
    "000": "000_dca4bc6ff5cc76c0.txt",
    "001": "001_227b4b6d6a829452.txt",
    "002": "002_c6f7e64caf2ae364.txt",
    "003": "003_8876c6ab28e0baf8.txt",
    "004": "004_d5b314f5ea1e15da.txt",
}


def entry_for(source: Source) -> Entry:
    """The bibliography entry of ``source``; a lecture note gives its seed file.

    Raises
    ------
    KeyError
        If the work (or the seed note) is not in the bibliography.
    """
    if source.seed is not None:
        if source.seed not in SEED_FILES:
            raise KeyError(f"seed note {source.seed!r}: no file in SEED_FILES")
        return Entry(f"seed {source.seed}", "Lecture notes", None, source.title,
                     f"{SEED_DIRECTORY}/{SEED_FILES[source.seed]}")
    try:
        return ENTRIES[source.authors]
    except KeyError:
        raise KeyError(f"{source.authors!r} ({source.title}): not in the bibliography") from None


def bibliography(claims: Iterable | None = None, *, strict: bool = True) -> list[Entry]:
    """The works the claims cite, each once, in the order they are first cited.

    Parameters
    ----------
    claims : iterable of Claim, optional
        By default every claim of the registry, in registry order.
    strict : bool
        Raise ``KeyError`` for a work that is not in the bibliography (the default,
        which the tests hold every built-in claim to); with False such a work is
        listed with what its citation says (the report of a user's own claims).

    Returns
    -------
    list of Entry
        Lecture notes included (their venue is the seed file).
    """
    if claims is None:
        from .registry import all_claims
        claims = all_claims()
    seen: dict[str, Entry] = {}
    for claim in claims:
        for source in claim.sources:
            try:
                entry = entry_for(source)
            except KeyError:
                if strict:
                    raise
                entry = Entry(source.authors, source.authors, None, source.title,
                              "not in theory/bibliography.py")
            seen.setdefault(entry.key, entry)
    return list(seen.values())
