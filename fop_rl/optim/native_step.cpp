// FOP's step for the common path, the same ATen calls as Pool.step (pool.py) on the same
// buffers; built by torch's extension loader from native.py. The names are the update rule's
// (fop_rl/optim/__init__.py, buckets.py): R the gradient's rows (two slots: this step's and
// the previous one's), M the factor of P = M M^T and K = M^T, X = R M, H the hypergradient
// (stored as HT = H^T), D the preconditioned rows, and where a full P with more rows than half
// its width learns from C = R^T R_prev, S = C + C^T.
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
