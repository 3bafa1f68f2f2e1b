"""FOP's step with its calls made from C++: the same torch operations on the same buffers.

On the small layers of RL policies about half of FOP's step is the cost of calling torch from
Python, not arithmetic (benchmarks/optimizer_step.py --widths 64 2). :class:`Pool`'s step for the
common path (full and low-rank buckets, Adam hyper-optimizer, torch SGD as the base, no variant)
is here written once more as the same sequence of ATen calls in C++, which FOP runs where it
applies: the results are bitwise the same (tested). The extension is built with torch's JIT
(``torch.utils.cpp_extension``: a C++ compiler and ninja, at the first step of the first FOP in a
process; torch caches the build on disk, about a minute the first time on a machine). Where it
cannot be built, FOP steps from Python after a one-line note.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any

_SOURCE = r"""
#include <cmath>
#include <vector>
using at::Tensor;

// One bucket of a pool (buckets.py): its (B, ., .) views, both slots of the rows R and of X.
struct Bucket {
  bool gram, lowrank;
  Tensor R[2], RT[2], X[2], XT[2], M, K, HT, D, C, CT, S;
};

class Pool {
 public:
  // per bucket: R0, R1, X0, X1, M, K, HT, D, then C and S where it learns from C = R^T R_prev
  Pool(std::vector<std::vector<Tensor>> buckets, std::vector<bool> gram,
       std::vector<bool> lowrank, std::vector<Tensor> slots0, std::vector<Tensor> slots1,
       std::vector<Tensor> checked, std::vector<Tensor> params, std::vector<Tensor> D_params,
       std::vector<Tensor> velocity, Tensor M, Tensor H, Tensor exp_avg, Tensor exp_avg_sq,
       Tensor step_count, double beta1, double beta2, double eps)
      : slots_{slots0, slots1}, checked_(checked), params_(params), D_params_(D_params),
        velocity_(velocity), M_{M}, H_{H}, exp_avg_{exp_avg}, exp_avg_sq_{exp_avg_sq},
        step_count_{step_count}, beta1_(beta1), beta2_(beta2), eps_(eps) {
    for (size_t i = 0; i < buckets.size(); ++i) {
      auto& t = buckets[i];
      Bucket b;
      b.gram = gram[i];
      b.lowrank = lowrank[i];
      for (int s = 0; s < 2; ++s) {
        b.R[s] = t[s];
        b.RT[s] = t[s].mT();
        b.X[s] = t[2 + s];
        b.XT[s] = t[2 + s].mT();
      }
      b.M = t[4];
      b.K = t[5];
      b.HT = t[6];
      b.D = t[7];
      if (b.gram) {
        b.C = t[8];
        b.CT = t[8].mT();
        b.S = t[9];
      }
      buckets_.push_back(b);
    }
  }

  // Pool.gather, hypergradients, FOP's finiteness check, learn, precondition and base_step;
  // false, with nothing learned or stepped, where a gradient or hypergradient is not finite.
  bool step(std::vector<Tensor> grads, int64_t cur, double eta, double hyper_lr, double lr,
            double momentum, double dampening, double weight_decay, bool nesterov,
            bool maximize) {
    const int64_t prev = 1 - cur;
    at::_foreach_copy_(slots_[cur], grads);
    for (auto& b : buckets_) {
      if (b.gram) {
        at::bmm_out(b.C, b.RT[cur], b.R[prev]);
        at::add_out(b.S, b.C, b.CT);
        b.HT.baddbmm_(b.K, b.S, 0.0, -eta);
      } else {
        at::bmm_out(b.X[cur], b.R[cur], b.M);
        at::bmm_out(b.HT, b.XT[prev], b.R[cur]);
        b.HT.baddbmm_(b.XT[cur], b.R[prev], -eta, -eta);
      }
    }
    if (!std::isfinite(checked_[cur].sum().item<double>())) return false;
    step_count_[0].add_(1);
    at::_fused_adam_(M_, H_, exp_avg_, exp_avg_sq_, {}, step_count_, hyper_lr, beta1_, beta2_,
                     0.0, eps_, false, false);
    for (auto& b : buckets_) {
      at::bmm_out(b.X[cur], b.R[cur], b.M);
      if (b.lowrank) {
        at::baddbmm_out(b.D, b.R[cur], b.X[cur], b.K);
      } else {
        at::bmm_out(b.D, b.X[cur], b.K);
      }
    }
    at::_fused_sgd_(params_, D_params_, velocity_, weight_decay, momentum, lr, dampening,
                    nesterov, maximize, false);
    return true;
  }

 private:
  std::vector<Bucket> buckets_;
  std::vector<Tensor> slots_[2], checked_, params_, D_params_, velocity_, M_, H_, exp_avg_,
      exp_avg_sq_, step_count_;
  double beta1_, beta2_, eps_;
};

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<Pool>(m, "Pool")
      .def(pybind11::init<std::vector<std::vector<Tensor>>, std::vector<bool>, std::vector<bool>,
                          std::vector<Tensor>, std::vector<Tensor>, std::vector<Tensor>,
                          std::vector<Tensor>, std::vector<Tensor>, std::vector<Tensor>, Tensor,
                          Tensor, Tensor, Tensor, Tensor, double, double, double>())
      .def("step", &Pool::step);
}
"""


@functools.cache
def extension() -> Any | None:
    """The built extension (its ``Pool`` class), or None after a one-line note where it cannot
    be built (no C++ compiler, no ninja, a failed build)."""
    # torch builds it once per machine (and per change of the source), silently: say so when
    # it takes long enough to be a build rather than a load from torch's cache
    building = threading.Timer(2.0, print, ["note: building FOP's C++ step (once on this "
                                            "machine, about a minute; cached after)"],
                               {"file": sys.stderr, "flush": True})
    building.start()
    try:
        from torch.utils.cpp_extension import load_inline

        return load_inline("fop_rl_native_step", _SOURCE, extra_cflags=["-O2"])
    except Exception as e:  # building runs a compiler: any failure means the Python step
        reason = (str(e).strip().splitlines() or [""])[0]
        print(f"note: FOP's C++ step could not be built ({type(e).__name__}: {reason}); FOP "
              "steps from Python", file=sys.stderr, flush=True)
        return None
    finally:
        building.cancel()
