"""performer-pytorch (lucidrains): the FAVOR+ softmax kernel feature map and orthogonal features.

Recipes:

  transformer-theory check performer:softmax_kernel --as random_features --option tensors=torch \
      --option feature_kinds=positive --option feature_stabilizer=row --option feature_eps=1e-4
  transformer-theory check performer:orthogonal --as orthogonal_gaussian --option rng=seed

``softmax_kernel(data, *, projection_matrix, is_query, normalize_data=True, eps=1e-4)`` returns
``ratio * (exp(w.x - |x|^2/2 - max) + eps)`` with ``ratio = m ** -0.5``: positive features only
(feature_kinds=positive), stabilised by the per-row max of ``w.x`` for queries
(``torch.amax(data_dash, dim=-1)``: feature_stabilizer=row) and an additive ``eps = 1e-4``
(feature_eps). ``normalize_data=False`` gives the kernel exp(x.y) of the contract (True scales x by
d^-1/4 for exp(q.k/sqrt(d))). It needs 4-d (b, h, n, d) data (``b, h, *_ = data.shape``).
``gaussian_orthogonal_random_matrix(nb_rows, nb_columns, scaling=0)`` draws from torch's global
RNG (seeded here: rng=seed); scaling=0 multiplies rows by chi-distributed norms ("chi"),
scaling=1 by sqrt(d) ("fixed").
"""
import torch
from performer_pytorch.performer_pytorch import gaussian_orthogonal_random_matrix
from performer_pytorch.performer_pytorch import softmax_kernel as _softmax_kernel


def softmax_kernel(x, w, kind="positive"):
    data = x.reshape(-1, 1, *x.shape[-2:]) if x.ndim > 1 else x.reshape(1, 1, 1, -1)
    out = _softmax_kernel(data, projection_matrix=w, is_query=True, normalize_data=False)
    return out.reshape(*x.shape[:-1], w.shape[0])


def orthogonal(m, d, seed, *, scaling="chi"):
    torch.manual_seed(seed)
    return gaussian_orthogonal_random_matrix(m, d, scaling={"chi": 0, "fixed": 1}[scaling]).numpy()
